//! Quiet series: telling when scoring a series again cannot change its result, so that the
//! evaluation can keep the previous one, and when a series need not even be looked at until a
//! known evaluation or its next event.
//!
//! The score of a series is a pure function of the indicator, the window value and its support,
//! the entries of the history ring at the lags its method reads ([`normalise::reads`]), how far
//! the ring has filled, and the detector state ([`crate::normalise::score`]). Each evaluation
//! notes whether its entry differs from the one before (one bit per ring slot); the inputs of
//! an evaluation equal those of the one before when its own value and support are unchanged and
//! none of the entries it reads is a change from its predecessor (entry `e − l` equals entry
//! `e − 1 − l` for every lag `l` read), and the lag that has just come into view (while the ring
//! fills) is not one it reads. Recursive detectors (EWMA, CUSUM) move their state even on a
//! constant series, so they are always scored.
//!
//! A kept series whose window holds no event **sleeps**: its value cannot change before an event
//! is counted for it, and the evaluation at which a changed entry (or a lag coming into view)
//! next reaches a lag it reads is known from the bits. Until then, or until an event wakes it,
//! each evaluation only writes its (unchanged) history entry: what makes the cost of a city of
//! mostly empty grid cells follow its events rather than its cells × hours.

use vigil_rules::Indicator;

use crate::history::lag_slots;
use crate::normalise;

/// Most changed entries in a ring for which a series is put to sleep (see [`Quiet::sleep`]).
const MAX_CHANGES_TO_SLEEP: u32 = 32;

/// Per region of one indicator: the last window value and support, which of the ring's entries
/// changed from the one before, and whether (and till when) the series sleeps.
#[derive(Clone, Debug)]
pub struct Quiet {
    last: Vec<Option<(Option<u64>, u64)>>,
    /// The length of the history ring.
    len: usize,
    /// Evaluations of history from which its fill no longer changes any view of it.
    settled: u64,
    /// Evaluations of history from which the fill changes the score only by bringing the lags
    /// it reads into view, one an evaluation ([`normalise::fill_settled`]).
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
    /// Per region: the evaluation it fell asleep at (`u64::MAX`: awake) and the one it wakes at.
    since: Vec<u64>,
    wake_at: Vec<u64>,
    /// No series sleeps before this evaluation: till then a lag it reads can reach an entry
    /// from before a restore or a reload, whose change is unknown.
    known_after: u64,
}

impl Quiet {
    /// Tracking for `regions` series of `ind` with a history ring of `ring_len` entries that
    /// has seen `evals` evaluations; `None` for the recursive detectors, which are scored at
    /// every evaluation. A ring that has seen none holds no entry yet: nothing before the first
    /// evaluation can change (lags before it are never in view), so its bits start clear;
    /// otherwise (a restore, a reload) every entry is of unknown change.
    pub fn new(ind: &Indicator, ring_len: usize, regions: usize, evals: u64) -> Option<Quiet> {
        let reads = normalise::reads(ind)?;
        let len = ring_len.max(1);
        let words = len.div_ceil(64);
        let reach = reads
            .iter()
            .filter(|r| r.2 > 0)
            .map(|&(first, stride, count)| (first + (count - 1) * stride.max(1)).min(len - 1))
            .max()
            .unwrap_or(0) as u64;
        Some(Quiet {
            last: vec![None; regions],
            len,
            settled: (len + normalise::span(ind)) as u64,
            fill: normalise::fill_settled(ind) as u64,
            span: normalise::span(ind) as u64,
            reads,
            changed: (0..regions * words)
                .map(|i| match (i % words + 1) * 64 {
                    _ if evals == 0 => 0,
                    // The last word's bits past the ring's end stay clear.
                    end if end > len => u64::MAX >> (end - len),
                    _ => u64::MAX,
                })
                .collect(),
            words,
            since: vec![u64::MAX; regions],
            wake_at: vec![0; regions],
            known_after: if evals == 0 { 0 } else { evals + reach },
        })
    }

