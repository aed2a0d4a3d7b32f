//! The compiled, validated rule set. Everything here has been checked by the compiler: names
//! are resolved to indices, durations are aligned to bins, weights sum as declared. Code
//! downstream can index without checking again.

use std::collections::HashMap;

use vigil_model::time::DAY;
use vigil_model::{Duration, Level, SourceIdx, Zone};

use crate::filter::Pred;

/// A display name in Chinese and English. Rule files may give one language or a plain string;
/// the compiler fills the other from it, so both are always set (possibly equal).
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct Name {
    pub zh: String,
    pub en: String,
}

impl Name {
    /// The name in `lang` (`zh` or `en`; anything else is English).
    pub fn get(&self, lang: &str) -> &str {
        if lang == "zh" { &self.zh } else { &self.en }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum AttrType {
    /// Values are stored as their index in this list.
    Enum(Vec<String>),
    Int {
        min: i64,
        max: i64,
    },
    /// Stored as `round(x * scale)` with `scale = 10^decimals`.
    Float {
        min: f64,
        max: f64,
        decimals: u32,
        scale: i64,
    },
    Bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attr {
    pub name: String,
    pub ty: AttrType,
    pub required: bool,
}

impl Attr {
    /// The real value of an encoded attribute (for output and averaging).
    pub fn to_real(&self, v: i64) -> f64 {
        match self.ty {
            AttrType::Float { scale, .. } => v as f64 / scale as f64,
            _ => v as f64,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub id: String,
    pub name: Name,
    pub topic: String,
    pub allowed_delay: Duration,
    pub allowed_lateness: Duration,
    /// An event more than this ahead of its reference time is refused as `timestamp_in_future`
    /// (see `vigil_core::ahead_of_reference`).
    pub max_ahead: Duration,
    /// Events with an id already seen within this span behind the watermark are duplicates.
    pub dedup_horizon: Duration,
    /// The most ids remembered for de-duplication.
    pub dedup_capacity: usize,
    pub attrs: Vec<Attr>,
    /// Indices of required attributes as a bit mask.
    pub required_mask: u32,
}

impl Source {
    pub fn attr_index(&self, name: &str) -> Option<usize> {
        self.attrs.iter().position(|a| a.name == name)
    }
}

/// The region levels of a rule set that does not declare its own, from the root down.
pub const DEFAULT_LEVELS: [&str; 4] = ["city", "district", "street", "grid"];

/// At most this many region levels (the depth of the tree).
pub const MAX_LEVELS: usize = 8;

/// The region tree, stored as parallel vectors indexed by `RegionIdx`. Regions are sorted by
/// code, so indices are stable for a given registry.
#[derive(Clone, Debug, Default)]
pub struct Regions {
    /// The declared level names, root first; `levels` index into it.
    pub level_names: Vec<String>,
    pub codes: Vec<String>,
    pub names: Vec<String>,
    pub levels: Vec<u8>,
    pub parents: Vec<Option<u32>>,
    /// Where declared; only the scale-out city roll-up weighs by it.
    pub populations: Vec<Option<u64>>,
    /// For each region: itself and all its ancestors, finest first.
    pub chains: Vec<Vec<u32>>,
    pub by_code: HashMap<String, u32>,
}

impl Regions {
    pub fn len(&self) -> usize {
        self.codes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
    pub fn lookup(&self, code: &str) -> Option<u32> {
        self.by_code.get(code).copied()
    }
    pub fn level_name(&self, r: u32) -> &str {
        &self.level_names[self.levels[r as usize] as usize]
    }

    /// The index of a declared level name.
    pub fn level_index(&self, name: &str) -> Option<usize> {
        self.level_names.iter().position(|l| l == name)
    }
    /// The registry as plain rows, as `regions.csv` declares them (what the generator takes).
    pub fn specs(&self) -> Vec<vigil_model::RegionSpec> {
        (0..self.len())
            .map(|i| vigil_model::RegionSpec {
                code: self.codes[i].clone(),
                parent: self.parents[i].map(|p| self.codes[p as usize].clone()).unwrap_or_default(),
                level: self.level_name(i as u32).to_string(),
                name: self.names[i].clone(),
                population: self.populations[i],
            })
            .collect()
    }

    /// True when `a` is `b` or one of its ancestors.
    pub fn is_ancestor_or_self(&self, a: u32, b: u32) -> bool {
        self.chains[b as usize].contains(&a)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seasonality {
    None,
    DayOfWeek,
    HourOfWeek,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountDist {
    Poisson,
    NegBin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    None,
    Log1p,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarsVariant {
    C1,
    C2,
    C3,
}

/// How a window value becomes a 0..100 risk score.
#[derive(Clone, Debug, PartialEq)]
pub enum Normalise {
    BaselinePvalue { baseline: Duration, guard: Duration, seasonality: Seasonality, dist: CountDist, min_count: u32 },
    Binomial { windows: u32 },
    RobustZ { windows: u32, sigma_min: f64, transform: Transform },
    Goalposts { low: f64, high: f64 },
    Percentile { history: Duration, min_history: Duration },
    Ears { variant: EarsVariant, sigma_min: f64 },
    Ewma,
    Cusum { k: f64, h: f64, baseline: Duration },
}

/// What an indicator computes over its window.
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    Count,
    Sum { attr: usize },
    Mean { attr: usize },
    Quantile { attr: usize, q: f64 },
    Share { num: Pred },
    Ratio { num: Pred, den: Pred },
    WeightedShare { attr: usize, num: Pred },
    MaxBin,
    DistinctDays,
    KeysAtLeast { key: usize, n: u32 },
    KeysSpread { key: usize, by: usize, n: u32 },
    Growth { step: Duration, n: u32 },
    Overlap { key: usize, top: u32 },
    Coelevation { alpha: f64 },
}

/// The second stream of a two-stream measure (`overlap`, `coelevation`).
#[derive(Clone, Debug, PartialEq)]
pub struct Leg {
    pub source: SourceIdx,
    pub filter: Pred,
    pub filter_sql: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndicatorTest {
    pub events: String,
    pub region: String,
    pub at: i64,
    pub expect_value: Option<f64>,
    pub score_min: Option<f64>,
    pub score_max: Option<f64>,
    pub grey: Option<bool>,
    /// Where the test is declared, for reporting.
    pub origin: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Indicator {
    pub id: String,
    pub name: Name,
    pub category: usize,
    pub domain: usize,
    pub source: SourceIdx,
    pub filter: Pred,
    /// The filter with taxonomies expanded: the text handed to SQL engines.
    pub filter_sql: String,
    pub measure: Measure,
    pub compare: Option<Leg>,
    pub window: Duration,
    pub hop: Duration,
    pub lag: Duration,
    /// Base bin width: one hour or one day.
    pub bin: Duration,
    pub direction: Direction,
    pub min_support: u32,
    /// Weight within the category.
    pub weight: f64,
    /// Weight in the composite (category weight x domain weight x weight).
    pub global_weight: f64,
    pub hard: bool,
    pub normalise: Normalise,
    pub tests: Vec<IndicatorTest>,
}

/// FNV-1a over text: stable across runs and machines (unlike `std`'s hasher). The fingerprints
/// below hash the `Debug` rendering of plain data (numbers, strings, enums): stable in
/// practice, though not a documented format; a toolchain whose rendering differed would only
/// make a restart after a rule edit start the edited rule set's indicators fresh.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

impl Indicator {
    /// A fingerprint of everything the indicator's state depends on (source, filter, measure,
    /// windows, normalisation, detectors), and of nothing else: a change of name, weight,
    /// category or tests keeps its state across a rule reload; any other change starts it afresh.
    pub fn state_fingerprint(&self) -> u64 {
        fnv(&format!(
            "{:?}",
            (
                self.source,
                &self.filter,
                &self.measure,
                &self.compare,
                (self.window, self.hop, self.lag, self.bin),
                self.direction,
                self.min_support,
                &self.normalise,
            )
        ))
    }
}

impl RuleSet {
    /// A fingerprint of what every indicator's state layout depends on: the sources' schemas,
    /// the region tree, which levels are scored, the evaluation cadence and the time zone. When
    /// it changes, no state can be carried over.
    pub fn layout_fingerprint(&self) -> u64 {
        let r = &self.regions;
        fnv(&format!(
            "{:?}",
            (
                // Not the sources' display names or topics: state does not depend on them.
                self.sources
                    .iter()
                    .map(|s| (&s.id, s.allowed_delay, s.allowed_lateness, &s.attrs, s.required_mask))
                    .collect::<Vec<_>>(),
                &r.codes,
                &r.parents,
                &r.levels,
                &r.level_names,
                &self.evaluate_levels,
                self.evaluate_every,
                &self.zone
            )
        ))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    Arithmetic,
    GeometricSafety,
    Max,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Category {
    pub id: String,
    pub name: Name,
    pub domain: usize,
    pub weight: f64,
    pub method: Aggregation,
    pub indicators: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Domain {
    pub id: String,
    pub name: Name,
    pub weight: f64,
    pub method: Aggregation,
    pub categories: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideWhen {
    AnyDomain,
    HardIndicator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideTarget {
    Composite,
    Domain,
}

/// A non-compensatory floor: when the trigger reaches `at_least`, the target's grade is at
/// least `floor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Override {
    pub when: OverrideWhen,
    pub at_least: Level,
    pub target: OverrideTarget,
    pub floor: Level,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LevelSpec {
    pub level: Level,
    pub label: Name,
    pub colour: String,
    pub rank: String,
    pub response: String,
    /// How soon an episode at this level must be handled, from the moment it reached it.
    pub deadline: Option<Duration>,
    pub enter: f64,
    pub clear: f64,
    pub for_count: u32,
    pub hold: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Grading {
    /// Indexed by `Level::rank() - 1`.
    pub levels: Vec<LevelSpec>,
    pub fast_path_margin: f64,
    /// Indicator bands (blue, yellow, orange, red) for explanations.
    pub indicator_bands: [f64; 4],
}

impl Grading {
    pub fn spec(&self, l: Level) -> &LevelSpec {
        &self.levels[l.rank() as usize - 1]
    }

    /// The band of a single indicator score, for explanations.
    pub fn indicator_band(&self, score: f64) -> Option<Level> {
        let mut out = None;
        for (i, t) in self.indicator_bands.iter().enumerate() {
            if score >= *t {
                out = Level::from_rank(i as u8 + 1);
            }
        }
        out
    }
}

#[derive(Clone, Debug)]
pub struct RuleSet {
    pub name: String,
    /// A short hash of every rule file: names the rules in every score and alert.
    pub version: String,
    /// Local civil time: days, hours and evaluation boundaries follow it.
    pub zone: Zone,
    /// The most scoring state the rule set may need (`max_state_mib`), checked by
    /// `vigil_core::check_state` before the rules are used.
    pub max_state_bytes: u64,
    /// The cadence of scores and alerts: a whole number of hours that divides a day; boundaries
    /// fall on local time (`1d`: local midnight).
    pub evaluate_every: Duration,
    /// Indexed by region level: whether regions of that level raise alerts.
    pub alert_levels: Vec<bool>,
    /// Indexed by region level: whether regions of that level are scored at all. Events still
    /// count for every evaluated ancestor of their region.
    pub evaluate_levels: Vec<bool>,
    pub sources: Vec<Source>,
    pub regions: Regions,
    pub indicators: Vec<Indicator>,
    pub categories: Vec<Category>,
    pub domains: Vec<Domain>,
    pub index_method: Aggregation,
    pub min_available: f64,
    pub overrides: Vec<Override>,
    pub grading: Grading,
    /// Evidence-based alarms, when `alarm.toml` is present.
    pub alarm: Option<Alarm>,
    /// Fixture files of the inline tests, by path relative to the rule set.
    pub fixtures: HashMap<String, String>,
}

impl RuleSet {
    /// Whether region `r`'s level is scored (`evaluate_region_levels`).
    pub fn is_scored(&self, r: usize) -> bool {
        self.evaluate_levels[self.regions.levels[r] as usize]
    }

    /// Whether region `r`'s level raises alerts (`alert_region_levels`; every such level is
    /// scored too).
    pub fn raises_alerts(&self, r: usize) -> bool {
        self.alert_levels[self.regions.levels[r] as usize]
    }

    pub fn source_index(&self, id: &str) -> Option<SourceIdx> {
        self.sources.iter().position(|s| s.id == id).map(|i| i as SourceIdx)
    }

    pub fn indicator_index(&self, id: &str) -> Option<usize> {
        self.indicators.iter().position(|i| i.id == id)
    }

    /// A one-line summary, as printed by `vigil rules check`.
    pub fn summary(&self) -> String {
        format!(
            "rules ok: {} sources, {} regions, {} indicators, {} categories, {} domains (version {})",
            self.sources.len(),
            self.regions.len(),
            self.indicators.len(),
            self.categories.len(),
            self.domains.len(),
            self.version
        )
    }
}

/// Evidence-based alarms (`alarm.toml`, docs/methodology.md §16): which count indicators are
/// scanned, over how many windows, against how long a baseline, and the threshold of each level
/// on the evidence statistic with the recurrence interval it stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    /// The scanned indicators, in rule order.
    pub cuts: Vec<AlarmCut>,
    /// Per level (blue, yellow, orange, red): `None` when the level is not raised. The
    /// thresholds of every region level without its own in [`Alarm::region_levels`].
    pub levels: [Option<AlarmLevel>; 4],
    /// Region levels (index into the rule set's levels) with thresholds of their own
    /// (`region_level_thresholds`): the same levels raised at the same recurrence intervals,
    /// each at the threshold its own region-days reach at that rate.
    pub region_levels: Vec<(u8, [Option<AlarmLevel>; 4])>,
    /// Whether recurrence intervals count per region (a rate per region-day) rather than over
    /// the whole rule set (the daily maximum).
    pub per_region: bool,
    /// Whether the thresholds come from `vigil calibrate` (else from the Bonferroni bound).
    pub calibrated: bool,
    pub calibrated_on: Option<String>,
    /// When a level, once raised, may be lowered (`hold`).
    pub hold: Hold,
}

/// When an evidence level may fall ([`Alarm::hold`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// `hold = "day"` (the default): a level reached is kept to the end of its local day, and
    /// falls at the day's last evaluation (local midnight) to that evaluation's level. The day
    /// is what the recurrence intervals count (the calibration's daily maximum), so the level
    /// shown all day is the day's highest, and an excess hovering about a threshold hour by
    /// hour opens one episode a day, not one an hour.
    Day,
    /// `hold = "3h"` and the like: lowered at the n-th evaluation in a row below it (every
    /// boundary of the alarm's shortest hop; at least 1).
    Evaluations(u32),
}

/// One scanned count indicator.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmCut {
    pub indicator: usize,
    /// The length of the windows the scan reads, in ms: the indicator's window, except that a
    /// window of more than a day evaluated at a shorter hop is read in days (or hops, if longer):
    /// a 7-day count evaluated daily is scanned as daily counts over 1..W days, so a burst is
    /// not diluted in its week. See [`scan_unit`].
    pub unit: i64,
    /// The longest scan, in units.
    pub windows: usize,
    /// The baseline, in units.
    pub baseline: usize,
    /// The scanned indicator that counts all events of the same source and window (no
    /// filter), when this one has a filter: its parent category.
    pub parent: Option<usize>,
    /// Under `expectation = "share"`: the cut (index into [`Alarm::cuts`]) whose count in the
    /// rest of the city, window by window, is this cut's exposure (the unfiltered count of the
    /// same source, window and hop: this cut itself or its parent). `None`: the region's own
    /// history with the city's weekday pattern.
    pub share: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlarmLevel {
    pub level: Level,
    pub recurrence_days: f64,
    /// On the evidence statistic (−log10 of the smallest tail).
    pub threshold: f64,
}

/// The unit a count indicator is scanned in ([`AlarmCut::unit`]): its window, unless the
/// window is longer than a day and than its hop; then a day (or the hop, when longer), provided
/// it divides the window, the hop divides it, and it is whole bins (it is counted from them).
pub fn scan_unit(window: i64, hop: i64, bin: i64) -> i64 {
    if window <= DAY || hop >= window {
        return window;
    }
    let unit = hop.max(DAY);
    if window % unit == 0 && unit % hop == 0 && unit % bin == 0 { unit } else { window }
}

impl AlarmCut {
    /// Hops of the indicator per unit: how many ring entries one unit spans.
    pub fn hops_per_unit(&self, hop: i64) -> usize {
        (self.unit / hop).max(1) as usize
    }
}

impl Alarm {
    /// The raised levels of a region of region level `region_level`: its own thresholds, or
    /// the rule set's.
    pub fn levels_at(&self, region_level: u8) -> &[Option<AlarmLevel>; 4] {
        self.region_levels.iter().find(|(l, _)| *l == region_level).map_or(&self.levels, |(_, t)| t)
    }

    /// The highest level whose threshold `stat` reaches in a region of `region_level`.
    pub fn level_for(&self, region_level: u8, stat: f64) -> Option<Level> {
        self.levels_at(region_level).iter().rev().flatten().find(|l| stat >= l.threshold).map(|l| l.level)
    }

    /// The lowest threshold of any raised level in a region of `region_level`.
    pub fn lowest_threshold(&self, region_level: u8) -> f64 {
        lowest(self.levels_at(region_level))
    }

    /// (threshold, recurrence days) of the raised levels in a region of `region_level`, by
    /// threshold.
    pub fn recurrence_points(&self, region_level: u8) -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> =
            self.levels_at(region_level).iter().flatten().map(|l| (l.threshold, l.recurrence_days)).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    /// The alarm cut of indicator `i`, if scanned.
    pub fn cut_of(&self, i: usize) -> Option<usize> {
        self.cuts.iter().position(|c| c.indicator == i)
    }
}

/// The lowest threshold of any raised level of `levels` (infinite when none is raised).
pub fn lowest(levels: &[Option<AlarmLevel>; 4]) -> f64 {
    levels.iter().flatten().map(|l| l.threshold).fold(f64::INFINITY, f64::min)
}

/// The longest alarm scan, in windows of the scanned indicator.
pub const MAX_SCAN_WINDOWS: usize = 14;
