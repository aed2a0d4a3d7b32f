//! Measures over bins: what each measure keeps per base bin (its lanes), how an event updates
//! them, and how a window's value is read back from the bins it spans.
//!
//! Lanes are integers and merge by addition (or bitwise OR for sets), so a window's value does
//! not depend on the order its events arrived in.

use vigil_model::Event;
use vigil_model::time::{DAY, HOUR};
use vigil_rules::filter::EvalCtx;
use vigil_rules::{AttrType, Indicator, Measure, RuleSet};

use crate::bins::Bins;

/// Buckets of the quantile sketch.
pub const QUANTILE_BUCKETS: usize = 40;
/// Widest lane layout any measure uses (overlap over a 64-value enum).
pub const MAX_LANES: usize = 1 + 2 * 64;
/// How far ahead of the evaluation front an event may be and still find its bin in the ring.
pub const AHEAD_HOURS: i64 = 24;

/// Which stream of an indicator an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    Primary,
    Compare,
}

/// The fixed geometry of one indicator's bins.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub lanes: usize,
    pub ring: usize,
    /// Bin width in ms (one hour or one day).
    pub bin: i64,
    pub window_bins: i64,
    pub lag_bins: i64,
    /// Bins before the window that the measure also reads (coelevation's 7-day lookback).
    pub lookback_bins: i64,
    /// Keys of the enum the measure groups by (keys_*, overlap).
    pub keys: usize,
    /// OR-merged lanes (sets) instead of added ones.
    pub or_merge: bool,
    /// Values of the enum a `keys_spread` sets its bits by (0 for other measures).
    pub spread_values: usize,
    /// Encoded-integer to real factor of the attribute a sum or mean reads.
    pub value_scale: f64,
    /// The largest attribute sum one bin may hold, either side of zero: `i64::MAX` over the
    /// ring's bins, so that no window of them overflows (see [`would_overflow`]).
    pub sum_bound: u64,
    quantile: Option<QuantileScale>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct QuantileScale {
    /// Encoded-integer to real factor.
    inv_scale: f64,
    lo: f64,
    inv_ln_gamma: f64,
    ln_gamma: f64,
}

impl QuantileScale {
    #[inline]
    fn bucket(&self, v: i64) -> usize {
        let x = v as f64 * self.inv_scale;
        if x <= self.lo { 0 } else { (1 + ((x / self.lo).ln() * self.inv_ln_gamma) as usize).min(QUANTILE_BUCKETS - 1) }
    }

    /// A representative value of bucket `b` (geometric middle).
    fn value(&self, b: usize) -> f64 {
        if b == 0 { self.lo / 2.0 } else { self.lo * ((b as f64 - 0.5) * self.ln_gamma).exp() }
    }
}

fn enum_len(rules: &RuleSet, ind: &Indicator, attr: usize) -> usize {
    match &rules.sources[ind.source as usize].attrs[attr].ty {
        AttrType::Enum(v) => v.len(),
        _ => 0,
    }
}

