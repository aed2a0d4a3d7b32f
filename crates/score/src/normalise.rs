//! Scoring one indicator's window value against the region's own history, by the method the
//! rule declares (docs/methodology.md §4, §6 and §7): the result is a 0..100 risk score, an expected value
//! for the explanation, or grey when the history is too short.
//!
//! Everything here is pure arithmetic on the value, the history ring and the detector state.

use serde::{Deserialize, Serialize};
use vigil_model::time::DAY;
use vigil_rules::{CountDist, Direction, Indicator, Measure, Normalise, Seasonality, Transform};

use crate::detectors::{self, CusumState, EwmaState};
use crate::history::History;
use crate::stats;

/// Expected counts below this are raised to it: a region that never saw an event is not
/// "infinitely surprised" by one.
pub const EXPECTED_COUNT_FLOOR: f64 = 1.0;

/// Most history values a detector looks at in one evaluation.
const MAX_SERIES: usize = 64;

/// Recursive detector state of one series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum DetectorState {
    #[default]
    None,
    Ewma(EwmaState),
    Cusum(CusumState),
}

/// The scored result of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    /// The indicator's value (for growth measures the ratio); `None` when undefined. Callers
    /// publish it only when its support reaches `min_support`.
    pub value: Option<f64>,
    pub expected: Option<f64>,
    /// `None` = grey.
    pub score: Option<f64>,
}

/// Whether low support makes the indicator grey (ratios, means) or only hides its value
/// (counts).
pub fn is_ratio_like(m: &Measure) -> bool {
    matches!(
        m,
        Measure::Share { .. }
            | Measure::Ratio { .. }
            | Measure::WeightedShare { .. }
            | Measure::Mean { .. }
            | Measure::Quantile { .. }
            | Measure::Overlap { .. }
    )
}

/// Geometry of the history one indicator needs, in evaluations (hops).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryNeeds {
    pub len: usize,
    pub width: usize,
}

fn hops(ind: &Indicator, ms: i64) -> usize {
    (ms / ind.hop.0).max(0) as usize
}

/// How long a history ring the indicator's normalisation (and growth measure) needs.
pub fn history_needs(ind: &Indicator) -> HistoryNeeds {
    let w = hops(ind, ind.window.0).max(1);
    let per_day = hops(ind, DAY).max(1);
    let mut len = match &ind.normalise {
        Normalise::BaselinePvalue { baseline, guard, seasonality, .. } => match seasonality {
            Seasonality::None => w + hops(ind, guard.0) + hops(ind, baseline.0),
            _ => hops(ind, baseline.0),
        },
        Normalise::Binomial { windows } => w * *windows as usize,
        Normalise::RobustZ { windows, .. } => w + per_day * *windows as usize,
        Normalise::Goalposts { .. } => 0,
        Normalise::Percentile { history, .. } => hops(ind, history.0),
        Normalise::Ears { .. } => 12,
        Normalise::Ewma => 40,
        Normalise::Cusum { baseline, .. } => hops(ind, baseline.0) + 3,
    };
    if let Measure::Growth { step, n } = &ind.measure {
        len = len.max(hops(ind, step.0) * *n as usize).max(w);
    }
    let width = if matches!(ind.normalise, Normalise::Binomial { .. }) { 2 } else { 1 };
    HistoryNeeds { len: len + 1, width }
}

