#!/usr/bin/env python3
"""Builds vigil's detection benchmark: real public event streams with known, injected surges.

For each stream it reads one real open-data file, converts it to vigil's wire format (finest
region code, RFC 3339 local time with the zone's offset, one allow-listed category attribute),
injects surges of known size at known places and times (a fixed seed: the same arguments give the
same bytes), and writes into OUT/<stream>/:

  events.jsonl  real + injected events, sorted by time
  truth.json    the stream's span and every injected surge (where, what, when, how many per day)
  series.csv    region,category,date,count: every (finest region, category) pair, every day,
                injected events included, zeros included
  rules/        an untuned vigil rule set for the stream (ruleset, sources, regions, index,
                grading, one indicators file), as a new user would write it

Usage:
  python3 prepare.py --data DATA_DIR --out OUT_DIR [--streams chicago,vancouver,boston,philadelphia]
                     [--seed 1] [--surges-per-bucket 7] [--vigil PATH_TO_VIGIL]

DATA_DIR is the directory of the public data sets (one sub-directory per data set, as in its
README). With --vigil, `vigil rules check` is run on every rule set written. Standard library
only (Python 3.11). See README.md next to this file for the formats and the surge design.
"""
import argparse
import csv
import gzip
import json
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GRADING = REPO / "testdata" / "chicago-daily" / "rules" / "grading.toml"

# ---------------------------------------------------------------------------------------------
# Surge design (README.md, "Surge design")

BUCKETS = ["1.5x", "2x", "3x", "+1/day", "+2/day", "ramp", "spatial"]
MULT = {"1.5x": 1.5, "2x": 2.0, "3x": 3.0}
ADD = {"+1/day": 1, "+2/day": 2}
WARMUP_DAYS = 60         # no surge starts in the first 60 days (baselines need history)
TAIL_DAYS = 7            # and none ends in the last 7 (room to raise an alert after it)
GAP_DAYS = 7             # at least 7 clear days between two surges of the same region
USUAL_WEEKS = 8          # usual = mean of the same weekday over the 8 weeks before the start
DENSE = 1.0              # a series averaging >= 1 event a day takes multiplicative surges
SPARSE_MIN = 0.1         # additive surges go to series averaging 0.1 to 1 a day
SPATIAL_MIN = 0.3        # regions of a spatial surge average at least 0.3 a day in its category
MIN_ZIP_FILINGS = 200    # Philadelphia: ZIP codes with fewer filings are dropped


def slug(s):
    """A snake_case id: lower case, every run of other characters one underscore."""
    out = re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")
    if not out or not out[0].isalpha():
        out = "v_" + out
    return out


def region_code(name, overrides=None):
    if overrides and name in overrides:
        return overrides[name]
    code = re.sub(r"[^A-Za-z0-9]+", "_", name.upper()).strip("_")
    assert 1 <= len(code) <= 32, name
    return code


# ---------------------------------------------------------------------------------------------
# Streams. Each reader yields (naive local datetime, region code, region name, category label)
# and drops what the stream's rules drop. The category value is the snake_case slug of the
# published label (kept as the display name). Nothing else of a row is kept: no address,
# coordinates, names or docket numbers.

def read_csv(path):
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def chicago_rows(data, notes):
    dropped = Counter()
    for row in read_csv(data / "chicago-aggravated-assaults" / "chicago_aggravated_assaults_2010_2019.csv.gz"):
        d = row["district"].strip()
        if not d or d == "31":
            dropped["district 31 (one stray row) or blank"] += 1
            continue
        n = int(d)
        yield (datetime.strptime(row["date"], "%Y-%m-%d %H:%M"), f"D{n:02d}", f"District {n}",
               row["loc_cat"])
    notes["dropped"] = dict(dropped)


