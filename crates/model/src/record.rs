//! The JSON records vigil writes: scores, alerts and rejections. Field order here is the field
//! order on the wire; maps are `BTreeMap`s so that output bytes are stable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::level::Level;

/// One indicator's contribution, as carried by score records and alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndicatorScore {
    pub indicator: String,
    /// The indicator's name in both languages, on alert records (score records, which list
    /// every indicator, leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Names>,
    /// The window value; `None` when suppressed (fewer than `min_support` events).
    pub value: Option<f64>,
    /// The expected value from the region's own baseline, where the method has one.
    pub expected: Option<f64>,
    /// Risk score 0..100; `None` while grey (no baseline yet, or too little support).
    pub score: Option<f64>,
}

/// A name in Chinese and English (either filled from the other where a rule file gives one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Names {
    pub zh: String,
    pub en: String,
}

/// One record per (region, evaluation time) on `vigil.scores`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreRecord {
    pub region: String,
    pub level: String,
    /// The evaluation period the record describes, `[window_start, window_end)` in UTC: one
    /// step of the rule set's cadence, ending on a local boundary.
    #[serde(default)]
    pub window_start: String,
    pub window_end: String,
    /// The local data day, `YYYY-MM-DD`, when the cadence is daily.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    pub rules_version: String,
    pub composite: Option<f64>,
    pub grade: Option<Level>,
    pub domains: BTreeMap<String, Option<f64>>,
    pub categories: BTreeMap<String, Option<f64>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<IndicatorScore>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertEvent {
    Opened,
    Escalated,
    Deescalated,
    Resolved,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Opened => "opened",
            AlertEvent::Escalated => "escalated",
            AlertEvent::Deescalated => "deescalated",
            AlertEvent::Resolved => "resolved",
        }
    }
}

/// One lifecycle event of an alert episode on `vigil.alerts`.
///
/// `alert_id` names the episode (region, scope, the window end at which it opened) and stays the
/// same through escalations and de-escalations; `seq` numbers the lifecycle events within the
/// episode, so (`alert_id`, `seq`) identifies one record and is the de-duplication key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub alert_id: String,
    pub seq: u32,
    pub event: AlertEvent,
    pub level: Option<Level>,
    pub previous_level: Option<Level>,
    pub region: String,
    pub region_name: String,
    pub region_level: String,
    pub scope: String,
    pub score: Option<f64>,
    /// The evaluation period, as on score records.
    #[serde(default)]
    pub window_start: String,
    pub window_end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    pub rules_version: String,
    /// Why the level is what it is: "score", "fast_path" or an override such as
    /// "override:domain_red".
    pub reason: String,
    pub domains: BTreeMap<String, Option<f64>>,
    pub top_contributors: Vec<IndicatorScore>,
    /// The regions behind a roll-up's alert (the city of scale-out mode, from its districts),
    /// highest score first; absent on alerts scored from indicators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_regions: Vec<RegionScore>,
    /// The evidence behind an alarm (scope `evidence`, docs/methodology.md §16); absent on
    /// alerts graded from scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// What to do at this level (grading.toml `response`); absent on `resolved` records and
    /// where the level has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// By when (UTC): the moment this record's level was reached plus the level's `deadline`;
    /// absent on `resolved` records and where the level has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Why the level stands above what the score gives (`reason` = `override`): the override
    /// rule and what triggered it. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<Floor>,
}

/// A floor set by an override rule (index.toml `[[override]]`, docs/methodology.md §10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// The rule's `when`: `any_domain` or `hard_indicator`.
    pub rule: String,
    /// What reached the rule's `at_least`: a domain id (`any_domain`) or a hard indicator id.
    pub trigger: String,
    /// The trigger's level (a domain's grade, or a hard indicator's band).
    pub trigger_level: Level,
    /// The lowest level the rule allows the scope.
    pub level: Level,
}

impl Floor {
    /// In words, with the trigger named by `name` (its id where the caller has no names):
    /// "at least orange: Police incidents is red (override any_domain)".
    pub fn describe(&self, name: &str) -> String {
        let what = if self.rule == "hard_indicator" { "hard indicator " } else { "" };
        format!(
            "at least {}: {what}{name} is {} (override {})",
            self.level.as_str(),
            self.trigger_level.as_str(),
            self.rule
        )
    }
}

