//! Daily-series aberration detectors of docs/methodology.md §7.1–§7.3: CDC EARS C1/C2/C3 (with C3 per
//! the JHU/APL definition), the NSSP-ESSENCE two-smoother EWMA (as in `Rnssp::alert_ewma`),
//! and the standardised and Poisson upper CUSUMs with their persistent state.
//!
//! Series are slices of daily values whose last element is the day being tested. Nothing here
//! allocates or panics: a series that is too short or holds non-finite values gives `None`
//! (or, for the CUSUMs, leaves the state untouched). Mapping the outputs onto risk scores is
//! the caller's business.

use serde::{Deserialize, Serialize};

use crate::stats;

// ---------------------------------------------------------------------------------------------
// EARS
// ---------------------------------------------------------------------------------------------

/// The three EARS variants (docs/methodology.md §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarsVariant {
    /// Baseline = the previous 7 days, no guard band; needs 8 values.
    C1,
    /// Baseline = 7 days ending 3 days before today (2-day guard band); needs 10 values.
    C2,
    /// APL C3: today's C2 excess plus the two previous days' non-signalling excesses; needs 12
    /// values.
    C3,
}

/// Result of one EARS evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarsOutput {
    /// C1 or C2 (a z-like statistic, alarm at 3 under the CDC rule) or C3 (alarm at 2).
    pub stat: f64,
    /// Baseline mean (for C3, that of today's C2 baseline).
    pub mean: f64,
    /// Baseline sample sd after the `sigma_min` floor (for C3, that of today's C2 baseline).
    pub sd: f64,
}

/// EARS baseline length in days.
const EARS_BASELINE: usize = 7;