impl Layout {
    pub fn for_indicator(rules: &RuleSet, ind: &Indicator) -> Layout {
        let bin = ind.bin.0;
        let mut lateness = rules.sources[ind.source as usize].allowed_lateness.0;
        if let Some(c) = &ind.compare {
            lateness = lateness.max(rules.sources[c.source as usize].allowed_lateness.0);
        }
        let mut keys = 0;
        let mut or_merge = false;
        let mut quantile = None;
        let mut lookback_bins = 0;
        let mut spread_values = 0;
        let lanes = match &ind.measure {
            Measure::Count | Measure::Growth { .. } | Measure::MaxBin | Measure::DistinctDays => 1,
            Measure::Sum { .. } | Measure::Mean { .. } | Measure::Share { .. } | Measure::Ratio { .. } => 2,
            Measure::WeightedShare { .. } => 3,
            Measure::Quantile { attr, .. } => {
                let a = &rules.sources[ind.source as usize].attrs[*attr];
                let (hi, inv_scale) = match a.ty {
                    AttrType::Float { max, scale, .. } => (max, 1.0 / scale as f64),
                    AttrType::Int { max, .. } => (max as f64, 1.0),
                    _ => (1.0, 1.0),
                };
                let hi = hi.clamp(1e-9, 1e15);
                let lo = hi * 1e-4;
                let ln_gamma = (hi / lo).ln() / (QUANTILE_BUCKETS - 2) as f64;
                quantile = Some(QuantileScale { inv_scale, lo, inv_ln_gamma: 1.0 / ln_gamma, ln_gamma });
                1 + QUANTILE_BUCKETS
            }
            Measure::KeysAtLeast { key, .. } => {
                keys = enum_len(rules, ind, *key);
                1 + keys
            }
            Measure::KeysSpread { key, by, .. } => {
                keys = enum_len(rules, ind, *key);
                spread_values = enum_len(rules, ind, *by).min(64);
                or_merge = true;
                1 + keys
            }
            Measure::Overlap { key, .. } => {
                keys = enum_len(rules, ind, *key);
                1 + 2 * keys
            }
            Measure::Coelevation { .. } => {
                lookback_bins = 7 * DAY / bin;
                2
            }
        };
        let value_scale = match &ind.measure {
            Measure::Sum { attr } | Measure::Mean { attr } | Measure::WeightedShare { attr, .. } => {
                match rules.sources[ind.source as usize].attrs[*attr].ty {
                    AttrType::Float { scale, .. } => 1.0 / scale as f64,
                    _ => 1.0,
                }
            }
            _ => 1.0,
        };
        let window_bins = ind.window.0 / bin;
        let lag_bins = ind.lag.0 / bin;
        let slack = (lateness + bin - 1) / bin + (AHEAD_HOURS * HOUR + bin - 1) / bin + 1;
        let ring = (window_bins + lag_bins + lookback_bins + slack) as usize;
        let sum_bound = (i64::MAX / ring.max(1) as i64).unsigned_abs();
        Layout {
            lanes,
            ring,
            bin,
            window_bins,
            lag_bins,
            lookback_bins,
            keys,
            or_merge,
            spread_values,
            value_scale,
            sum_bound,
            quantile,
        }
    }

    pub fn new_bins(&self, regions: usize) -> Bins {
        Bins::new(regions, self.ring, self.lanes)
    }

    /// The first and last bins of the window that ends (exclusive) at local-axis time `end`.
    #[inline]
    pub fn window_of(&self, end: i64) -> (i64, i64) {
        let last = self.bin_of(end - 1) - self.lag_bins;
        (last - self.window_bins + 1, last)
    }

    /// The bin number a local-axis time ([`vigil_model::Zone::local`]) falls into: bins are
    /// local hours or local days.
    #[inline]
    pub fn bin_of(&self, local: i64) -> i64 {
        local.div_euclid(self.bin)
    }
}

/// Whether applying the event to `lanes` (the bin's current lanes, `None` for an empty bin) would
/// take an attribute sum beyond what a bin may hold: `i64::MAX` divided by the bins the
/// indicator keeps, either side of zero, so that a window of them (or a running sum sliding
/// over them, [`crate::running::Running`]) never overflows and always equals the bin-by-bin
/// sum. Only `sum`, `mean` and `weighted_share` add attribute values. Callers check every bin
/// an event touches before applying it to any, so an event is counted everywhere or nowhere.
#[inline]
pub fn would_overflow(ind: &Indicator, layout: &Layout, lanes: Option<&[i64]>, cx: &EvalCtx<'_>) -> bool {
    let past =
        |i: usize, v: i64| lanes.map_or(0, |l| l[i]).checked_add(v).is_none_or(|s| s.unsigned_abs() > layout.sum_bound);
    match &ind.measure {
        Measure::Sum { attr } | Measure::Mean { attr } => cx.event.get(*attr).is_some_and(|v| past(1, v)),
        Measure::WeightedShare { attr, num } => {
            cx.event.get(*attr).is_some_and(|v| past(1, v) || (num.matches(cx) && past(2, v)))
        }
        _ => false,
    }
}

