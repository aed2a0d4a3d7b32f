//! Running windows: each region's window as of the latest evaluation, slid forward by the bins
//! that entered and left it. Reading a 24-hour window every hour then costs the two bins that
//! changed, not the 24 it spans, for every region; the result is exactly what reading the
//! window's bins one by one gives ([`crate::measure::extract`]), which the property tests of
//! this crate (`tests/props.rs`) and of `vigil-core` check.
//!
//! - Counts and attribute sums subtract: the bins leaving are taken out, those entering added
//!   (no bin holds more than a window of them can add up, see
//!   [`crate::measure::would_overflow`]), and a late event into the window is added as it comes.
//! - `keys_spread`'s sets (OR-merged) are kept with how many of the window's bins hold each of
//!   their bits, so that a bin leaving clears exactly the bits no other bin holds ([`Spread`]).
//! - Coelevation's elevated hours are one flag per hour, set as the hour enters (judged against
//!   the same hour of the 7 days before) and taken out as it leaves ([`Hours`]).
//! - Maxima and distinct bins take in the bins entering; a region with events in a bin leaving
//!   is read whole ([`Merged`]). Most regions at most hops have none.
//!
//! Where a late event changes what cannot be slid (a bit that another bin may hold, an hour's
//! flag or those of the hours a day to a week after it, a maximum), that region's window is read
//! whole at its next evaluation. The windows are derived state, rebuilt from the bins whenever
//! they cannot be trusted: before the first evaluation, after a restore or a reload (a new
//! [`Running`]), when evaluations skip more than a window, and when an event lands so far ahead
//! that its bin may have reclaimed the ring slot of a bin still inside the window.

use vigil_rules::{Indicator, Measure};

use crate::bins::Bins;
use crate::measure::{Layout, Leg, WindowValue, coelevated_at, merge_bin, update, value_of};
use vigil_rules::filter::EvalCtx;

/// How one evaluation reads its windows (see [`Running::begin`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Add up every bin of the window.
    Full,
    /// Slide from the window the sums hold, `(first, last)` bins, with the ring slots of the
    /// first bin entering (`last + 1`) and of the first leaving (`first`): the same for every
    /// region, so found once per evaluation.
    Slide { first: i64, last: i64, enter_slot: usize, leave_slot: usize },
}

/// One indicator's running windows over every region.
#[derive(Clone, Debug)]
pub struct Running {
    lanes: usize,
    ring: i64,
    window_bins: i64,
    /// The bins `(first, last)` the windows cover; `None` until the first full read.
    span: Option<(i64, i64)>,
    /// Per region, the window's lanes: summed, or (sets) OR-merged but for the count.
    acc: Vec<i64>,
    kind: Kind,
    /// Per region, whether a late event changed what its window cannot slide by (empty for
    /// sums, which take late events in as they come): read whole at its next evaluation.
    dirty: Vec<bool>,
}

/// What a measure keeps besides its lanes.
#[derive(Clone, Debug)]
enum Kind {
    Sums,
    Spread(Spread),
    Hours(Hours),
    Merged(Merged),
}

/// `keys_spread` (each key's set of the values seen with it, one bit a value, OR-merged over
/// the window's bins): per region, how many of the window's bins hold each (key, value), so
/// that a bin leaving clears exactly the bits no other bin of the window holds.
#[derive(Clone, Debug)]
struct Spread {
    keys: usize,
    values: usize,
    counts: Vec<u32>,
}

impl Spread {
    /// Adds (`+1`) or takes out (`-1`) bin `s` of `region` from its sets `acc`.
    #[inline]
    fn step(&mut self, region: usize, acc: &mut [i64], s: &[i64], sign: i64) {
        acc[0] += sign * s[0];
        for k in 0..self.keys {
            let mut bits = s[1 + k] as u64;
            let base = (region * self.keys + k) * self.values;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(c) = self.counts.get_mut(base + b) else { continue };
                if sign > 0 {
                    *c += 1;
                    acc[1 + k] |= 1 << b;
                } else {
                    *c -= 1;
                    if *c == 0 {
                        acc[1 + k] &= !(1 << b);
                    }
                }
            }
        }
    }

    fn clear(&mut self, region: usize) {
        let n = self.keys * self.values;
        self.counts[region * n..(region + 1) * n].fill(0);
    }
}

/// Maxima and distinct bins: per region, the window's largest bin count and its bins with
/// events. Bins entering are merged in; a region with events in a bin leaving is read whole.
#[derive(Clone, Debug)]
struct Merged {
    max_bin: Vec<i64>,
    nonzero: Vec<u64>,
}

