#!/usr/bin/env python3
"""The synthetic city as a detection-benchmark stream: `vigil gen` writes the city's four sources
with injected incidents; this script turns its ground truth into a truth.json of surges (the
format of prepare.py, scored by `vigil scorecard --truth`), writes the daily series the
baselines read, and the default rules as the stream's rule set.

Usage: python3 synthetic.py --vigil PATH --out OUT_DIR [--days 180] [--seed 7]

Mapping. An incident is a surge in its region (a street or a district), from the local date it
starts to the local date it ends. Its categories (KIND_CATEGORIES below) are the index
categories of the default rules whose count indicators count the events the generator injects
for its kind (crates/sim/src/incident.rs, `attrs`, read against rules/taxonomies.toml): the
first, as `category`, counts the events of the kind's main source, the rest are `also`. An
alarm naming any of them is localised; the sources' volume categories, which count every event, are not listed (as
a real stream's `all` is not its surges' category). Series: daily event counts per source for
every street and district, the category being the source's volume category, so a baseline's
alarm names its source.
"""
import argparse, collections, json, shutil, subprocess, sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
LOCAL = timezone(timedelta(hours=8))  # the default rules' zone, +08:00
KIND_CATEGORIES = {
    # wage-arrears petitions (some collective, some repeat), labour-dispute calls (a fifth
    # gatherings or road blocks), posts on wage arrears (a risk topic)
    "labour_dispute_wave": ["petition_key_sectors", "police_disputes", "opinion_risk_topics",
                            "petition_collective", "petition_repeat", "police_gatherings"],
    # posts on one risk topic, a few viral
    "negative_opinion_burst": ["opinion_risk_topics", "opinion_bursts"],
    # theft, burglary and robbery calls; the same filed as cases
    "crime_spree": ["police_criminal", "case_property", "case_criminal_filed"],
    # gathering and blocking calls; collective petitions and posts on land and demolition
    "mass_gathering": ["police_gatherings", "petition_key_sectors", "petition_collective", "opinion_risk_topics"],
    # fraud calls; fraud and telecom-fraud cases (fraud_types, not the mass-victim economic types)
    "fraud_wave": ["case_property", "police_criminal", "case_criminal_filed"],
    # demolition and land petitions, mostly repeat, some collective
    "demolition_dispute": ["petition_key_sectors", "petition_repeat", "petition_collective"],
}
SOURCES = ["police", "case", "petition", "opinion"]


def local_date(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(LOCAL).date()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    out = Path(a.out)
    city = out / "city"
    subprocess.run([a.vigil, "gen", "--days", str(a.days), "--seed", str(a.seed), "--out", str(city),
                    "--rules", str(ROOT / "rules")], check=True)
    if (out / "rules").exists():
        shutil.rmtree(out / "rules")
    shutil.copytree(ROOT / "rules", out / "rules")
    regions = {}
    for line in (ROOT / "rules" / "regions.csv").read_text().splitlines()[1:]:
        code, parent, level = line.split(",")[:3]
        regions[code] = (parent, level)
    district_of = {c: (p if l == "street" else regions[p][0]) for c, (p, l) in regions.items() if l in ("street", "grid")}
    street_of = {c: (c if l == "street" else p) for c, (p, l) in regions.items() if l in ("street", "grid")}
    counts = collections.Counter()
    first = last = None
    for s in SOURCES:
        with open(city / f"{s}.jsonl") as f:
            for line in f:
                ev = json.loads(line)
                d = local_date(ev["ts"])
                first = d if first is None or d < first else first
                last = d if last is None or d > last else last
                r = ev["region"]
                if r in street_of:
                    counts[(street_of[r], s, d)] += 1
                    counts[(district_of[r], s, d)] += 1
    series_regions = sorted({c for c, (p, l) in regions.items() if l in ("street", "district")})
    with open(out / "series.csv", "w") as f:
        f.write("region,category,date,count\n")
        for r in series_regions:
            for s in SOURCES:
                d = first
                while d <= last:
                    f.write(f"{r},{s}_volume,{d.isoformat()},{counts[(r, s, d)]}\n")
                    d += timedelta(days=1)
    gt = json.load(open(city / "ground_truth.json"))
    surges = []
    for inc in gt["incidents"]:
        start = datetime.fromisoformat(inc["start"])
        end = start + timedelta(hours=inc["duration_hours"]) - timedelta(milliseconds=1)
        d0, d1 = start.astimezone(LOCAL).date(), end.astimezone(LOCAL).date()
        surges.append({"id": inc["id"], "regions": [inc["region"]], "category": KIND_CATEGORIES[inc["kind"]][0],
                       "also": KIND_CATEGORIES[inc["kind"]][1:],
                       "start": d0.isoformat(), "days": (d1 - d0).days + 1, "shape": "incident",
                       "bucket": inc["kind"], "strength": inc["strength"]})
    truth = {"stream": "synthetic", "timezone": "+08:00", "start": first.isoformat(), "end": last.isoformat(),
             "surges": surges}
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    # One file per source for vigil replay (the file name names the source).
    print(f"synthetic: {a.days} days, {len(surges)} incidents, {len(series_regions)} series regions", file=sys.stderr)


if __name__ == "__main__":
    main()
