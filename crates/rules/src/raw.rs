//! Raw rule files: plain structs that mirror the TOML text, with spans kept for every value the
//! compiler may need to point at. Parsing only checks shape (unknown fields, wrong types); all
//! meaning is checked by the compiler.

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

/// A display name: a plain string, or a table with `zh` and/or `en` (one language or both).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawName {
    Plain(String),
    Languages(RawLanguages),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLanguages {
    #[serde(default)]
    pub zh: Option<String>,
    #[serde(default)]
    pub en: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleset {
    pub name: S<String>,
    pub timezone: S<String>,
    pub evaluate_every: S<String>,
    /// The most scoring state the rule set may need, in MiB (default 1024).
    #[serde(default)]
    pub max_state_mib: Option<S<u64>>,
    /// Region level names, root first; default city, district, street, grid.
    #[serde(default)]
    pub levels: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub alert_region_levels: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub evaluate_region_levels: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub id: S<String>,
    pub name: RawName,
    pub topic: S<String>,
    pub allowed_delay: S<String>,
    pub allowed_lateness: S<String>,
    /// How far an event's time may lie ahead of its reference (the broker's timestamp, or in a
    /// replay the input's next event); default 1d.
    #[serde(default)]
    pub max_ahead: Option<S<String>>,
    /// Resent events (same producer id) within this span behind the watermark count once;
    /// default allowed_delay + allowed_lateness, "0s" turns de-duplication off.
    #[serde(default)]
    pub dedup_horizon: Option<S<String>>,
    /// Ids remembered at most (default 32768).
    #[serde(default)]
    pub dedup_capacity: Option<S<u64>>,
    #[serde(default)]
    pub attr: Vec<S<RawAttr>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttr {
    pub name: S<String>,
    #[serde(rename = "type")]
    pub ty: S<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub values: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub min: Option<S<f64>>,
    #[serde(default)]
    pub max: Option<S<f64>>,
    #[serde(default)]
    pub decimals: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTaxonomy {
    pub name: RawName,
    pub values: S<Vec<S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIndex {
    #[serde(default)]
    pub method: Option<S<String>>,
    #[serde(default)]
    pub min_available: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDomain {
    pub id: S<String>,
    pub name: RawName,
    pub weight: S<f64>,
    #[serde(default)]
    pub method: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCategory {
    pub id: S<String>,
    pub domain: S<String>,
    pub name: RawName,
    pub weight: S<f64>,
    #[serde(default)]
    pub method: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverride {
    pub when: S<String>,
    pub at_least: S<String>,
    pub then: S<String>,
    pub floor: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrading {
    pub fast_path_margin: S<f64>,
    #[serde(default)]
    pub grey_min_history: Option<f64>,
    pub indicator_bands: S<RawBands>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBands {
    pub blue: f64,
    pub yellow: f64,
    pub orange: f64,
    pub red: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevel {
    pub id: S<String>,
    pub label: RawName,
    pub colour: S<String>,
    pub rank: S<String>,
    #[serde(default)]
    pub response: String,
    /// How soon an episode at this level must be handled, as a duration ("24h").
    #[serde(default)]
    pub deadline: Option<S<String>>,
    pub enter: S<f64>,
    pub clear: S<f64>,
    #[serde(rename = "for")]
    pub for_count: S<i64>,
    pub hold: S<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIndicator {
    pub id: S<String>,
    pub name: RawName,
    pub category: S<String>,
    pub source: S<String>,
    #[serde(default)]
    pub filter: Option<S<String>>,
    pub measure: S<String>,
    #[serde(default)]
    pub compare: Option<S<RawLeg>>,
    pub window: S<String>,
    pub hop: S<String>,
    #[serde(default)]
    pub lag: Option<S<String>>,
    pub direction: S<String>,
    #[serde(default)]
    pub min_support: Option<S<i64>>,
    pub weight: S<f64>,
    #[serde(default)]
    pub hard: bool,
    pub normalise: S<RawNormalise>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub test: Vec<S<RawTest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeg {
    pub source: S<String>,
    #[serde(default)]
    pub filter: Option<S<String>>,
}

/// Every parameter any method takes; the compiler checks which ones apply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNormalise {
    pub method: S<String>,
    pub baseline: Option<S<String>>,
    pub guard: Option<S<String>>,
    pub seasonality: Option<S<String>>,
    pub dist: Option<S<String>>,
    pub min_count: Option<S<i64>>,
    pub windows: Option<S<i64>>,
    pub sigma_min: Option<S<f64>>,
    pub transform: Option<S<String>>,
    pub low: Option<S<f64>>,
    pub high: Option<S<f64>>,
    pub history: Option<S<String>>,
    pub min_history: Option<S<String>>,
    pub variant: Option<S<String>>,
    pub k: Option<S<f64>>,
    pub h: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    pub events: S<String>,
    pub region: S<String>,
    pub at: S<String>,
    pub expect: S<RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub value: Option<f64>,
    pub score_min: Option<f64>,
    pub score_max: Option<f64>,
    pub grey: Option<bool>,
}

/// Level name -> threshold on the evidence statistic.
pub type LevelThresholds = std::collections::BTreeMap<String, S<f64>>;

/// `[alarm]` in `alarm.toml`: evidence-based alarms (docs/methodology.md §16).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlarm {
    /// The longest scan, as a duration: the excess over the last 1..scan windows is tested.
    pub scan: S<String>,
    /// The baseline before each scan, as a duration.
    pub baseline: S<String>,
    /// Count indicators scanned; default every count indicator without lag.
    #[serde(default)]
    pub indicators: Option<S<Vec<S<String>>>>,
    /// What a recurrence interval counts: "rule_set" (default: once in R days anywhere, the
    /// daily maximum over every region) or "region" (once in R days in one region: a rate per
    /// region-day).
    #[serde(default)]
    pub per: Option<S<String>>,
    /// What a region's expected count follows: "share" (default: its usual share of what the
    /// rest of the city counts in the same windows) or "history" (its own history with the
    /// city's weekday pattern).
    #[serde(default)]
    pub expectation: Option<S<String>>,
    /// How long a raised level is kept: "day" (the default: to the end of its local day) or a
    /// duration the evidence must stay below it before it is lowered (raising is immediate).
    #[serde(default)]
    pub hold: Option<S<String>>,
    /// Level -> recurrence interval ("2d", "14d", "100d"); a level left out is not raised.
    pub recurrence: S<std::collections::BTreeMap<String, S<String>>>,
    /// Level -> threshold on the evidence statistic, as `vigil calibrate` writes them.
    #[serde(default)]
    pub thresholds: Option<S<LevelThresholds>>,
    /// Region level -> its own level -> threshold map, for region levels whose statistic is
    /// distributed otherwise (`vigil calibrate` with `per = "region"` fits each alerting region
    /// level on its own region-days); the others take `thresholds`.
    #[serde(default)]
    pub region_level_thresholds: Option<S<std::collections::BTreeMap<String, S<LevelThresholds>>>>,
    /// What the thresholds were calibrated on (written by `vigil calibrate`, for people).
    #[serde(default)]
    pub calibrated_on: Option<String>,
}
