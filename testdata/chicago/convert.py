#!/usr/bin/env python3
"""Converts the City of Chicago's aggravated-assault records (Chicago data portal, CPD, the file
chicago_aggravated_assaults_2010_2019.csv.gz)
into vigil's event wire format: one police event per record, region = the CPD district, the
location category as the only attribute. Coordinates are not carried over: vigil scores regions,
and the district is the region. Local Chicago time (with daylight saving) becomes UTC.

Usage: python3 convert.py SRC.csv.gz YEAR > police.jsonl
"""
import csv, gzip, json, sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

src, year = sys.argv[1], sys.argv[2]
chicago = ZoneInfo("America/Chicago")
n = 0
with gzip.open(src, "rt", newline="") as f:
    for row in csv.DictReader(f):
        if not row["date"].startswith(year):
            continue
        local = datetime.strptime(row["date"], "%Y-%m-%d %H:%M").replace(tzinfo=chicago)
        ts = local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        n += 1
        ev = {"id": f"chi-{year}-{n:06d}", "region": f"D{int(row['district']):02d}", "ts": ts,
              "attrs": {"loc_cat": row["loc_cat"].replace(" ", "_")}}
        print(json.dumps(ev, ensure_ascii=False, separators=(",", ":")))