/// The lags of the history ring one evaluation's score reads besides its own entry, as runs
/// `(first, stride, count)`: lags `first + k·stride` for `k < count`. `None` for the recursive
/// detectors (EWMA, CUSUM), whose state moves at every evaluation. [`score`] reads nothing
/// else of the ring (a test perturbs every other entry and finds the same score), which is
/// what lets [`crate::quiet::Quiet`] keep a result whose inputs have not changed.
pub fn reads(ind: &Indicator) -> Option<Vec<(usize, usize, usize)>> {
    let w = hops(ind, ind.window.0).max(1);
    let per_day = hops(ind, DAY).max(1);
    let mut runs = Vec::new();
    if let Measure::Growth { step, n } = &ind.measure {
        let s = hops(ind, step.0);
        runs.push((s, s.max(1), *n as usize));
        runs.push((w, 1, 1));
    }
    match &ind.normalise {
        Normalise::BaselinePvalue { baseline, guard, seasonality, .. } => match seasonality {
            Seasonality::None => runs.push((w + hops(ind, guard.0), 1, hops(ind, baseline.0))),
            _ => {
                let week = hops(ind, 7 * DAY);
                runs.push((week, week.max(1), (baseline.0 / (7 * DAY)) as usize));
            }
        },
        Normalise::Binomial { windows } => runs.push((w, w, *windows as usize)),
        Normalise::RobustZ { windows, .. } => runs.push((w, per_day, *windows as usize)),
        Normalise::Goalposts { .. } => {}
        Normalise::Percentile { history, .. } => runs.push((1, 1, hops(ind, history.0))),
        Normalise::Ears { .. } => runs.push((1, 1, 12)),
        Normalise::Ewma | Normalise::Cusum { .. } => return None,
    }
    Some(runs)
}

/// Evaluations after which nothing [`score`] decides on how far the ring has filled changes
/// any more, except through the lags it reads coming into view one by one: the window is whole
/// (`span`), and a binomial baseline has its two windows of history.
pub fn fill_settled(ind: &Indicator) -> usize {
    let w = hops(ind, ind.window.0).max(1);
    span(ind) + if matches!(ind.normalise, Normalise::Binomial { .. }) { 2 * w } else { 0 }
}

/// Evaluations one window value spans: its window and lag, and for co-elevation the 7 days
/// before its window (its baseline). Baselines read only entries whose window was fully observed.
pub fn span(ind: &Indicator) -> usize {
    let lookback = if matches!(ind.measure, Measure::Coelevation { .. }) { 7 * DAY } else { 0 };
    hops(ind, ind.window.0 + ind.lag.0 + lookback).max(1)
}

/// The value written into the history for this evaluation.
pub fn history_entry(value: Option<f64>, support: u64) -> [f32; 2] {
    [value.map_or(f32::NAN, |v| v as f32), support as f32]
}

/// A region's history as the baselines see it: only entries whose window was fully observed
/// (a window that began before the stream did undercounts, and would bias every baseline low).
/// `evals` is the evaluation the view is of: the ring's newest, or an earlier one whose score
/// was deferred ([`score_as_of`]).
struct View<'a> {
    hist: &'a History,
    region: usize,
    span: usize,
    evals: u64,
}

impl View<'_> {
    #[inline]
    fn value(&self, lag: usize) -> Option<f64> {
        self.get(lag).map(|e| e[0] as f64).filter(|v| v.is_finite())
    }

    #[inline]
    fn get(&self, lag: usize) -> Option<&[f32]> {
        if (self.evals as usize) + 1 < lag + self.span {
            return None;
        }
        self.hist.get_as_of(self.region, lag, self.evals)
    }

    /// [`View::value`] at lags `first`, `first + stride`, … (`count` of them), the defined ones,
    /// nearest first.
    #[inline]
    fn each_value(&self, first: usize, stride: usize, count: usize, f: impl FnMut(f64)) {
        // A lag is seen when its window was fully observed: `evals + 1 >= lag + span`.
        let Some(max_lag) = (self.evals as usize + 1).checked_sub(self.span) else { return };
        self.hist.each_value_as_of(self.region, first, stride, count, max_lag, self.evals, f);
    }

    /// Past evaluations with a full window.
    fn filled(&self) -> usize {
        ((self.evals as usize) + 1).saturating_sub(self.span).min(self.hist.filled_as_of(self.evals))
    }
}

/// Scores the current evaluation of one series. `scratch` is working space reused between
/// calls. `value` is the measure's window value (for a
/// growth measure, the window count) and has already been written to `hist` at lag 0.
pub fn score(
    ind: &Indicator,
    hist: &History,
    region: usize,
    value: Option<f64>,
    support: u64,
    det: &mut DetectorState,
    scratch: &mut Vec<f64>,
) -> Scored {
    score_as_of(ind, hist, hist.evals, region, value, support, det, scratch)
}

