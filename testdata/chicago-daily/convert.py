#!/usr/bin/env python3
"""Converts the City of Chicago's aggravated-assault records (Chicago data portal, CPD, the file
chicago_aggravated_assaults_2010_2019.csv.gz: date, loc_cat, longitude, latitude, district) into
a day-stamped vigil event stream with a three-level region tree, city > district > beat.

* Day-stamped: every event carries only its local Chicago date, written as local midnight with
  that day's UTC offset (e.g. 2019-03-10T00:00:00-06:00, 2019-03-11T00:00:00-05:00), as open-data
  portals that publish dates publish them.
* Beats: the records carry no CPD beat, so each district is split into four stand-in "beats" at
  the median longitude and latitude of its records of the year (D01-NE, D01-NW, D01-SE, D01-SW).
  Records without coordinates stay at their district. Coordinates are not carried over.

Writes police.jsonl and rules/regions.csv (English names, no populations).
Usage: python3 convert.py SRC.csv.gz YEAR
"""
import csv, gzip, json, statistics, sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

src, year = sys.argv[1], sys.argv[2]
here = Path(__file__).resolve().parent
rows = []
with gzip.open(src, "rt", newline="") as f:
    for row in csv.DictReader(f):
        if row["date"].startswith(year) and row["district"] != "31":
            rows.append(row)

def coord(row):
    try:
        lon, lat = float(row["longitude"]), float(row["latitude"])
    except ValueError:
        return None
    return (lon, lat) if lon != 0 and lat != 0 else None

by_district = {}
for row in rows:
    c = coord(row)
    if c:
        by_district.setdefault(int(row["district"]), []).append(c)
median = {d: (statistics.median(x for x, _ in cs), statistics.median(y for _, y in cs)) for d, cs in by_district.items()}

def region(row):
    d = int(row["district"])
    c = coord(row)
    if c is None or d not in median:
        return f"D{d:02d}"
    mx, my = median[d]
    return f"D{d:02d}-{'N' if c[1] >= my else 'S'}{'E' if c[0] >= mx else 'W'}"

chicago = ZoneInfo("America/Chicago")

def stamp(date):
    local = datetime.strptime(date[:10], "%Y-%m-%d").replace(tzinfo=chicago)
    return local.isoformat()

rows.sort(key=lambda r: r["date"])
with open(here / "police.jsonl", "w") as out:
    for n, row in enumerate(rows, 1):
        ev = {"id": f"chid-{year}-{n:06d}", "region": region(row), "ts": stamp(row["date"]),
              "attrs": {"loc_cat": row["loc_cat"].replace(" ", "_")}}
        out.write(json.dumps(ev, separators=(",", ":")) + "\n")

with open(here / "rules" / "regions.csv", "w") as out:
    out.write("code,parent,level,name,population\n")
    out.write("CHI,,city,Chicago,\n")
    for d in sorted(median):
        out.write(f"D{d:02d},CHI,district,District {d},\n")
        for q in ["NE", "NW", "SE", "SW"]:
            out.write(f"D{d:02d}-{q},D{d:02d},beat,District {d} {q},\n")
print(f"{len(rows)} events, {len(median)} districts", file=sys.stderr)