def vancouver_rows(data, notes):
    dropped = Counter()
    for row in read_csv(data / "vancouver-crime-2020" / "vancouver_crime_2020.csv.gz"):
        hood = row["NEIGHBOURHOOD"].strip()
        if not hood:
            dropped["blank NEIGHBOURHOOD"] += 1
            continue
        # Rows of "Offence Against a Person" and "Homicide" carry HOUR=0, MINUTE=0 (randomised
        # for privacy by VPD): kept, their day is right.
        ts = datetime(int(row["YEAR"]), int(row["MONTH"]), int(row["DAY"]), int(row["HOUR"]), int(row["MINUTE"]))
        yield ts, region_code(hood), hood, row["TYPE"]
    notes["dropped"] = dict(dropped)


BOSTON_CODES = {
    "Fenway / Kenmore / Audubon Circle / Longwood": "FENWAY_KENMORE",
    "South Boston / South Boston Waterfront": "SOUTH_BOSTON_WATERFRONT",
}


def boston_rows(data, notes):
    dropped = Counter()
    for row in read_csv(data / "boston-311-2015-partial" / "boston_311_2015_partial.csv.gz"):
        hood = row["neighborhood"].strip()
        if not hood:
            dropped["blank neighborhood"] += 1
            continue
        if not row["REASON"].strip():
            dropped["blank REASON"] += 1
            continue
        ts = datetime.strptime(row["OPEN_DT"], "%m/%d/%Y %I:%M:%S %p")
        yield ts, region_code(hood, BOSTON_CODES), hood, row["REASON"]
    notes["dropped"] = dict(dropped)


# Philadelphia's lead charge (237 distinct statute titles) -> a coarse charge class. Ordered:
# the first class with a matching keyword wins; everything else is "other" (contempt, arrest
# prior to requisition, murder, sexual offences, ...).
PHL_CLASSES = [
    ("DUI", ["dui:"]),
    ("Drugs", ["manufacture, delivery", "contr subst", "cont subst", "controlled substance",
               "drug paraph", "marijuana"]),
    ("Firearms", ["firearm", "instrument of crime", "offens weap"]),
    ("Robbery", ["robbery"]),
    ("Burglary", ["burglary", "crim tres"]),
    ("Theft", ["theft", "stolen property", "retail"]),
    ("Assault", ["assault", "asslt", "strangulation", "terroristic threats"]),
]


def charge_class(charge):
    c = charge.lower()
    for cls, keys in PHL_CLASSES:
        if any(k in c for k in keys):
            return cls
    return "Other"


def philadelphia_rows(data, notes):
    path = data / "philadelphia-criminal-filings" / "phl_new_criminal_filings_2021-08_to_2023-05.csv.gz"
    per_zip = Counter(row["zip"].strip() for row in read_csv(path))
    small = {z for z, n in per_zip.items() if z and n < MIN_ZIP_FILINGS}
    notes["dropped"] = {
        "blank zip": per_zip.get("", 0),
        f"zip with fewer than {MIN_ZIP_FILINGS} filings ({len(small)} zips)": sum(per_zip[z] for z in small),
    }
    for row in read_csv(path):
        z = row["zip"].strip()
        if not z or z in small:
            continue
        yield datetime.fromisoformat(row["filing_date"]), z, f"ZIP {z}", charge_class(row["charge"])