/// Coelevation: per region, which ring slots hold an hour of the window that is elevated on
/// both legs (one bit per slot; every other bit clear), and their count.
#[derive(Clone, Debug)]
struct Hours {
    alpha: f64,
    /// The bins before the window an hour is judged against (7 days).
    lookback: i64,
    words: usize,
    flags: Vec<u64>,
    count: Vec<u32>,
}

impl Hours {
    /// Re-reads the flags of `region`'s window `first..=last`, clearing every other.
    fn full(&mut self, bins: &Bins, region: usize, first: i64, last: i64) {
        let base = region * self.words;
        self.flags[base..base + self.words].fill(0);
        self.count[region] = 0;
        self.enter(bins, region, first, last, bins.slot_of(first));
    }

    /// Adds the flags of the hours `from..=to` (the first at ring slot `slot`).
    fn enter(&mut self, bins: &Bins, region: usize, from: i64, to: i64, mut slot: usize) {
        let to = to.min(bins.newest(region));
        for b in from..=to {
            if coelevated_at(bins, region, b, slot, self.alpha) {
                self.flags[region * self.words + slot / 64] |= 1 << (slot % 64);
                self.count[region] += 1;
            }
            slot += 1;
            if slot == bins.ring {
                slot = 0;
            }
        }
    }

    /// Takes out the flags of the hours `from..=to` (the first at ring slot `slot`).
    fn leave(&mut self, ring: usize, region: usize, from: i64, to: i64, mut slot: usize) {
        for _ in from..=to {
            let word = &mut self.flags[region * self.words + slot / 64];
            let bit = 1u64 << (slot % 64);
            if *word & bit != 0 {
                *word &= !bit;
                self.count[region] -= 1;
            }
            slot += 1;
            if slot == ring {
                slot = 0;
            }
        }
    }
}

/// Adds up the lanes of `bins` `from..=to` of `region` (the first at ring slot `slot`) into
/// `acc`, or takes them out (`sign` −1).
#[inline]
fn add(bins: &Bins, region: usize, from: i64, to: i64, slot: usize, acc: &mut [i64], sign: i64) {
    bins.each_in_from(region, from, to, slot, |s| {
        for (a, v) in acc.iter_mut().zip(s) {
            *a += sign * v;
        }
    });
}

impl Running {
    /// Running windows for `regions` regions of an indicator laid out as `layout`.
    pub fn new(ind: &Indicator, layout: &Layout, regions: usize) -> Running {
        let kind = match ind.measure {
            Measure::KeysSpread { .. } => Kind::Spread(Spread {
                keys: layout.keys,
                values: layout.spread_values,
                counts: vec![0; regions * layout.keys * layout.spread_values],
            }),
            Measure::Coelevation { alpha } => {
                let words = layout.ring.div_ceil(64);
                Kind::Hours(Hours {
                    alpha,
                    lookback: layout.lookback_bins,
                    words,
                    flags: vec![0; regions * words],
                    count: vec![0; regions],
                })
            }
            Measure::MaxBin | Measure::DistinctDays => {
                Kind::Merged(Merged { max_bin: vec![0; regions], nonzero: vec![0; regions] })
            }
            _ => Kind::Sums,
        };
        Running {
            lanes: layout.lanes,
            ring: layout.ring as i64,
            window_bins: layout.window_bins,
            span: None,
            acc: vec![0; regions * layout.lanes],
            dirty: match kind {
                Kind::Sums => Vec::new(),
                _ => vec![false; regions],
            },
            kind,
        }
    }

    /// Forgets the windows: the next evaluation reads them whole.
    pub fn invalidate(&mut self) {
        self.span = None;
    }

    /// Applies an event that was just counted into `bin` of `region`, when the bin lies inside
    /// the window held (or, for coelevation, the 7 days before it). A bin a ring or more past
    /// the window's first may have reclaimed the slot of one inside it: every window is read
    /// whole then.
    #[inline]
    pub fn apply(&mut self, ind: &Indicator, layout: &Layout, leg: Leg, cx: &EvalCtx<'_>, region: usize, bin: i64) {
        let Some((first, last)) = self.span else { return };
        if bin >= first + self.ring {
            self.span = None;
            return;
        }
        // A late event changes its hour's flag and those of the hours a day to 7 days after it.
        let from = match &self.kind {
            Kind::Hours(h) => first - h.lookback,
            _ => first,
        };
        if bin < from || bin > last {
            return;
        }
        match self.kind {
            Kind::Sums => {
                let at = region * self.lanes;
                update(ind, layout, leg, cx, &mut self.acc[at..at + self.lanes]);
            }
            _ => self.dirty[region] = true,
        }
    }

