//! Scores that nothing reads yet: deferred until something does, or until the history ring
//! would lose what they read.
//!
//! A scored region whose level neither raises alerts nor publishes score records (a grid cell
//! scored for its indicators' history and its API view, under the default `score_levels`)
//! has its indicator scores read only by the API, by snapshots and by rule reloads. Scoring it
//! at every evaluation computes one score after another that nothing reads before the next
//! replaces it. So its latest window value is kept instead, with the evaluation it belongs to,
//! and scored when read ([`crate::Pipeline::region_view`], a snapshot, a reload, a
//! restriction), or when one more evaluation would push out of the history ring an entry that
//! score reads; a newer value replaces an unscored one, which is never computed.
//!
//! The deferred score is [`normalise::score_as_of`] the evaluation it belongs to, which reads
//! the ring as it was then: the same inputs, so the same result as scoring it on time. Only the
//! stateless scoring methods qualify (a recursive detector, EWMA or CUSUM, moves its state at
//! every evaluation), and only where the ring is longer than the lags the method reads: a ring
//! of exactly those lags cannot wait an evaluation. The alarm's scanned counts keep rings of a
//! whole baseline, so their scores can wait weeks.

use vigil_rules::Indicator;
use vigil_score::normalise;

/// No deferred value.
const NONE: u64 = u64::MAX;

/// Per region of one indicator: the window value whose score is deferred, if any.
#[derive(Clone, Debug)]
pub(crate) struct Deferred {
    /// Evaluations a score may wait: the ring's length less one less the furthest lag read.
    spare: u64,
    /// Per region, the history count of the evaluation the value belongs to (`NONE`: none).
    at: Vec<u64>,
    value: Vec<Option<f64>>,
    support: Vec<u64>,
}

/// A deferred value: the evaluation it belongs to, the window value and its support.
pub(crate) type Pending = (u64, Option<f64>, u64);

impl Deferred {
    /// Deferral for `regions` series of `ind`, whose history ring holds `ring_len` entries;
    /// `None` where a score cannot wait (a recursive detector, or no spare entries).
    pub(crate) fn new(ind: &Indicator, ring_len: usize, regions: usize) -> Option<Deferred> {
        let reads = normalise::reads(ind)?;
        let reach = reads
            .iter()
            .filter(|r| r.2 > 0)
            .map(|&(first, stride, count)| first + (count - 1) * stride.max(1))
            .max()
            .unwrap_or(0);
        let spare = ring_len.saturating_sub(1).saturating_sub(reach) as u64;
        (spare > 0).then(|| Deferred {
            spare,
            at: vec![NONE; regions],
            value: vec![None; regions],
            support: vec![0; regions],
        })
    }

    /// Defers the score of `region`'s value at history count `evals`, replacing (never
    /// computing) one deferred before. True when one was replaced.
    #[inline]
    pub(crate) fn defer(&mut self, region: usize, evals: u64, value: Option<f64>, support: u64) -> bool {
        let replaced = self.at[region] != NONE;
        self.at[region] = evals;
        self.value[region] = value;
        self.support[region] = support;
        replaced
    }

    /// Whether `region`'s deferred score must be computed now, with `evals` the history count
    /// whose entry was just written: one more entry would overwrite the furthest lag it reads.
    #[inline]
    pub(crate) fn due(&self, region: usize, evals: u64) -> bool {
        let at = self.at[region];
        at != NONE && evals - at >= self.spare
    }

    /// The deferred value of `region`, if any.
    #[inline]
    pub(crate) fn peek(&self, region: usize) -> Option<Pending> {
        let at = self.at[region];
        (at != NONE).then(|| (at, self.value[region], self.support[region]))
    }

    /// Takes the deferred value of `region`, if any.
    #[inline]
    pub(crate) fn take(&mut self, region: usize) -> Option<Pending> {
        let p = self.peek(region);
        self.at[region] = NONE;
        p
    }
}
