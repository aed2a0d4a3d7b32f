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
//! A stale series' score is its score at its indicator's latest evaluation. That evaluation's
//! inputs are all still at hand: its window value and support are the last ones its quiet
//! tracking noted ([`Quiet::last`]; a sleeping series' value is the one it fell asleep with),
//! and [`normalise::score_as_of`] reads the history ring as it was then (one entry back, since
//! the ring has moved on to the next evaluation's slot). So the score read is the score
//! computed on time, bit for bit, however long the series stayed stale; the ring always holds
//! what the latest evaluation read. Only the stateless scoring methods qualify, those with
//! quiet tracking (a recursive detector, EWMA or CUSUM, moves its state at every evaluation).

use vigil_score::quiet::Quiet;

/// Per region of one indicator: whether its latest result is stale (not computed as of its
/// latest evaluation).
#[derive(Clone, Debug)]
pub(crate) struct Deferred {
    stale: Vec<bool>,
}

impl Deferred {
    pub(crate) fn new(regions: usize) -> Deferred {
        Deferred { stale: vec![false; regions] }
    }

    /// Marks `region`'s result stale. True when it already was: a score never computed.
    #[inline]
    pub(crate) fn mark(&mut self, region: usize) -> bool {
        std::mem::replace(&mut self.stale[region], true)
    }

    /// The window value and support of `region`'s latest evaluation, when its result is stale.
    #[inline]
    pub(crate) fn pending(&self, region: usize, quiet: &Quiet) -> Option<(Option<f64>, u64)> {
        if !self.stale[region] {
            return None;
        }
        let last = quiet.last(region);
        debug_assert!(last.is_some(), "a stale series was evaluated");
        last
    }

    /// Clears `region`'s stale mark once its result has been computed.
    #[inline]
    pub(crate) fn clear(&mut self, region: usize) {
        self.stale[region] = false;
    }
}
