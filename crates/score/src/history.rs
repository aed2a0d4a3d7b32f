//! Per-(indicator, region) history of window values: the memory every baseline is computed
//! from. All regions of an indicator are evaluated at every hop, so one evaluation counter per
//! indicator positions every region's ring; storage is allocated once.
//!
//! Entries are stored slot-major: one evaluation's entries of every region lie side by side.
//! Evaluation walks the regions in order, each reading the same lags (the same weekday hour four
//! weeks back, the same hour 28 days back), so neighbouring regions read neighbouring floats and
//! one cache line serves sixteen of them; stored region-major, every read of every region was a
//! line of its own, and scoring 505 regions hourly was bound by memory, not arithmetic.

use serde::{Deserialize, Serialize};

/// The ring slots (of a ring of `len` holding evaluations `0..=evals`, evaluation `k` at slot
/// `k % len`) of lags `first`, `first + stride`, … (`count` of them), nearest first, up to lag
/// `top` and the ring's end: one division for the whole run, then steps back by `stride`.
#[inline]
pub fn lag_slots(
    evals: u64,
    len: usize,
    first: usize,
    stride: usize,
    count: usize,
    top: usize,
) -> impl Iterator<Item = usize> {
    let top = top.min(len - 1);
    let stride = stride.max(1);
    let n = if count == 0 || first > top { 0 } else { ((top - first) / stride + 1).min(count) };
    let step = stride % len;
    let mut slot = if n == 0 { 0 } else { ((evals - first as u64) % len as u64) as usize };
    (0..n).map(move |_| {
        let s = slot;
        slot = if slot >= step { slot - step } else { slot + len - step };
        s
    })
}

/// A ring of the last `len` evaluations per region, `width` floats each (value, and for shares
/// the support behind it). Undefined values are stored as NaN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub len: usize,
    pub width: usize,
    regions: usize,
    /// Evaluations pushed so far (the same for every region).
    pub evals: u64,
    /// `len` slots of `regions` entries of `width` floats.
    data: Vec<f32>,
}

impl History {
    /// True when `other` has the same regions, length and width (a restored state fits).
    pub fn same_shape(&self, other: &History) -> bool {
        self.len == other.len
            && self.width == other.width
            && self.regions == other.regions
            && self.data.len() == other.data.len()
    }

    pub fn new(regions: usize, len: usize, width: usize) -> History {
        let len = len.max(1);
        History { len, width, regions, evals: 0, data: vec![f32::NAN; regions * len * width] }
    }

    #[inline]
    fn at(&self, region: usize, slot: usize) -> usize {
        (slot * self.regions + region) * self.width
    }

    /// Writes the current evaluation's entry for `region` (call for every region, then
    /// [`History::advance`]); `entry` holds at least the first float.
    #[inline]
    pub fn set(&mut self, region: usize, entry: &[f32]) {
        let slot = (self.evals % self.len as u64) as usize;
        let at = self.at(region, slot);
        // Most entries are one float: a store, not a call to memcpy (every region, every hop).
        match self.width {
            1 => self.data[at] = entry[0],
            2 if entry.len() >= 2 => {
                self.data[at] = entry[0];
                self.data[at + 1] = entry[1];
            }
            // Floats beyond the entry (an alarm's unit count) are written by `set_at`.
            w => {
                let n = w.min(entry.len());
                self.data[at..at + n].copy_from_slice(&entry[..n]);
            }
        }
    }

    /// Writes float `at` of the current evaluation's entry for `region` (one float beside what
    /// [`History::set`] wrote: the alarm's unit count of a long window).
    #[inline]
    pub fn set_at(&mut self, region: usize, at: usize, v: f32) {
        let slot = (self.evals % self.len as u64) as usize;
        let i = self.at(region, slot) + at;
        self.data[i] = v;
    }

    /// Writes float `at` of the entry `lag` evaluations back (1 = the last one written), if the
    /// ring still holds it: filling in a float a past evaluation did not keep.
    pub fn put_at(&mut self, region: usize, lag: usize, at: usize, v: f32) {
        if lag == 0 || lag >= self.len || lag as u64 > self.evals {
            return;
        }
        let slot = ((self.evals - lag as u64) % self.len as u64) as usize;
        let i = self.at(region, slot) + at;
        self.data[i] = v;
    }

    /// Writes the previous evaluation's entries as the current one's for every region: what a
    /// region whose window and unit count did not change writes, so that only the others need
    /// be written (over them). Nothing before the first evaluation.
    pub fn repeat_previous(&mut self) {
        if self.evals == 0 || self.len < 2 {
            // With one slot the previous entry is where the current one goes.
            return;
        }
        let n = self.regions * self.width;
        let now = (self.evals % self.len as u64) as usize * n;
        let prev = ((self.evals - 1) % self.len as u64) as usize * n;
        self.data.copy_within(prev..prev + n, now);
    }

    pub fn advance(&mut self) {
        self.evals += 1;
    }

