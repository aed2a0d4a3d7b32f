"""Independent reference for the NSSP-ESSENCE EWMA in crates/score/src/detectors.rs.

A plain-Python transcription of docs/methodology.md §7.2 (CDC `Rnssp::alert_ewma`), written from the
formulas there and not from the Rust code, with Student t quantiles and tails from SciPy. It
prints Rust constants that are pasted verbatim into crates/score/tests/detectors_oracle.rs.

Run from the repository root (Python 3.11, SciPy 1.17.1):
    python3 crates/score/tests/oracle/ewma.py
"""

import math

import scipy
from scipy.stats import t as student_t

G = 2  # guard band, days
MIN_BASELINE = 11
MAX_BASELINE = 28
WEIGHTS = (0.4, 0.9)

SERIES = [
    3, 5, 2, 4, 6, 3, 4, 5, 2, 3, 4, 7, 5, 3, 9, 4, 6, 12, 5, 4,
    3, 6, 5, 4, 2, 5, 7, 4, 3, 5, 6, 20, 8, 5, 4, 3, 6, 5, 4, 7,
]


def mean_sd(xs):
    n = len(xs)
    m = sum(xs) / n
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))


def ewma(series):
    """Rows (day, p, mean, T_0.4, T_0.9) for every tested day (1-based day numbers)."""
    z = [float(series[0])] * len(WEIGHTS)  # Z_1 = y_1 for both smoothers
    rows = []
    for day in range(2, len(series) + 1):
        y = series[day - 1]
        z = [w * y + (1 - w) * zp for w, zp in zip(WEIGHTS, z)]
        baseline_len = min(MAX_BASELINE, day - G - 1)
        if baseline_len < MIN_BASELINE:
            continue
        # The L days ending g + 1 days before the tested day.
        last = day - G - 1  # 1-based
        base = series[last - baseline_len:last]
        mu, s = mean_sd(base)
        dof = baseline_len - 1
        u_w = round(student_t.ppf(0.95, dof), 5)
        u_a = round(student_t.ppf(0.99, dof), 5)
        stats, ps = [], []
        for i, w in enumerate(WEIGHTS):
            c = math.sqrt(w / (2 - w) + 1 / baseline_len
                          - 2 * (1 - w) ** (G + 1) * (1 - (1 - w) ** baseline_len) / baseline_len)
            sigma_min = (w / u_w) * (1 + 0.5 * (1 - w) ** 2)
            kappa = (0.1289 - (0.2414 - 0.1826 * (1 - w) ** 4) * math.log(0.5)) * (w / u_w)
            sigma = max(sigma_min, s * c + kappa)
            t_stat = (z[i] - mu) / sigma
            if abs(t_stat) > u_a:
                # Cap the smoothed value before it feeds the next day.
                z[i] = mu + math.copysign(u_a, t_stat) * sigma
            stats.append(t_stat)
            ps.append(student_t.sf(t_stat, dof))
        rows.append((day, min(ps), mu, stats[0], stats[1]))
    return rows


def lit(x):
    return repr(float(x))


if __name__ == "__main__":
    print(f"// Python {'.'.join(map(str, __import__('sys').version_info[:3]))}, SciPy {scipy.__version__}")
    print(f"const EWMA_SERIES: [f64; {len(SERIES)}] = [{', '.join(lit(v) for v in SERIES)}];")
    print("const EWMA_EXPECTED: &[(usize, f64, f64, f64, f64)] = &[")
    for day, p, mu, t1, t2 in ewma(SERIES):
        print(f"    ({day}, {lit(p)}, {lit(mu)}, {lit(t1)}, {lit(t2)}),")
    print("];")
