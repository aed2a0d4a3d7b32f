//! Quiet series: telling when scoring a series again cannot change its result, so that the
//! evaluation can keep the previous one. A grid cell whose rare-event count has not moved for
//! the lags its baseline reads is the common case: scored again, it would give what it gave an
//! hour ago.
//!
//! The score of a series is a pure function of the indicator, the window value and its support,
//! the entries of the history ring at the lags its method reads ([`normalise::reads`]), how far
//! the ring has filled, and the detector state ([`crate::normalise::score`]). Each evaluation
//! notes whether its entry differs from the one before (one bit per ring slot); the inputs of
//! an evaluation equal those of the one before when its own value and support are unchanged and
//! none of the entries it reads is a change from its predecessor (entry `e − l` equals entry
//! `e − 1 − l` for every lag `l` read). Once the ring has filled past the window's span, the
//! fill no longer changes what any view of it returns. Recursive detectors (EWMA, CUSUM) move
//! their state even on a constant series, so they are always scored.

use vigil_rules::Indicator;

use crate::normalise;

/// Whether an evaluation's score stands ([`Quiet::unchanged`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stands {
    /// Something the score reads changed: score it.
    No,
    /// The previous evaluation's score stands.
    Yes,
    /// It stands, and the value and support have not changed for a whole ring: every entry of
    /// the ring is the same (what [`Quiet::sleep`] needs).
    Constant,
}

/// Per region of one indicator: the last window value and support, for how many evaluations
/// in a row they have not changed, and which of the ring's entries changed from the one before.
#[derive(Clone, Debug)]
pub struct Quiet {
    last: Vec<Option<(Option<u64>, u64)>>,
    run: Vec<u32>,
    /// The length of the history ring: evaluations in a row the value must repeat for the whole
    /// ring to hold it.
    need: u32,
    /// Evaluations of history from which its fill no longer changes any view of it.
    settled: u64,
    /// Evaluations of history from which the fill changes the score only by bringing the lags
    /// it reads into view, one a evaluation ([`normalise::fill_settled`]).
    fill: u64,
    /// The window's span in evaluations: lag `l` is in view once `evals + 1 ≥ l + span`.
    span: u64,
    /// The lags the score reads besides its own entry, `(first, stride, count)` runs.
    reads: Vec<(usize, usize, usize)>,
    /// Per region, `words` words of one bit per ring slot: set when the entry written there
    /// differed from the one before it, or is not known to have been the same (all set at
    /// first: the ring may hold entries from before a restore or a reload).
    changed: Vec<u64>,
    words: usize,
    /// Per region: dormant, kept without being looked at (see [`Quiet::sleep`]).
    dormant: Vec<bool>,
}

impl Quiet {
    /// Tracking for `regions` series of `ind` with a history ring of `ring_len` entries; `None`
    /// for the recursive detectors, which are scored at every evaluation.
    pub fn new(ind: &Indicator, ring_len: usize, regions: usize) -> Option<Quiet> {
        let reads = normalise::reads(ind)?;
        let ring_len = ring_len.clamp(1, u32::MAX as usize);
        let words = ring_len.div_ceil(64);
        Some(Quiet {
            last: vec![None; regions],
            run: vec![0; regions],
            need: ring_len as u32,
            settled: (ring_len + normalise::span(ind)) as u64,
            fill: normalise::fill_settled(ind) as u64,
            span: normalise::span(ind) as u64,
            reads,
            changed: vec![u64::MAX; regions * words],
            words,
            dormant: vec![false; regions],
        })
    }

    /// Marks `region` dormant. Only for a series whose last [`Quiet::unchanged`] was
    /// [`Stands::Constant`] and none of whose window's bins can hold an event: its value then
    /// cannot change before an event is counted for it, and its history ring already holds that
    /// value's entry in every slot. A dormant series is skipped outright (no window read, no
    /// history write, no score) until [`Quiet::wake`]: what makes the cost of a city of mostly
    /// empty grid cells follow its events rather than its cells.
    #[inline]
    pub fn sleep(&mut self, region: usize) {
        self.dormant[region] = true;
    }

    /// An event was counted for `region`'s series: it is evaluated again.
    #[inline]
    pub fn wake(&mut self, region: usize) {
        self.dormant[region] = false;
    }

    #[inline]
    pub fn is_dormant(&self, region: usize) -> bool {
        self.dormant[region]
    }

    #[inline]
    fn bit(&self, region: usize, slot: usize) -> bool {
        self.changed[region * self.words + slot / 64] >> (slot % 64) & 1 == 1
    }

