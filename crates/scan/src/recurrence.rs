//! Levels as recurrence intervals: "an excess this large happens by chance once in R days
//! somewhere in the rule set". The statistic of a day is the largest evidence over every cut
//! (region × count indicator) and scan length; its distribution over days of history gives, for
//! each R, the threshold that daily maximum passes once in R days (docs/methodology.md §16.3).
//!
//! Where history holds at least five such days the threshold is the empirical quantile;
//! beyond (R longer than a fifth of the history) the tail is extrapolated with an exponential
//! fitted to the largest tenth of the days (peaks over a threshold with a Gumbel-type tail,
//! which the maximum of many negative-binomial tails has), but never below the empirical
//! quantile where the history holds one to four such days. With a confidence `c`, a threshold
//! is fitted so that, were the true rate at it the budget, the history would show no more days
//! above it than it does with probability at most `1 − c`: fewer days may reach it than the
//! point estimate allows (and none at all where the history is too short to vouch for any),
//! so a short history's sampling noise errs towards fewer false alerts. Without history the thresholds
//! fall back to a Bonferroni bound over the cuts and scan lengths, which real streams, with
//! their genuine clusters, exceed more often than it promises: calibrate before relying on it.

use serde::Serialize;
use vigil_score::stats::reg_inc_gamma_q;

/// At least this many days of maxima to calibrate.
pub const MIN_DAYS: usize = 28;

/// The distribution of the daily maximum statistic over a stretch of history.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Daily maxima, largest first.
    desc: Vec<f64>,
    /// Exponential tail: `P(max ≥ s) ≈ tail_share · exp(−(s − tail_from) / tail_scale)` for
    /// `s ≥ tail_from`.
    tail_from: f64,
    tail_share: f64,
    tail_scale: f64,
}

/// What a threshold achieved on the days it was calibrated on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LevelRates {
    pub threshold: f64,
    /// Days whose maximum reached the threshold.
    pub days: usize,
    /// Days of history per such day (the achieved recurrence interval); `None` when none did.
    pub every_days: Option<f64>,
}

impl Calibration {
    /// From the daily maxima of at least [`MIN_DAYS`] days; `None` with fewer.
    pub fn from_daily_maxima(maxima: &[f64]) -> Option<Calibration> {
        let mut desc: Vec<f64> = maxima.iter().copied().filter(|v| v.is_finite()).collect();
        if desc.len() < MIN_DAYS {
            return None;
        }
        desc.sort_by(|a, b| b.total_cmp(a));
        let n = desc.len();
        let m = (n / 10).max(10).min(n - 1);
        let tail_from = desc[m];
        let excess: f64 = desc[..m].iter().map(|v| v - tail_from).sum::<f64>() / m as f64;
        Some(Calibration { tail_from, tail_share: m as f64 / n as f64, tail_scale: excess.max(1e-3), desc })
    }

    pub fn days(&self) -> usize {
        self.desc.len()
    }

    /// The threshold the daily maximum reaches once in `recurrence_days` days: the point
    /// estimate (`confidence` `None`), or one that holds that rate with `confidence` (at
    /// least 0.5, below 1) given how few days the history has above it.
    pub fn threshold(&self, recurrence_days: f64, confidence: Option<f64>) -> f64 {
        let n = self.desc.len();
        let allowed = allowed_days(n, recurrence_days, confidence);
        if allowed >= 5 && allowed < n {
            // Just above the (allowed + 1)-th largest: exactly `allowed` days reach it (ties
            // aside).
            return midpoint(self.desc[allowed - 1], self.desc[allowed]);
        }
        // With a confidence, the tail extrapolates to the stricter of the interval asked for
        // and the one the allowed days imply (one day at least: none allowed is stricter still,
        // below).
        let r = match confidence {
            Some(_) => recurrence_days.max(n as f64 / allowed.max(1) as f64),
            None => recurrence_days,
        };
        let tail = self.tail_from + self.tail_scale * (self.tail_share * r).max(1.0).ln();
        // Never below what the history itself shows: where one to four days should reach the
        // threshold and more than that many reach the extrapolated one, the tail is heavier
        // than an exponential (a city's maximum over a few clustered days), and the empirical
        // quantile, noisy as it is, errs on the side of the recurrence asked for. With a
        // confidence and no day allowed, no day of the history may reach it.
        match (allowed, confidence) {
            (1.., _) if allowed < n => tail.max(midpoint(self.desc[allowed - 1], self.desc[allowed])),
            (0, Some(_)) => tail.max(self.desc[0] + 0.01),
            _ => tail,
        }
    }

