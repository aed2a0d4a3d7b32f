//! Running window sums: for measures whose lanes add up (counts, and attribute sums), the lanes
//! of each region's window as of the latest evaluation, slid forward by the bins that entered
//! and left it. Reading a 24-hour window every hour then costs the two bins that changed, not
//! the 24 it spans, for every region; the sums are exactly what adding up the window's bins
//! gives (no bin holds more than a window of them can add up, see
//! [`crate::measure::would_overflow`]), which the property test of `vigil-core` checks against
//! full evaluation.
//!
//! The sums are derived state, rebuilt from the bins whenever they cannot be trusted: before the
//! first evaluation, after a restore or a reload (a new [`Running`]), when evaluations skip more
//! than a window, and when an event lands so far ahead that its bin may have reclaimed the ring
//! slot of a bin still inside the window.

use vigil_rules::{Indicator, Measure};

use crate::bins::Bins;
use crate::measure::{Layout, Leg, update};
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

/// Per-indicator running sums over every region.
#[derive(Clone, Debug)]
pub struct Running {
    lanes: usize,
    ring: i64,
    window_bins: i64,
    /// The bins `(first, last)` the sums cover; `None` until the first full read.
    span: Option<(i64, i64)>,
    acc: Vec<i64>,
}

impl Running {
    /// Running sums for `regions` regions of an indicator, or `None` when its measure does not
    /// qualify: sets (OR-merged), maxima and distinct-bin counts do not subtract, and
    /// coelevation reads bins outside the window.
    pub fn new(ind: &Indicator, layout: &Layout, regions: usize) -> Option<Running> {
        let sums = matches!(
            ind.measure,
            Measure::Count
                | Measure::Growth { .. }
                | Measure::Share { .. }
                | Measure::Ratio { .. }
                | Measure::Quantile { .. }
                | Measure::KeysAtLeast { .. }
                | Measure::Overlap { .. }
                | Measure::Sum { .. }
                | Measure::Mean { .. }
                | Measure::WeightedShare { .. }
        );
        (sums && !layout.or_merge && layout.lookback_bins == 0).then(|| Running {
            lanes: layout.lanes,
            ring: layout.ring as i64,
            window_bins: layout.window_bins,
            span: None,
            acc: vec![0; regions * layout.lanes],
        })
    }

    /// Forgets the sums: the next evaluation adds up whole windows.
    pub fn invalidate(&mut self) {
        self.span = None;
    }

    /// Applies an event that was just counted into `bin` of `region` to the sums as well, when
    /// the bin lies inside the window they hold. A bin a ring or more past the window's first
    /// may have reclaimed the slot of one inside it: the sums are rebuilt then.
    #[inline]
    pub fn apply(&mut self, ind: &Indicator, layout: &Layout, leg: Leg, cx: &EvalCtx<'_>, region: usize, bin: i64) {
        let Some((first, last)) = self.span else { return };
        if bin >= first + self.ring {
            self.span = None;
        } else if bin >= first && bin <= last {
            let at = region * self.lanes;
            update(ind, layout, leg, cx, &mut self.acc[at..at + self.lanes]);
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

    /// The lanes of `region`'s window `(first, last)`, read as `mode` says.
    #[inline]
    pub fn read(&mut self, bins: &Bins, region: usize, mode: Mode, first: i64, last: i64) -> &[i64] {
        let at = region * self.lanes;
        let acc = &mut self.acc[at..at + self.lanes];
        match mode {
            Mode::Full => {
                acc.fill(0);
                bins.each_in(region, first, last, |s| {
                    for (a, v) in acc.iter_mut().zip(s) {
                        *a += v;
                    }
                });
            }
            // The bins that left first: the sums then hold part of the old window and, once
            // the entering bins are added, the new one, never more than a window of bins.
            Mode::Slide { first: f, last: l, enter_slot, leave_slot } => {
                bins.each_in_from(region, f, first - 1, leave_slot, |s| {
                    for (a, v) in acc.iter_mut().zip(s) {
                        *a -= v;
                    }
                });
                bins.each_in_from(region, l + 1, last, enter_slot, |s| {
                    for (a, v) in acc.iter_mut().zip(s) {
                        *a += v;
                    }
                });
            }
        }
        acc
    }

    /// Records that every region's sums now cover `(first, last)`.
    pub fn end(&mut self, first: i64, last: i64) {
        self.span = Some((first, last));
    }
}
