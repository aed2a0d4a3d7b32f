"""What any detector could reach on a stream's surges: the ceilings the benchmark's detection is
read against, bucket by bucket (run.py writes them into benches/results/detection.md).

For each surge, an oracle is told its region(s), its category and its first day, and expects
each day the mean daily count of the 8 weeks before the surge in that series (as recorded,
injected events taken out). Its statistic is the smallest Poisson P(X >= observed) over the
surge's first k days, k = 1..days (the counts of every region of a spatial surge summed). At a
false-alert rate of r per 100 region-days:

- *cut known, Poisson*: one cut tested per region-day, under Poisson noise: p <= r / 100.
- *cut known, own noise*: the same statistic judged against its own distribution on the
  surge's series: the share of every other start day of the recorded series (from the 57th on)
  whose window of the same length reaches a statistic as small must be <= r / 100. This is
  what the stream's real noise allows a detector that knows where to look; an empirical share
  below 1 / (n + 1) cannot be told from n start days (a one-year stream: not at 0.1).
- *searched, Poisson*: the Poisson oracle searching the stream's main categories and scan
  windows of 1..7 days (7 C cuts per region-day, as vigil's scan does), Bonferroni:
  p <= r / 100 / (7 C). Windows of one cut overlap, so a scan's real multiplicity is lower.

A target the *own noise* ceiling misses is out of reach for any detector that reads only the
counts: it would have to know the cut, and even then the series' own bursts are as large.
"""
import collections, csv, json, math
from datetime import date, timedelta

WINDOWS = 7


def poisson_sf(k, mu):
    """P(X >= k) for X ~ Poisson(mu), k > mu (the terms fall from the first on)."""
    if k <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    term = math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1))
    total, j = 0.0, k
    while term > 0 and (total == 0 or term > 1e-17 * total) and j < k + 10000:
        total += term
        j += 1
        term *= mu / j
    return min(1.0, total)


def _oracle(obs, real, first, days):
    """The oracle's statistic for a window starting at day index `first` of `days` days: the
    smallest Poisson P(X >= observed) over its first k days, k = 1..days, each day expecting
    the mean of `real` on the 8 same-weekday days before `first`. `obs` and `real` are lists
    of per-region day counts (summed over a spatial surge's regions by the caller)."""
    observed = expected = 0.0
    best = 1.0
    # Half an event over the 8 weeks where none was recorded: never an expectation of zero,
    # under which any event would be infinitely surprising.
    rate = max(sum(real[first - 56:first]), 0.5) / 56
    for i in range(days):
        expected += rate
        observed += obs[first + i]
        if observed > expected:
            best = min(best, poisson_sf(round(observed), expected))
    return best


def surge_pvalues(d):
    """Per bucket, each surge's oracle statistic and its empirical p-value on its own series
    (the share of every other start day of the recorded series, injected events taken out,
    whose window of the same length reaches a statistic as small; None where the stream is
    too short to tell), the number of such start days, and the stream's main categories."""
    truth = json.load(open(d / "truth.json"))
    start, end = date.fromisoformat(truth["start"]), date.fromisoformat(truth["end"])
    ndays = (end - start).days + 1
    series, cats = {}, set()
    with open(d / "series.csv") as f:
        for r in csv.DictReader(f):
            key = (r["region"], r["category"])
            if key not in series:
                series[key] = [0] * ndays
            series[key][(date.fromisoformat(r["date"]) - start).days] = int(r["count"])
            cats.add(r["category"])
    real = {k: list(v) for k, v in series.items()}
    for s in truth["surges"]:
        first = (date.fromisoformat(s["start"]) - start).days
        for region, days in (s.get("added_by_region") or {s["regions"][0]: s["added"]}).items():
            for i, n in enumerate(days):
                real[(region, s["category"])][first + i] -= n

    def summed(table, s):
        rows = [table[(region, s["category"])] for region in s["regions"]]
        return [sum(col) for col in zip(*rows)]

    by_bucket = collections.defaultdict(list)
    for s in truth["surges"]:
        first, days = (date.fromisoformat(s["start"]) - start).days, s["days"]
        obs, rec = summed(series, s), summed(real, s)
        p = _oracle(obs, rec, first, days)
        null = [_oracle(rec, rec, x, days) for x in range(56, ndays - days + 1)]
        by_bucket[s["bucket"]].append((p, (sum(q <= p for q in null) + 1) / (len(null) + 1), len(null)))
    return by_bucket, len([c for c in cats if c != "other"])


def table(d, rates, curves, best):
    """Markdown lines: per bucket, the two ceilings and, from `curves` (method -> sweep curve),
    vigil-evidence's and the best other detector's detections at each matched rate (`best`
    picks a curve's point at or below a rate)."""
    by_bucket, ncat = surge_pvalues(d)
    cuts = WINDOWS * ncat
    heads = " / ".join(f"≤ {r}" for r in rates)
    lines = [f"Ceilings by bucket (benches/detection/ceiling.py; detections of 7 at {heads} false alerts per "
             f"100 region-days). An oracle is told each surge's cut (its region, category and first day) and "
             f"expects its series' mean of the 8 weeks before: *Poisson*, its excess judged under Poisson "
             f"noise; *own noise*, judged against the same oracle on every other start day of the surge's own "
             f"series as recorded (— where the series is too short to tell that rate); *searched*, the Poisson "
             f"oracle searching the stream's {ncat} main categories and 7 scan windows ({cuts} cuts, "
             f"Bonferroni). vigil-evidence and the best other detector at each rate, chosen on all surges as above.",
             "", "| bucket | cut known, Poisson | cut known, own noise | searched, Poisson | vigil-evidence | best other |",
             "|---|---|---|---|---|---|"]
    points = {m: [best(c, r) for r in rates] for m, c in curves.items()}
    others = []
    for i in range(len(rates)):
        pick = max((p[i]["detected_own"] if p[i] else 0, m) for m, p in points.items() if m != "vigil-evidence")
        others.append(pick[1])

    def at(m, i, b):
        p = points[m][i]
        return p["by_bucket"].get(b, {}).get("detected_own", 0) if p else 0

    for b in sorted(by_bucket):
        ps = by_bucket[b]
        known = " / ".join(str(sum(p <= r / 100 for p, _, _ in ps)) for r in rates)
        # An empirical p-value below 1 / (n + 1) cannot be told from n start days.
        own = " / ".join("—" if any(n + 1 < 100 / r for _, _, n in ps) else str(sum(e <= r / 100 for _, e, _ in ps))
                         for r in rates)
        searched = " / ".join(str(sum(p <= r / 100 / cuts for p, _, _ in ps)) for r in rates)
        vigil = " / ".join(str(at("vigil-evidence", i, b)) for i in range(len(rates)))
        other = " / ".join(str(at(m, i, b)) for i, m in enumerate(others))
        lines.append(f"| {b} | {known} | {own} | {searched} | {vigil} | {other} |")
    lines.append(f"\nBest other detector at {heads}: {', '.join(others)}.")
    return lines