/// (stat, mean, sd) of C1 (guard 0) or C2 (guard 2) for the day at index `today`.
fn ears_c(series: &[f64], today: usize, guard: usize, sigma_min: f64) -> Option<(f64, f64, f64)> {
    let end = today.checked_sub(guard)?;
    let start = end.checked_sub(EARS_BASELINE)?;
    let y = *series.get(today)?;
    if !y.is_finite() {
        return None;
    }
    let (mean, sd) = stats::mean_sd(&series[start..end])?;
    // A NaN or negative floor means "no floor".
    let sd = if sigma_min > sd { sigma_min } else { sd };
    let stat = if sd > 0.0 {
        (y - mean) / sd
    } else if y > mean {
        // A constant baseline with no floor: any excess is infinitely many standard deviations
        // (the score mapping saturates), and no excess is exactly zero. This keeps NaN out.
        f64::INFINITY
    } else if y < mean {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    Some((stat, mean, sd))
}

/// EARS C1, C2 or C3 for the last day of `series`, with the baseline sd floored at
/// `sigma_min` (a NaN or negative floor is treated as none).
///
/// C3 follows the JHU/APL definition, not `surveillance::earsC` (docs/methodology.md §7.1 explains
/// why): S_i = max(0, C2_i − 1), C3_t = S_t + S̃_{t−1} + S̃_{t−2} with S̃_i = S_i when
/// S_i < 2 and 0 otherwise, so that a day that already signalled is not counted again.
///
/// `None` when the series is too short (C1 needs 8 values, C2 10, C3 12) or a value the
/// statistic uses is not finite. When the floored sd is 0 the statistic is +∞ for a value above
/// the baseline mean, −∞ below it and 0 at it, never NaN.
pub fn ears(series: &[f64], variant: EarsVariant, sigma_min: f64) -> Option<EarsOutput> {
    let today = series.len().checked_sub(1)?;
    match variant {
        EarsVariant::C1 => ears_c(series, today, 0, sigma_min).map(|(stat, mean, sd)| EarsOutput { stat, mean, sd }),
        EarsVariant::C2 => ears_c(series, today, 2, sigma_min).map(|(stat, mean, sd)| EarsOutput { stat, mean, sd }),
        EarsVariant::C3 => {
            let (c2_t, mean, sd) = ears_c(series, today, 2, sigma_min)?;
            let (c2_1, _, _) = ears_c(series, today.checked_sub(1)?, 2, sigma_min)?;
            let (c2_2, _, _) = ears_c(series, today.checked_sub(2)?, 2, sigma_min)?;
            let s = |c: f64| (c - 1.0).max(0.0);
            let s_tilde = |c: f64| {
                let v = s(c);
                if v < 2.0 { v } else { 0.0 }
            };
            let stat = s(c2_t) + s_tilde(c2_1) + s_tilde(c2_2);
            Some(EarsOutput { stat, mean, sd })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ESSENCE EWMA
// ---------------------------------------------------------------------------------------------

/// Smoothing weight for gradual events.
const EWMA_W1: f64 = 0.4;
/// Smoothing weight for sudden events (≈ C2).
const EWMA_W2: f64 = 0.9;
/// Guard band in days between the baseline and the tested day.
const EWMA_GUARD: usize = 2;
/// Shortest baseline that allows a test (so the first tested day is 11 + 2 + 1 = 14).
const EWMA_MIN_BASELINE: usize = 11;
/// Longest baseline (hard-coded in Rnssp whatever B is passed).
const EWMA_MAX_BASELINE: usize = 28;

/// round(qt(0.95, df), 5) for df = 10..=27, the only degrees of freedom the 11..=28-day
/// baselines produce. Tabulated (from R 4.2.2's `qt`) rather than computed per call because the
/// detector runs for every region at every hop; a unit test checks that
/// [`stats::student_t_quantile`] reproduces every entry.
pub(crate) const EWMA_T95: [f64; 18] = [
    1.81246, 1.79588, 1.78229, 1.77093, 1.76131, 1.75305, 1.74588, 1.73961, 1.73406, 1.72913, 1.72472, 1.72074,
    1.71714, 1.71387, 1.71088, 1.70814, 1.70562, 1.70329,
];
/// round(qt(0.99, df), 5) for df = 10..=27 (see [`EWMA_T95`]).
pub(crate) const EWMA_T99: [f64; 18] = [
    2.76377, 2.71808, 2.68100, 2.65031, 2.62449, 2.60248, 2.58349, 2.56693, 2.55238, 2.53948, 2.52798, 2.51765,
    2.50832, 2.49987, 2.49216, 2.48511, 2.47863, 2.47266,
];

/// Recursive state of the ESSENCE EWMA for one series: the two smoothed values and how many
/// daily values they have absorbed. Persisted in checkpoints so replays reproduce it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EwmaState {
    /// Smoother with λ = 0.4.
    pub z1: f64,
    /// Smoother with λ = 0.9.
    pub z2: f64,
    /// Number of days seen, including days whose value was not finite.
    pub steps: u64,
}

/// Result of one tested EWMA day.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EwmaOutput {
    /// min(p₀.₄, p₀.₉): red below 0.01, yellow below 0.05.
    pub p: f64,
    /// Baseline mean μ_t (the expected value).
    pub mean: f64,
    /// Test statistic of the λ = 0.4 smoother (before capping).
    pub t_04: f64,
    /// Test statistic of the λ = 0.9 smoother (before capping).
    pub t_09: f64,
}

/// Standard error of one smoother for a baseline of `l` days, the constants ESSENCE adds, and
/// its floor (docs/methodology.md §7.2): returns σ_λ.
fn ewma_sigma(w: f64, l: f64, sd: f64, u_w: f64) -> f64 {
    let r = 1.0 - w;
    let g1 = (EWMA_GUARD + 1) as i32;
    // c(λ) corrects for the baseline mean being estimated from L days that end g+1 days back.
    let corr = (w / (2.0 - w) + 1.0 / l - 2.0 * r.powi(g1) * (1.0 - r.powf(l)) / l).sqrt();
    let min_sigma = (w / u_w) * (1.0 + 0.5 * r * r);
    let kappa = (0.1289 - (0.2414 - 0.1826 * r.powi(4)) * 0.5f64.ln()) * (w / u_w);
    min_sigma.max(sd * corr + kappa)
}

/// One day of the NSSP-ESSENCE EWMA (docs/methodology.md §7.2, `Rnssp::alert_ewma` with its defaults
/// B = 28, g = 2, λ = 0.4 and 0.9).
///
/// `series` is the history up to and including today, one new value per call, oldest first; it
/// may be truncated at the front as long as it still holds the baseline and guard band (31
/// values are always enough). The day number t used by the baseline rule is `state.steps`
/// after counting today, so the state must have seen every day of the series.
///
/// Today's value always updates the smoothers (Z₁ = y₁, then Z_t = λ y_t + (1 − λ) Z_{t−1}).
/// From day 14 on (baseline L_t = min(28, t − 3) ≥ 11 days ending 3 days before t) the day is
/// tested: T_λ = (Z_λ − μ_t)/σ_λ and p_λ = P(t_{L−1} > T_λ); a smoother with |T_λ| above
/// u_a = t_{0.99, L−1} is capped at μ_t ± u_a σ_λ before it feeds the next day.
///
/// Returns `None` (after updating the smoothers) before day 14, when the series is too short for
/// the baseline, or when the baseline holds non-finite values. A non-finite value today leaves
/// the smoothers unchanged (the day still counts, so later days keep their numbering) and
/// returns `None`; if that happens on day 1 the smoothers start from their default of 0. An
/// empty series changes nothing and returns `None`.
pub fn ewma_step(state: &mut EwmaState, series: &[f64]) -> Option<EwmaOutput> {
    let &y = series.last()?;
    state.steps = state.steps.saturating_add(1);
    if !y.is_finite() {
        return None;
    }
    if state.steps == 1 {
        state.z1 = y;
        state.z2 = y;
        return None;
    }
    let z1 = EWMA_W1 * y + (1.0 - EWMA_W1) * state.z1;
    let z2 = EWMA_W2 * y + (1.0 - EWMA_W2) * state.z2;
    state.z1 = z1;
    state.z2 = z2;

    // Baseline length by the day number, then limited by what the caller passed.
    let by_day = state.steps.saturating_sub((EWMA_GUARD + 1) as u64).min(EWMA_MAX_BASELINE as u64) as usize;
    let avail = series.len().saturating_sub(EWMA_GUARD + 1);
    let l = by_day.min(avail);
    if l < EWMA_MIN_BASELINE {
        return None;
    }
    let end = series.len() - (EWMA_GUARD + 1);
    let (mean, sd) = stats::mean_sd(&series[end - l..end])?;
    let u_w = EWMA_T95[l - EWMA_MIN_BASELINE];
    let u_a = EWMA_T99[l - EWMA_MIN_BASELINE];
    let df = (l - 1) as f64;
    let lf = l as f64;

    let sigma1 = ewma_sigma(EWMA_W1, lf, sd, u_w);
    let sigma2 = ewma_sigma(EWMA_W2, lf, sd, u_w);
    let t1 = (z1 - mean) / sigma1;
    let t2 = (z2 - mean) / sigma2;
    // Capping keeps one extreme day from dominating the smoothers for weeks afterwards.
    if t1.abs() > u_a {
        state.z1 = mean + t1.signum() * u_a * sigma1;
    }
    if t2.abs() > u_a {
        state.z2 = mean + t2.signum() * u_a * sigma2;
    }
    let p1 = stats::student_t_sf(t1, df);
    let p2 = stats::student_t_sf(t2, df);
    Some(EwmaOutput { p: p1.min(p2), mean, t_04: t1, t_09: t2 })
}

// ---------------------------------------------------------------------------------------------
// CUSUM
// ---------------------------------------------------------------------------------------------

/// State of an upper CUSUM: the cumulative sum S_{t−1}.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CusumState {
    pub s: f64,
}

/// Result of one CUSUM step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CusumOutput {
    /// S_t before any reset, so an alarm day reports the sum that crossed h.
    pub s: f64,
    /// S_t ≥ h.
    pub alarm: bool,
}