/// True for the measures that add attribute values (see [`would_overflow`]).
pub fn sums_values(ind: &Indicator) -> bool {
    matches!(ind.measure, Measure::Sum { .. } | Measure::Mean { .. } | Measure::WeightedShare { .. })
}

/// Applies one event (already known to pass the leg's filter) to its bin lanes.
#[inline]
pub fn update(ind: &Indicator, layout: &Layout, leg: Leg, cx: &EvalCtx<'_>, lanes: &mut [i64]) {
    let ev: &Event = cx.event;
    match &ind.measure {
        Measure::Count | Measure::Growth { .. } | Measure::MaxBin | Measure::DistinctDays => lanes[0] += 1,
        Measure::Sum { attr } => {
            lanes[0] += 1;
            if let Some(v) = ev.get(*attr) {
                lanes[1] += v;
            }
        }
        Measure::Mean { attr } => {
            if let Some(v) = ev.get(*attr) {
                lanes[0] += 1;
                lanes[1] += v;
            }
        }
        Measure::Quantile { attr, .. } => {
            if let (Some(v), Some(q)) = (ev.get(*attr), &layout.quantile) {
                lanes[0] += 1;
                lanes[1 + q.bucket(v)] += 1;
            }
        }
        Measure::Share { num } => {
            lanes[0] += 1;
            if num.matches(cx) {
                lanes[1] += 1;
            }
        }
        Measure::Ratio { num, den } => {
            if den.matches(cx) {
                lanes[0] += 1;
            }
            if num.matches(cx) {
                lanes[1] += 1;
            }
        }
        Measure::WeightedShare { attr, num } => {
            lanes[0] += 1;
            if let Some(v) = ev.get(*attr) {
                lanes[1] += v;
                if num.matches(cx) {
                    lanes[2] += v;
                }
            }
        }
        Measure::KeysAtLeast { key, .. } => {
            lanes[0] += 1;
            if let Some(k) = ev.get(*key) {
                lanes[1 + k as usize] += 1;
            }
        }
        Measure::KeysSpread { key, by, .. } => {
            lanes[0] += 1;
            if let (Some(k), Some(b)) = (ev.get(*key), ev.get(*by)) {
                lanes[1 + k as usize] |= 1 << b;
            }
        }
        Measure::Overlap { key, .. } => {
            if let Some(k) = ev.get(*key) {
                match leg {
                    Leg::Primary => {
                        lanes[0] += 1;
                        lanes[1 + k as usize] += 1;
                    }
                    Leg::Compare => lanes[1 + layout.keys + k as usize] += 1,
                }
            }
        }
        Measure::Coelevation { .. } => match leg {
            Leg::Primary => lanes[0] += 1,
            Leg::Compare => lanes[1] += 1,
        },
    }
}

/// A window's value and the number of events behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowValue {
    /// `None` when the measure is undefined (no denominator, no events for a mean).
    pub value: Option<f64>,
    /// Events (or denominator units) the value rests on, for `min_support`.
    pub support: u64,
}

/// Reads the value of the window ending (exclusive) at local-axis time `end` for `region`.
/// `scratch` must hold at least [`MAX_LANES`] integers; it is overwritten (callers keep one
/// around so that evaluation does not allocate or zero a large buffer per call).
pub fn extract(
    ind: &Indicator,
    layout: &Layout,
    bins: &Bins,
    region: usize,
    end: i64,
    scratch: &mut [i64],
) -> WindowValue {
    let (first, last) = layout.window_of(end);
    let lanes = layout.lanes;
    let acc = &mut scratch[..lanes];
    acc.fill(0);
    let (mut max_bin, mut nonzero_bins) = (0i64, 0u64);
    bins.each_in(region, first, last, |s| merge_bin(layout.or_merge, acc, &mut max_bin, &mut nonzero_bins, s));
    value_of(ind, layout, bins, region, end, acc, max_bin, nonzero_bins)
}