    /// How often, in days, the daily maximum reaches `stat` by chance.
    pub fn recurrence(&self, stat: f64) -> f64 {
        let n = self.desc.len();
        let reached = self.desc.partition_point(|&v| v >= stat);
        if reached >= 5 {
            return n as f64 / reached as f64;
        }
        let p = self.tail_share * (-(stat - self.tail_from) / self.tail_scale).exp();
        1.0 / p.min(1.0)
    }

    /// What `threshold` achieved on the calibration days.
    pub fn achieved(&self, threshold: f64) -> LevelRates {
        let days = self.desc.partition_point(|&v| v >= threshold);
        LevelRates { threshold, days, every_days: (days > 0).then(|| self.desc.len() as f64 / days as f64) }
    }
}

/// How many of `n` days may reach a threshold meant to be reached once in `recurrence_days`:
/// the expected number, rounded down, or with `confidence` c the largest k for which a
/// Poisson count with that expectation is k or less with probability at most 1 − c. Were the
/// true rate at the threshold the one asked for, a history showing only k such days would then
/// be a chance of at most 1 − c; 0 where even none would be more likely than that (fewer
/// than −ln(1 − c) days expected: 2.3 at 0.9).
fn allowed_days(n: usize, recurrence_days: f64, confidence: Option<f64>) -> usize {
    let expected = n as f64 / recurrence_days.max(1.0);
    let Some(c) = confidence else { return expected.floor() as usize };
    // P(X ≤ k) for X ~ Poisson(expected) is Q(k + 1, expected); it grows with k.
    let unlikely = |k: usize| reg_inc_gamma_q(k as f64 + 1.0, expected) <= 1.0 - c;
    if !unlikely(0) {
        return 0;
    }
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if unlikely(mid) { lo = mid } else { hi = mid - 1 }
    }
    lo
}

fn midpoint(hi: f64, lo: f64) -> f64 {
    if hi > lo { lo + (hi - lo) / 2.0 } else { hi + 1e-9 }
}

/// The uncalibrated threshold for `recurrence_days`: a Bonferroni bound over `cuts` cuts and
/// `windows` scan lengths, never below 1.3 (p = 0.05).
pub fn bonferroni_threshold(cuts: usize, windows: usize, recurrence_days: f64) -> f64 {
    ((cuts.max(1) * windows.max(1)) as f64 * recurrence_days.max(1.0)).log10().max(1.3)
}