    /// Notes the value and support of `region` at the evaluation whose history count (before it
    /// advances) is `evals`, and says whether the previous evaluation's score stands: the
    /// value, the support and every ring entry the score reads are what they were then, and the
    /// ring had already settled. A dormant series' skipped evaluations are constant ones: its
    /// ring and bits are as they were when it fell asleep.
    #[inline]
    pub fn unchanged(&mut self, region: usize, value: Option<f64>, support: u64, evals: u64) -> Stands {
        let key = Some((value.map(f64::to_bits), support));
        let same = self.last[region] == key;
        let run = if same { self.run[region].saturating_add(1) } else { 0 };
        self.last[region] = key;
        self.run[region] = run;
        let len = self.need as usize;
        let slot = (evals % len as u64) as usize;
        let word = &mut self.changed[region * self.words + slot / 64];
        if same {
            *word &= !(1u64 << (slot % 64));
        } else {
            *word |= 1u64 << (slot % 64);
        }
        if !same || evals < self.fill {
            return Stands::No;
        }
        let full = evals >= self.settled;
        if run >= self.need && full {
            return Stands::Constant;
        }
        // The lags in view now: up to `evals + 1 − span` (≥ 1 here) and the ring's end. While
        // the ring fills, the lag just come into view changes the score if it is read; the
        // others in view are the same entries as an evaluation ago unless they changed.
        let newest_in_view = evals + 1 - self.span;
        let mut top = len - 1;
        if !full && newest_in_view < len as u64 {
            let m = newest_in_view as usize;
            if self.reads.iter().any(|&(first, stride, count)| {
                m >= first && (m - first).is_multiple_of(stride.max(1)) && (m - first) / stride.max(1) < count
            }) {
                return Stands::No;
            }
            top = m - 1;
        }
        for &(first, stride, count) in &self.reads {
            if first > top || count == 0 {
                continue;
            }
            let n = ((top - first) / stride.max(1) + 1).min(count);
            let step = stride % len;
            let mut s = ((evals - first as u64) % len as u64) as usize;
            for _ in 0..n {
                if self.bit(region, s) {
                    return Stands::No;
                }
                s = if s >= step { s - step } else { s + len - step };
            }
        }
        Stands::Yes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;
    use crate::normalise::{DetectorState, history_entry, history_needs, score};
    use vigil_rules::testing as mini;

    /// Along series that fall quiet for long stretches, or see an event now and then, whenever
    /// [`Quiet`] says the previous score stands, scoring again gives exactly the previous result;
    /// for every method some evaluations are kept, most of them without a constant ring.
    #[test]
    fn a_quiet_series_scores_what_it_scored_before() {
        let mini = vigil_rules::compile(&mini::files_with(&[])).unwrap();
        let every = crate::normalise::tests::every_method();
        let mut next = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15u64);
        for ind in mini.indicators.iter().chain(&every.indicators) {
            for sparse in [false, true] {
                let needs = history_needs(ind);
                let mut hist = History::new(1, needs.len, needs.width);
                let Some(mut quiet) = Quiet::new(ind, needs.len, 1) else { continue };
                let (mut det, mut scratch) = (DetectorState::None, Vec::new());
                let mut prev = None;
                let (mut kept, mut inputs_kept, mut held) = (0, 0, 0.0);
                for t in 0..4000u64 {
                    // Quiet from the start (while the ring fills) for 700 evaluations, then busy
                    // for 300, over and over; or a window value that moves one evaluation in 200.
                    let value = if sparse {
                        if t == 0 || next().is_multiple_of(200) {
                            held = (next() % 3) as f64;
                        }
                        held
                    } else if t % 1000 >= 700 {
                        ((t * 7919) % 5) as f64
                    } else {
                        0.0
                    };
                    let value =
                        if matches!(ind.measure, vigil_rules::Measure::Share { .. }) { value / 2.0 } else { value };
                    let support =
                        if matches!(ind.measure, vigil_rules::Measure::Share { .. }) { 2 } else { value as u64 };
                    hist.set(0, &history_entry(Some(value), support));
                    let stands = quiet.unchanged(0, Some(value), support, hist.evals);
                    let s = score(ind, &hist, 0, Some(value), support, &mut det, &mut scratch);
                    if stands != Stands::No {
                        assert_eq!(Some(s), prev, "{} at {t} ({stands:?})", ind.id);
                        kept += 1;
                        inputs_kept += (stands == Stands::Yes) as u32;
                    }
                    prev = Some(s);
                    hist.advance();
                }
                assert!(kept > 0, "{}: never quiet", ind.id);
                if sparse && ind.window.0 < vigil_model::time::DAY * 7 {
                    assert!(inputs_kept > 0, "{}: kept only with a constant ring", ind.id);
                }
            }
        }
    }
}