/// Adds one increment to the CUSUM, raises the alarm at h and resets after it.
fn cusum_advance(state: &mut CusumState, increment: f64, h: f64) -> CusumOutput {
    let s = (state.s + increment).max(0.0);
    let alarm = s >= h;
    // Restarting from zero after an alarm makes the next alarm need fresh evidence instead of
    // firing every day for the rest of an outbreak.
    state.s = if alarm { 0.0 } else { s };
    CusumOutput { s, alarm }
}

/// One step of the standardised upper CUSUM (docs/methodology.md §7.3):
/// S_t = max(0, S_{t−1} + (y − μ)/σ − k), alarm if S_t ≥ h, after which S restarts at 0.
///
/// With σ = √μ this is `surveillance::algo.cusum`'s "standard" transform (which, however, does
/// not reset). An invalid step (non-finite y, μ, σ or k, or σ ≤ 0) leaves the state unchanged
/// and reports the current S without an alarm; a NaN h never alarms.
pub fn cusum_step(state: &mut CusumState, y: f64, mu: f64, sigma: f64, k: f64, h: f64) -> CusumOutput {
    if !(y.is_finite() && mu.is_finite() && sigma.is_finite() && k.is_finite()) || sigma <= 0.0 {
        return CusumOutput { s: state.s, alarm: false };
    }
    cusum_advance(state, (y - mu) / sigma - k, h)
}

