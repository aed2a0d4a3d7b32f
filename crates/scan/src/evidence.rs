//! The evidence of one cut: an expectation-based scan over windows ending now.
//!
//! The series is given newest first: `x[0]` is the window just closed, `x[j]` the one `j`
//! windows before (NaN where unknown). For each scan length `w = 1..=W` the last `w` windows
//! are compared with the `N` windows before them (so a surge never inflates its own baseline):
//!
//! - expected rate `λ = (S + a) / F`: `S` the baseline count with each window capped at
//!   `μ + 3√μ + 1` (a past surge in the baseline is down-weighted instead of raising the
//!   expectation, as Farrington-flexible does), `F` the baseline's exposure (the sum of its
//!   seasonal factors), `a` a prior count of one half, so an empty baseline still expects a little;
//! - over-dispersion `φ = max(1, Pearson χ² / (n − 1))` of the capped baseline;
//! - observed `C` over the scan windows against expected `B = λ · E` (`E` their exposure);
//! - the upper tail `P(X ≥ C)` of a negative binomial with mean `B` whose variance adds the
//!   over-dispersion and the uncertainty of `λ` itself (the Gamma-Poisson predictive):
//!   `Var = B + B²/(S + a) + (φ − 1)·B`. Small counts get exact tails, never a gate that
//!   zeroes them.
//!
//! The exposure is either seasonal factors (the region's own history with the city's weekday
//! pattern) or, with [`Params::counted`], counts: what the rest of the city saw in each window
//! (plus one). `λ` is then the region's share of the rest of the city, so weather, holidays,
//! seasons and reporting artefacts that move every region together cancel out, as in
//! Kulldorff's space-time permutation scan; the Poisson noise of the rest's count over the
//! scan adds `B²/(E + a)` to the variance.
//!
//! Each tail is taken as at least the rate at which the baseline itself began as large an excess
//! over the same length ([`recurrence_cap`]): an excess the series has seen before within its
//! baseline is as common as its record says, whatever the model says.
//!
//! The cut's evidence is the smallest tail over the scan lengths whose newest window is itself
//! above expectation and makes the scan's excess more surprising than it was without it: an
//! excess that has stopped no longer alarms, so a burst is not re-raised for the W days it stays
//! inside the longest window (not even on a day a little above expectation). The statistic is
//! `−log10 p`; it is not a p-value once maximised over lengths and cuts, which is why levels are
//! calibrated on the daily maximum over the rule set ([`crate::recurrence`]).

use vigil_score::stats::negbin_sf;

pub use vigil_rules::MAX_SCAN_WINDOWS as MAX_WINDOWS;

/// Scan settings, in windows of the indicator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Longest scan `W` (1..=14).
    pub windows: usize,
    /// Baseline length `N` before each scan.
    pub baseline: usize,
    /// Whether the exposures are counts (the rest of the city's, plus one) rather than seasonal
    /// factors: their own noise then widens the predictive.
    pub counted: bool,
}

impl Params {
    /// Windows of history one cut needs.
    pub fn span(&self) -> usize {
        self.windows + self.baseline
    }
}

/// The prior count added to every baseline.
const PRIOR: f64 = 0.5;

/// The evidence of one cut at one evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cut {
    /// `−log10` of the smallest tail (0 when no scan is in excess).
    pub stat: f64,
    /// Scan length of that tail, in windows (0 when none).
    pub windows: u16,
    /// Observed count over those windows.
    pub observed: f64,
    /// Expected count over those windows.
    pub expected: f64,
    /// The predictive's over-dispersion at that length (variance = `phi_eff` × mean): with
    /// `observed` and `expected` it recomputes the tail of another count (a parent's
    /// remainder once a child's excess is removed, [`tail_stat`]).
    pub phi_eff: f64,
}