/// The recurrence interval, in days, of a statistic between and beyond known (threshold,
/// recurrence) points: log-linear in the recurrence, as the exponential tail is; extrapolated
/// with the slope of the nearest segment; at least one day. `points` are sorted by threshold.
pub fn interpolate(points: &[(f64, f64)], stat: f64) -> f64 {
    let finite: Vec<(f64, f64)> =
        points.iter().copied().filter(|(t, r)| t.is_finite() && r.is_finite() && *r >= 1.0).collect();
    match finite.len() {
        0 => 1.0,
        1 => {
            let (t, r) = finite[0];
            // One point: a decade of p per unit of the statistic, the Bonferroni slope.
            (r * 10f64.powf(stat - t)).max(1.0)
        }
        n => {
            let k = finite.iter().position(|(t, _)| stat < *t).unwrap_or(n).clamp(1, n - 1);
            let (t0, r0) = finite[k - 1];
            let (t1, r1) = finite[k];
            if t1 <= t0 {
                return r1.max(1.0);
            }
            let slope = (r1.ln() - r0.ln()) / (t1 - t0);
            (r0.ln() + slope * (stat - t0)).exp().max(1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empirical_thresholds_pass_as_often_as_asked() {
        let maxima: Vec<f64> = (0..1000).map(|i| i as f64 / 100.0).collect();
        let c = Calibration::from_daily_maxima(&maxima).unwrap();
        for r in [2.0, 14.0, 100.0] {
            let t = c.threshold(r, None);
            let a = c.achieved(t);
            assert_eq!(a.days, (1000.0 / r) as usize, "R {r}: {a:?}");
        }
        assert!((c.recurrence(c.threshold(14.0, None)) - 1000.0 / 71.0).abs() < 0.5);
    }

    #[test]
    fn the_tail_extrapolates_an_exponential() {
        // Maxima with an exponential tail of scale 1: P(M ≥ s) = exp(−s).
        let n = 2000;
        let maxima: Vec<f64> = (1..=n).map(|i| -((i as f64 - 0.5) / n as f64).ln()).collect();
        let c = Calibration::from_daily_maxima(&maxima).unwrap();
        let t = c.threshold(5000.0, None);
        assert!((t - 5000f64.ln()).abs() < 0.3, "{t}");
        assert!((c.recurrence(t) / 5000.0 - 1.0).abs() < 0.05);
    }

    #[test]
    fn a_tail_heavier_than_the_exponential_is_not_extrapolated_below_the_history() {
        // 1,000 days, the largest tenth exponential but for seven days of one cluster far
        // above it: asked for once in 500 days (two days), the exponential alone would let all
        // seven through.
        let mut maxima: Vec<f64> = (1..=1000).map(|i| -((i as f64 - 0.5) / 1000.0).ln()).collect();
        maxima[..7].copy_from_slice(&[10.4, 10.2, 9.7, 9.5, 9.3, 9.2, 9.1]);
        let c = Calibration::from_daily_maxima(&maxima).unwrap();
        let t = c.threshold(500.0, None);
        assert_eq!(c.achieved(t).days, 2, "{t}");
        // Where the history holds fewer days than asked for, the exponential is all there is.
        assert!(c.threshold(5000.0, None) > t);
    }

    #[test]
    fn a_confidence_allows_fewer_days_than_the_point_estimate() {
        // Against SciPy: the largest k with poisson.cdf(k, n / R) <= 1 - c
        // (n = 2093, R = 100, c = 0.9: 14; c = 0.8: 16; R = 20, c = 0.9: 91; R = 1000, c = 0.8:
        // none certifies, 2.09 expected against -ln(0.2) = 1.61, so 0; c = 0.9: 0).
        assert_eq!(allowed_days(2093, 100.0, None), 20);
        assert_eq!(allowed_days(2093, 100.0, Some(0.9)), 14);
        assert_eq!(allowed_days(2093, 100.0, Some(0.8)), 16);
        assert_eq!(allowed_days(2093, 20.0, Some(0.9)), 91);
        assert_eq!(allowed_days(2093, 1000.0, Some(0.8)), 0);
        assert_eq!(allowed_days(2093, 1000.0, Some(0.9)), 0);
        let maxima: Vec<f64> = (0..2093).map(|i| i as f64 / 100.0).collect();
        let c = Calibration::from_daily_maxima(&maxima).unwrap();
        assert_eq!(c.achieved(c.threshold(100.0, Some(0.9))).days, 14);
        assert_eq!(c.achieved(c.threshold(100.0, None)).days, 20);
        // None allowed: above every day of the history, whatever the tail says.
        let t = c.threshold(1000.0, Some(0.9));
        assert_eq!(c.achieved(t).days, 0, "{t}");
        assert!(t >= c.threshold(1000.0, None));
    }

    #[test]
    fn a_confidence_holds_the_rate_on_streams_drawn_at_the_budget() {
        // Many short histories whose daily maxima are exponential (P(M >= s) = exp(-s)): the
        // point estimate's threshold lets through more than the budget about half the time, the
        // 0.9-confidence one in about a tenth of the histories (for R = 20 on 300 days).
        use rand_chacha::ChaCha8Rng;
        use rand_core::{RngCore, SeedableRng};
        let r = 20.0;
        let (mut over_point, mut over_conf) = (0, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let draws = 400;
        for _ in 0..draws {
            let maxima: Vec<f64> =
                (0..300).map(|_| -(((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64).ln()).collect();
            let c = Calibration::from_daily_maxima(&maxima).unwrap();
            // The true rate at threshold t is exp(-t).
            over_point += usize::from((-c.threshold(r, None)).exp() > 1.0 / r);
            over_conf += usize::from((-c.threshold(r, Some(0.9))).exp() > 1.0 / r);
        }
        let (p, q) = (over_point as f64 / draws as f64, over_conf as f64 / draws as f64);
        assert!(p > 0.35 && p < 0.65, "point estimate over budget in {p}");
        assert!(q < 0.15, "0.9 confidence over budget in {q}");
    }

    #[test]
    fn too_little_history_is_refused() {
        assert!(Calibration::from_daily_maxima(&[1.0; 27]).is_none());
    }

    #[test]
    fn interpolation_is_log_linear_and_monotone() {
        let pts = [(3.0, 2.0), (5.0, 14.0), (7.0, 100.0)];
        assert!((interpolate(&pts, 5.0) - 14.0).abs() < 1e-9);
        let mid = interpolate(&pts, 4.0);
        assert!((mid - (2.0f64 * 14.0).sqrt()).abs() < 1e-9);
        assert!(interpolate(&pts, 9.0) > 100.0);
        assert_eq!(interpolate(&pts, 0.0), 1.0);
        assert!((bonferroni_threshold(100, 7, 100.0) - 70000f64.log10()).abs() < 1e-12);
    }
}