    #[inline]
    fn slot(&self, evals: u64) -> usize {
        (evals % self.len as u64) as usize
    }

    #[inline]
    fn bit(&self, region: usize, slot: usize) -> bool {
        self.changed[region * self.words + slot / 64] >> (slot % 64) & 1 == 1
    }

    #[inline]
    fn set_bit(&mut self, region: usize, slot: usize, on: bool) {
        let word = &mut self.changed[region * self.words + slot / 64];
        if on {
            *word |= 1u64 << (slot % 64);
        } else {
            *word &= !(1u64 << (slot % 64));
        }
    }

    /// The smallest lag read that is at least `from` (and inside the ring).
    fn next_read(&self, from: u64) -> Option<u64> {
        let mut best: Option<u64> = None;
        for &(first, stride, count) in &self.reads {
            let (first, stride) = (first as u64, stride.max(1) as u64);
            let k = from.saturating_sub(first).div_ceil(stride);
            if k < count as u64 {
                let l = first + k * stride;
                if l < self.len as u64 {
                    best = Some(best.map_or(l, |b| b.min(l)));
                }
            }
        }
        best
    }

    /// Notes the value and support of `region` at the evaluation whose history count (before it
    /// advances) is `evals`, and says whether the previous evaluation's score stands: the
    /// value, the support and every ring entry the score reads are what they were then, and no
    /// lag it reads has just come into view.
    #[inline]
    pub fn unchanged(&mut self, region: usize, value: Option<f64>, support: u64, evals: u64) -> bool {
        let same = self.note(region, value, support, evals);
        let len = self.len;
        if !same || evals < self.fill {
            return false;
        }
        // The lags in view now: up to `evals + 1 − span` (≥ 1 here) and the ring's end. While
        // the ring fills, the lag just come into view changes the score if it is read; the
        // others in view are the same entries as an evaluation ago unless they changed.
        let newest_in_view = evals + 1 - self.span;
        let mut top = len - 1;
        if evals < self.settled && newest_in_view < len as u64 {
            if self.next_read(newest_in_view) == Some(newest_in_view) {
                return false;
            }
            top = newest_in_view as usize - 1;
        }
        !self.reads.iter().any(|&(first, stride, count)| {
            lag_slots(evals, len, first, stride, count, top).any(|s| self.bit(region, s))
        })
    }

    /// Notes the value and support of `region` at the evaluation whose history count is
    /// `evals`, and whether its entry changed. True when they are the previous evaluation's.
    #[inline]
    fn note(&mut self, region: usize, value: Option<f64>, support: u64, evals: u64) -> bool {
        let key = Some((value.map(f64::to_bits), support));
        let same = self.last[region] == key;
        self.last[region] = key;
        self.set_bit(region, self.slot(evals), !same);
        same
    }

    /// Notes the value and support of `region` for a series whose score is computed only when
    /// read and which only ever sleeps until woken ([`Quiet::sleep_until_woken`]): nothing asks
    /// whether its entries changed, so no bit is kept (the bits lie a ring apart per region,
    /// and writing them was a cache miss per series and hop in a city of grid cells).
    #[inline]
    pub fn remember(&mut self, region: usize, value: Option<f64>, support: u64) {
        self.last[region] = Some((value.map(f64::to_bits), support));
    }

    /// Puts `region` to sleep after an evaluation (history count `evals`) whose window holds no
    /// event, until an event wakes it ([`Quiet::wake`]), whatever entries its score reads
    /// change meanwhile: for a series whose score is computed only when read, as of its latest
    /// evaluation, so that nothing but its value (which no evaluation can change before an
    /// event) need be known at each.
    #[inline]
    pub fn sleep_until_woken(&mut self, region: usize, evals: u64) {
        self.since[region] = evals;
        self.wake_at[region] = u64::MAX;
    }