/// [`score`] of the evaluation at which `evals` evaluations had been pushed, read from the ring
/// since advanced: a score deferred until something reads it gives what it would have given
/// then, as long as the ring still holds the lags it reads ([`reads`]; the entries pushed since
/// overwrite the oldest).
#[allow(clippy::too_many_arguments)]
pub fn score_as_of(
    ind: &Indicator,
    hist: &History,
    evals: u64,
    region: usize,
    value: Option<f64>,
    support: u64,
    det: &mut DetectorState,
    scratch: &mut Vec<f64>,
) -> Scored {
    let span = span(ind);
    let view = View { hist, region, span, evals };
    // Growth measures turn the count into a ratio against earlier windows first.
    let (value, expected_growth) = match (&ind.measure, value) {
        (Measure::Growth { step, n }, Some(x)) => match growth(ind, &view, *step, *n) {
            // Expected in the ratio's own units: no growth.
            Some(reference) => (Some((x + 1.0) / (reference + 1.0)), Some(1.0)),
            None => {
                return Scored { value: None, expected: None, score: None };
            }
        },
        (_, v) => (v, None),
    };
    let low_support = support < ind.min_support as u64;
    if low_support && is_ratio_like(&ind.measure) {
        return Scored { value: None, expected: None, score: None };
    }
    let Some(x) = value else {
        return Scored { value: None, expected: None, score: None };
    };
    // A window only partly observed since the stream began undercounts: grey until it is full.
    if (evals as usize) + 1 < span {
        return Scored { value: Some(x), expected: None, score: None };
    }
    // Minimum-support gate (Farrington's limit54 in spirit): too few events never alarm.
    if low_support {
        return Scored { value: Some(x), expected: expected_growth, score: Some(0.0) };
    }
    let up = ind.direction == Direction::Up;
    let w = hops(ind, ind.window.0).max(1);
    let per_day = hops(ind, DAY).max(1);
    let (score, expected) = match &ind.normalise {
        Normalise::Goalposts { low, high } => {
            let u = 100.0 * ((x - low) / (high - low)).clamp(0.0, 1.0);
            (Some(u), expected_growth)
        }
        Normalise::BaselinePvalue { baseline, guard, seasonality, dist, min_count } => {
            let mut sum = 0.0;
            let mut sum2 = 0.0;
            let mut n = 0usize;
            let mut add = |v: f64| {
                sum += v;
                sum2 += v * v;
                n += 1;
            };
            match seasonality {
                Seasonality::None => {
                    let first = w + hops(ind, guard.0);
                    view.each_value(first, 1, hops(ind, baseline.0), &mut add);
                }
                _ => {
                    let week = hops(ind, 7 * DAY);
                    view.each_value(week, week, (baseline.0 / (7 * DAY)) as usize, &mut add);
                }
            }
            let needed = match seasonality {
                Seasonality::None => hops(ind, baseline.0) / 2,
                _ => 2,
            };
            if n < needed.max(2) {
                (None, None)
            } else {
                let mean = sum / n as f64;
                let var = ((sum2 - n as f64 * mean * mean) / (n as f64 - 1.0)).max(0.0);
                let mu = mean.max(EXPECTED_COUNT_FLOOR);
                let phi = match dist {
                    CountDist::Poisson => 1.0,
                    CountDist::NegBin => (var / mu).max(1.0),
                };
                let k = x.round().max(0.0) as u64;
                let u = if up {
                    if (k as f64) < *min_count as f64 || (k as f64) <= mu {
                        0.0
                    } else {
                        stats::p_to_score(stats::negbin_sf(k, mu, phi))
                    }
                } else if (k as f64) >= mean {
                    0.0
                } else {
                    // P(Y <= k) = 1 - P(Y >= k + 1).
                    stats::p_to_score(1.0 - stats::negbin_sf(k + 1, mu, phi))
                };
                (Some(u), Some(mean))
            }
        }
        Normalise::Binomial { windows } => {
            let (mut num, mut den) = (0.0, 0.0);
            for k in 1..=*windows as usize {
                if let Some(e) = view.get(k * w)
                    && e[0].is_finite()
                {
                    num += e[0] as f64 * e[1] as f64;
                    den += e[1] as f64;
                }
            }
            if den < 1.0 || (view.filled() < 2 * w) {
                (None, None)
            } else {
                let p0 = (num / den).clamp(1e-4, 1.0 - 1e-4);
                let n = support;
                let k = (x * n as f64).round() as u64;
                let u = if up {
                    if (k as f64) <= p0 * n as f64 { 0.0 } else { stats::p_to_score(stats::binomial_sf(k, n, p0)) }
                } else if (k as f64) >= p0 * n as f64 {
                    0.0
                } else {
                    stats::p_to_score(1.0 - stats::binomial_sf(k + 1, n, p0))
                };
                (Some(u), Some(p0))
            }
        }
        Normalise::RobustZ { windows, sigma_min, transform } => {
            let t = |v: f64| {
                if *transform == Transform::Log1p { v.max(0.0).ln_1p() } else { v }
            };
            scratch.clear();
            view.each_value(w, per_day, *windows as usize, |v| scratch.push(t(v)));
            let n = scratch.len();
            if n < (*windows as usize / 2).max(5) {
                (None, None)
            } else {
                let s = &mut scratch[..];
                let med = stats::median_in_place(s).unwrap_or(0.0);
                let mad = stats::mad_in_place(s, med).unwrap_or(0.0) * 1.4826;
                let sigma = mad.max(*sigma_min);
                let z = if up { (t(x) - med) / sigma } else { (med - t(x)) / sigma };
                let expected = if *transform == Transform::Log1p { med.exp_m1() } else { med };
                (Some(stats::z_to_score(z)), Some(expected))
            }
        }
        Normalise::Percentile { history, min_history } => {
            let len = hops(ind, history.0);
            let (mut n, mut ge, mut le) = (0usize, 0usize, 0usize);
            scratch.clear();
            for lag in 1..=len {
                if let Some(v) = view.value(lag) {
                    scratch.push(v);
                    n += 1;
                    if v >= x {
                        ge += 1;
                    }
                    if v <= x {
                        le += 1;
                    }
                }
            }
            if n < hops(ind, min_history.0).max(1) {
                (None, None)
            } else {
                let p = if up { (ge + 1) as f64 / (n + 1) as f64 } else { (le + 1) as f64 / (n + 1) as f64 };
                let med = stats::median_in_place(scratch);
                (Some(stats::p_to_score(p)), med)
            }
        }
        Normalise::Ears { variant, sigma_min } => {
            // The longest unbroken run of daily values ending today, oldest first (C1 needs 8,
            // C2 10, C3 12; `ears` says when there are too few).
            let mut series = [0f64; 13];
            let avail = (0..13).take_while(|&lag| view.value(lag).is_some()).count();
            for (i, slot) in series[..avail].iter_mut().enumerate() {
                *slot = view.value(avail - 1 - i).unwrap_or(0.0);
            }
            let series = &series[..avail];
            let ok = avail > 0;
            let v = match variant {
                vigil_rules::EarsVariant::C1 => detectors::EarsVariant::C1,
                vigil_rules::EarsVariant::C2 => detectors::EarsVariant::C2,
                vigil_rules::EarsVariant::C3 => detectors::EarsVariant::C3,
            };
            match (ok, detectors::ears(series, v, *sigma_min)) {
                (true, Some(out)) => {
                    // C1/C2 are z-like; C3's alarm threshold 2 is mapped onto z = 3.09 (the
                    // orange band), matching C1/C2's alarm at 3 sigma.
                    let z = match variant {
                        vigil_rules::EarsVariant::C3 => out.stat * 3.09 / 2.0,
                        _ => out.stat,
                    };
                    let z = if up { z } else { -z };
                    (Some(stats::z_to_score(z)), Some(out.mean))
                }
                _ => (None, None),
            }
        }
        Normalise::Ewma => {
            let mut series = [0f64; MAX_SERIES];
            let avail = view.filled().min(MAX_SERIES - 1);
            let mut n = 0;
            for lag in (0..=avail).rev() {
                series[n] = view.value(lag).unwrap_or(0.0);
                n += 1;
            }
            if !matches!(det, DetectorState::Ewma(_)) {
                *det = DetectorState::Ewma(EwmaState::default());
            }
            let DetectorState::Ewma(state) = det else { unreachable!() };
            match detectors::ewma_step(state, &series[..n]) {
                Some(out) => (Some(stats::p_to_score(out.p)), Some(out.mean)),
                None => (None, None),
            }
        }
        Normalise::Cusum { k, h, baseline } => {
            scratch.clear();
            scratch.extend((3..3 + hops(ind, baseline.0)).filter_map(|lag| view.value(lag)));
            let n = scratch.len();
            match stats::mean_sd(scratch) {
                Some((mu, sd)) if n >= 7 => {
                    if !matches!(det, DetectorState::Cusum(_)) {
                        *det = DetectorState::Cusum(CusumState::default());
                    }
                    let DetectorState::Cusum(state) = det else { unreachable!() };
                    let y = if up { x } else { 2.0 * mu - x };
                    let out = detectors::cusum_step(state, y, mu, sd.max(0.5), *k, *h);
                    (Some(stats::z_to_score(3.09 * out.s / h)), Some(mu))
                }
                _ => (None, None),
            }
        }
    };
    Scored { value, expected: expected.or(expected_growth), score }
}

