//! Scores that nothing reads yet: computed when something does.
//!
//! A scored region whose level neither raises alerts nor publishes score records (a grid cell
//! scored for its indicators' history and its API view, under the default `score_levels`)
//! has its indicator scores read only by the API, by snapshots, by rule reloads and by a
//! restriction. Scoring it at every evaluation computes one score after another that nothing
//! reads before the next replaces it. So such a series is only marked *stale* whenever it is
//! evaluated (and while it sleeps, which it does as soon as its window is empty, until an event
//! wakes it), and scored when read.
//!
//! Most such series do not even need evaluating: a window value reads only the window's bins,
//! so it changes only when a bin with events enters or leaves the window (or the alarm's unit
//! of it), or an event is counted into one. Which regions' bins do is read off the entering and
//! leaving bins' ring slots, where every region's tag lies side by side; the others are passed
//! over, their history entries the previous evaluation's ([`Deferred::pass_over`]). In a city
//! of 10,000 grid cells most cells are passed over at most evaluations.
//!
//! A stale series' score is its score at its indicator's latest evaluation. That evaluation's
//! inputs are all still at hand: its window value and support are the last ones its quiet
//! tracking noted ([`Quiet::last`]; a sleeping series' value is the one it fell asleep with),
//! and [`normalise::score_as_of`] reads the history ring as it was then (one entry back, since
//! the ring has moved on to the next evaluation's slot). So the score read is the score
//! computed on time, bit for bit, however long the series stayed stale; the ring always holds
//! what the latest evaluation read. Only the stateless scoring methods qualify, those with
//! quiet tracking (a recursive detector, EWMA or CUSUM, moves its state at every evaluation).

use vigil_score::quiet::Quiet;

/// Per region of one indicator (one bit each): whether its latest result is stale (not computed
/// as of its latest evaluation), whether it is unread, and whether an event was counted for it
/// since the last evaluation.
#[derive(Clone, Debug)]
pub(crate) struct Deferred {
    stale: Vec<u64>,
    /// The unread regions: the only ones whose results are deferred, or passed over.
    unread: Vec<u64>,
    /// Every region's bit (the last word's bits past the regions clear).
    all: Vec<u64>,
    /// An event was counted for the region since the indicator's last evaluation.
    touched: Vec<u64>,
    /// The evaluation's scratch: its window or unit may have changed.
    changed: Vec<u64>,
}

#[inline]
fn bit(words: &[u64], region: usize) -> bool {
    words[region / 64] >> (region % 64) & 1 == 1
}

impl Deferred {
    /// Deferred results for the regions marked in `unread` (one entry per scored region).
    pub(crate) fn new(unread: &[bool]) -> Deferred {
        let words = unread.len().div_ceil(64);
        let mut bits = vec![0u64; words];
        let mut all = vec![0u64; words];
        for (r, &u) in unread.iter().enumerate() {
            bits[r / 64] |= u64::from(u) << (r % 64);
            all[r / 64] |= 1 << (r % 64);
        }
        Deferred { stale: vec![0; words], unread: bits, all, touched: vec![0; words], changed: vec![0; words] }
    }

    /// Notes that an event was counted for `region` (its window may have changed without a
    /// bin entering or leaving it: a late event).
    #[inline]
    pub(crate) fn touch(&mut self, region: usize) {
        self.touched[region / 64] |= 1 << (region % 64);
    }

    /// Starts an evaluation at which the unread regions whose window (and unit) neither
    /// gained nor lost a bin with events, and had no event counted, keep their value and
    /// history entry: `held` marks, into the bits it is given, the regions with events in the
    /// bins entering or leaving. Those regions are passed over: their results are marked
    /// stale as of this evaluation, as an evaluation would. `visit` is set to the regions
    /// still to evaluate. Returns how many were passed over and, of those, how many were
    /// stale already (a score never computed). The touched bits are spent.
    pub(crate) fn pass_over(&mut self, visit: &mut Vec<u64>, held: impl FnOnce(&mut [u64])) -> (u64, u64) {
        self.changed.copy_from_slice(&self.touched);
        self.touched.fill(0);
        held(&mut self.changed);
        visit.clear();
        let (mut passed, mut stale) = (0, 0);
        for w in 0..self.all.len() {
            let pass = self.unread[w] & !self.changed[w];
            passed += u64::from(pass.count_ones());
            stale += u64::from((self.stale[w] & pass).count_ones());
            self.stale[w] |= pass;
            visit.push(self.all[w] & !pass);
        }
        (passed, stale)
    }

    /// An evaluation that reads every window whole: every region is evaluated, so the touched
    /// bits are spent.
    pub(crate) fn untouch(&mut self) {
        self.touched.fill(0);
    }

    /// Marks `region`'s result stale. True when it already was: a score never computed.
    #[inline]
    pub(crate) fn mark(&mut self, region: usize) -> bool {
        let was = bit(&self.stale, region);
        self.stale[region / 64] |= 1 << (region % 64);
        was
    }

    /// The window value and support of `region`'s latest evaluation, when its result is stale.
    #[inline]
    pub(crate) fn pending(&self, region: usize, quiet: &Quiet) -> Option<(Option<f64>, u64)> {
        if !bit(&self.stale, region) {
            return None;
        }
        let last = quiet.last(region);
        debug_assert!(last.is_some(), "a stale series was evaluated");
        last
    }

    /// Clears `region`'s stale mark once its result has been computed.
    #[inline]
    pub(crate) fn clear(&mut self, region: usize) {
        self.stale[region / 64] &= !(1 << (region % 64));
    }
}

/// Sets `out` to one bit for each of `regions` regions, all set.
pub(crate) fn every(regions: usize, out: &mut Vec<u64>) {
    out.clear();
    out.resize(regions.div_ceil(64), u64::MAX);
    if !regions.is_multiple_of(64)
        && let Some(w) = out.last_mut()
    {
        *w = (1 << (regions % 64)) - 1;
    }
}

/// The regions whose bits are set in `words`, in order.
pub(crate) fn ones(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(w, &word)| {
        let mut bits = word;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(w * 64 + b)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only unread regions are passed over, and only those with no change; each is marked
    /// stale, counted as stale already when it was; the touched bits are spent.
    #[test]
    fn unread_regions_without_a_change_are_passed_over() {
        let unread: Vec<bool> = (0..70).map(|r| r != 1).collect();
        let mut d = Deferred::new(&unread);
        d.mark(2);
        d.touch(3);
        let mut visit = Vec::new();
        let (passed, stale) = d.pass_over(&mut visit, |held| held[1] |= 1 << (66 - 64));
        assert_eq!(ones(&visit).collect::<Vec<_>>(), vec![1, 3, 66]);
        assert_eq!((passed, stale), (67, 1));
        assert!(d.mark(0) && !d.mark(3) && !d.mark(1));
        // The touch was spent: region 3 is passed over next time; of the 69, only region 66
        // (evaluated, not marked above) was not stale yet.
        let (passed, stale) = d.pass_over(&mut visit, |_| {});
        assert_eq!(ones(&visit).collect::<Vec<_>>(), vec![1]);
        assert_eq!((passed, stale), (69, 68));
        for n in [0, 1, 64, 70, 128] {
            every(n, &mut visit);
            assert_eq!(ones(&visit).collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
        }
    }
}