/// `−log10 P(X ≥ c)` for the predictive with mean `mean` and variance `phi_eff · mean`.
pub fn tail_stat(c: f64, mean: f64, phi_eff: f64) -> f64 {
    if c <= mean || mean <= 0.0 || !c.is_finite() {
        return 0.0;
    }
    let p = negbin_sf(c.round().max(0.0) as u64, mean, phi_eff);
    if p.is_finite() { -p.max(1e-300).log10() } else { 0.0 }
}

/// Scans one cut. `x` and `f` are the window counts and their exposures (seasonal factors, or
/// counts with [`Params::counted`]), newest first; both at least `params.span()` long
/// (shorter: windows beyond are unknown; a NaN in either is an unknown window). Returns the
/// default (no evidence) while fewer than half of a scan's baseline windows are known.
pub fn scan(x: &[f64], f: &[f64], params: &Params) -> Cut {
    let mut best = Cut::default();
    let (mut c, mut e) = (0.0, 0.0);
    for w in 1..=params.windows.min(MAX_WINDOWS) {
        let j = w - 1;
        let (Some(&xj), Some(&fj)) = (x.get(j), f.get(j)) else { break };
        if !xj.is_finite() || !fj.is_finite() {
            break;
        }
        c += xj;
        e += fj;
        let Some(base) = baseline(x, f, w, params.baseline) else { break };
        let b = base.rate * e;
        if w == 1 && c <= b {
            // The newest window is not in excess: no longer scan counts (and this is most cuts,
            // most of the time).
            break;
        }
        if c <= b {
            continue;
        }
        let predictive = |b: f64, e: f64| predictive(&base, b, e, params.counted);
        let phi_eff = predictive(b, e);
        let stat = tail_stat(c, b, phi_eff);
        if stat <= best.stat {
            // Not the best whether fresh or not: its freshness need not be known.
            continue;
        }
        if w > 1 {
            // The same scan without its newest window, against the same baseline (the one of
            // the windows before it): if the newest window does not make the excess more
            // surprising, this scan only restates one already seen (a burst of the last days
            // read again on a quiet day after it).
            let (c0, e0) = (c - x[0], e - f[0]);
            let b0 = base.rate * e0;
            if stat <= tail_stat(c0, b0, predictive(b0, e0)) {
                continue;
            }
        }
        let stat = stat.min(recurrence_cap(x, f, w, params.baseline, c, e));
        if stat <= best.stat {
            continue;
        }
        best = Cut { stat, windows: w as u16, observed: c, expected: b, phi_eff };
    }
    best
}

/// The observed and expected counts over the last `w` windows (the null fitted to the `n`
/// before them), as [`scan`] computes them; `None` where it would find no baseline.
pub fn window_sums(x: &[f64], f: &[f64], w: usize, n: usize) -> Option<(f64, f64)> {
    if w == 0 || x.len() < w || f.len() < w || x[..w].iter().chain(&f[..w]).any(|v| !v.is_finite()) {
        return None;
    }
    let base = baseline(x, f, w, n)?;
    let c: f64 = x[..w].iter().sum();
    let e: f64 = f[..w].iter().sum();
    Some((c, base.rate * e))
}

/// [`window_sums`] with the tail of the observed count under the predictive [`scan`] uses at
/// that length: `(observed, expected, −log10 P(X ≥ observed))`.
pub fn tail_at(x: &[f64], f: &[f64], w: usize, params: &Params) -> Option<(f64, f64, f64)> {
    if w == 0 || x.len() < w || f.len() < w || x[..w].iter().chain(&f[..w]).any(|v| !v.is_finite()) {
        return None;
    }
    let base = baseline(x, f, w, params.baseline)?;
    let c: f64 = x[..w].iter().sum();
    let e: f64 = f[..w].iter().sum();
    let b = base.rate * e;
    let stat = tail_stat(c, b, predictive(&base, b, e, params.counted));
    Some((c, b, stat.min(recurrence_cap(x, f, w, params.baseline, c, e))))
}