    /// Puts `region` to sleep after an evaluation (history count `evals`) whose result stood and
    /// whose window holds no event: its value cannot change before an event wakes it
    /// ([`Quiet::wake`]), and its inputs not before the first evaluation at which a changed
    /// entry, or a lag coming into view, reaches a lag its score reads.
    pub fn sleep(&mut self, region: usize, evals: u64) {
        // A lag the next evaluation reads still reaches an entry of unknown change: it would
        // wake at once.
        if evals < self.known_after {
            return;
        }
        let len = self.len as u64;
        let now = self.slot(evals) as u64;
        let words = &self.changed[region * self.words..(region + 1) * self.words];
        // A series with many recent changes would soon be woken by one of them: finding out
        // when costs more than sleeping saves.
        if words.iter().map(|w| w.count_ones()).sum::<u32>() > MAX_CHANGES_TO_SLEEP {
            return;
        }
        let mut wake = u64::MAX;
        for w in 0..self.words {
            let mut bits = self.changed[region * self.words + w];
            while bits != 0 {
                let s = (w * 64) as u64 + bits.trailing_zeros() as u64;
                bits &= bits - 1;
                if s >= len {
                    break;
                }
                // The entry of evaluation `evals − d` changed; evaluation `evals − d + l` reads
                // it at lag `l`.
                let d = (now + len - s) % len;
                if let Some(l) = self.next_read(d + 1) {
                    wake = wake.min(evals + l - d);
                }
            }
        }
        if evals < self.settled {
            // Lag `l` comes into view at evaluation `l + span − 1`.
            if let Some(l) = self.next_read(evals + 2 - self.span) {
                wake = wake.min(l + self.span - 1);
            }
        }
        self.since[region] = evals;
        self.wake_at[region] = wake;
    }

    /// Whether `region` sleeps through the evaluation whose history count is `evals`; when its
    /// time has come, it wakes (see [`Quiet::wake`]) and is evaluated.
    #[inline]
    pub fn asleep(&mut self, region: usize, evals: u64) -> bool {
        if self.since[region] == u64::MAX {
            return false;
        }
        if evals < self.wake_at[region] {
            return true;
        }
        self.wake(region, evals);
        false
    }

    /// Wakes `region` before the evaluation whose history count is `evals` (an event was
    /// counted for it): the entries written while it slept repeat the one it fell asleep on,
    /// so their bits say "unchanged".
    #[inline]
    pub fn wake(&mut self, region: usize, evals: u64) {
        let since = self.since[region];
        if since == u64::MAX {
            return;
        }
        self.since[region] = u64::MAX;
        let n = (evals.saturating_sub(since + 1)).min(self.len as u64) as usize;
        self.clear_slots(region, self.slot(since + 1), n);
    }

    /// Clears the bits of `n` ring slots from `start` on (wrapping), a word at a time.
    fn clear_slots(&mut self, region: usize, start: usize, n: usize) {
        let (len, base) = (self.len, region * self.words);
        let (mut slot, mut left) = (start, n);
        while left > 0 {
            // The run up to the ring's end, or the word's end, whichever comes first.
            let run = left.min(len - slot).min(64 - slot % 64);
            let mask = if run == 64 { u64::MAX } else { ((1u64 << run) - 1) << (slot % 64) };
            self.changed[base + slot / 64] &= !mask;
            left -= run;
            slot += run;
            if slot == len {
                slot = 0;
            }
        }
    }

    /// The window value and support `region` was last evaluated with ([`Quiet::unchanged`]
    /// notes them), `None` before its first evaluation.
    #[inline]
    pub fn last(&self, region: usize) -> Option<(Option<f64>, u64)> {
        self.last[region].map(|(value, support)| (value.map(f64::from_bits), support))
    }

