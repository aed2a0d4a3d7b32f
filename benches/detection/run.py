#!/usr/bin/env python3
"""Rebuilds the detection benchmark end to end: real streams with injected surges (prepare.py),
vigil replayed on each with the rule set a new user would write, the baselines of baselines.R on
exactly the same daily series, every detector through `vigil scorecard`, and the results as
benches/results/detection.md with a trade-off chart (plot.R).

Usage: python3 benches/detection/run.py --data DATA_DIR [--out DIR] [--vigil PATH]
       [--streams chicago,vancouver,boston,philadelphia,synthetic] [--methods ears,...] [--sample N]
       [--seed 1] [--also-seeds 2,3] [--reuse-baselines] [--report-only] [--results FILE]

DATA_DIR holds the public data sets (see benches/detection/README.md). A smoke test: one stream
and EARS only (`--streams chicago --methods ears`).
"""
import argparse, csv, json, os, platform, shutil, subprocess, sys, time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import ceiling

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TARGETS = [0.03, 0.1, 1.0, 5.0]
LEVELS = ["blue", "yellow", "orange", "red"]
CEILING_RATES = [0.1, 1.0, 5.0]
# A short history: the first days of a stream, and the Monte Carlo replicates fitted with them.
SHORT_DAYS, SHORT_REPLICATES = 110, 19