/// Mean count of the windows ending 1..n steps earlier, falling back to the previous window
/// when none of them is in the history yet.
fn growth(ind: &Indicator, view: &View<'_>, step: vigil_model::Duration, n: u32) -> Option<f64> {
    let s = hops(ind, step.0);
    let mut sum = 0.0;
    let mut k_found = 0;
    for k in 1..=n as usize {
        if let Some(v) = view.value(k * s) {
            sum += v;
            k_found += 1;
        }
    }
    if k_found > 0 {
        return Some(sum / k_found as f64);
    }
    view.value(hops(ind, ind.window.0).max(1))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vigil_rules::testing as mini;

    /// One indicator of every scoring method (and a growth measure), hourly and daily.
    pub(crate) fn every_method() -> vigil_rules::RuleSet {
        let methods: &[(&str, &str, &str, &str)] = &[
            (
                "count",
                "24h",
                "1h",
                r#"{ method = "baseline_pvalue", baseline = "3d", guard = "2h", seasonality = "none", dist = "negbin" }"#,
            ),
            (
                "count",
                "24h",
                "1h",
                r#"{ method = "baseline_pvalue", baseline = "14d", guard = "0d", seasonality = "day_of_week", dist = "negbin" }"#,
            ),
            (
                "count",
                "24h",
                "1h",
                r#"{ method = "baseline_pvalue", baseline = "14d", guard = "0d", seasonality = "hour_of_week", dist = "poisson" }"#,
            ),
            (
                "count",
                "7d",
                "1d",
                r#"{ method = "baseline_pvalue", baseline = "28d", guard = "2d", seasonality = "none", dist = "negbin" }"#,
            ),
            ("share(urgent = TRUE)", "24h", "1h", r#"{ method = "binomial", windows = 4 }"#),
            ("mean(response_minutes)", "24h", "1h", r#"{ method = "robust_z", windows = 6, sigma_min = 0.5 }"#),
            ("count", "3h", "1h", r#"{ method = "percentile", history = "2d", min_history = "1d" }"#),
            ("count", "1d", "1d", r#"{ method = "ears", variant = "c3" }"#),
            ("growth(1d, 3)", "24h", "1h", r#"{ method = "goalposts", low = 1.0, high = 3.0 }"#),
            ("count", "1d", "1d", r#"{ method = "ewma" }"#),
            ("count", "1d", "1d", r#"{ method = "cusum", k = 0.5, h = 4.0, baseline = "14d" }"#),
        ];
        let weight = 1.0 / methods.len() as f64;
        let mut text = String::new();
        for (k, (measure, window, hop, normalise)) in methods.iter().enumerate() {
            text.push_str(&format!(
                "[[indicator]]\nid = \"m{k}\"\nname = \"M{k}\"\ncategory = \"volume\"\nsource = \"police\"\n\
                 measure = \"{measure}\"\nwindow = \"{window}\"\nhop = \"{hop}\"\ndirection = \"up\"\nmin_support = 0\n\
                 weight = {weight}\nnormalise = {normalise}\n\n"
            ));
        }
        vigil_rules::compile(&mini::files_with(&[("indicators/police.toml", text.as_str())]))
            .unwrap_or_else(|d| panic!("{d}\n{text}"))
    }

    /// `reads` names every lag `score` reads: with every other entry of the ring changed, each
    /// method scores what it scored before, bit for bit (and changing a lag it names does change
    /// some score, so the list is not padded with lags nothing reads).
    #[test]
    fn the_score_reads_only_the_lags_reads_names() {
        let rules = every_method();
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1du64);
        for ind in &rules.indicators {
            let Some(runs) = reads(ind) else {
                assert!(matches!(ind.normalise, Normalise::Ewma | Normalise::Cusum { .. }), "{}", ind.id);
                continue;
            };
            let needs = history_needs(ind);
            let read: Vec<usize> = runs
                .iter()
                .flat_map(|&(first, stride, count)| (0..count).map(move |k| first + k * stride))
                .filter(|&lag| lag > 0 && lag < needs.len)
                .collect();
            let mut moved = false;
            for trial in 0..40 {
                let mut hist = History::new(1, needs.len, needs.width);
                let entry = |next: &mut dyn FnMut() -> u64| {
                    let support = next() % 12;
                    let value = match ind.measure {
                        Measure::Share { .. } => (next() % (support + 1)) as f64 / support.max(1) as f64,
                        _ => (next() % 9) as f64,
                    };
                    history_entry(Some(value), support)
                };
                // Fill past the ring, so that every lag is in reach.
                for _ in 0..needs.len + span(ind) + trial {
                    hist.set(0, &entry(&mut next));
                    hist.advance();
                }
                let x = entry(&mut next);
                hist.set(0, &x);
                let (value, support) = (Some(x[0] as f64), x[1] as u64);
                let mut scratch = Vec::new();
                let base = score(ind, &hist, 0, value, support, &mut DetectorState::None, &mut scratch);
                for lag in (1..needs.len).filter(|l| !read.contains(l)) {
                    let mut other = hist.clone();
                    let e = entry(&mut next);
                    for (at, v) in e.iter().enumerate().take(needs.width) {
                        other.put_at(0, lag, at, *v + 1.0);
                    }
                    let s = score(ind, &other, 0, value, support, &mut DetectorState::None, &mut scratch);
                    assert_eq!(format!("{s:?}"), format!("{base:?}"), "{}: lag {lag} is read", ind.id);
                }
                let mut other = hist.clone();
                for &lag in &read {
                    let e = entry(&mut next);
                    for (at, v) in e.iter().enumerate().take(needs.width) {
                        other.put_at(0, lag, at, *v + 3.0);
                    }
                }
                let s = score(ind, &other, 0, value, support, &mut DetectorState::None, &mut scratch);
                moved |= format!("{s:?}") != format!("{base:?}");
            }
            assert!(read.is_empty() || moved, "{}: changing the lags read never changed the score", ind.id);
        }
    }

    /// A score computed after its evaluation, between it and the next ([`score_as_of`] one
    /// evaluation back, as `vigil_core` computes the scores nothing read on time), is the score
    /// on time, bit for bit, for every stateless method, with the ring exactly as long as its
    /// method needs (so the furthest lag read is the slot the next evaluation will write), from
    /// the ring's first entry on (the lags come into view one by one) to long after it wrapped.
    #[test]
    fn a_score_computed_after_its_evaluation_is_the_score_on_time() {
        let rules = every_method();
        let mut next = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15u64);
        for ind in &rules.indicators {
            if reads(ind).is_none() {
                continue;
            }
            let needs = history_needs(ind);
            let mut hist = History::new(1, needs.len, needs.width);
            let mut scratch = Vec::new();
            for e in 0..2 * needs.len + span(ind) {
                let support = next() % 12;
                let value = match ind.measure {
                    Measure::Share { .. } => (next() % (support + 1)) as f64 / support.max(1) as f64,
                    _ => (next() % 9) as f64,
                };
                hist.set(0, &history_entry(Some(value), support));
                let s = score(ind, &hist, 0, Some(value), support, &mut DetectorState::None, &mut scratch);
                hist.advance();
                let later = score_as_of(
                    ind,
                    &hist,
                    hist.evals - 1,
                    0,
                    Some(value),
                    support,
                    &mut DetectorState::None,
                    &mut scratch,
                );
                assert_eq!(format!("{later:?}"), format!("{s:?}"), "{}: evaluation {e}", ind.id);
            }
        }
    }
}