    /// The history entry of `region`'s last value and support (what it writes while asleep).
    #[inline]
    pub fn entry(&self, region: usize) -> [f32; 2] {
        let (value, support) = self.last[region].unwrap_or((None, 0));
        normalise::history_entry(value.map(f64::from_bits), support)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;
    use crate::normalise::{DetectorState, history_entry, history_needs, score};
    use vigil_rules::testing as mini;

    /// Clearing a run of slots a word at a time clears exactly those slots, wrapping at the
    /// ring's end, whatever the ring's length.
    #[test]
    fn a_run_of_slots_is_cleared_and_nothing_else() {
        let every = crate::normalise::tests::every_method();
        let ind = &every.indicators[0];
        for len in [1usize, 5, 63, 64, 65, 130, 193] {
            for start in 0..len {
                for n in [0, 1, 2, 63, 64, 65, len.saturating_sub(1), len] {
                    let n = n.min(len);
                    let mut q = Quiet::new(ind, len, 2, 1).unwrap();
                    q.clear_slots(1, start, n);
                    for r in 0..2 {
                        for slot in 0..len {
                            let cleared = r == 1 && (slot + len - start) % len < n;
                            assert_eq!(q.bit(r, slot), !cleared, "len {len} start {start} n {n} slot {slot}");
                        }
                    }
                }
            }
        }
    }

    /// Along series that fall quiet for long stretches, or move now and then, whenever [`Quiet`]
    /// says the previous score stands, and at every evaluation a series sleeps through, scoring
    /// it gives exactly the previous result; for every method some evaluations are kept, and
    /// sparse series sleep. A series whose value is 0 sleeps (its window is empty); a change of
    /// value is an event, which wakes it first.
    #[test]
    fn a_quiet_series_scores_what_it_scored_before() {
        let mini = vigil_rules::compile(&mini::files_with(&[])).unwrap();
        let every = crate::normalise::tests::every_method();
        let mut next = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15u64);
        for ind in mini.indicators.iter().chain(&every.indicators) {
            for sparse in [false, true] {
                let needs = history_needs(ind);
                let mut hist = History::new(1, needs.len, needs.width);
                let Some(mut quiet) = Quiet::new(ind, needs.len, 1, 0) else { continue };
                let (mut det, mut scratch) = (DetectorState::None, Vec::new());
                let mut prev = None;
                let (mut kept, mut slept, mut held, mut last) = (0, 0, 0.0, None);
                let share = matches!(ind.measure, vigil_rules::Measure::Share { .. });
                for t in 0..4000u64 {
                    // Quiet from the start (while the ring fills) for 700 evaluations, then busy
                    // for 300, over and over; or a window value that moves one evaluation in 200.
                    let value = if sparse {
                        if t == 0 || next().is_multiple_of(200) {
                            held = [0.0, 0.0, 1.0, 2.0][(next() % 4) as usize];
                        }
                        held
                    } else if t % 1000 >= 700 {
                        ((t * 7919) % 5) as f64
                    } else {
                        0.0
                    };
                    let (value, support) = if share { (value / 2.0, 2) } else { (value, value as u64) };
                    if last.is_some_and(|l| l != value) {
                        quiet.wake(0, hist.evals);
                    }
                    last = Some(value);
                    if quiet.asleep(0, hist.evals) {
                        hist.set(0, &quiet.entry(0));
                        let s = score(ind, &hist, 0, Some(value), support, &mut det, &mut scratch);
                        assert_eq!(Some(s), prev, "{} asleep at {t}", ind.id);
                        slept += 1;
                        hist.advance();
                        continue;
                    }
                    hist.set(0, &history_entry(Some(value), support));
                    let stands = quiet.unchanged(0, Some(value), support, hist.evals);
                    let s = score(ind, &hist, 0, Some(value), support, &mut det, &mut scratch);
                    if stands {
                        assert_eq!(Some(s), prev, "{} at {t}", ind.id);
                        kept += 1;
                        if value == 0.0 {
                            quiet.sleep(0, hist.evals);
                        }
                    }
                    prev = Some(s);
                    hist.advance();
                }
                assert!(kept + slept > 0, "{}: never quiet", ind.id);
                if sparse {
                    assert!(slept > 0, "{}: never asleep ({kept} kept awake)", ind.id);
                }
            }
        }
    }
}
