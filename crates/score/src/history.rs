//! Per-(indicator, region) history of window values: the memory every baseline is computed
//! from. All regions of an indicator are evaluated at every hop, so one evaluation counter per
//! indicator positions every region's ring; storage is allocated once.

use serde::{Deserialize, Serialize};

/// A ring of the last `len` evaluations per region, `width` floats each (value, and for shares
/// the support behind it). Undefined values are stored as NaN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub len: usize,
    pub width: usize,
    /// Evaluations pushed so far (the same for every region).
    pub evals: u64,
    data: Vec<f32>,
}

impl History {
    /// True when `other` has the same regions, length and width (a restored state fits).
    pub fn same_shape(&self, other: &History) -> bool {
        self.len == other.len && self.width == other.width && self.data.len() == other.data.len()
    }

    pub fn new(regions: usize, len: usize, width: usize) -> History {
        let len = len.max(1);
        History { len, width, evals: 0, data: vec![f32::NAN; regions * len * width] }
    }

    /// Writes the current evaluation's entry for `region` (call for every region, then
    /// [`History::advance`]).
    #[inline]
    pub fn set(&mut self, region: usize, entry: &[f32]) {
        let slot = (self.evals % self.len as u64) as usize;
        let at = (region * self.len + slot) * self.width;
        self.data[at..at + self.width].copy_from_slice(&entry[..self.width]);
    }

    pub fn advance(&mut self) {
        self.evals += 1;
    }

    /// The entry `lag` evaluations before the current one (lag 0 = the entry being written
    /// now), or `None` when that far back was never filled or has left the ring.
    #[inline]
    pub fn get(&self, region: usize, lag: usize) -> Option<&[f32]> {
        if lag >= self.len || lag as u64 > self.evals {
            return None;
        }
        let k = self.evals - lag as u64;
        let slot = (k % self.len as u64) as usize;
        let at = (region * self.len + slot) * self.width;
        Some(&self.data[at..at + self.width])
    }

    /// The value (first float) `lag` evaluations back, if defined.
    #[inline]
    pub fn value(&self, region: usize, lag: usize) -> Option<f64> {
        self.get(region, lag).map(|e| e[0] as f64).filter(|v| v.is_finite())
    }

    /// How many past evaluations (not counting the current one) exist.
    pub fn filled(&self) -> usize {
        (self.evals as usize).min(self.len - 1)
    }

    pub fn bytes_per_region(&self) -> usize {
        self.len * self.width * 4
    }
}
