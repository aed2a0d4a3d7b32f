//! vigil-score owns scoring: the statistics (tails, quantiles), the aberration detectors
//! (EARS, EWMA, CUSUM), the history each baseline is computed from, the normalisation of a
//! window value into a 0..100 risk score (and when scoring again cannot change it), and the roll-up into categories, domains and the
//! composite index. Pure functions and plain state: no clock, no I/O.

pub mod detectors;
pub mod history;
pub mod normalise;
pub mod quiet;
pub mod rollup;
pub mod stats;
#[doc(hidden)]
pub mod testing;
