//! Quiet series: telling when scoring a series again cannot change its result, so that the
//! evaluation can keep the previous one. A grid cell whose rare-event count has been zero for
//! longer than its history reaches (its window and its whole baseline empty) is the common case:
//! scored again, it would give what it gave an hour ago.
//!
//! The score of a series is a pure function of the indicator, the window value and its support,
//! the entries of the history ring, how far the ring has filled, and the detector state
//! ([`crate::normalise::score`]). When the value and support have stayed the same for as many
//! evaluations as the ring is long, every entry of the ring is the same as at the previous
//! evaluation; once the ring has filled past the window's span, the fill no longer changes what
//! any view of it returns. Recursive detectors (EWMA, CUSUM) move their state even on a constant
//! series, so they are always scored.

use vigil_rules::{Indicator, Normalise};

use crate::normalise;

/// Per region of one indicator: the last window value and support, and for how many evaluations
/// in a row they have not changed.
#[derive(Clone, Debug)]
pub struct Quiet {
    last: Vec<Option<(Option<u64>, u64)>>,
    run: Vec<u32>,
    /// Evaluations in a row the value must repeat: the length of the history ring.
    need: u32,
    /// Evaluations of history from which its fill no longer changes any view of it.
    settled: u64,
    /// Per region: dormant, kept without being looked at (see [`Quiet::sleep`]).
    dormant: Vec<bool>,
}

impl Quiet {
    /// Tracking for `regions` series of `ind` with a history ring of `ring_len` entries; `None`
    /// for the recursive detectors, which are scored at every evaluation.
    pub fn new(ind: &Indicator, ring_len: usize, regions: usize) -> Option<Quiet> {
        if matches!(ind.normalise, Normalise::Ewma | Normalise::Cusum { .. }) {
            return None;
        }
        Some(Quiet {
            last: vec![None; regions],
            run: vec![0; regions],
            need: ring_len.min(u32::MAX as usize) as u32,
            settled: (ring_len + normalise::span(ind)) as u64,
            dormant: vec![false; regions],
        })
    }

    /// Marks `region` dormant. Only for a series whose last [`Quiet::unchanged`] was true and
    /// none of whose window's bins can hold an event: its value then cannot change before an
    /// event is counted for it, and its history ring already holds that value's entry in every
    /// slot. A dormant series is skipped outright (no window read, no history write, no
    /// score) until [`Quiet::wake`]: what makes the cost of a city of mostly empty grid cells
    /// follow its events rather than its cells.
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

    /// Notes the value and support of `region` at the evaluation whose history count (before it
    /// advances) is `evals`. True when the previous evaluation's score stands: the value, the
    /// support and every ring entry are what they were then, and the ring had already settled.
    #[inline]
    pub fn unchanged(&mut self, region: usize, value: Option<f64>, support: u64, evals: u64) -> bool {
        let key = Some((value.map(f64::to_bits), support));
        let run = if self.last[region] == key { self.run[region].saturating_add(1) } else { 0 };
        self.last[region] = key;
        self.run[region] = run;
        run >= self.need && evals >= self.settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;
    use crate::normalise::{DetectorState, history_entry, history_needs, score};
    use vigil_rules::testing as mini;

    /// Along a series that falls quiet for long stretches, whenever [`Quiet`] says the previous
    /// score stands, scoring again gives exactly the previous result.
    #[test]
    fn a_quiet_series_scores_what_it_scored_before() {
        let rules = vigil_rules::compile(&mini::files_with(&[])).unwrap();
        for ind in &rules.indicators {
            let needs = history_needs(ind);
            let mut hist = History::new(1, needs.len, needs.width);
            let Some(mut quiet) = Quiet::new(ind, needs.len, 1) else { continue };
            let (mut det, mut scratch) = (DetectorState::None, Vec::new());
            let mut prev = None;
            let mut skipped = 0;
            for t in 0..4000u64 {
                // Quiet from the start (while the ring fills) for 700 evaluations, then busy for
                // 300, over and over.
                let value = if t % 1000 >= 700 { ((t * 7919) % 5) as f64 } else { 0.0 };
                let support = value as u64;
                hist.set(0, &history_entry(Some(value), support));
                let stands = quiet.unchanged(0, Some(value), support, hist.evals);
                let s = score(ind, &hist, 0, Some(value), support, &mut det, &mut scratch);
                if stands {
                    assert_eq!(Some(s), prev, "{} at {t}", ind.id);
                    skipped += 1;
                }
                prev = Some(s);
                hist.advance();
            }
            assert!(skipped > 0, "{}: never quiet", ind.id);
        }
    }
}