    /// The entry `lag` evaluations before the current one (lag 0 = the entry being written
    /// now), or `None` when that far back was never filled or has left the ring.
    #[inline]
    pub fn get(&self, region: usize, lag: usize) -> Option<&[f32]> {
        self.get_as_of(region, lag, self.evals)
    }

    /// [`History::get`] as it was at the evaluation whose entry is number `evals` (at most
    /// [`History::evals`]): what a score computed later reads (`vigil_core`'s scores computed
    /// when read, one evaluation on). `None` as `get` gave then, and for an entry the ring has
    /// written over since. An entry stays until its slot is written again: between two
    /// evaluations ([`History::advance`] done, the next entry not yet written) the ring still
    /// holds the entry a whole ring back, so the latest evaluation's every lag is there.
    #[inline]
    pub fn get_as_of(&self, region: usize, lag: usize, evals: u64) -> Option<&[f32]> {
        if lag >= self.len || lag as u64 > evals {
            return None;
        }
        let k = evals - lag as u64;
        if self.evals - k > self.len as u64 {
            debug_assert!(false, "a deferred score read an entry the ring no longer holds");
            return None;
        }
        let slot = (k % self.len as u64) as usize;
        let at = self.at(region, slot);
        Some(&self.data[at..at + self.width])
    }

