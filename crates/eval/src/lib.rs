//! vigil-eval owns the detection yardstick: surges with known ground truth (`truth.json`),
//! daily alarm signals from any detector (vigil's alerts or score records, or a baseline's
//! statistics), and the scorecard that compares them at matched false-alert rates. It is pure:
//! callers read the files and hand it text.
//!
//! Definitions (docs/methodology.md §14 explains them):
//! - A *signal* is a detector's score for one region, day and (optionally) category; larger is
//!   more alarming. A threshold `t` turns it into alarms: region `r` alarms on day `d` when its
//!   largest signal that day is at least `t`.
//! - A surge is *detected* when a region of the surge or a region inside one (own-region
//!   detection: a district-wide surge's events fall in some of its streets), or also one of
//!   their ancestors (region-or-ancestor detection), alarms on a day of the surge; the delay is
//!   the first such day minus the surge's first day.
//! - A *false alert* is an alarm region-day (at or above `t`) outside every surge's regions,
//!   their ancestors and descendants, from the surge's first day to `grace_days` after its last; the rate is per
//!   100 region-days of the regions that can alarm.
//! - The *chance level* is the detection random alarm days at the same rate would reach.

mod card;
mod signals;
mod truth;

pub use card::{Bucket, Curve, Evaluation, LevelCard, Point, SurgeResult, Target, evaluate, matched, summarise};
pub use signals::{Signals, from_alerts, from_baseline_csv, from_scores};
pub use truth::{Surge, Truth, parse_truth};

/// Errors that name who must act: the author of a truth or signal file, with the line.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{file}:{line}: {message}")]
    Input { file: String, line: usize, message: String },
}

pub(crate) fn input_error(file: &str, line: usize, message: impl Into<String>) -> EvalError {
    EvalError::Input { file: file.to_string(), line, message: message.into() }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub fn parse_day(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        text.get(r).filter(|s| s.bytes().all(|c| c.is_ascii_digit()))?.parse().ok()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    if !(1..=12).contains(&m) || d == 0 || d > 31 {
        return None;
    }
    let days = vigil_model::time::days_from_civil(y, m, d);
    // Reject dates that do not exist (2019-02-30) by the round trip.
    (vigil_model::time::civil_from_days(days) == (y, m, d)).then_some(days)
}

/// The `YYYY-MM-DD` form of a day number.
pub fn format_day(day: i64) -> String {
    let (y, m, d) = vigil_model::time::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}