/// Adds one bin's lanes `s` to a window's: summed (saturating, though no window of bins can
/// overflow, see [`would_overflow`]), or OR-merged but for the count; and its count to the
/// window's largest and to its bins with events.
#[inline]
pub(crate) fn merge_bin(or_merge: bool, acc: &mut [i64], max_bin: &mut i64, nonzero_bins: &mut u64, s: &[i64]) {
    if or_merge {
        acc[0] = acc[0].saturating_add(s[0]);
        for (a, v) in acc[1..].iter_mut().zip(&s[1..]) {
            *a |= v;
        }
    } else {
        for (a, v) in acc.iter_mut().zip(s) {
            *a = a.saturating_add(*v);
        }
    }
    *max_bin = (*max_bin).max(s[0]);
    if s[0] > 0 {
        *nonzero_bins += 1;
    }
}

/// The value of the window ending at `end` from its summed lanes `acc` (and, for `max_bin` and
/// `distinct_days`, its largest bin count and its bins with events): what [`extract`] returns,
/// for callers that keep the sums themselves ([`crate::running::Running`]).
#[allow(clippy::too_many_arguments)]
pub fn value_of(
    ind: &Indicator,
    layout: &Layout,
    bins: &Bins,
    region: usize,
    end: i64,
    acc: &[i64],
    max_bin: i64,
    nonzero_bins: u64,
) -> WindowValue {
    let (first, last) = layout.window_of(end);
    let scale = layout.value_scale;
    let n = acc[0].max(0) as u64;
    let ratio = |num: i64, den: i64| if den > 0 { Some(num as f64 / den as f64) } else { None };
    match &ind.measure {
        Measure::Count | Measure::Growth { .. } => WindowValue { value: Some(acc[0] as f64), support: n },
        Measure::Sum { .. } => WindowValue { value: Some(acc[1] as f64 * scale), support: n },
        Measure::Mean { .. } => WindowValue { value: ratio(acc[1], acc[0]).map(|m| m * scale), support: n },
        Measure::Quantile { q, .. } => {
            let value = layout.quantile.as_ref().and_then(|qs| {
                if n == 0 {
                    return None;
                }
                let rank = ((*q * n as f64).ceil() as i64).max(1);
                let mut seen = 0;
                for b in 0..QUANTILE_BUCKETS {
                    seen += acc[1 + b];
                    if seen >= rank {
                        return Some(qs.value(b));
                    }
                }
                None
            });
            WindowValue { value, support: n }
        }
        Measure::Share { .. } | Measure::Ratio { .. } => WindowValue { value: ratio(acc[1], acc[0]), support: n },
        Measure::WeightedShare { .. } => WindowValue { value: ratio(acc[2], acc[1]), support: n },
        Measure::MaxBin => WindowValue { value: Some(max_bin as f64), support: n },
        Measure::DistinctDays => WindowValue { value: Some(nonzero_bins as f64), support: n },
        Measure::KeysAtLeast { n: at_least, .. } => {
            let k = acc[1..1 + layout.keys].iter().filter(|&&c| c >= *at_least as i64).count();
            WindowValue { value: Some(k as f64), support: n }
        }
        Measure::KeysSpread { n: at_least, .. } => {
            let k = acc[1..1 + layout.keys].iter().filter(|&&m| (m as u64).count_ones() >= *at_least).count();
            WindowValue { value: Some(k as f64), support: n }
        }
        Measure::Overlap { top, .. } => {
            let a = &acc[1..1 + layout.keys];
            let b = &acc[1 + layout.keys..1 + 2 * layout.keys];
            let (sa, sb) = (top_set(a, *top as usize), top_set(b, *top as usize));
            let union = (sa | sb).count_ones();
            let value = if union == 0 { None } else { Some((sa & sb).count_ones() as f64 / union as f64) };
            let support = a.iter().sum::<i64>().min(b.iter().sum::<i64>()).max(0) as u64;
            WindowValue { value, support }
        }
        Measure::Coelevation { alpha } => {
            let hours = coelevated_hours(bins, region, first, last, *alpha);
            WindowValue { value: Some(hours as f64), support: n }
        }
    }
}