    /// Calls `f` with every defined value (first float) at lags `first`, `first + stride`, …
    /// (`count` of them) of the evaluation at which `evals` evaluations had been pushed
    /// ([`History::evals`] for the newest; an earlier one for a deferred score, see
    /// [`History::get_as_of`]), nearest first, skipping the ones [`History::value`] gives `None`
    /// for and stopping at `max_lag`: what `value` gives lag by lag, with one division for the
    /// whole run instead of one per lag (robust baselines read 28 days of one hour, every
    /// region, every hour).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn each_value_as_of(
        &self,
        region: usize,
        first: usize,
        stride: usize,
        count: usize,
        max_lag: usize,
        evals: u64,
        mut f: impl FnMut(f64),
    ) {
        // Lags whose slots have been written over since (see `get_as_of`) are not read.
        let kept = self.len.saturating_sub((self.evals - evals) as usize);
        let top = max_lag.min(evals as usize).min(kept);
        for slot in lag_slots(evals, self.len, first, stride, count, top) {
            let v = self.data[self.at(region, slot)];
            if v.is_finite() {
                f(v as f64);
            }
        }
    }

    /// The value (first float) `lag` evaluations back, if defined.
    #[inline]
    pub fn value(&self, region: usize, lag: usize) -> Option<f64> {
        self.get(region, lag).map(|e| e[0] as f64).filter(|v| v.is_finite())
    }

    /// Float `at` of the entry `lag` evaluations back, if defined.
    #[inline]
    pub fn value_at(&self, region: usize, lag: usize, at: usize) -> Option<f64> {
        self.get(region, lag).and_then(|e| e.get(at)).map(|&v| v as f64).filter(|v| v.is_finite())
    }

    pub fn regions(&self) -> usize {
        self.regions
    }

    /// How many past evaluations (not counting the current one) exist.
    pub fn filled(&self) -> usize {
        self.filled_as_of(self.evals)
    }

    /// [`History::filled`] as of `evals` evaluations.
    pub fn filled_as_of(&self, evals: u64) -> usize {
        (evals as usize).min(self.len - 1)
    }

    /// The same history in a ring of `len` entries (at least 1) of `width` floats: the newest
    /// entries that fit are kept, in place, so a longer or shorter ring continues where this one
    /// was; of each entry, the first floats that fit (a float added is unknown, NaN).
    pub fn reshaped(&self, len: usize, width: usize) -> History {
        let len = len.max(1);
        let regions = self.regions;
        let mut out = History::new(regions, len, width);
        out.evals = self.evals;
        let floats = width.min(self.width);
        // Entry k (0 ..= evals) sits at slot k % len; copy the newest min(len, self.len) of them.
        let keep = len.min(self.len) as u64;
        let first = (self.evals + 1).saturating_sub(keep);
        for k in first..=self.evals {
            let (from, to) = ((k % self.len as u64) as usize, (k % len as u64) as usize);
            for r in 0..regions {
                let (a, b) = (self.at(r, from), out.at(r, to));
                out.data[b..b + floats].copy_from_slice(&self.data[a..a + floats]);
            }
        }
        out
    }

    /// The history of the regions `from` names, in that order (`None`: a region with no
    /// history yet): a scale-out task keeps only the regions it owns.
    pub fn select(&self, from: &[Option<usize>]) -> History {
        let mut out = History::new(from.len(), self.len, self.width);
        out.evals = self.evals;
        for slot in 0..self.len {
            for (to, src) in from.iter().enumerate() {
                if let Some(r) = *src {
                    let (a, b) = (self.at(r, slot), out.at(to, slot));
                    out.data[b..b + self.width].copy_from_slice(&self.data[a..a + self.width]);
                }
            }
        }
        out
    }

    pub fn bytes_per_region(&self) -> usize {
        self.len * self.width * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every region's entry is the previous evaluation's until it writes its own, across the
    /// ring's wrap; a ring of one slot keeps what it holds.
    #[test]
    fn repeated_entries_are_the_previous_evaluations() {
        for len in [1usize, 3] {
            let mut h = History::new(2, len, 2);
            h.repeat_previous();
            assert!(h.get(0, 0).unwrap()[0].is_nan(), "nothing before the first evaluation");
            for e in 0..7u64 {
                h.repeat_previous();
                if e % 3 == 0 {
                    h.set(0, &[e as f32, 1.0]);
                }
                h.set_at(1, 1, e as f32);
                let want0 = (e / 3 * 3) as f32;
                assert_eq!(h.get(0, 0).unwrap(), &[want0, 1.0], "len {len}, evaluation {e}");
                assert_eq!(h.get(1, 0).unwrap()[1], e as f32);
                h.advance();
            }
        }
    }

    /// A strided run of lags reads what `value` reads lag by lag, in the same order, however
    /// far the ring has filled and wrapped.
    #[test]
    fn a_strided_read_gives_the_values_lag_by_lag() {
        for len in [1usize, 2, 5, 24, 29] {
            let mut h = History::new(3, len, 2);
            for e in 0..(3 * len + 4) as u64 {
                for r in 0..3 {
                    let v = if (e + r as u64).is_multiple_of(4) { f32::NAN } else { (e * 10 + r as u64) as f32 };
                    h.set(r, &[v, 1.0]);
                }
                for r in 0..3 {
                    for first in 0..len + 2 {
                        for stride in 1..len + 3 {
                            for count in 0..5 {
                                for max_lag in [0, 3, len, usize::MAX] {
                                    let mut got = Vec::new();
                                    h.each_value_as_of(r, first, stride, count, max_lag, h.evals, |v| got.push(v));
                                    let want: Vec<f64> = (0..count)
                                        .map(|k| first + k * stride)
                                        .filter(|&lag| lag <= max_lag)
                                        .filter_map(|lag| h.value(r, lag))
                                        .collect();
                                    assert_eq!(
                                        got, want,
                                        "len {len} eval {e} region {r} {first}+{stride}k x{count} <= {max_lag}"
                                    );
                                }
                            }
                        }
                    }
                }
                h.advance();
            }
        }
    }

    #[test]
    fn a_resized_ring_keeps_the_newest_entries_at_the_same_lags() {
        let mut h = History::new(2, 5, 1);
        for i in 0..12 {
            h.set(0, &[i as f32]);
            h.set(1, &[100.0 + i as f32]);
            h.advance();
        }
        for len in [3, 5, 9] {
            let r = h.reshaped(len, 1);
            assert_eq!(r.evals, h.evals);
            for lag in 1..len.min(5) {
                assert_eq!(r.value(0, lag), h.value(0, lag), "len {len} lag {lag}");
                assert_eq!(r.value(1, lag), h.value(1, lag), "len {len} lag {lag}");
            }
            // Beyond what the old ring held: unknown.
            if len > 5 {
                assert_eq!(r.value(0, 6), None);
            }
        }
    }

    #[test]
    fn a_widened_ring_keeps_each_entrys_floats_and_adds_unknowns() {
        let mut h = History::new(2, 4, 1);
        for i in 0..6 {
            h.set(0, &[i as f32]);
            h.set(1, &[10.0 + i as f32]);
            h.advance();
        }
        let mut w = h.reshaped(6, 2);
        for lag in 1..4 {
            assert_eq!(w.value(1, lag), h.value(1, lag), "lag {lag}");
            assert_eq!(w.value_at(1, lag, 1), None, "lag {lag}");
        }
        w.set(0, &[7.0]);
        w.set_at(0, 1, 3.0);
        w.advance();
        assert_eq!((w.value(0, 1), w.value_at(0, 1, 1)), (Some(7.0), Some(3.0)));
        // And back: the added float is dropped, the rest kept.
        let n = w.reshaped(6, 1);
        assert_eq!((n.width, n.value(0, 1), n.value(0, 2)), (1, Some(7.0), Some(5.0)));
    }

    #[test]
    fn a_selection_keeps_each_chosen_regions_entries() {
        let mut h = History::new(3, 4, 2);
        for i in 0..6 {
            for r in 0..3 {
                h.set(r, &[(10 * r + i) as f32, r as f32]);
            }
            h.advance();
        }
        let s = h.select(&[Some(2), None, Some(0)]);
        assert_eq!(s.evals, h.evals);
        for lag in 1..4 {
            assert_eq!(s.get(0, lag), h.get(2, lag), "lag {lag}");
            assert_eq!(s.get(2, lag), h.get(0, lag), "lag {lag}");
            assert_eq!(s.value(1, lag), None, "lag {lag}");
        }
    }
}