STREAMS = {
    "chicago": dict(
        rows=chicago_rows, prefix="chi", tz="America/Chicago", levels=["city", "district"],
        root=("CHI", "Chicago"), attr="loc_cat", main=5, domain="assaults",
        title="Chicago aggravated assaults (CPD), 2010-2019, by district and location type",
        source_name="Aggravated assaults (CPD)", domain_name="Aggravated assaults"),
    "vancouver": dict(
        rows=vancouver_rows, prefix="van", tz="America/Vancouver", levels=["city", "neighbourhood"],
        root=("VAN", "Vancouver"), attr="crime_type", main=9, domain="crime",
        title="Vancouver crime (VPD GeoDASH), 2020, by neighbourhood and offence type",
        source_name="Crimes reported to VPD", domain_name="Crime"),
    "boston": dict(
        rows=boston_rows, prefix="bos", tz="America/New_York", levels=["city", "neighbourhood"],
        root=("BOS", "Boston"), attr="reason", main=8, domain="requests",
        title="Boston 311 service requests, 2015 (partial: five large types missing), by neighbourhood and reason",
        source_name="311 service requests", domain_name="Service requests"),
    "philadelphia": dict(
        rows=philadelphia_rows, prefix="phl", tz="America/New_York", levels=["city", "zip"],
        root=("PHL", "Philadelphia"), attr="charge_class", main=7, domain="filings",
        title="Philadelphia new criminal filings, 2021-08 to 2023-05, by defendant's ZIP and charge class",
        source_name="New criminal filings (Municipal Court)", domain_name="Criminal filings"),
}

# ---------------------------------------------------------------------------------------------


def half_up(x):
    return int(x + 0.5)


def local_ts(naive, tz):
    """Local wall time -> aware local time, normalised through UTC: a time skipped by a DST jump
    moves forward by the gap (same day), a repeated one takes its first occurrence."""
    return naive.replace(tzinfo=tz).astimezone(timezone.utc).astimezone(tz)