/// Likelihood-ratio reference value of the Poisson CUSUM for in-control mean θ₀ and a shift of
/// `shift_sd` Poisson standard deviations: k = (θ₁ − θ₀)/(ln θ₁ − ln θ₀), θ₁ = θ₀ + s√θ₀
/// (`surveillance::findK` with `getTheta1`, unrounded).
///
/// Written as s√θ₀ / ln(1 + s/√θ₀) to stay accurate for small shifts; a zero shift gives the
/// limit θ₀. NaN, θ₀ ≤ 0, a non-finite shift, or a downward shift with θ₁ ≤ 0 give NaN.
pub fn poisson_cusum_k(theta0: f64, shift_sd: f64) -> f64 {
    if !(theta0.is_finite() && shift_sd.is_finite()) || theta0 <= 0.0 {
        return f64::NAN;
    }
    if shift_sd == 0.0 {
        return theta0;
    }
    let root = theta0.sqrt();
    let rel = shift_sd / root;
    if rel <= -1.0 {
        return f64::NAN;
    }
    shift_sd * root / rel.ln_1p()
}

/// One step of the Poisson CUSUM on raw counts: S_t = max(0, S_{t−1} + y − k), alarm if
/// S_t ≥ h, then reset to 0. A non-finite y or k leaves the state unchanged and reports the
/// current S without an alarm.
pub fn poisson_cusum_step(state: &mut CusumState, y: f64, k: f64, h: f64) -> CusumOutput {
    if !(y.is_finite() && k.is_finite()) {
        return CusumOutput { s: state.s, alarm: false };
    }
    cusum_advance(state, y - k, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_t_tables_match_our_quantile() {
        for (i, (t95, t99)) in EWMA_T95.iter().zip(EWMA_T99.iter()).enumerate() {
            let df = (i + EWMA_MIN_BASELINE - 1) as f64;
            let r95 = (stats::student_t_quantile(0.95, df) * 1e5).round() / 1e5;
            let r99 = (stats::student_t_quantile(0.99, df) * 1e5).round() / 1e5;
            assert_eq!(r95, *t95, "df {df}");
            assert_eq!(r99, *t99, "df {df}");
        }
    }

    #[test]
    fn ears_too_short_and_non_finite() {
        let s = [1.0; 11];
        assert!(ears(&s[..7], EarsVariant::C1, 0.0).is_none());
        assert!(ears(&s[..8], EarsVariant::C1, 0.0).is_some());
        assert!(ears(&s[..9], EarsVariant::C2, 0.0).is_none());
        assert!(ears(&s[..10], EarsVariant::C2, 0.0).is_some());
        assert!(ears(&s, EarsVariant::C3, 0.0).is_none());
        assert!(ears(&[], EarsVariant::C1, 0.0).is_none());
        let mut t = [1.0; 12];
        assert!(ears(&t, EarsVariant::C3, 0.0).is_some());
        t[3] = f64::NAN;
        assert!(ears(&t, EarsVariant::C3, 0.0).is_none());
    }

    #[test]
    fn ears_constant_baseline_without_floor_is_not_nan() {
        let mut s = [2.0; 8];
        assert_eq!(ears(&s, EarsVariant::C1, 0.0).unwrap().stat, 0.0);
        s[7] = 3.0;
        assert_eq!(ears(&s, EarsVariant::C1, 0.0).unwrap().stat, f64::INFINITY);
        s[7] = 1.0;
        assert_eq!(ears(&s, EarsVariant::C1, 0.0).unwrap().stat, f64::NEG_INFINITY);
        // With a floor the statistic is finite: (1 − 2)/0.5.
        let out = ears(&s, EarsVariant::C1, 0.5).unwrap();
        assert_eq!((out.stat, out.sd), (-2.0, 0.5));
        // An infinite C2 today and on the previous days still gives a finite-or-infinite C3.
        let mut c = [0.0; 14];
        c[11] = 5.0;
        c[12] = 5.0;
        c[13] = 5.0;
        let out = ears(&c, EarsVariant::C3, 0.0).unwrap();
        assert_eq!(out.stat, f64::INFINITY);
    }

    #[test]
    fn ewma_counts_steps_and_waits_for_day_14() {
        let series: Vec<f64> = (0..20).map(|i| (i % 4) as f64).collect();
        let mut st = EwmaState::default();
        for t in 1..=series.len() {
            let out = ewma_step(&mut st, &series[..t]);
            assert_eq!(out.is_some(), t >= 14, "day {t}");
            assert_eq!(st.steps, t as u64);
        }
        let mut st2 = EwmaState::default();
        assert!(ewma_step(&mut st2, &[]).is_none());
        assert_eq!(st2, EwmaState::default());
    }

    #[test]
    fn cusum_resets_after_alarm_and_ignores_invalid_steps() {
        let mut st = CusumState::default();
        let out = cusum_step(&mut st, 10.0, 4.0, 2.0, 0.5, 2.0);
        assert_eq!(out, CusumOutput { s: 2.5, alarm: true });
        assert_eq!(st.s, 0.0);
        let out = cusum_step(&mut st, 5.0, 4.0, 2.0, 0.5, 2.0);
        assert_eq!(out, CusumOutput { s: 0.0, alarm: false });
        let out = cusum_step(&mut st, 6.0, 4.0, 2.0, 0.5, 2.0);
        assert_eq!(out.s, 0.5);
        let out = cusum_step(&mut st, f64::NAN, 4.0, 2.0, 0.5, 2.0);
        assert_eq!(out, CusumOutput { s: 0.5, alarm: false });
        let out = cusum_step(&mut st, 6.0, 4.0, 0.0, 0.5, 2.0);
        assert_eq!(out, CusumOutput { s: 0.5, alarm: false });
        assert_eq!(st.s, 0.5);
    }

    #[test]
    fn poisson_k_edges() {
        assert_eq!(poisson_cusum_k(4.0, 0.0), 4.0);
        assert!(poisson_cusum_k(0.0, 1.0).is_nan());
        assert!(poisson_cusum_k(4.0, -2.0).is_nan());
        // Small shift: the limit θ₀ + s√θ₀/2 to first order.
        let k = poisson_cusum_k(100.0, 1e-6);
        assert!((k - (100.0 + 0.5e-5)).abs() < 1e-9);
    }
}