def sh(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def out_json(cmd):
    return json.loads(sh(cmd, stdout=subprocess.PIPE).stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default=str(ROOT / "target" / "detection"))
    ap.add_argument("--vigil", default=str(next((p for p in (ROOT / "target" / "release" / "vigil", ROOT / "target" / "debug" / "vigil") if p.exists()), "vigil")))
    ap.add_argument("--streams", default="chicago,vancouver,boston,philadelphia,synthetic")
    ap.add_argument("--methods", default="ears,farrington,glrnb,glrpois,glm")
    ap.add_argument("--sample", type=int, default=0, help="baselines on a deterministic sample of N series per stream")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--also-seeds", default="",
                    help="further draws of the surges (comma-separated seeds), each run the same way into OUT/seed-N; "
                         "the summary adds vigil-evidence against the best baseline pooled over every draw")
    ap.add_argument("--results", default=str(ROOT / "benches" / "results" / "detection.md"))
    ap.add_argument("--confidence", default=None,
                    help="vigil calibrate --confidence C for the evidence alarm's thresholds, or 'point' for "
                         "--point-estimate (default: vigil's own, 0.9)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the results from an earlier run's --out")
    ap.add_argument("--reuse-baselines", action="store_true",
                    help="keep an earlier run's baselines.csv in --out (the R baselines take most of the time)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    streams = a.streams.split(",")
    started = time.time()
    draws = [(a.seed, out)] + [(int(x), out / f"seed-{x}") for x in a.also_seeds.split(",") if x]
    real = [s for s in streams if s != "synthetic"]
    for seed, d in draws[1:]:
        # Another draw of the surges on the same real streams, run by this script into its own
        # directory (its R baselines reused when asked and present): only its sweep curves are
        # read back, for the pooled summary.
        if not a.report_only and real:
            sh([sys.executable, __file__, "--data", a.data, "--out", d, "--vigil", a.vigil, "--streams", ",".join(real),
                "--methods", a.methods, "--seed", seed, "--results", d / "detection.md"]
               + (["--sample", a.sample] if a.sample else []) + (["--reuse-baselines"] if a.reuse_baselines else [])
               + (["--confidence", a.confidence] if a.confidence else []))
    a.draws = draws
    if a.report_only:
        rows = []
        for s in streams:
            d = out / s
            methods = sorted({r["method"] for r in csv.DictReader(open(d / "baselines.csv"))})
            extra = [] if s == "synthetic" else ["vigil-evidence", "vigil-indicators"]
            rows.append((s, index_cards(a, d, d / "rules"), extra + methods, evidence_cards(a, d, d / "rules")))
        write_results(a, out, rows, None)
        return
    real = [s for s in streams if s != "synthetic"]
    if real:
        sh([sys.executable, HERE / "prepare.py", "--data", a.data, "--out", out, "--streams", ",".join(real), "--seed", a.seed])
    if "synthetic" in streams:
        sh([sys.executable, HERE / "synthetic.py", "--vigil", a.vigil, "--out", out / "synthetic"])
    rows = []  # (stream, method, curve-or-card)
    for s in streams:
        d = out / s
        rules = d / "rules"
        if s == "synthetic":
            # The synthetic city with the default rules, as the demo runs it (hourly; its full
            # score records would take gigabytes, so only its alerts are scored).
            city = sorted((d / "city").glob("*.jsonl"))
            sh([a.vigil, "replay", "--rules", rules, "--events", *city, "--out", d / "vigil", "--scores", "none"])
        else:
            # Every region-day's statistic over the stream with its surges, for the sweep (the
            # thresholds this run fits link children at its fixed point; they are not kept).
            with open(d / "calibrate-with-surges.txt", "w") as f:
                sh([a.vigil, "calibrate", "--rules", rules, "--events", d / "events.jsonl", "--to", midpoint(d),
                    "--signals", d / "evidence.csv"], stdout=f)
            # The evidence alarm calibrated as a user calibrates it: on the first half of the
            # stream as it was recorded, without the benchmark's injected surges, which no
            # user's history holds (they are a test device, and at one surge day in 15 to 240
            # region-days far denser than real outbreaks; fitted with them, a level's budget
            # would be spent on the surges themselves). Its thresholds go into alarm.toml.
            # (Named events.jsonl, as the file name gives its events' source.)
            real_events = d / "recorded" / "events.jsonl"
            real_events.parent.mkdir(exist_ok=True)
            recorded_only(d / "events.jsonl", real_events)
            with open(d / "calibrate.txt", "w") as f:
                sh([a.vigil, "calibrate", "--rules", rules, "--events", real_events, "--to", midpoint(d), "--write"]
                   + confidence(a), stdout=f)
            # vigil as a new user would run it: the stream's rule set, every indicator's score kept.
            sh([a.vigil, "replay", "--rules", rules, "--events", d / "events.jsonl", "--out", d / "vigil",
                "--scores", "full", "--score-levels", ",".join(levels_of(rules))])
        split_alerts(d / "vigil")
        if s != "synthetic":
            short_history(a, d)
        cards = index_cards(a, d, rules)
        if s != "synthetic":
            sh([a.vigil, "scorecard", "--truth", d / "truth.json", "--rules", rules, "--scores",
                d / "vigil" / "scores.jsonl", "--curve", d / "curve-vigil-indicators.json", "--json"], stdout=subprocess.DEVNULL)
            sh([a.vigil, "scorecard", "--truth", d / "truth.json", "--rules", rules, "--signals", d / "evidence.csv",
                "--method", "vigil-evidence", "--curve", d / "curve-vigil-evidence.json", "--json"], stdout=subprocess.DEVNULL)
        signals = d / "baselines.csv"
        cmd = ["Rscript", HERE / "baselines.R", d / "series.csv", signals, "--methods", a.methods]
        if a.sample:
            cmd += ["--sample", a.sample, "--seed", a.seed]
        if a.reuse_baselines and signals.exists():
            # The streams are rebuilt byte for byte from the same seed: an earlier run's baseline
            # statistics still describe them.
            print(f"reusing {signals}", file=sys.stderr)
        else:
            sh(cmd)
        methods = sorted({r["method"] for r in csv.DictReader(open(signals))})
        for m in methods:
            sh([a.vigil, "scorecard", "--truth", d / "truth.json", "--rules", rules, "--signals", signals,
                "--method", m, "--curve", d / f"curve-{m}.json", "--json"], stdout=subprocess.DEVNULL)
        extra = [] if s == "synthetic" else ["vigil-evidence", "vigil-indicators"]
        rows.append((s, cards, extra + methods, evidence_cards(a, d, rules)))
    write_results(a, out, rows, time.time() - started)


def short_history(a, d):
    """The evidence alarm calibrated as a city with only its first SHORT_DAYS days of records
    would: `vigil calibrate --replicates` on the recorded events of those days (too few to
    calibrate on alone, once the baseline has filled), then the stream replayed with its surges
    and scored from the second half on, as the first half's own calibration is."""
    t = json.load(open(d / "truth.json"))
    to = (date.fromisoformat(t["start"]) + timedelta(days=SHORT_DAYS - 1)).isoformat()
    out = d / "short"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    shutil.copytree(d / "rules", out / "rules")
    with open(out / "calibrate.txt", "w") as f:
        sh([a.vigil, "calibrate", "--rules", out / "rules", "--events", d / "recorded" / "events.jsonl", "--to", to,
            "--replicates", SHORT_REPLICATES, "--write"] + confidence(a), stdout=f)
    sh([a.vigil, "replay", "--rules", out / "rules", "--events", d / "events.jsonl", "--out", out / "vigil", "--scores", "none"])
    split_alerts(out / "vigil")


def short_history_lines(a, d):
    """The short-history calibration's out-of-sample rates next to the first half's."""
    out = d / "short"
    if not (out / "vigil" / "alerts-evidence.jsonl").exists():
        return []
    later = (date.fromisoformat(midpoint(d)) + timedelta(days=1)).isoformat()
    t = json.load(open(d / "truth.json"))
    to = (date.fromisoformat(t["start"]) + timedelta(days=SHORT_DAYS - 1)).isoformat()
    lines = ["", f"Calibrated from a short history: `vigil calibrate --replicates {SHORT_REPLICATES}` on the recorded "
             f"events of {t['start']}..{to} ({SHORT_DAYS} days, most of them the baseline's warm-up; methodology §16.3), "
             f"measured from {later} on as above:", "",
             "| level and above | budget /100 | false /100, short history | false /100, first half | own region, short history | own region, first half |",
             "|---|---|---|---|---|---|"]
    for lvl in LEVELS[1:]:
        card = lambda rules, alerts: out_json([a.vigil, "scorecard", "--truth", d / "truth.json", "--rules", rules,
                                              "--alerts", alerts, "--min-level", lvl, "--json", "--from", later])["point"]
        s = card(out / "rules", out / "vigil" / "alerts-evidence.jsonl")
        f = card(d / "rules", d / "vigil" / "alerts-evidence.jsonl")
        lines.append(f"| {lvl} | {budget(d, lvl, 1)} | {s['false_per_100_region_days']:.2f} | "
                     f"{f['false_per_100_region_days']:.2f} | {s['detected_own']}/{s['surges']} | {f['detected_own']}/{f['surges']} |")
    return lines


def budget(d, level, regions):
    """A level's false-alert budget per 100 region-days, from the stream's alarm.toml: 100 / R
    for a recurrence R per region, 100 / (R x alarm regions) for R per rule set."""
    import tomllib
    alarm = tomllib.loads((d / "rules" / "alarm.toml").read_text())["alarm"]
    r = alarm["recurrence"].get(level)
    if r is None:
        return "—"
    days = float(r.rstrip("d"))
    b = 100 / days if alarm.get("per") == "region" else 100 / (days * regions)
    return f"{b:.2g}"


def recorded_only(src, dst):
    """The stream's recorded events without the injected ones (ids `inj-...`, prepare.py)."""
    with open(src) as f, open(dst, "w") as out:
        for line in f:
            if not line.startswith('{"id":"inj-'):
                out.write(line)


def confidence(a):
    """The calibration's --confidence (or --point-estimate), when asked for."""
    if not a.confidence:
        return []
    return ["--point-estimate"] if a.confidence == "point" else ["--confidence", a.confidence]


def fit_how(a):
    """How the thresholds were fitted, for the results' prose."""
    if a.confidence == "point":
        return "(point estimates)"
    return f"(to hold with {a.confidence or 0.9} confidence)"


def midpoint(d):
    """The last day of the first half of a stream: the calibration period."""
    t = json.load(open(d / "truth.json"))
    a, b = date.fromisoformat(t["start"]), date.fromisoformat(t["end"])
    return (a + (b - a) / 2).isoformat()


def split_alerts(v):
    """alerts.jsonl split by scope: the evidence alarms, and the index's alerts."""
    with open(v / "alerts.jsonl") as f, open(v / "alerts-evidence.jsonl", "w") as e, open(v / "alerts-index.jsonl", "w") as i:
        for line in f:
            (e if json.loads(line)["scope"] == "evidence" else i).write(line)


def index_cards(a, d, rules):
    return {lvl: out_json([a.vigil, "scorecard", "--truth", d / "truth.json", "--rules", rules,
                           "--alerts", d / "vigil" / "alerts-index.jsonl", "--min-level", lvl, "--json"]) for lvl in LEVELS}


def evidence_cards(a, d, rules):
    """The evidence alarms per level: out of sample and over the whole stream. Real streams are
    calibrated on their first half, so out of sample is the second; the synthetic city runs the
    default rules, calibrated on another (surge-free) city, so all of it is out of sample."""
    alerts = d / "vigil" / "alerts-evidence.jsonl"
    if not alerts.exists() or alerts.stat().st_size == 0:
        return None
    if d.name == "synthetic":
        start = json.load(open(d / "truth.json"))["start"]
        card = lambda lvl: out_json([a.vigil, "scorecard", "--truth", d / "truth.json", "--rules", rules,
                                     "--alerts", alerts, "--min-level", lvl, "--json"])
        return {"from": None, "start": start, "levels": {lvl: {"oos": card(lvl), "all": card(lvl)} for lvl in LEVELS[1:]}}
    later = (date.fromisoformat(midpoint(d)) + timedelta(days=1)).isoformat()
    card = lambda lvl, *extra: out_json([a.vigil, "scorecard", "--truth", d / "truth.json", "--rules", rules,
                                         "--alerts", alerts, "--min-level", lvl, "--json", *extra])
    return {"from": later, "levels": {lvl: {"oos": card(lvl, "--from", later), "all": card(lvl)} for lvl in LEVELS[1:]}}


def levels_of(rules):
    text = (rules / "ruleset.toml").read_text()
    for line in text.splitlines():
        if line.strip().startswith("levels"):
            return json.loads(line.split("=", 1)[1].split("#")[0].strip())
    return ["city", "district", "street"]


def pooled(a, rows):
    """The summary table pooled over every draw of the surges: each detector's own-region
    detections summed over the draws at each matched rate, vigil-evidence against the best other."""
    seeds = ", ".join(str(seed) for seed, _ in a.draws)
    lines = ["", f"Pooled over {len(a.draws)} draws of the surges (`--seed` {seeds}; the first is the one detailed below, "
             "the others were run by `--also-seeds` into OUT/seed-N): the same comparison on every draw's surges together, "
             "the best other detector chosen on the pooled counts.", "",
             "| stream | surges | " + " | ".join(f"≤ {t}" for t in TARGETS) + " |", "|---|---|" + "---|" * len(TARGETS)]
    for s, _, methods, _ in rows:
        if "vigil-evidence" in methods:
            n, cells = against_best([d for _, d in a.draws], s, methods)
            lines.append(f"| {s} | {n} | " + " | ".join(cells) + " |")
    return lines


def against_best(dirs, s, methods):
    """Stream `s`'s surges over the draws in `dirs` and, at each matched rate, vigil-evidence's
    own-region detections against the best other detector's, both summed over the draws."""
    n, own = 0, {}
    for d in dirs:
        n += len(json.load(open(d / s / "truth.json"))["surges"])
        for m in methods:
            c = json.load(open(d / s / f"curve-{m}.json"))
            for t in TARGETS:
                own[(m, t)] = own.get((m, t), 0) + (best(c, t) or {"detected_own": 0})["detected_own"]
    cells = []
    for t in TARGETS:
        e = own[("vigil-evidence", t)]
        b, bm = max((own[(m, t)], m) for m in methods if m != "vigil-evidence")
        cells.append(f"{100*e/n:.0f} % vs {100*b/n:.0f} % {bm} ({100*(e-b)/n:+.0f})")
    return n, cells


def best(curve, rate):
    pts = [p for p in curve["points"] if p["false_per_100_region_days"] <= rate + 1e-12]
    return max(pts, key=lambda p: (p["detected_own"], -p["false_alerts"])) if pts else None


def write_results(a, out, rows, secs):
    lines = []
    csv_rows = []
    for s, cards, methods, ev in rows:
        d = out / s
        truth = json.load(open(d / "truth.json"))
        n = len(truth["surges"])
        lines.append(f"### {s} ({n} surges, {truth['start']} .. {truth['end']})\n")
        lines.append("Own-region detection at matched false-alert rates (false alerts per 100 region-days; "
                     "in brackets the chance level of random alerts at that rate):\n")
        lines.append("| method | " + " | ".join(f"≤ {t}" for t in TARGETS) + " |")
        lines.append("|---|" + "---|" * len(TARGETS))
        for m in methods:
            c = json.load(open(d / f"curve-{m}.json"))
            cells = []
            for t in TARGETS:
                p = best(c, t)
                cells.append("—" if p is None else f"{100*p['detected_own']/n:.0f} % ({100*p['chance']/n:.0f} %)")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
            for p in c["points"]:
                csv_rows.append([s, m, p["false_per_100_region_days"], p["detected_own"] / n])
        if ev and ev["from"] is None:
            lines.append(f"\nvigil's evidence alarms (the default rules' alarm.toml, its thresholds fitted by `vigil calibrate` {fit_how(a)} on a "
                         "surge-free synthetic city of another seed: the whole stream is out of sample). Their recurrence "
                         "intervals count days anywhere in the rule set, so the budget shown, 100 / (R x alarm regions), "
                         "assumes one alarming region per alarm day and is a lower bound; `vigil calibrate` prints the alarm "
                         "region-days its thresholds reach on the city they were fitted on (rule-authoring §8.1):\n")
        elif ev:
            lines.append(f"\nvigil's evidence alarms (alarm.toml; thresholds fitted by `vigil calibrate` {fit_how(a)} on the recorded events "
                         f"of the days before {ev['from']}, without the injected surges, as a user calibrates on their history; "
                         f"measured on the stream with its surges from {ev['from']} on, out of sample, and over the whole stream):\n")
        if ev:
            lines.append("| level and above | budget /100 | false /100, out of sample | own region, out of sample | chance | "
                         "median delay (days) | localised, of own / related detections | own region, whole stream | false /100, whole stream |")
            lines.append("|---|---|---|---|---|---|---|---|---|")
            for lvl in LEVELS[1:]:
                o, w = ev["levels"][lvl]["oos"]["point"], ev["levels"][lvl]["all"]["point"]
                no = max(1, o["surges"])
                delay = "—" if o["median_delay_days"] is None else f"{o['median_delay_days']:g}"
                share = lambda k, n: "—" if not n else f"{100*k/n:.0f} %"
                loc = f"{share(o['localised_own'], o['detected_own'])} / {share(o['localised'], o['detected_related'])}"
                lines.append(f"| {lvl} | {budget(out / s, lvl, ev['levels'][lvl]['oos']['regions'])} | {o['false_per_100_region_days']:.2f} | {o['detected_own']}/{o['surges']} "
                             f"({100*o['detected_own']/no:.0f} %) | {100*o['chance']/no:.0f} % | {delay} | {loc} | "
                             f"{100*w['detected_own']/n:.0f} % | {w['false_per_100_region_days']:.2f} |")
                csv_rows.append([s, f"vigil-evidence-{lvl}+", w["false_per_100_region_days"], w["detected_own"] / n])
            b = ev["levels"]["orange"]["all"]["point"]["by_bucket"]
            lines.append("\nOrange and above by bucket, whole stream (own region / surges): " + ", ".join(
                f"{k} {v['detected_own']}/{v['surges']}" for k, v in sorted(b.items())) + ".")
        if ev and ev["from"] is not None:
            lines += short_history_lines(a, d)
        if "vigil-evidence" in methods:
            curves = {m: json.load(open(d / f"curve-{m}.json")) for m in methods}
            lines += [""] + ceiling.table(d, CEILING_RATES, curves, best)
        who = "the default rules" if s == "synthetic" else "the rule set a new user writes from the docs"
        lines.append(f"\nvigil's index alerts ({who}; composite and domain scores):\n")
        lines.append("| level and above | own region | region or ancestor | chance | false /100 region-days | median delay (days) |")
        lines.append("|---|---|---|---|---|---|")
        for lvl in LEVELS:
            p = cards[lvl]["point"]
            delay = "—" if p["median_delay_days"] is None else f"{p['median_delay_days']:g}"
            lines.append(f"| {lvl} | {100*p['detected_own']/n:.0f} % | {100*p['detected_related']/n:.0f} % | "
                         f"{100*p['chance']/n:.0f} % | {p['false_per_100_region_days']:.2f} | {delay} |")
            csv_rows.append([s, f"vigil-{lvl}+", p["false_per_100_region_days"], p["detected_own"] / n])
        lines.append("")
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stream", "method", "false_per_100", "detection"])
        w.writerows(csv_rows)
    summary = ["## vigil's evidence statistic against the best baseline", "",
               "Own-region detection at matched false-alert rates: vigil-evidence against the best of every other "
               "detector on the same stream (EARS C1-C3, farringtonFlexible, glrnb, glrpois, the GLM, vigil's own "
               "indicator scores), and the difference in points.", "",
               "| stream | " + " | ".join(f"≤ {t}" for t in TARGETS) + " |", "|---|" + "---|" * len(TARGETS)]
    for s, _, methods, _ in rows:
        if "vigil-evidence" in methods:
            summary.append(f"| {s} | " + " | ".join(against_best([out], s, methods)[1]) + " |")
    if len(a.draws) > 1:
        summary += pooled(a, rows)
    lines = summary + [""] + lines
    chart = Path(a.results).with_suffix(".png")
    sh(["Rscript", HERE / "plot.R", out / "curves.csv", chart])
    head = [
        "# Detection benchmark",
        "",
        f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d')} on {platform.node()} "
        f"({os.cpu_count()} cores, {platform.machine()})" + ("" if secs is None else f", in {secs/60:.1f} min") + ", by",
        "`python3 benches/detection/run.py --data DATA_DIR" + (f" --sample {a.sample}" if a.sample else "")
        + (f" --also-seeds {a.also_seeds}" if a.also_seeds else "")
        + (" --reuse-baselines" if a.reuse_baselines else "") + "`"
        + (" (the R baselines' statistics reused where an earlier full run on the same streams left them)" if a.reuse_baselines else "") + ".",
        "Definitions: docs/methodology.md §14. Streams and surges: benches/detection/README.md.",
        "",
        f"![trade-off curves]({chart.name})",
        "",
        "`vigil-evidence` is vigil's alarm statistic (docs/methodology.md §16: an expectation-based",
        "negative-binomial scan over the last 1..7 days against the 84 before, per region and count",
        "indicator, the excess of alarming child regions taken out), written per region-day by",
        "`vigil calibrate --signals` and swept like the baselines; the evidence alarm tables are its",
        "alerts at the levels `vigil calibrate` fitted on the recorded events (injected surges left out, as no",
        "user's history holds them) of the first half of each stream.",
        "",
        "How to read it. Each stream has 49 injected surges, 7 per bucket (1.5x, 2x, 3x, +1/day,",
        "+2/day, ramp, spatial). *Own region*: an alarm in a surge's region, or in a region inside it, on one of its days.",
        "*False alerts*: alarm region-days outside every surge window (its regions, their ancestors and descendants,",
        "to one day after), per 100 region-days. Swept detectors (every threshold) are compared at",
        "matched rates: the best detection at or below each rate, with the chance level random",
        "alarms at that rate would reach. `vigil-indicators` sweeps the scores of vigil's own",
        "indicators (negative-binomial day-of-week baselines, `baseline_pvalue`); its scores are capped",
        "at 100 (z = 4), so below about 0.1 false alerts per 100 region-days it cannot be made",
        "stricter (—). `vigil-<level>+` are vigil's alerts as a new user's rule set raises them: the",
        "arithmetic composite over the categories averages a one-category surge away.",
        "The baselines run on exactly the daily (region, category) series vigil's indicators count",
        "(baselines.R documents each statistic). The synthetic city (`vigil gen --days 180 --seed 7`,",
        "10 incidents over several sources, benches/detection/synthetic.py maps each to one category)",
        "runs with the default rules; its baselines count each source per street and district.",
        "",
    ]
    Path(a.results).write_text("\n".join(head + lines) + "\n")
    print(f"wrote {a.results} and {chart}", file=sys.stderr)


if __name__ == "__main__":
    main()
