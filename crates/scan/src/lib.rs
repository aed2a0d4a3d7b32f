//! vigil-scan owns the evidence behind an alarm (docs/methodology.md §16): for one series of
//! counts (a region and a count indicator, a "cut"), how unlikely its excess over the last
//! 1..W windows is under a null model fitted to the windows before them; and, across a whole
//! rule set, how often an excess that large happens by chance (recurrence intervals, and the
//! thresholds calibrated from history). Pure arithmetic: no clock, no I/O, no allocation per
//! call.

pub mod evidence;
pub mod recurrence;

pub use evidence::{Cut, Params, scan, tail_at, tail_stat, weekday_factors, window_sums};
pub use recurrence::{Calibration, LevelRates};