/// The hours of `first..=last` in which both legs of a coelevation count are elevated: each
/// leg's count above its mean over the same hour of the 7 days before and above that mean's
/// Poisson limit at `alpha`.
fn coelevated_hours(bins: &Bins, region: usize, first: i64, last: i64, alpha: f64) -> u32 {
    let mut hours = 0u32;
    let mut at = bins.slot_of(first);
    for b in first..=last {
        if coelevated_at(bins, region, b, at, alpha) {
            hours += 1;
        }
        at += 1;
        if at == bins.ring {
            at = 0;
        }
    }
    hours
}

/// Whether hour `b` (at ring slot `at`) of `region` is elevated on both legs.
#[inline]
pub(crate) fn coelevated_at(bins: &Bins, region: usize, b: i64, at: usize, alpha: f64) -> bool {
    bins.slot_at(region, b, at).is_some_and(|now| coelevated(bins, region, b, at, [now[0], now[1]], alpha))
}

/// Whether hour `b` (at ring slot `at`) of `region`, whose legs counted `now`, is elevated on
/// both legs (see [`coelevated_hours`]).
#[inline]
fn coelevated(bins: &Bins, region: usize, b: i64, at: usize, now: [i64; 2], alpha: f64) -> bool {
    // Elevated needs a count above a mean of at least zero: an hour without events on both
    // legs is settled without reading its 7 days before (most hours of a fine region). A count
    // at or below the mean is never elevated either, so most other hours are settled without
    // computing the Poisson limit; the second leg is only checked when the first is elevated.
    if now[0] <= 0 || now[1] <= 0 {
        return false;
    }
    let ring = bins.ring;
    let mut mean = [0f64; 2];
    for k in 1..8usize {
        // Ring slots are stepped, not divided for.
        let off = (k * 24) % ring;
        let slot = if at >= off { at - off } else { at + ring - off };
        if let Some(s) = bins.slot_at(region, b - k as i64 * 24, slot) {
            mean[0] += s[0] as f64;
            mean[1] += s[1] as f64;
        }
    }
    let elevated = |i: usize| {
        let m = mean[i] / 7.0;
        now[i] as f64 > m && now[i] as f64 > poisson_upper(m, alpha)
    };
    elevated(0) && elevated(1)
}

/// Bit set of the `top` keys with the largest counts (ties to the lower key), counts > 0 only.
fn top_set(counts: &[i64], top: usize) -> u64 {
    let mut set = 0u64;
    for _ in 0..top {
        let mut best: Option<usize> = None;
        for (i, &c) in counts.iter().enumerate() {
            if c > 0 && set & (1 << i) == 0 && best.is_none_or(|b| c > counts[b]) {
                best = Some(i);
            }
        }
        match best {
            Some(i) => set |= 1 << i,
            None => break,
        }
    }
    set
}

/// The smallest count u with P(Y > u) <= alpha for Y ~ Poisson(mean): counts above it are
/// unusual at level alpha. Summed directly: hourly means here are small.
pub fn poisson_upper(mean: f64, alpha: f64) -> f64 {
    if mean.is_nan() || mean <= 0.0 {
        return 0.0;
    }
    let mut p = (-mean).exp();
    let mut cdf = p;
    let mut k = 0u32;
    while 1.0 - cdf > alpha && k < 10_000 {
        k += 1;
        p *= mean / k as f64;
        cdf += p;
        if p == 0.0 && cdf < 1e-300 {
            // exp(-mean) underflowed: fall back to a normal approximation.
            return mean + 1.645 * mean.sqrt();
        }
    }
    k as f64
}