def build(name, cfg, data, out, seed, per_bucket, vigil):
    t0 = time.time()
    tz = ZoneInfo(cfg["tz"])
    notes = {}
    raw = []
    labels = {}
    for order, (naive, region, rname, label) in enumerate(cfg["rows"](data, notes)):
        aware = local_ts(naive, tz)
        value = slug(label)
        if labels.setdefault(value, label) != label:
            sys.exit(f"{name}: {label!r} and {labels[value]!r} both become {value!r}")
        raw.append((aware.timestamp(), order, region, rname, value, aware))
    raw.sort(key=lambda r: (r[0], r[1]))

    region_names = {}
    values = Counter()
    for _, _, region, rname, value, _ in raw:
        region_names.setdefault(region, rname)
        values[value] += 1
    regions = sorted(region_names)
    ranked = sorted((v for v in values if v != "other"), key=lambda v: (-values[v], v))
    main = ranked[: cfg["main"]]
    cats = main + (["other"] if len(values) > len(main) else [])

    def fold(v):
        return v if v in main else "other"

    start = min(r[5].date() for r in raw)
    end = max(r[5].date() for r in raw)
    ndays = (end - start).days + 1
    days = [start + timedelta(i) for i in range(ndays)]

    # Real daily counts per series, and donors (time of day, attributes) per series.
    real = {(r, c): [0] * ndays for r in regions for c in cats}
    donors = defaultdict(list)
    events = []
    for n, (epoch, _, region, _, value, aware) in enumerate(raw, 1):
        c = fold(value)
        real[(region, c)][(aware.date() - start).days] += 1
        donors[(region, c)].append((aware.time().replace(tzinfo=None), value))
        events.append((epoch, f"{cfg['prefix']}-{n:06d}", region, aware.isoformat(), value))
    mean = {k: sum(v) / ndays for k, v in real.items()}

    # ------------------------------------------------------------------ surges
    rng = random.Random(f"vigil-detection:{name}:{seed}")
    busy = defaultdict(list)  # region -> [(first day, last day)] of placed surges

    def free(region, s, e):
        return all(s >= e2 + GAP_DAYS + 1 or e <= s2 - GAP_DAYS - 1 for s2, e2 in busy[region])

    def usual(series, s, t):
        """Mean of the real counts of the 8 same-weekday days before the surge start s, for day t."""
        k = (t - s) // 7 + 1
        return sum(real[series][t - 7 * (k + j)] for j in range(USUAL_WEEKS)) / USUAL_WEEKS

    main_series = [(r, c) for r in regions for c in main]
    dense = [k for k in main_series if mean[k] >= DENSE]
    if len(dense) < 8:
        dense = sorted(main_series, key=lambda k: (-mean[k], k))[:8]
    sparse = [k for k in main_series if SPARSE_MIN <= mean[k] < 1.0]
    if len(sparse) < 8:
        sparse = [k for k in main_series if 0 < mean[k] < 1.0] or main_series
    ramp_pool = [k for k in main_series if mean[k] >= SPARSE_MIN] or main_series
    # spatial surges go to categories with at least 3 regions of SPATIAL_MIN a day or more
    spatial_cats = [c for c in main if sum(mean[(r, c)] >= SPATIAL_MIN for r in regions) >= 3]
    if not spatial_cats:
        spatial_cats = [max(main, key=lambda c: sum(mean[(r, c)] >= SPATIAL_MIN for r in regions))]

    def window(length):
        lo, hi = WARMUP_DAYS, ndays - 1 - TAIL_DAYS - (length - 1)
        return rng.randint(lo, hi) if hi >= lo else None

    def place(bucket):
        for _ in range(5000):
            if bucket == "spatial":
                c = rng.choice(spatial_cats)
                pool = [r for r in regions if mean[(r, c)] >= SPATIAL_MIN]
                if len(pool) < 3:
                    pool = sorted(regions, key=lambda r: (-mean[(r, c)], r))[:6]
                picked = sorted(rng.sample(pool, rng.choice([2, 3])))
                length = rng.randint(2, 5)
            else:
                pool = dense if bucket in MULT else sparse if bucket in ADD else ramp_pool
                r, c = rng.choice(pool)
                picked = [r]
                length = rng.randint(7, 14) if bucket == "ramp" else rng.randint(1, 7)
            s = window(length)
            if s is None:
                return None
            e = s + length - 1
            if not all(free(r, s, e) for r in picked):
                continue
            by_region = {}
            for r in picked:
                u = [usual((r, c), s, t) for t in range(s, e + 1)]
                if bucket in MULT:
                    add = [max(1, half_up((MULT[bucket] - 1) * x)) for x in u]
                elif bucket in ADD:
                    add = [ADD[bucket]] * length
                elif bucket == "ramp":
                    sparse_here = sum(u) / length < 1.0
                    add = [max(1, half_up((3.0 if sparse_here else 3.0 * x) * (i + 1) / length))
                           for i, x in enumerate(u)]
                else:  # spatial: 2x in every region
                    add = [max(1, half_up(x)) for x in u]
                by_region[r] = add
            for r in picked:
                busy[r].append((s, e))
            shape = "spike" if bucket in MULT or bucket in ADD else bucket
            return dict(regions=picked, category=c, s=s, days=length, shape=shape, bucket=bucket,
                        by_region=by_region)
        return None

    placed = []
    for _ in range(per_bucket):  # round robin so that no bucket gets the leftovers
        for bucket in BUCKETS:
            p = place(bucket)
            if p is None:
                print(f"{name}: could not place a {bucket} surge", file=sys.stderr)
            else:
                placed.append(p)
    placed.sort(key=lambda p: (p["s"], p["regions"], p["category"]))

    surges = []
    injected = {k: [0] * ndays for k in real}
    for i, p in enumerate(placed, 1):
        sid = f"s{i:03d}"
        seq = 0
        for r in p["regions"]:
            pool = donors.get((r, p["category"])) or [d for (rr, cc), ds in donors.items()
                                                       if cc == p["category"] for d in ds]
            for j, n in enumerate(p["by_region"][r]):
                t = p["s"] + j
                injected[(r, p["category"])][t] += n
                for _ in range(n):
                    seq += 1
                    tod, value = rng.choice(pool)
                    aware = local_ts(datetime.combine(days[t], tod), tz)
                    assert aware.date() == days[t]
                    events.append((aware.timestamp(), f"inj-{sid}-{seq:04d}", r, aware.isoformat(), value))
        total = [sum(p["by_region"][r][j] for r in p["regions"]) for j in range(p["days"])]
        s = dict(id=sid, regions=p["regions"], category=p["category"], start=days[p["s"]].isoformat(),
                 days=p["days"], shape=p["shape"], bucket=p["bucket"], added=total)
        if p["shape"] == "spatial":
            s["added_by_region"] = p["by_region"]
        surges.append(s)
    events.sort(key=lambda e: (e[0], e[1]))

    # ------------------------------------------------------------------ outputs
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    attr = cfg["attr"]
    with open(d / "events.jsonl", "w", encoding="utf-8") as f:
        for _, eid, region, ts, value in events:
            f.write(json.dumps({"id": eid, "region": region, "ts": ts, "attrs": {attr: value}},
                               separators=(",", ":")) + "\n")
    truth = {"stream": name, "timezone": cfg["tz"], "start": start.isoformat(), "end": end.isoformat(),
             "category_attr": attr, "surges": surges}
    (d / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    iso = [x.isoformat() for x in days]
    with open(d / "series.csv", "w", encoding="utf-8", newline="") as f:
        f.write("region,category,date,count\n")
        for r in regions:
            for c in cats:
                a, b = real[(r, c)], injected[(r, c)]
                f.write("".join(f"{r},{c},{iso[i]},{a[i] + b[i]}\n" for i in range(ndays)))
    write_rules(d / "rules", name, cfg, regions, region_names, sorted(values), main, labels)
    check = None
    if vigil:
        res = subprocess.run([vigil, "rules", "check", str(d / "rules")], capture_output=True, text=True)
        check = (res.stdout + res.stderr).strip()
        if res.returncode != 0:
            sys.exit(f"{name}: vigil rules check failed:\n{check}")

    by_bucket = Counter(s["bucket"] for s in surges)
    print(f"{name}: {len(events)} events ({len(raw)} real + {len(events) - len(raw)} injected), "
          f"{len(regions)} regions, {len(cats)} categories ({', '.join(cats)}), {ndays} days "
          f"{start}..{end}, {len(surges)} surges ("
          + ", ".join(f"{b} {by_bucket[b]}" for b in BUCKETS) + f"); dropped {notes['dropped']}; "
          f"{time.time() - t0:.1f}s")
    if check:
        print(f"  {check}")


def display(label):
    return label[:1].upper() + label[1:]


def toml_str(s):
    return json.dumps(s, ensure_ascii=False)


def write_rules(d, name, cfg, regions, region_names, values, main, labels):
    (d / "indicators").mkdir(parents=True, exist_ok=True)
    levels = cfg["levels"]
    (d / "ruleset.toml").write_text(
        f"# {cfg['title']}.\n"
        "# Written as a new user would from docs/rule-authoring.md (§13), untuned: one count per day,\n"
        "# for all events and for each main category, against a day-of-week baseline.\n"
        "[ruleset]\n"
        f"name = {toml_str('detection-' + name)}\n"
        f"description = {toml_str(cfg['title'])}\n"
        f"levels = [{', '.join(toml_str(x) for x in levels)}]\n"
        f"timezone = {toml_str(cfg['tz'])}\n"
        'evaluate_every = "1d"\n', encoding="utf-8")

    vals = ",\n            ".join(", ".join(toml_str(v) for v in values[i:i + 4]) for i in range(0, len(values), 4))
    (d / "sources.toml").write_text(
        "# One source. Its id is `events` so that `vigil replay --events events.jsonl` takes the\n"
        "# source from the file name (events carry no `source` field).\n"
        "[[source]]\n"
        'id = "events"\n'
        f"name = {toml_str(cfg['source_name'])}\n"
        f"topic = {toml_str('detection.' + name + '.events')}\n"
        'allowed_delay = "1h"\n'
        'allowed_lateness = "1d"\n\n'
        "  [[source.attr]]\n"
        f"  name = {toml_str(cfg['attr'])}\n"
        '  type = "enum"\n'
        "  required = true\n"
        f"  values = [{vals}]\n", encoding="utf-8")

    root, root_name = cfg["root"]
    lines = ["code,parent,level,name,population", f"{root},,{levels[0]},{root_name},"]
    for r in regions:
        assert "," not in region_names[r]
        lines.append(f"{r},{root},{levels[1]},{region_names[r]},")
    (d / "regions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    cats = ["all"] + main
    w = round(1 / len(cats), 4)
    assert abs(w * len(cats) - 1) <= 0.001
    idx = ["[index]", 'method = "arithmetic"', "min_available = 0.5", "",
           "[[domain]]", f"id = {toml_str(cfg['domain'])}", f"name = {toml_str(cfg['domain_name'])}", "weight = 1.0"]
    for c in cats:
        label = "All events" if c == "all" else display(labels[c])
        idx += ["", "[[category]]", f"id = {toml_str(c)}", f"domain = {toml_str(cfg['domain'])}",
                f"name = {toml_str(label)}", f"weight = {w}"]
    (d / "index.toml").write_text("\n".join(idx) + "\n", encoding="utf-8")

    norm = ('normalise = { method = "baseline_pvalue", baseline = "28d", guard = "1d", '
            'seasonality = "day_of_week", dist = "negbin", min_count = 3 }')
    ind = ["# One-day counts against a 28-day day-of-week negative-binomial baseline: one for all",
           "# events, one per main category (in the index category of the same id)."]
    for c in cats:
        ind += ["", "[[indicator]]"]
        if c == "all":
            ind += ['id = "count_all_1d"', 'name = "Events, one day"', 'category = "all"']
        else:
            ind += [f"id = {toml_str('count_' + c + '_1d')}", f"name = {toml_str(display(labels[c]) + ', one day')}",
                    f"category = {toml_str(c)}"]
        ind += ['source = "events"']
        if c != "all":
            ind += [f"filter = \"{cfg['attr']} = '{c}'\""]
        ind += ['measure = "count"', 'window = "1d"', 'hop = "1d"', 'direction = "up"', "weight = 1.0", norm]
    (d / "indicators" / "counts.toml").write_text("\n".join(ind) + "\n", encoding="utf-8")
    shutil.copyfile(GRADING, d / "grading.toml")
    (d / "alarm.toml").write_text(ALARM, encoding="utf-8")


# The evidence alarm as docs/rule-authoring.md writes it for a daily stream, with recurrence
# intervals per region so the levels' budgets read directly as false alerts per 100
# region-days (yellow 5, orange 1, red 0.1); `vigil calibrate` fills in the thresholds.
ALARM = """# Evidence alarms (docs/methodology.md §16): every count indicator is scanned per region over
# the last 1..7 days against the 84 days before each scan. A level is raised when an excess
# that large happens by chance in a region no more often than its recurrence interval:
# yellow once in 20 region-days, orange once in 100, red once in 1000.
[alarm]
scan = "7d"
baseline = "84d"
per = "region"
recurrence = { yellow = "20d", orange = "100d", red = "1000d" }
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="directory of the public data sets")
    ap.add_argument("--out", required=True, type=Path, help="output directory (one sub-directory per stream)")
    ap.add_argument("--streams", default="chicago,vancouver,boston,philadelphia")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--surges-per-bucket", type=int, default=7, help=f"surges per bucket ({', '.join(BUCKETS)})")
    ap.add_argument("--vigil", help="a vigil binary: run `vigil rules check` on each rule set written")
    a = ap.parse_args()
    for name in a.streams.split(","):
        name = name.strip()
        if name not in STREAMS:
            sys.exit(f"unknown stream {name!r}; known: {', '.join(STREAMS)}")
        build(name, STREAMS[name], a.data, a.out, a.seed, a.surges_per_bucket, a.vigil)


if __name__ == "__main__":
    main()