/// The ceiling the baseline's own record puts on a scan's statistic. Of the `m` scans of the same
/// length wholly inside the baseline, those that saw as large an excess (a count over exposure at
/// least `c / e`) form `k` episodes (runs of consecutive scans: one burst day lies in `w` of
/// them): an excess like this one began about once in `m / k` windows in the series itself,
/// whatever the null model says, so its tail is taken as at least `k / m`. No ceiling where none
/// did (`k = 0`): a first burst, or one larger than any before it, keeps its full tail. The null
/// model cannot tell a series whose bursts recur (roadworks logged in batches, the tail days of
/// an incident) from one whose burst is new, because its rate and dispersion are fitted to the
/// capped baseline so that a past surge does not raise the expectation; this tells them apart,
/// at a price: a second surge in the same cut within one baseline, smaller than the first, is
/// held down with it (methodology §16.2).
fn recurrence_cap(x: &[f64], f: &[f64], w: usize, n: usize, c: f64, e: f64) -> f64 {
    let end = (w + n).min(x.len()).min(f.len());
    if end < 2 * w || c <= 0.0 || e <= 0.0 {
        return f64::INFINITY;
    }
    // k counts episodes: a run of qualifying positions (one burst day is in w of them) is one.
    let (mut k, mut m, mut hit) = (0u32, 0u32, false);
    // Summed afresh at each position, not as a running sum: this runs only for a cut that is
    // in excess and the best so far, and fresh sums are exact for whole counts.
    for (xw, fw) in x[w..end].windows(w).zip(f[w..end].windows(w)) {
        if xw.iter().chain(fw).any(|v| !v.is_finite()) {
            hit = false;
            continue;
        }
        m += 1;
        let (sx, sf) = (xw.iter().sum::<f64>(), fw.iter().sum::<f64>());
        // sx / sf ≥ c / e, without dividing by a zero exposure.
        let now = sx > 0.0 && sx * e >= c * sf;
        k += u32::from(now && !hit);
        hit = now;
    }
    if k == 0 || (m as usize) * 2 < n.saturating_sub(w) {
        return f64::INFINITY;
    }
    -(k as f64 / m as f64).log10()
}

/// The predictive's variance over its mean at expected count `b` over exposure `e`: Poisson, the
/// uncertainty of the rate, the baseline's over-dispersion, and with counted exposures the
/// noise of the rest of the city's count.
fn predictive(base: &Baseline, b: f64, e: f64, counted: bool) -> f64 {
    let mut phi_eff = 1.0 + b / (base.count + PRIOR) + (base.phi - 1.0);
    if counted {
        phi_eff += b / (e + PRIOR);
    }
    phi_eff
}

struct Baseline {
    rate: f64,
    count: f64,
    phi: f64,
}

/// The null model fitted to the `n` windows before the last `w`.
fn baseline(x: &[f64], f: &[f64], w: usize, n: usize) -> Option<Baseline> {
    let end = (w + n).min(x.len()).min(f.len());
    if end <= w {
        return None;
    }
    let (xs, fs) = (&x[w..end], &f[w..end]);
    let (mut s0, mut exposure, mut known) = (0.0, 0.0, 0usize);
    for (&xi, &fi) in xs.iter().zip(fs) {
        if xi.is_finite() && fi.is_finite() {
            s0 += xi;
            exposure += fi;
            known += 1;
        }
    }
    if known * 2 < n || exposure <= 0.0 {
        return None;
    }
    // Capping at the current rate, three times over: one pass lets a large past surge through
    // at several times the base rate; each pass brings the cap closer to the uncontaminated one.
    // A pass that leaves the rate where it was has reached the fixed point: the passes left would
    // repeat it, and the χ² just computed is the one at the final rate. Most baselines (no window
    // above its cap) stop after one pass, with bit-for-bit the result of all three.
    let mut rate = (s0 + PRIOR) / exposure;
    let (mut s, mut chi2) = capped(xs, fs, rate);
    for pass in 1..=3 {
        let next = (s + PRIOR) / exposure;
        if next == rate {
            break;
        }
        rate = next;
        if pass == 3 {
            chi2 = capped(xs, fs, rate).1;
        } else {
            (s, chi2) = capped(xs, fs, rate);
        }
    }
    let phi = if s > 0.0 && known > 1 { (chi2 / (known - 1) as f64).max(1.0) } else { 1.0 };
    Some(Baseline { rate, count: s, phi })
}

