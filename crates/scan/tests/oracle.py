#!/usr/bin/env python3
"""Independent values for the evidence scan (crates/scan/src/evidence.rs), from SciPy.

Writes crates/scan/tests/oracle.csv: random series (Poisson and over-dispersed, sparse and busy,
with bursts, zero baselines and unknown windows) and, for each, the scan as
docs/methodology.md §16.1-16.2 defines it, with the negative-binomial tail from
scipy.stats.nbinom (Poisson where there is no excess dispersion). A third of the cases take
counted exposures (the rest of the city's counts plus one, `Params::counted`), whose noise adds
B/(E + 1/2) to the dispersion; a scan of several windows counts only while its newest window
makes the excess more surprising (bursts that ended a day or two ago test that), and each tail is
at least the rate k/m at which the baseline's own scans of that length began as large an excess. Re-run after changing the
method:  python3 crates/scan/tests/oracle.py   (Python 3 with numpy and scipy).
"""
import math, random
from pathlib import Path
from scipy.stats import nbinom, poisson

PRIOR = 0.5


def capped(xs, fs, rate):
    s = chi2 = 0.0
    for x, f in zip(xs, fs):
        if not math.isnan(x) and not math.isnan(f):
            mu = max(rate * f, 1e-9)
            xc = min(x, mu + 3 * math.sqrt(mu) + 1)
            s += xc
            chi2 += (xc - mu) ** 2 / mu
    return s, chi2


def baseline(x, f, w, n):
    end = min(w + n, len(x), len(f))
    if end <= w:
        return None
    xs, fs = x[w:end], f[w:end]
    known = [(a, b) for a, b in zip(xs, fs) if not math.isnan(a) and not math.isnan(b)]
    s0, exposure = sum(a for a, _ in known), sum(b for _, b in known)
    if len(known) * 2 < n or exposure <= 0:
        return None
    rate, s = (s0 + PRIOR) / exposure, s0
    for _ in range(3):
        s = capped(xs, fs, rate)[0]
        rate = (s + PRIOR) / exposure
    chi2 = capped(xs, fs, rate)[1]
    phi = max(1.0, chi2 / (len(known) - 1)) if s > 0 and len(known) > 1 else 1.0
    return rate, s, phi


def tail(c, mean, phi_eff):
    k = round(c)
    if phi_eff <= 1 + 1e-9:
        return poisson.sf(k - 1, mean)
    size = mean / (phi_eff - 1)
    return nbinom.sf(k - 1, size, size / (size + mean))


def record_cap(x, f, w, N, c, e):
    """-log10(k/m): of the m scans of length w inside the baseline, k episodes (runs) with
    count/exposure >= c/e; no cap where there are none."""
    end = min(w + N, len(x), len(f))
    if end < 2 * w or c <= 0 or e <= 0:
        return math.inf
    k = m = 0
    previous = False
    for i in range(w, end - w + 1):
        xs, fs = x[i:i + w], f[i:i + w]
        if any(math.isnan(v) for v in xs + fs):
            previous = False
            continue
        m += 1
        hit = sum(xs) > 0 and sum(xs) * e >= c * sum(fs)
        if hit and not previous:
            k += 1  # a new episode: consecutive scans holding the same burst count once
        previous = hit
    if k == 0 or 2 * m < N - w:
        return math.inf
    return -math.log10(k / m)


def scan(x, f, W, N, counted):
    best = (0.0, 0, 0.0, 0.0)
    c = e = 0.0
    today = False
    for w in range(1, W + 1):
        if w - 1 >= len(x) or math.isnan(x[w - 1]) or math.isnan(f[w - 1]):
            break
        c += x[w - 1]
        e += f[w - 1]
        base = baseline(x, f, w, N)
        if base is None:
            break
        rate, s, phi = base
        b = rate * e
        if w == 1:
            today = c > b
        if not today or c <= b:
            continue
        def predictive(b, e):
            return 1 + b / (s + PRIOR) + (phi - 1) + (b / (e + PRIOR) if counted else 0)

        def stat_of(c, b, e):
            if c <= b or b <= 0:
                return 0.0
            return -math.log10(max(tail(c, b, predictive(b, e)), 1e-300))

        stat = stat_of(c, b, e)
        # A fresh scan: the newest window must make the excess more surprising than the same
        # scan without it, against the same baseline.
        if w > 1 and stat <= stat_of(c - x[0], rate * (e - f[0]), e - f[0]):
            continue
        stat = min(stat, record_cap(x, f, w, N, c, e))
        if stat > best[0]:
            best = (stat, w, c, b)
    return best


def main():
    rng = random.Random(20261204)
    rows = []
    for case in range(60):
        W, N = rng.choice([1, 3, 7, 14]), rng.choice([7, 14, 28, 56])
        length = W + N + rng.choice([0, 0, 3])
        base = rng.choice([0.0, 0.05, 0.3, 1.5, 6.0, 40.0])
        disp = rng.choice([0.0, 0.5, 2.0])
        counted = case % 3 == 2
        if counted:
            # The rest of the city: Poisson counts around a level that drifts, plus one.
            level = rng.choice([3.0, 20.0, 150.0])
            f = [float(poisson.ppf(rng.random(), level * rng.uniform(0.7, 1.3)) + 1) for _ in range(length)]
        else:
            f = [round(rng.uniform(0.6, 1.4), 3) if case % 2 else 1.0 for _ in range(length)]
        x = []
        for j in range(length):
            lam = base * f[j] * (rng.gammavariate(1 / disp, disp) if disp else 1.0)
            # Poisson by inversion (deterministic with the seeded generator).
            u, k, p = rng.random(), 0, math.exp(-lam)
            cdf = p
            while u > cdf and k < 10000:
                k += 1
                p *= lam / k
                cdf += p
            x.append(float(k))
        burst = rng.choice([0, 0, 1, 3, 7])
        # A burst that ended yesterday or earlier (then the newest window is itself quiet), or
        # one that lasts till today.
        ended = rng.choice([0, 1, 1, 2]) if burst else 0
        for j in range(ended, min(burst + ended, length)):
            x[j] += rng.choice([1, 2, 5, 20])
        if case % 7 == 3:
            for j in rng.sample(range(length), k=min(4, length)):
                x[j] = float("nan")
        if counted and case % 7 == 3:
            f[rng.randrange(length)] = float("nan")
        stat, w, c, b = scan(x, f, W, N, counted)
        rows.append([case, W, N, ";".join("nan" if math.isnan(v) else f"{v:g}" for v in x),
                     ";".join("nan" if math.isnan(v) else f"{v:g}" for v in f), f"{stat:.12g}", w, f"{c:g}", f"{b:.12g}",
                     int(counted)])
    out = Path(__file__).with_name("oracle.csv")
    with open(out, "w") as fo:
        fo.write("case,windows,baseline,x,f,stat,scan_windows,observed,expected,counted\n")
        for r in rows:
            fo.write(",".join(str(v) for v in r) + "\n")
    print(f"wrote {out}: {len(rows)} cases, {sum(1 for r in rows if float(r[5]) > 0)} with evidence")


if __name__ == "__main__":
    main()