/// Why an evidence alarm stands: the cut (region and count indicator) whose excess is least
/// likely by chance, in the indicator's own units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub indicator: String,
    pub indicator_name: String,
    /// The indicator's index category.
    pub category: String,
    /// The scan: the last `windows` windows of `window` each, from `since` to the record's
    /// `window_end`.
    pub windows: u32,
    pub window: String,
    pub since: String,
    pub observed: f64,
    pub expected: f64,
    /// The tail probability of the excess under the null model (one cut, one scan length).
    pub p_value: f64,
    /// −log10 of `p_value`: what the level thresholds are set on.
    pub statistic: f64,
    /// How often, in days, an excess this large happens by chance anywhere in the rule set.
    pub recurrence_days: f64,
    /// Child regions whose own alarms hold part of this excess (the counts above include
    /// theirs; the level is set on what is left once their excess is taken out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked: Vec<String>,
    /// Sources whose counts in this region rise together (each with p ≤ 0.05 on its strongest
    /// cut), when two or more do; their combined evidence may set the level (关联预警).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// The sentence an analyst reads.
    pub summary: String,
}

/// One region's score in a roll-up alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionScore {
    pub region: String,
    pub region_name: String,
    pub score: Option<f64>,
    /// The region's weight in the roll-up (its share of the population).
    pub weight: f64,
}

/// Why an event was not accepted. The `code` is machine-readable and bounded (it is a metric
/// label); `detail` is for people.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: RejectCode,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    Empty,
    TooLarge,
    NotUtf8,
    MalformedJson,
    NotAnObject,
    MissingField,
    WrongType,
    UnknownSource,
    UnknownRegion,
    UnknownValue,
    OutOfRange,
    BadTimestamp,
    TimestampOutOfRange,
    NotFinite,
    Late,
    /// Scale-out: the event's district belongs to another task than the partition it arrived
    /// on (the producer did not key it by district with the configured partitioner).
    WrongPartition,
    /// An attribute value that would overflow a sum the rules keep (`sum`, `mean`,
    /// `weighted_share`); nothing of the event was counted.
    SumOverflow,
    /// Event time more than the source's `max_ahead` ahead of its reference time (the broker's
    /// timestamp, or the next event of the same input in a replay).
    TimestampInFuture,
}

impl RejectCode {
    /// Every reason a message can be refused at decode (all but `Late`).
    pub const DECODE: [RejectCode; 14] = [
        RejectCode::Empty,
        RejectCode::TooLarge,
        RejectCode::NotUtf8,
        RejectCode::MalformedJson,
        RejectCode::NotAnObject,
        RejectCode::MissingField,
        RejectCode::WrongType,
        RejectCode::UnknownSource,
        RejectCode::UnknownRegion,
        RejectCode::UnknownValue,
        RejectCode::OutOfRange,
        RejectCode::BadTimestamp,
        RejectCode::TimestampOutOfRange,
        RejectCode::NotFinite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Empty => "empty",
            RejectCode::TooLarge => "too_large",
            RejectCode::NotUtf8 => "not_utf8",
            RejectCode::MalformedJson => "malformed_json",
            RejectCode::NotAnObject => "not_an_object",
            RejectCode::MissingField => "missing_field",
            RejectCode::WrongType => "wrong_type",
            RejectCode::UnknownSource => "unknown_source",
            RejectCode::UnknownRegion => "unknown_region",
            RejectCode::UnknownValue => "unknown_value",
            RejectCode::OutOfRange => "out_of_range",
            RejectCode::BadTimestamp => "bad_timestamp",
            RejectCode::TimestampOutOfRange => "timestamp_out_of_range",
            RejectCode::NotFinite => "not_finite",
            RejectCode::Late => "late",
            RejectCode::WrongPartition => "wrong_partition",
            RejectCode::SumOverflow => "sum_overflow",
            RejectCode::TimestampInFuture => "timestamp_in_future",
        }
    }
}