/// The baseline count with every window capped at `μ + 3√μ + 1` for `μ = rate · f`, and the
/// Pearson χ² of the capped windows about `rate`.
fn capped(xs: &[f64], fs: &[f64], rate: f64) -> (f64, f64) {
    let (mut s, mut chi2) = (0.0, 0.0);
    for (&xi, &fi) in xs.iter().zip(fs) {
        if xi.is_finite() && fi.is_finite() {
            let mu = (rate * fi).max(1e-9);
            let xc = xi.min(mu + 3.0 * mu.sqrt() + 1.0);
            s += xc;
            chi2 += (xc - mu) * (xc - mu) / mu;
        }
    }
    (s, chi2)
}

/// Day-of-week factors from a reference series of daily counts (newest first, `weekday[j]` the
/// local weekday 0..7 of `x[j]`): each weekday's mean over the overall mean, clipped to
/// 0.2..5. All ones when the reference holds fewer than 28 known days or 28 events: too
/// little to tell a weekday pattern from noise. Reporting artefacts (weekends with almost no
/// logging) are what this absorbs, so they never alarm.
pub fn weekday_factors(x: &[f64], weekday: &[u8]) -> [f64; 7] {
    let mut sum = [0.0; 7];
    let mut n = [0u32; 7];
    for (&v, &d) in x.iter().zip(weekday) {
        if v.is_finite() && (d as usize) < 7 {
            sum[d as usize] += v;
            n[d as usize] += 1;
        }
    }
    let total: f64 = sum.iter().sum();
    let days: u32 = n.iter().sum();
    if days < 28 || total < 28.0 || n.contains(&0) {
        return [1.0; 7];
    }
    let mean = total / days as f64;
    std::array::from_fn(|d| (sum[d] / n[d] as f64 / mean).clamp(0.2, 5.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(w: usize) -> Params {
        Params { windows: w, baseline: 28, counted: false }
    }

    #[test]
    fn a_quiet_series_has_no_evidence_and_a_burst_has_much() {
        let mut x = vec![2.0; 40];
        let f = vec![1.0; 40];
        assert_eq!(scan(&x, &f, &params(7)).stat, 0.0);
        x[0] = 12.0;
        let cut = scan(&x, &f, &params(7));
        assert_eq!(cut.windows, 1);
        assert!(cut.stat > 4.0, "{cut:?}");
        assert!((cut.expected - 2.0).abs() < 0.1);
    }

    #[test]
    fn the_tail_at_a_length_is_the_scans_at_its_best_length() {
        // A slow rise with counted exposures (the rest of the city's, with its noise).
        let mut x: Vec<f64> = (0..60).map(|j| 2.0 + (j % 3) as f64).collect();
        for v in x.iter_mut().take(5) {
            *v += 3.0;
        }
        let f: Vec<f64> = (0..60).map(|j| 40.0 + (j % 5) as f64).collect();
        for counted in [false, true] {
            let p = Params { counted, ..params(7) };
            let cut = scan(&x, &f, &p);
            assert!(cut.windows >= 2 && cut.stat > 1.0, "{cut:?}");
            let (obs, exp, stat) = tail_at(&x, &f, cut.windows as usize, &p).unwrap();
            assert_eq!((obs, exp, stat), (cut.observed, cut.expected, cut.stat), "counted {counted}");
        }
        assert_eq!(tail_at(&x, &f, 0, &params(7)), None);
    }

    #[test]
    fn a_slow_rise_is_seen_over_a_longer_window() {
        // +1 a day for a week on a base of 2: no single day is remarkable, the week is.
        let mut x = vec![2.0; 60];
        for v in x.iter_mut().take(7) {
            *v = 3.0;
        }
        let cut = scan(&x, &vec![1.0; 60], &params(14));
        assert!(cut.windows >= 5, "{cut:?}");
        let one_day = scan(&x, &vec![1.0; 60], &params(1));
        assert!(cut.stat > one_day.stat + 0.5, "{cut:?} vs {one_day:?}");
    }

    #[test]
    fn an_excess_that_stopped_no_longer_alarms() {
        let mut x = vec![1.0; 60];
        for v in x.iter_mut().skip(1).take(3) {
            *v = 8.0;
        }
        x[0] = 0.0;
        assert_eq!(scan(&x, &vec![1.0; 60], &params(7)).stat, 0.0);
    }

    #[test]
    fn a_quiet_day_after_a_burst_does_not_raise_it_again() {
        // Three days of 8 on a base of 2, then a day a little above the base: the four-day scan
        // still holds the burst, but today adds nothing to it.
        let mut x = vec![2.0; 60];
        for v in x.iter_mut().skip(1).take(3) {
            *v = 8.0;
        }
        x[0] = 3.0;
        let cut = scan(&x, &vec![1.0; 60], &params(7));
        assert!(cut.windows == 1 && cut.stat < 0.5, "only today's own small excess: {cut:?}");
        // A fourth day of the burst does add to it, and the whole burst is scanned.
        x[0] = 8.0;
        let cut = scan(&x, &vec![1.0; 60], &params(7));
        assert_eq!(cut.windows, 4, "{cut:?}");
        assert!(cut.stat > 6.0, "{cut:?}");
        // So does a slow rise, day by day.
        let mut x = vec![2.0; 60];
        for (j, v) in x.iter_mut().take(5).enumerate() {
            *v = 7.0 - j as f64;
        }
        let cut = scan(&x, &vec![1.0; 60], &params(7));
        assert!(cut.windows >= 4 && cut.stat > 3.0, "{cut:?}");
    }

    #[test]
    fn a_past_surge_in_the_baseline_is_capped() {
        let mut x = vec![2.0; 60];
        x[0] = 9.0;
        let clean = scan(&x, &vec![1.0; 60], &params(1));
        for v in x.iter_mut().skip(10).take(3) {
            *v = 40.0;
        }
        let dirty = scan(&x, &vec![1.0; 60], &params(1));
        // The 120 extra events raise the expectation by less than the cap lets through.
        assert!(dirty.expected < clean.expected * 1.4, "{dirty:?} vs {clean:?}");
        // A surge larger than the past one keeps its full tail; a smaller one is held to the
        // past surge's recurrence: one episode in the 28 baseline days.
        x[0] = 60.0;
        let larger = scan(&x, &vec![1.0; 60], &params(1));
        assert!(larger.stat > 15.0, "{larger:?}");
        x[0] = 9.0;
        assert!((dirty.stat - 28f64.log10()).abs() < 1e-12, "{dirty:?}");
    }

    #[test]
    fn an_excess_the_series_has_seen_before_is_held_to_its_recurrence() {
        // Roadworks logged in a batch every Monday: 12 on a base of 2.
        let mut x: Vec<f64> = (0..60).map(|j| if j % 7 == 0 { 12.0 } else { 2.0 }).collect();
        let f = vec![1.0; 60];
        // Today's batch: 4 batches in the 28 baseline days (days 7, 14, 21, 28).
        let cut = scan(&x, &f, &params(7));
        assert_eq!(cut.windows, 1);
        assert!((cut.stat - (28.0f64 / 4.0).log10()).abs() < 1e-12, "{cut:?}");
        // The same day in a series with no batches before it: far stronger evidence.
        for (j, v) in x.iter_mut().enumerate().skip(1) {
            *v = if j % 7 == 0 { 2.0 } else { *v };
        }
        assert!(scan(&x, &f, &params(7)).stat > 4.0);
    }

    /// The baseline fit as first written (three capping passes, then the χ² pass), against
    /// which the early stop at the fixed point must agree bit for bit.
    fn baseline_three_passes(x: &[f64], f: &[f64], w: usize, n: usize) -> Option<(f64, f64, f64)> {
        let end = (w + n).min(x.len()).min(f.len());
        if end <= w {
            return None;
        }
        let (xs, fs) = (&x[w..end], &f[w..end]);
        let (mut s0, mut exposure, mut known) = (0.0, 0.0, 0usize);
        for (&xi, &fi) in xs.iter().zip(fs) {
            if xi.is_finite() && fi.is_finite() {
                s0 += xi;
                exposure += fi;
                known += 1;
            }
        }
        if known * 2 < n || exposure <= 0.0 {
            return None;
        }
        let mut rate = (s0 + PRIOR) / exposure;
        let mut s = s0;
        for _ in 0..3 {
            s = capped(xs, fs, rate).0;
            rate = (s + PRIOR) / exposure;
        }
        let chi2 = capped(xs, fs, rate).1;
        let phi = if s > 0.0 && known > 1 { (chi2 / (known - 1) as f64).max(1.0) } else { 1.0 };
        Some((rate, s, phi))
    }

    #[test]
    fn the_early_stop_fits_the_same_baseline_bit_for_bit() {
        let mut next = vigil_score::testing::xorshift(0x9e37_79b9_7f4a_7c15u64);
        for case in 0..5000 {
            let len = 10 + (next() % 40) as usize;
            let base = (next() % 50) as f64 / 4.0;
            let x: Vec<f64> = (0..len)
                .map(|_| match next() % 20 {
                    0 => f64::NAN,
                    1 => base * 8.0 + (next() % 30) as f64,
                    _ => (base + (next() % 7) as f64 - 3.0).max(0.0).round(),
                })
                .collect();
            let f: Vec<f64> = (0..len).map(|_| if case % 2 == 0 { 1.0 } else { 1.0 + (next() % 300) as f64 }).collect();
            for w in 1..4 {
                let fast = baseline(&x, &f, w, 28).map(|b| (b.rate.to_bits(), b.count.to_bits(), b.phi.to_bits()));
                let slow =
                    baseline_three_passes(&x, &f, w, 28).map(|(r, c, p)| (r.to_bits(), c.to_bits(), p.to_bits()));
                assert_eq!(fast, slow, "case {case}, w {w}: {x:?}");
            }
        }
    }

    #[test]
    fn unknown_history_gives_no_evidence() {
        let x = vec![f64::NAN; 40];
        assert_eq!(scan(&x, &vec![1.0; 40], &params(7)), Cut::default());
        let mut short = vec![5.0];
        short.extend(vec![1.0; 5]);
        assert_eq!(scan(&short, &[1.0; 6], &params(3)).stat, 0.0);
    }

    #[test]
    fn weekday_factors_follow_the_reference() {
        let weekday: Vec<u8> = (0..56).map(|j| (j % 7) as u8).collect();
        let x: Vec<f64> = weekday.iter().map(|&d| if d >= 5 { 1.0 } else { 6.0 }).collect();
        let f = weekday_factors(&x, &weekday);
        let mean = (5.0 * 6.0 + 2.0) / 7.0;
        assert!((f[0] - 6.0 / mean).abs() < 1e-9 && (f[6] - 1.0 / mean).abs() < 1e-9);
        assert_eq!(weekday_factors(&x[..20], &weekday[..20]), [1.0; 7]);
    }
}