    /// How the evaluation of the window `(first, last)` of `bins` reads it.
    pub fn begin(&self, bins: &Bins, first: i64, last: i64) -> Mode {
        match self.span {
            // Windows only move forward; a jump of a window or more is cheaper read whole.
            Some((f, l)) if f <= first && l <= last && first - f < self.window_bins && last - l < self.window_bins => {
                Mode::Slide { first: f, last: l, enter_slot: bins.slot_of(l + 1), leave_slot: bins.slot_of(f) }
            }
            _ => Mode::Full,
        }
    }

    /// Brings `region`'s window to `(first, last)`, read as `mode` says (see [`Running::value`]).
    #[inline]
    pub fn read(&mut self, bins: &Bins, region: usize, mode: Mode, first: i64, last: i64) {
        let at = region * self.lanes;
        let acc = &mut self.acc[at..at + self.lanes];
        let mut mode = mode;
        if let Some(d) = self.dirty.get_mut(region) {
            if *d {
                mode = Mode::Full;
            }
            *d = false;
        }
        // A maximum or a count of bins with events does not subtract: a region with events
        // in a bin leaving is read whole.
        if let (Kind::Merged(_), Mode::Slide { first: f, leave_slot, .. }) = (&self.kind, mode) {
            let mut leaves = false;
            bins.each_in_from(region, f, first - 1, leave_slot, |_| leaves = true);
            if leaves {
                mode = Mode::Full;
            }
        }
        match (&mut self.kind, mode) {
            (Kind::Spread(sp), Mode::Full) => {
                acc.fill(0);
                sp.clear(region);
                bins.each_in(region, first, last, |s| sp.step(region, acc, s, 1));
            }
            (Kind::Spread(sp), Mode::Slide { first: f, last: l, enter_slot, leave_slot }) => {
                bins.each_in_from(region, f, first - 1, leave_slot, |s| sp.step(region, acc, s, -1));
                bins.each_in_from(region, l + 1, last, enter_slot, |s| sp.step(region, acc, s, 1));
            }
            (Kind::Merged(m), mode) => {
                let (max_bin, nonzero) = (&mut m.max_bin[region], &mut m.nonzero[region]);
                let (from, slot) = match mode {
                    Mode::Full => {
                        acc.fill(0);
                        (*max_bin, *nonzero) = (0, 0);
                        (first, bins.slot_of(first))
                    }
                    Mode::Slide { last: l, enter_slot, .. } => (l + 1, enter_slot),
                };
                bins.each_in_from(region, from, last, slot, |s| merge_bin(false, acc, max_bin, nonzero, s));
            }
            (kind, Mode::Full) => {
                if let Kind::Hours(h) = kind {
                    h.full(bins, region, first, last);
                }
                acc.fill(0);
                add(bins, region, first, last, bins.slot_of(first), acc, 1);
            }
            // The bins that left first: the sums then hold part of the old window and, once
            // the entering bins are added, the new one, never more than a window of bins.
            (kind, Mode::Slide { first: f, last: l, enter_slot, leave_slot }) => {
                if let Kind::Hours(h) = kind {
                    h.leave(bins.ring, region, f, first - 1, leave_slot);
                    h.enter(bins, region, l + 1, last, enter_slot);
                }
                add(bins, region, f, first - 1, leave_slot, acc, -1);
                add(bins, region, l + 1, last, enter_slot, acc, 1);
            }
        }
    }

    /// `region`'s window value as [`Running::read`] left it.
    #[inline]
    pub fn value(&self, ind: &Indicator, layout: &Layout, bins: &Bins, region: usize, end: i64) -> WindowValue {
        let acc = &self.acc[region * self.lanes..(region + 1) * self.lanes];
        match &self.kind {
            Kind::Hours(h) => WindowValue { value: Some(h.count[region] as f64), support: acc[0].max(0) as u64 },
            Kind::Merged(m) => value_of(ind, layout, bins, region, end, acc, m.max_bin[region], m.nonzero[region]),
            _ => value_of(ind, layout, bins, region, end, acc, 0, 0),
        }
    }

    /// Records that every region's windows now cover `(first, last)`.
    pub fn end(&mut self, first: i64, last: i64) {
        self.span = Some((first, last));
    }
}
