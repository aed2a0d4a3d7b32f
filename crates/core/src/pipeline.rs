//! The pipeline: routing, evaluation schedule, roll-up and grading.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vigil_alert::GradeState;
use vigil_model::record::{AlertRecord, Floor, ScoreRecord};
use vigil_model::time::{DAY, HOUR};
use vigil_model::{Event, Level, Ts};
use vigil_rules::filter::EvalCtx;
use vigil_rules::{OverrideTarget, OverrideWhen, RuleSet};
use vigil_score::history::History;
use vigil_score::normalise::{self, DetectorState, Scored};
use vigil_score::quiet::Quiet;
use vigil_score::rollup::{Rollup, rollup};
use vigil_window::measure::{self, AHEAD_HOURS, Layout, Leg};
use vigil_window::{Bins, Running};

use crate::alarm::{self, RegionEvidence};
use crate::dedup::Seen;
use crate::deferred::Deferred;
use crate::explain::{self, Period};
use crate::scope;

/// How much of the scores to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreDetail {
    /// No score records (alerts only).
    None,
    /// Composite, domains and categories.
    Summary,
    /// Also every indicator's value, expected value and score.
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub scores: ScoreDetail,
    /// Region levels (by index into the rule set's levels) whose score records are emitted;
    /// levels beyond the list emit none.
    pub score_levels: ScoreLevels,
    /// Which of those records are written.
    pub score_filter: ScoreFilter,
    /// Score records only at evaluations that end on a multiple of this many seconds of local
    /// time (86,400: local midnights), a multiple of the cadence; `None`: at every evaluation.
    /// Alerts and evidence are unaffected.
    pub score_every: Option<i64>,
}

/// Region levels whose score records are emitted, by level index (at most 8 levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreLevels(pub u8);

impl ScoreLevels {
    pub const NONE: ScoreLevels = ScoreLevels(0);
    pub const ALL: ScoreLevels = ScoreLevels(u8::MAX);

    /// Every level but the finest of `levels` (the default: the finest level is usually the
    /// most numerous and least read).
    pub fn all_but_finest(levels: usize) -> ScoreLevels {
        ScoreLevels(((1u16 << levels.saturating_sub(1).min(8)) - 1) as u8)
    }

    pub fn from_flags(flags: &[bool]) -> ScoreLevels {
        ScoreLevels(flags.iter().take(8).enumerate().filter(|(_, f)| **f).fold(0, |m, (i, _)| m | 1 << i))
    }

    pub fn contains(self, level: usize) -> bool {
        level < 8 && self.0 & (1 << level) != 0
    }

    /// Levels named by the rule set's level names; `None` gives the default
    /// ([`ScoreLevels::all_but_finest`]).
    pub fn from_names(rules: &RuleSet, names: Option<&[String]>) -> Result<ScoreLevels, String> {
        let declared = &rules.regions.level_names;
        let Some(names) = names else { return Ok(ScoreLevels::all_but_finest(declared.len())) };
        let mut flags = vec![false; declared.len()];
        for n in names {
            let i = rules
                .regions
                .level_index(n)
                .ok_or_else(|| format!("unknown region level {n:?} (the rules declare: {})", declared.join(", ")))?;
            flags[i] = true;
        }
        Ok(ScoreLevels::from_flags(&flags))
    }
}

/// Parses a score cadence (`--score-every`, `[engine] score_every`) for `rules`: a duration
/// that is a multiple of the rule set's cadence and divides a day, in seconds.
pub fn parse_score_every(rules: &RuleSet, text: &str) -> Result<i64, String> {
    let every = vigil_model::Duration::parse(text)?.0;
    let cadence = rules.evaluate_every.0;
    if every <= 0 || every % cadence != 0 || vigil_model::time::DAY % every != 0 {
        return Err(format!(
            "{text:?} must be a multiple of the rule set's cadence ({}) that divides a day (e.g. \"6h\" or \"1d\")",
            rules.evaluate_every
        ));
    }
    Ok(every)
}

impl ScoreFilter {
    pub fn parse(text: &str) -> Result<ScoreFilter, String> {
        match text {
            "all" => Ok(ScoreFilter::All),
            "nonzero" => Ok(ScoreFilter::Nonzero),
            "graded" => Ok(ScoreFilter::Graded),
            "changed" => Ok(ScoreFilter::Changed),
            other => Err(format!("score records {other:?}: expected \"all\", \"nonzero\", \"graded\" or \"changed\"")),
        }
    }
}

/// Which score records are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreFilter {
    /// Every scored region at every evaluation.
    All,
    /// Only records with a composite, domain or category score above zero, or a grade: a quiet
    /// region-period writes nothing, which keeps years of sparse history small.
    Nonzero,
    /// Only records of regions with an open alert episode in some scope: what a map of current
    /// warnings needs, and the smallest history.
    Graded,
    /// Only records that say something else than the region's last written record (its
    /// scores, grade, indicator values or rules version; the period aside): a reader carries
    /// each region's last record forward to the next, so every evaluation can be rebuilt
    /// while a region whose scores stand still writes nothing.
    Changed,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scores: ScoreDetail::Summary,
            score_levels: ScoreLevels::all_but_finest(4),
            score_filter: ScoreFilter::All,
            score_every: None,
        }
    }
}

/// Where the pipeline's results go.
pub trait Output {
    fn score(&mut self, record: ScoreRecord);
    fn alert(&mut self, record: AlertRecord);
    /// Every alarm region's evidence at an evaluation of the scanned indicators, whether or not
    /// it alarms (what `vigil calibrate` reads). Most outputs ignore it.
    fn evidence(&mut self, _period: &Period, _regions: &[RegionEvidence]) {}
}

/// An [`Output`] that keeps everything in memory (tests, `rules test`).
#[derive(Debug, Default)]
pub struct VecOutput {
    pub scores: Vec<ScoreRecord>,
    pub alerts: Vec<AlertRecord>,
}

impl Output for VecOutput {
    fn score(&mut self, record: ScoreRecord) {
        self.scores.push(record);
    }
    fn alert(&mut self, record: AlertRecord) {
        self.alerts.push(record);
    }
}

/// What became of one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingest {
    Accepted,
    /// Behind the watermark but within the allowed lateness: counted in bins that later windows
    /// read; windows already evaluated are not re-emitted.
    AcceptedLate,
    /// Behind the watermark by more than the allowed lateness.
    Late,
    /// So far ahead of the watermark that its bins would overwrite data still needed.
    TooEarly,
    /// An attribute value that would overflow a sum in one of the bins it counts for: refused
    /// before any bin is touched.
    Overflow,
    /// A resend of an event already counted (same producer id within the source's
    /// `dedup_horizon`): counted once.
    Duplicate,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub accepted: u64,
    pub accepted_late: u64,
    pub late: u64,
    pub too_early: u64,
    #[serde(default)]
    pub overflow: u64,
    #[serde(default)]
    pub duplicates: u64,
    /// Accepted events whose id could not be remembered (the source's table was full).
    #[serde(default)]
    pub dedup_full: u64,
    pub evaluations: u64,
    pub alerts: u64,
}

/// The latest evaluation of one (indicator, region).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Latest {
    pub value: Option<f64>,
    pub expected: Option<f64>,
    pub score: Option<f64>,
    pub support: u64,
}

/// The scoring state of one indicator across all regions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct IndicatorState {
    pub bins: Bins,
    pub hist: History,
    pub det: Vec<DetectorState>,
    /// Latest result per region.
    pub latest: Vec<Latest>,
}

#[derive(Clone, Copy, Debug)]
struct Tap {
    ind: u16,
    leg: Leg,
}

/// Everything the pipeline remembers, as saved in a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct State {
    pub rules_version: String,
    /// `RuleSet::layout_fingerprint` of the rules the state was built for.
    pub layout: u64,
    /// Per indicator (aligned with `indicators`): its id and state fingerprint.
    pub fingerprints: Vec<(String, u64)>,
    /// Domain ids, in the order of each region's grades after the composite.
    pub domains: Vec<String>,
    pub indicators: Vec<IndicatorState>,
    /// Per region: composite grade, then one per domain.
    pub grades: Vec<Vec<GradeState>>,
    /// Per region: the evidence alarm's grade (`alarm.toml`).
    pub evidence: Vec<GradeState>,
    /// Per region: a digest of the content of its last written score record (0: none yet),
    /// for `ScoreFilter::Changed`. Saved, so a restart writes exactly what an uninterrupted
    /// run would.
    pub written: Vec<u64>,
    /// Per alarm cut, per region: the cut's evidence at its last evaluation.
    pub cuts: Vec<Vec<vigil_scan::Cut>>,
    /// Per alarm cut: its weekday factors at its last evaluation.
    pub factors: Vec<[f64; 7]>,
    /// Per alarm cut: what its evidence depends on besides the indicator's state (indicator id,
    /// scan and baseline windows), so a reload carries the evidence of unchanged cuts.
    pub cut_ids: Vec<(String, usize, usize)>,
    /// Per source: the ids of recent events, for de-duplication.
    pub seen: Vec<Seen>,
    pub watermark: Option<Ts>,
    /// The last evaluated boundary, on the local axis ([`vigil_model::Zone::local`]).
    pub last_eval: Option<i64>,
    /// The earliest event time seen before time started: evaluation is anchored on it, so the
    /// schedule does not depend on which input happened to deliver first.
    pub first_ts: Option<Ts>,
    pub counters: Counters,
}

/// What a change of rules carried over (see [`Pipeline::reload`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Carried {
    /// Indicators whose state was kept.
    pub kept: Vec<String>,
    /// Indicators that start fresh (new, or changed).
    pub fresh: Vec<String>,
    /// Indicators of the old rules that are gone.
    pub dropped: Vec<String>,
    /// Whether open alert episodes and grades continue.
    pub grades_kept: bool,
    /// Open evidence episodes that end with the old rules (no alarm, or other regions): they
    /// get no `resolved` record, so the reload says how many.
    pub evidence_dropped: usize,
    /// Sources, regions, scored levels, cadence or time zone changed: nothing was kept.
    pub layout_changed: bool,
}

/// One region's current standing (see [`Pipeline::region_view`]).
#[derive(Clone, Debug, Serialize)]
pub struct RegionView {
    pub region_name: String,
    /// Whether alerts are raised at this region's level.
    pub alerted: bool,
    /// The last evaluation, in full.
    pub score: ScoreRecord,
    /// Current grade per scope ("composite", each domain, and "evidence" where the rules have an
    /// alarm); `None` is below blue.
    pub grades: BTreeMap<String, Option<Level>>,
}

/// An open alert episode (see [`Pipeline::active_alerts`]).
#[derive(Clone, Debug, Serialize)]
pub struct ActiveAlert {
    pub alert_id: String,
    /// Lifecycle events of the episode so far (the last one's `seq`).
    pub seq: u32,
    pub region: String,
    pub region_name: String,
    pub region_level: String,
    pub scope: String,
    pub level: Level,
    /// When the episode reached its current level (UTC).
    pub since: String,
    /// By when it must be handled: `since` plus the level's `deadline` (grading.toml).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Whether the last evaluation came after the deadline (event time, not the wall clock).
    pub overdue: bool,
}

/// What set a scope's floor, kept as indices while grading; the record's [`Floor`] is built
/// only when the floor sets the level.
#[derive(Clone, Copy)]
struct FloorWhy {
    rule: OverrideWhen,
    /// A hard indicator (`HardIndicator`) or a domain (`AnyDomain`), by index.
    trigger: usize,
    trigger_level: Level,
    level: Level,
}

impl FloorWhy {
    fn record(self, rules: &RuleSet) -> Floor {
        let (rule, trigger) = match self.rule {
            OverrideWhen::HardIndicator => ("hard_indicator", &rules.indicators[self.trigger].id),
            OverrideWhen::AnyDomain => ("any_domain", &rules.domains[self.trigger].id),
        };
        Floor { rule: rule.into(), trigger: trigger.clone(), trigger_level: self.trigger_level, level: self.level }
    }
}

pub struct Pipeline {
    rules: Arc<RuleSet>,
    options: Options,
    /// The regions that are scored (their levels are evaluated), in region order; state is kept
    /// per scored region, indexed by position in this list.
    scored: Vec<u32>,
    /// Region index -> position in `scored`.
    slot_of: Vec<Option<u32>>,
    /// Region index -> the scored slots an event of that region counts for (itself and its
    /// ancestors, where scored).
    chains: Vec<Vec<u32>>,
    layouts: Vec<Layout>,
    taps: Vec<Vec<Tap>>,
    /// Per source: whether any of its taps adds attribute values (and so needs the overflow
    /// check).
    sums: Vec<bool>,
    lateness: Vec<i64>,
    pub(crate) state: State,
    // Scratch reused across evaluations.
    ind_scores: Vec<Option<f64>>,
    roll: Rollup,
    floats: Vec<f64>,
    /// The regions this pipeline holds state for, as given by region (see
    /// [`Pipeline::scoped`]); `None`: every scored region. Kept across rule reloads.
    scope: Option<Vec<bool>>,
    /// Per scored slot: the scored slots whose nearest scored ancestor it is.
    children: Vec<Vec<u32>>,
    /// Scored slots with no scored ancestor.
    tops: Vec<u32>,
    /// Per indicator, each region's window as of the last evaluation (derived from the bins,
    /// never saved): a window is read by the bins that entered and left it ([`Running`]).
    /// `None` under [`Pipeline::evaluate_fully`], which reads every window bin by bin.
    runs: Vec<Option<Running>>,
    /// Set by [`Pipeline::evaluate_fully`].
    fully: bool,
    /// Per indicator, which results of the scored slots in `unread` are stale, computed only
    /// when read (see [`crate::deferred`]); `None` where every evaluation is scored (no quiet
    /// tracking, or no unread slot). Derived, never saved: a snapshot computes them first.
    deferred: Vec<Option<Deferred>>,
    /// Per scored slot: neither alerting nor publishing score records, so that nothing but
    /// the API, a snapshot, a reload or a restriction reads its indicator scores.
    unread: Vec<bool>,
    /// Stale results marked stale again before anything read them: scores never computed.
    skipped: u64,
    /// Per indicator, which regions' series have stayed the same long enough that scoring them
    /// again would give the last result (derived, never saved); `None` where every evaluation
    /// is scored.
    quiet: Vec<Option<Quiet>>,
    /// Evaluations that kept their series' last result (see `quiet`); not part of the state.
    kept: u64,
    /// Of those, the ones of sleeping series, skipped without a look (`Quiet::sleep`).
    slept: u64,
    /// Per scored slot, whether the alarm scans it: active, and of a level that raises alerts.
    /// A region that cannot alert is never linked either (§16.2: its excess stays in its
    /// parent), so its cuts would be read by nothing; scoring grid cells costs no scans.
    scanned: Vec<bool>,
    alarm: alarm::Scratch,
    /// The indicators' evaluation's scratch.
    scratch: crate::series::Scratch,
    /// Per indicator: where its unit counts go, when the alarm scans it in units shorter than
    /// its window (a 7-day count read as daily counts).
    units: Vec<Option<UnitCount>>,
}

impl Pipeline {
    pub fn new(rules: Arc<RuleSet>, options: Options) -> Pipeline {
        Pipeline::scoped(rules, options, None)
    }

    /// A pipeline that holds state for, scores and publishes only the scored regions marked in
    /// `scope` (indexed by region): a scale-out task's own regions. Its state (memory and
    /// checkpoints) is proportional to them; events of other regions count nowhere, and its
    /// snapshots restore only with the same scope.
    pub fn scoped(rules: Arc<RuleSet>, options: Options, scope: Option<&[bool]>) -> Pipeline {
        let scored = scope::scored_in(&rules, scope);
        let regions = scored.len();
        let layouts: Vec<Layout> = rules.indicators.iter().map(|i| Layout::for_indicator(&rules, i)).collect();
        let indicators = rules
            .indicators
            .iter()
            .zip(&layouts)
            .map(|(ind, layout)| {
                let needs = history_needs(&rules, ind);
                IndicatorState {
                    bins: layout.new_bins(regions),
                    hist: History::new(regions, needs.len, needs.width),
                    det: vec![DetectorState::None; regions],
                    latest: vec![Latest::default(); regions],
                }
            })
            .collect();
        let grades = vec![vec![GradeState::default(); 1 + rules.domains.len()]; regions];
        let evidence = vec![GradeState::default(); regions];
        let cuts = vec![vec![vigil_scan::Cut::default(); regions]; rules.alarm.as_ref().map_or(0, |a| a.cuts.len())];
        let state = State {
            rules_version: rules.version.clone(),
            layout: scope::layout(&rules, &scored),
            fingerprints: rules.indicators.iter().map(|i| (i.id.clone(), i.state_fingerprint())).collect(),
            domains: rules.domains.iter().map(|d| d.id.clone()).collect(),
            indicators,
            grades,
            evidence,
            written: vec![0; regions],
            factors: vec![[1.0; 7]; cuts.len()],
            cut_ids: cut_ids(&rules),
            cuts,
            seen: rules.sources.iter().map(|s| Seen::new(s.dedup_capacity, s.dedup_horizon.0)).collect(),
            watermark: None,
            last_eval: None,
            first_ts: None,
            counters: Counters::default(),
        };
        Self::with_state(rules, options, layouts, state, scope.map(<[bool]>::to_vec))
    }

    fn with_state(
        rules: Arc<RuleSet>,
        options: Options,
        layouts: Vec<Layout>,
        mut state: State,
        scope: Option<Vec<bool>>,
    ) -> Pipeline {
        for st in &mut state.indicators {
            st.bins.index();
        }
        let mut taps = vec![Vec::new(); rules.sources.len()];
        for (i, ind) in rules.indicators.iter().enumerate() {
            taps[ind.source as usize].push(Tap { ind: i as u16, leg: Leg::Primary });
            if let Some(c) = &ind.compare {
                taps[c.source as usize].push(Tap { ind: i as u16, leg: Leg::Compare });
            }
        }
        let lateness = rules.sources.iter().map(|s| s.allowed_lateness.0).collect();
        let sums = taps
            .iter()
            .map(|t: &Vec<Tap>| {
                t.iter().any(|tap| tap.leg == Leg::Primary && measure::sums_values(&rules.indicators[tap.ind as usize]))
            })
            .collect();
        let n = rules.indicators.len();
        let scored = scope::scored_in(&rules, scope.as_deref());
        let mut slot_of = vec![None; rules.regions.len()];
        for (d, &r) in scored.iter().enumerate() {
            slot_of[r as usize] = Some(d as u32);
        }
        let chains: Vec<Vec<u32>> =
            rules.regions.chains.iter().map(|c| c.iter().filter_map(|&r| slot_of[r as usize]).collect()).collect();
        let mut children = vec![Vec::new(); scored.len()];
        let mut tops = Vec::new();
        for (d, &r) in scored.iter().enumerate() {
            match chains[r as usize].get(1) {
                Some(&parent) => children[parent as usize].push(d as u32),
                None => tops.push(d as u32),
            }
        }
        let units = unit_counts(&rules, &layouts);
        let mut alarm = alarm::Scratch::new(&rules, &units);
        if alarm.factors.len() == state.factors.len() {
            alarm.factors.clone_from(&state.factors);
        }
        let scanned = scanned_slots(&rules, &scored);
        let runs = rules.indicators.iter().zip(&layouts).map(|(i, l)| Some(Running::new(i, l, scored.len()))).collect();
        let quiet = quiet_series(&rules, &state, scored.len());
        let unread: Vec<bool> = scored
            .iter()
            .map(|&r| {
                let level = rules.regions.levels[r as usize] as usize;
                !rules.alert_levels[level]
                    && (options.scores == ScoreDetail::None || !options.score_levels.contains(level))
            })
            .collect();
        let any_unread = unread.iter().any(|&u| u);
        let deferred = quiet.iter().map(|q| (any_unread && q.is_some()).then(|| Deferred::new(&unread))).collect();
        Pipeline {
            scored,
            slot_of,
            chains,
            rules,
            options,
            layouts,
            taps,
            sums,
            lateness,
            state,
            ind_scores: vec![None; n],
            roll: Rollup::default(),
            floats: Vec::with_capacity(2048),
            scope,
            children,
            tops,
            runs,
            fully: false,
            deferred,
            unread,
            skipped: 0,
            quiet,
            kept: 0,
            slept: 0,
            scanned,
            alarm,
            scratch: Default::default(),
            units,
        }
    }

    /// Narrows the pipeline to the scored regions marked in `regions` (indexed by region), as
    /// [`Pipeline::scoped`] would have built it, keeping the state of each region it keeps: a
    /// scale-out task resuming a checkpoint of the whole rule set. Regions it did not hold
    /// start empty.
    pub fn restrict(&mut self, regions: &[bool]) {
        self.settle();
        let want = scope::scored_in(&self.rules, Some(regions));
        if want == self.scored {
            self.scope = Some(regions.to_vec());
            return;
        }
        let from: Vec<Option<usize>> = want.iter().map(|&r| self.slot_of[r as usize].map(|d| d as usize)).collect();
        let state = scope::select(&self.state, &from, scope::layout(&self.rules, &want));
        let layouts = std::mem::take(&mut self.layouts);
        let evaluate_fully = self.fully;
        *self = Pipeline::with_state(Arc::clone(&self.rules), self.options, layouts, state, Some(regions.to_vec()));
        if evaluate_fully {
            self.evaluate_fully();
        }
    }

    /// Reads every window bin by bin and scores every series at every evaluation from now on,
    /// keeping no running sums and no quiet series: the reference those are tested against
    /// (results are identical either way).
    pub fn evaluate_fully(&mut self) {
        self.settle();
        self.runs.iter_mut().for_each(|r| *r = None);
        self.quiet.iter_mut().for_each(|q| *q = None);
        self.deferred.iter_mut().for_each(|d| *d = None);
        self.fully = true;
    }

    /// Computes every stale result (see [`crate::deferred`]): before the state is read whole
    /// (a snapshot, a reload, a restriction).
    pub(crate) fn settle(&mut self) {
        for (i, ind) in self.rules.indicators.iter().enumerate() {
            let (Some(d), Some(q)) = (&mut self.deferred[i], &self.quiet[i]) else { continue };
            let st = &mut self.state.indicators[i];
            for r in 0..st.latest.len() {
                if let Some((value, support)) = d.pending(r, q) {
                    st.latest[r] = score_latest(ind, &st.hist, &mut st.det[r], r, value, support, &mut self.floats);
                    d.clear(r);
                }
            }
        }
    }

    /// Results marked stale again before anything read them: scores never computed (since
    /// this pipeline was built).
    pub fn skipped_scores(&self) -> u64 {
        self.skipped
    }

    /// Evaluations so far (since this pipeline was built) that kept a quiet series' last result
    /// instead of scoring it again.
    pub fn kept_evaluations(&self) -> u64 {
        self.kept
    }

    /// Of [`Pipeline::kept_evaluations`], those of sleeping series: no event in any bin their
    /// values read and no change their scores read, so not even looked at.
    pub fn asleep_evaluations(&self) -> u64 {
        self.slept
    }

    /// A pipeline for `rules` that carries over what it can of `old`, built for other rules:
    /// the state of every indicator whose id and state fingerprint are unchanged, the grades
    /// (open alert episodes) when the domains are unchanged, and always event time (watermark,
    /// evaluation schedule) and counters. Changed and new indicators start fresh, grey until
    /// their windows and baselines fill. Nothing is carried when the layout (sources, regions,
    /// scored levels, cadence, time zone) changed.
    pub(crate) fn adopt(
        rules: Arc<RuleSet>,
        options: Options,
        scope: Option<&[bool]>,
        old: State,
    ) -> (Pipeline, Carried) {
        let mut p = Pipeline::scoped(rules, options, scope);
        let carried = p.carry(old);
        (p, carried)
    }

    /// Takes over what it can of `old` into this fresh pipeline's state (see [`Pipeline::adopt`]).
    fn carry(&mut self, old: State) -> Carried {
        let p = self;
        let rules = Arc::clone(&p.rules);
        let same_layout = old.layout == p.state.layout;
        let mut carried = Carried { layout_changed: !same_layout, ..Carried::default() };
        let mut by_id: std::collections::HashMap<String, (u64, IndicatorState)> =
            old.fingerprints.into_iter().zip(old.indicators).map(|((id, fp), st)| (id, (fp, st))).collect();
        for (i, ind) in rules.indicators.iter().enumerate() {
            match by_id.remove(&ind.id) {
                Some((fp, mut st)) if same_layout && fp == p.state.fingerprints[i].1 => {
                    // An alarm that scans the indicator for longer (or no longer) needs another
                    // ring length, and one that reads it in units shorter than its window (or no
                    // longer) another width: the newest entries carry over with their window
                    // values, and unit counts the ring did not keep are worked out from them.
                    let want = &p.state.indicators[i].hist;
                    if st.hist.len != want.len || st.hist.width != want.width {
                        let added = want.width > st.hist.width;
                        st.hist = st.hist.reshaped(want.len, want.width);
                        if let (true, Some(u), Some(last)) = (added, p.units[i], old.last_eval) {
                            st.bins.index();
                            backfill_units(&mut st.hist, &st.bins, &p.layouts[i], u, ind.hop.0, last);
                        }
                    }
                    if st.hist.same_shape(want) {
                        p.state.indicators[i] = st;
                        carried.kept.push(ind.id.clone());
                    } else {
                        carried.fresh.push(ind.id.clone());
                    }
                }
                _ => carried.fresh.push(ind.id.clone()),
            }
        }
        carried.dropped = by_id.into_keys().collect();
        carried.dropped.sort();
        if same_layout && old.domains == p.state.domains {
            p.state.grades = old.grades;
            carried.grades_kept = true;
        }
        if same_layout && old.written.len() == p.state.written.len() {
            p.state.written = old.written;
        }
        if same_layout && old.evidence.len() == p.state.evidence.len() && p.rules.alarm.is_some() {
            p.state.evidence = old.evidence;
            // Each unchanged cut keeps its last evidence, so a daily cut read at the next hour
            // does not drop an open episode.
            for c in 0..p.state.cut_ids.len() {
                let id = &p.state.cut_ids[c];
                if let Some(o) = old.cut_ids.iter().position(|x| x == id)
                    && carried.kept.contains(&id.0)
                    && old.cuts.get(o).is_some_and(|x| x.len() == p.state.cuts[c].len())
                {
                    p.state.cuts[c].clone_from(&old.cuts[o]);
                    p.state.factors[c] = old.factors[o];
                }
            }
            p.alarm.factors.clone_from(&p.state.factors);
        } else {
            carried.evidence_dropped = old.evidence.iter().filter(|g| g.level.is_some()).count();
        }
        // The tables carry over only where the source's horizon and capacity are unchanged.
        if same_layout && old.seen.len() == p.state.seen.len() {
            for (new, old) in p.state.seen.iter_mut().zip(old.seen) {
                if old.same_settings(new) {
                    *new = old;
                }
            }
        }
        p.state.watermark = old.watermark;
        p.state.last_eval = old.last_eval;
        p.state.first_ts = old.first_ts;
        p.state.counters = old.counters;
        // The quiet tracking was built for empty rings; the rings carried over hold entries
        // whose changes it does not know.
        p.quiet = quiet_series(&rules, &p.state, p.scored.len());
        carried
    }

    /// Swaps in new rules, carrying over what [`Pipeline::adopt`] can.
    /// A scale-out task keeps holding and scoring only its own regions under the new rules.
    pub fn reload(&mut self, rules: Arc<RuleSet>) -> Carried {
        self.settle();
        let fresh = Pipeline::scoped(rules, self.options, self.scope.as_deref());
        let old = std::mem::replace(self, fresh);
        self.carry(old.state)
    }

    pub(crate) fn from_state(rules: Arc<RuleSet>, options: Options, scope: Option<&[bool]>, state: State) -> Pipeline {
        let layouts = rules.indicators.iter().map(|i| Layout::for_indicator(&rules, i)).collect();
        Self::with_state(rules, options, layouts, state, scope.map(<[bool]>::to_vec))
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }

    pub fn watermark(&self) -> Option<Ts> {
        self.state.watermark
    }

    /// The earliest event time seen before time started (the evaluation anchor).
    pub fn first_event(&self) -> Option<Ts> {
        self.state.first_ts
    }

    /// The UTC instant of the last boundary evaluated.
    pub fn last_evaluated(&self) -> Option<Ts> {
        self.state.last_eval.map(|b| self.rules.zone.utc(b))
    }

    /// Routes one decoded event into the bins of every indicator of its source that it passes,
    /// for its region and each ancestor.
    pub fn ingest(&mut self, ev: &Event) -> Ingest {
        let s = ev.source as usize;
        let local = self.rules.zone.local(ev.ts);
        let mut outcome = Ingest::Accepted;
        if let Some(wm) = self.state.watermark {
            if ev.ts < wm - self.lateness[s] {
                self.state.counters.late += 1;
                return Ingest::Late;
            }
            if ev.ts >= wm + AHEAD_HOURS * HOUR {
                self.state.counters.too_early += 1;
                return Ingest::TooEarly;
            }
            if self.state.last_eval.is_some_and(|b| local < b) {
                outcome = Ingest::AcceptedLate;
            }
        }
        let dedup = self.rules.sources[s].dedup_horizon.0 > 0;
        if dedup && self.state.seen[s].contains(ev.id_hash, self.state.watermark) {
            self.state.counters.duplicates += 1;
            return Ingest::Duplicate;
        }
        let cx = EvalCtx::at_local(ev, local);
        if self.sums[s] && self.overflows(&cx, local, &self.chains[ev.region as usize]) {
            self.state.counters.overflow += 1;
            return Ingest::Overflow;
        }
        if dedup && !self.state.seen[s].insert(ev.id_hash, ev.ts, self.state.watermark) {
            self.state.counters.dedup_full += 1;
        }
        self.saw(ev.ts);
        let chain = &self.chains[ev.region as usize];
        for tap in &self.taps[s] {
            let i = tap.ind as usize;
            let ind = &self.rules.indicators[i];
            let pred = match tap.leg {
                Leg::Primary => &ind.filter,
                Leg::Compare => match &ind.compare {
                    Some(c) => &c.filter,
                    None => continue,
                },
            };
            if !pred.matches(&cx) {
                continue;
            }
            let layout = &self.layouts[i];
            let bin = layout.bin_of(local);
            let evals = self.state.indicators[i].hist.evals;
            let bins = &mut self.state.indicators[i].bins;
            for &r in chain {
                if let Ok(lanes) = bins.slot_mut(r as usize, bin) {
                    measure::update(ind, layout, tap.leg, &cx, lanes);
                    if let Some(q) = &mut self.quiet[i] {
                        q.wake(r as usize, evals);
                    }
                    if let Some(d) = &mut self.deferred[i] {
                        d.touch(r as usize);
                    }
                    if let Some(run) = &mut self.runs[i] {
                        run.apply(ind, layout, tap.leg, &cx, r as usize, bin);
                    }
                }
            }
        }
        match outcome {
            Ingest::AcceptedLate => self.state.counters.accepted_late += 1,
            _ => self.state.counters.accepted += 1,
        }
        outcome
    }

    /// Whether the event would take an attribute sum beyond its bound in any bin it counts for
    /// (see [`measure::would_overflow`]).
    fn overflows(&self, cx: &EvalCtx<'_>, local: i64, chain: &[u32]) -> bool {
        self.taps[cx.event.source as usize].iter().any(|tap| {
            let ind = &self.rules.indicators[tap.ind as usize];
            if tap.leg != Leg::Primary || !measure::sums_values(ind) || !ind.filter.matches(cx) {
                return false;
            }
            let layout = &self.layouts[tap.ind as usize];
            let bin = layout.bin_of(local);
            let bins = &self.state.indicators[tap.ind as usize].bins;
            chain.iter().any(|&r| measure::would_overflow(ind, layout, bins.slot(r as usize, bin), cx))
        })
    }

    /// Notes an event time before time starts: evaluation is anchored on the earliest event, so
    /// drivers call this for an event before the watermark it moves is applied.
    pub fn saw(&mut self, ts: Ts) {
        if self.state.last_eval.is_none() && self.state.first_ts.is_none_or(|f| ts < f) {
            self.state.first_ts = Some(ts);
        }
    }

    /// Moves the watermark to `wm` (never backwards) and evaluates every local boundary of
    /// the cadence it passed, in order.
    pub fn advance(&mut self, wm: Ts, out: &mut dyn Output) {
        if self.state.watermark.is_some_and(|w| wm <= w) {
            return;
        }
        self.state.watermark = Some(wm);
        let every = self.rules.evaluate_every.0;
        let last = self.last_boundary(wm);
        self.state.last_eval = Some(last);
        // Boundaries are local (hours, or local midnights); a watermark passes one when no
        // event still to come can fall before it (see `Zone::local_floor`).
        let reach = self.rules.zone.local_floor(wm);
        let mut b = last + every;
        while b <= reach {
            self.evaluate(b, out);
            self.state.last_eval = Some(b);
            b += every;
        }
    }

    /// The last evaluated boundary, or before the first evaluation the boundary at or before
    /// the earliest event seen: the same schedule whatever order the inputs delivered in.
    fn last_boundary(&self, wm: Ts) -> i64 {
        let every = self.rules.evaluate_every.0;
        self.state
            .last_eval
            .unwrap_or_else(|| self.rules.zone.local(self.state.first_ts.unwrap_or(wm)).div_euclid(every) * every)
    }

    /// The latest result of one indicator for one region (the value unsuppressed) and the
    /// support behind it; grey for a region whose level is not scored.
    pub fn latest(&self, indicator: usize, region: usize) -> (Scored, u64) {
        let Some(d) = self.slot_of.get(region).copied().flatten() else {
            return (Scored { value: None, expected: None, score: None }, 0);
        };
        let l = self.latest_of(indicator, d as usize);
        (Scored { value: l.value, expected: l.expected, score: l.score }, l.support)
    }

    /// Indicator `i`'s latest result for scored slot `d`, computed if stale (see
    /// [`crate::deferred`]), without keeping it.
    fn latest_of(&self, i: usize, d: usize) -> Latest {
        let st = &self.state.indicators[i];
        let pending = match (&self.deferred[i], &self.quiet[i]) {
            (Some(x), Some(q)) => x.pending(d, q),
            _ => None,
        };
        match pending {
            Some((value, support)) => {
                let mut det = st.det[d].clone();
                score_latest(&self.rules.indicators[i], &st.hist, &mut det, d, value, support, &mut Vec::new())
            }
            None => st.latest[d],
        }
    }

    /// Evaluates local boundary `b`.
    fn evaluate(&mut self, b: i64, out: &mut dyn Output) {
        let rules = Arc::clone(&self.rules);
        let regions = self.scored.len();
        let tally = crate::series::evaluate_due(
            &rules,
            b,
            regions,
            &self.unread,
            &self.layouts,
            &mut self.state.indicators,
            &mut self.runs,
            &self.units,
            &mut self.deferred,
            &mut self.quiet,
            &mut self.scratch,
        );
        self.kept += tally.kept;
        self.slept += tally.slept;
        self.skipped += tally.skipped;
        self.state.counters.evaluations += tally.due * regions as u64;
        // The alarm's cuts are scanned once every ring has its window: a cut's exposure may be
        // another indicator's count in the rest of the city (`AlarmCut::share`).
        if let Some(a) = &rules.alarm {
            let hists: Vec<&History> = a.cuts.iter().map(|c| &self.state.indicators[c.indicator].hist).collect();
            for (c, cut) in a.cuts.iter().enumerate() {
                if b.rem_euclid(rules.indicators[cut.indicator].hop.0) != 0 {
                    continue;
                }
                let out = &mut self.state.cuts[c];
                alarm::scan_cut(&rules, c, &hists, b, &self.tops, &self.scanned, &mut self.alarm, out);
                self.state.factors[c] = self.alarm.factors[c];
            }
        }
        // A period that lies wholly inside the time skipped when clocks go forward has no
        // length (its start and end pass at the same instant): its indicators keep their history
        // in step, but it publishes nothing, so no two records share a window end and the
        // records published cover real time only.
        let period = Period::at(&rules, b);
        if period.is_empty() {
            return;
        }
        let publish = self.options.score_every.is_none_or(|e| b.rem_euclid(e) == 0);
        for d in 0..regions {
            self.region_results(&rules, d, &period, publish, out);
        }
        if let Some(a) = &rules.alarm
            && a.cuts.iter().any(|c| b.rem_euclid(rules.indicators[c.indicator].hop.0) == 0)
        {
            self.alarm_results(&rules, b, &period, out);
        }
    }

    /// Evidence alarms at boundary `b` (see [`crate::alarm`]): linking, grading, records.
    fn alarm_results(&mut self, rules: &RuleSet, b: i64, p: &Period, out: &mut dyn Output) {
        let Some(a) = &rules.alarm else { return };
        // A region level may have thresholds of its own (`region_level_thresholds`).
        let lowest = |d: usize| a.lowest_threshold(rules.regions.levels[self.scored[d] as usize]);
        let n = self.scored.len();
        let scanned = |d: usize| self.scanned[d];
        // Each scanned slot's strongest cut; the others are never read (only scanned slots
        // alarm or are linked as children), and with every grid cell scored but none scanned,
        // going through every cut of every slot at every boundary was a tenth of the work.
        let mut raw = std::mem::take(&mut self.alarm.raw);
        raw.clear();
        raw.extend((0..n).map(|d| match scanned(d) {
            true => self.state.cuts.iter().map(|c| c[d].stat).fold(0.0, f64::max),
            false => 0.0,
        }));
        let hists: Vec<&History> = a.cuts.iter().map(|c| &self.state.indicators[c.indicator].hist).collect();
        let mut samples = std::mem::take(&mut self.alarm.samples);
        samples.clear();
        let mut alarmed = Vec::new();
        for d in 0..n {
            if !scanned(d) {
                continue;
            }
            alarmed.clear();
            // Only scanned children can take their excess with them: a level that does not
            // alert (never scanned) would leave the surge with no alarm anywhere. One that
            // alarms (or whose episode is open, its level held while the evidence dips) does.
            alarmed.extend(self.children[d].iter().copied().filter(|&c| scanned(c as usize)).map(|c| {
                let open = self.state.evidence[c as usize].level.is_some();
                (c, raw[c as usize] >= lowest(c as usize) || open)
            }));
            let v = alarm::verdict(
                rules,
                (d, &self.scored),
                &alarmed,
                &hists,
                &self.state.cuts,
                b,
                &self.tops,
                &mut self.alarm,
            );
            let r = self.scored[d] as usize;
            samples.push(RegionEvidence {
                region: r as u32,
                stat: v.stat,
                indicator: v.cut.map(|c| a.cuts[c].indicator),
            });
            let g = &mut self.state.evidence[d];
            let tr = match a.hold {
                vigil_rules::Hold::Day => g.hold_to_day_end(p.end, v.level, b.rem_euclid(DAY) == 0),
                vigil_rules::Hold::Evaluations(n) => g.hold(p.end, v.level, n),
            };
            if let Some(tr) = tr {
                self.state.counters.alerts += 1;
                out.alert(alarm::record(rules, (r, d), b, p, &v, tr, &self.state.cuts, &self.scored));
            }
        }
        out.evidence(p, &samples);
        self.alarm.samples = samples;
        self.alarm.raw = raw;
    }

    /// Roll-up, grading and (with `publish`) score records of scored region `d`.
    fn region_results(&mut self, rules: &RuleSet, d: usize, p: &Period, publish: bool, out: &mut dyn Output) {
        let r = self.scored[d] as usize;
        let level = rules.regions.levels[r] as usize;
        let emits = publish && self.options.scores != ScoreDetail::None && self.options.score_levels.contains(level);
        // A region that neither alerts nor publishes scores (a grid cell scored for its
        // indicators' history, with its level's records not asked for) needs no roll-up.
        if !rules.alert_levels[level] && !emits {
            return;
        }
        for (i, st) in self.state.indicators.iter().enumerate() {
            self.ind_scores[i] = st.latest[d].score;
        }
        rollup(rules, &self.ind_scores, &mut self.roll);
        if rules.alert_levels[level] {
            self.grade(rules, r, d, p, out);
        }
        if emits {
            let grade = self.state.grades[d][0].level;
            let graded = self.state.grades[d].iter().any(|g| g.level.is_some());
            let skip = match self.options.score_filter {
                ScoreFilter::All => false,
                ScoreFilter::Nonzero => !graded && self.roll.is_quiet(),
                ScoreFilter::Graded => !graded,
                // Decided on the record's content, below.
                ScoreFilter::Changed => false,
            };
            if skip {
                return;
            }
            let full = self.options.scores == ScoreDetail::Full;
            // An emitting region's results are never stale (`crate::deferred`).
            let indicators = &self.state.indicators;
            let latest = |i: usize| indicators[i].latest[d];
            let record = explain::score_record(
                rules,
                r,
                p,
                &self.roll,
                grade,
                full.then_some(&latest as &dyn Fn(usize) -> Latest),
            );
            if self.options.score_filter == ScoreFilter::Changed {
                let digest = explain::content_digest(&record);
                if self.state.written[d] == digest {
                    return;
                }
                self.state.written[d] = digest;
            }
            out.score(record);
        }
    }

    fn grade(&mut self, rules: &RuleSet, r: usize, d: usize, p: &Period, out: &mut dyn Output) {
        let grading = &rules.grading;
        // Domains first: their grades feed the composite's floor. Each floor keeps what set it
        // (the rule and its trigger), which the record carries when the floor sets the level.
        for (di, domain) in rules.domains.iter().enumerate() {
            let mut floor: Option<FloorWhy> = None;
            for o in rules
                .overrides
                .iter()
                .filter(|o| o.when == OverrideWhen::HardIndicator && o.target == OverrideTarget::Domain)
            {
                let trigger = domain
                    .categories
                    .iter()
                    .flat_map(|&c| &rules.categories[c].indicators)
                    .filter(|&&i| rules.indicators[i].hard)
                    .filter_map(|&i| Some((self.ind_scores[i].and_then(|s| grading.indicator_band(s))?, i)))
                    .filter(|(band, _)| *band >= o.at_least)
                    .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
                if let Some((band, i)) = trigger
                    && floor.is_none_or(|f| o.floor > f.level)
                {
                    floor = Some(FloorWhy { rule: o.when, trigger: i, trigger_level: band, level: o.floor });
                }
            }
            self.step_scope(rules, (r, d), p, Some(di), floor, out);
        }
        let mut floor: Option<FloorWhy> = None;
        for o in rules.overrides.iter().filter(|o| o.when == OverrideWhen::AnyDomain) {
            // The highest graded domain at or above the rule's level (the first in rule order
            // among equals).
            let trigger = self.state.grades[d][1..]
                .iter()
                .enumerate()
                .filter_map(|(di, g)| Some((g.level?, di)))
                .filter(|(l, _)| *l >= o.at_least)
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            if let Some((level, di)) = trigger
                && floor.is_none_or(|f| o.floor > f.level)
            {
                floor = Some(FloorWhy { rule: o.when, trigger: di, trigger_level: level, level: o.floor });
            }
        }
        self.step_scope(rules, (r, d), p, None, floor, out);
    }

    /// Grades one scope of scored region `d` (a domain, or the composite) under `floor`, and
    /// records the transition, with the floor where it set the level.
    fn step_scope(
        &mut self,
        rules: &RuleSet,
        (r, d): (usize, usize),
        p: &Period,
        domain: Option<usize>,
        floor: Option<FloorWhy>,
        out: &mut dyn Output,
    ) {
        let (k, score, scope) = match domain {
            Some(di) => (1 + di, self.roll.domains[di], rules.domains[di].id.as_str()),
            None => (0, self.roll.composite, "composite"),
        };
        let Some(tr) = self.state.grades[d][k].step(&rules.grading, p.end, score, floor.map(|f| f.level)) else {
            return;
        };
        self.state.counters.alerts += 1;
        let why = floor.filter(|_| tr.reason == vigil_alert::Reason::Floor).map(|f| f.record(rules));
        out.alert(AlertRecord {
            floor: why,
            ..explain::alert_record(rules, (r, d), p, scope, domain, score, tr, &self.roll, &self.state.indicators)
        });
    }

    /// The watermark at which `advance(wm)` would evaluate its first boundary, if it would
    /// evaluate any: drivers that time each evaluation step through them one at a time.
    pub fn next_evaluation(&self, wm: Ts) -> Option<Ts> {
        let next = self.last_boundary(wm) + self.rules.evaluate_every.0;
        let zone = &self.rules.zone;
        (next <= zone.local_floor(wm) && self.state.watermark.is_none_or(|w| w < wm)).then(|| zone.utc(next).min(wm))
    }

    /// Where one region stands after the last evaluation: its full score record (every
    /// indicator's value, expected value and score) and its current grade per scope. `None`
    /// for an unknown code, a region whose level is not scored, or before the first evaluation.
    pub fn region_view(&self, code: &str) -> Option<RegionView> {
        let rules = &self.rules;
        let r = rules.regions.lookup(code)? as usize;
        let d = self.slot_of.get(r).copied().flatten()? as usize;
        let b = self.state.last_eval.filter(|_| self.state.counters.evaluations > 0)?;
        let latest: Vec<Latest> = (0..rules.indicators.len()).map(|i| self.latest_of(i, d)).collect();
        let scores: Vec<Option<f64>> = latest.iter().map(|l| l.score).collect();
        let mut roll = Rollup::default();
        rollup(rules, &scores, &mut roll);
        let grade = self.state.grades[d][0].level;
        let of = |i: usize| latest[i];
        let record = explain::score_record(rules, r, &Period::at(rules, b), &roll, grade, Some(&of));
        let evidence = rules.alarm.as_ref().map(|_| ("evidence", &self.state.evidence[d]));
        let grades = std::iter::once("composite")
            .chain(rules.domains.iter().map(|x| x.id.as_str()))
            .zip(&self.state.grades[d])
            .chain(evidence)
            .map(|(scope, g)| (scope.to_string(), g.level))
            .collect();
        Some(RegionView {
            region_name: rules.regions.names[r].clone(),
            alerted: rules.raises_alerts(r),
            score: record,
            grades,
        })
    }

    /// Every open alert episode (a region and scope at blue or above, evidence alarms included),
    /// in region order.
    pub fn active_alerts(&self) -> Vec<ActiveAlert> {
        let rules = &self.rules;
        let mut out = Vec::new();
        let now = self.state.last_eval.map(|b| rules.zone.utc(b));
        for (d, &r) in self.scored.iter().enumerate() {
            let r = r as usize;
            let scopes = std::iter::once("composite").chain(rules.domains.iter().map(|x| x.id.as_str()));
            let grades = self.state.grades[d].iter();
            // The evidence alarm's episode, where the rules have one.
            let evidence = rules.alarm.as_ref().map(|_| ("evidence", &self.state.evidence[d]));
            for (scope, g) in scopes.zip(grades).chain(evidence) {
                if let (Some(level), Some(start)) = (g.level, g.episode_start) {
                    let code = &rules.regions.codes[r];
                    let since = g.level_since.unwrap_or(start);
                    let due = rules.grading.spec(level).deadline.map(|d| since + d.0);
                    out.push(ActiveAlert {
                        alert_id: format!("{code}:{scope}:{}", vigil_model::time::format_utc(start)),
                        seq: g.seq,
                        region: code.clone(),
                        region_name: rules.regions.names[r].clone(),
                        region_level: rules.regions.level_name(r as u32).to_string(),
                        scope: scope.to_string(),
                        level,
                        since: vigil_model::time::format_utc(since),
                        deadline: due.map(vigil_model::time::format_utc),
                        overdue: due.zip(now).is_some_and(|(due, now)| now > due),
                    });
                }
            }
        }
        out
    }

    /// Bytes of scoring state per (region, indicator) series, averaged and at most.
    pub fn state_bytes_per_series(&self) -> (f64, usize) {
        let mut total = 0usize;
        let mut max = 0usize;
        for st in &self.state.indicators {
            let b = st.bins.bytes_per_region()
                + st.hist.bytes_per_region()
                + std::mem::size_of::<DetectorState>()
                + std::mem::size_of::<Latest>();
            total += b;
            max = max.max(b);
        }
        (total as f64 / self.state.indicators.len().max(1) as f64, max)
    }
}

/// The bytes of scoring state `rules` need: for every scored region, each indicator's bin ring,
/// history ring, detector and latest result, and the grades. Known before any state is built, so
/// a rule set too large for its budget is refused instead of exhausting memory.
pub fn state_bytes(rules: &RuleSet) -> u64 {
    let regions = scope::scored_in(rules, None).len() as u64;
    let per_region: u64 = rules
        .indicators
        .iter()
        .map(|ind| {
            let l = Layout::for_indicator(rules, ind);
            let h = history_needs(rules, ind);
            let bins = l.ring as u64 * (8 + 8 * l.lanes as u64);
            let hist = h.len.max(1) as u64 * h.width as u64 * 4;
            bins + hist + (std::mem::size_of::<DetectorState>() + std::mem::size_of::<Latest>()) as u64
        })
        .fold(0u64, u64::saturating_add)
        .saturating_add((2 + rules.domains.len() as u64) * std::mem::size_of::<GradeState>() as u64)
        .saturating_add(
            rules.alarm.as_ref().map_or(0, |a| a.cuts.len() as u64) * std::mem::size_of::<vigil_scan::Cut>() as u64,
        );
    // De-duplication tables: two buffers of 16-byte slots per source, rounded up as `Seen` does.
    let dedup: u64 =
        rules.sources.iter().map(|s| 32 * (s.dedup_capacity.clamp(16, 1 << 24).next_power_of_two() as u64)).sum();
    regions.saturating_mul(per_region).saturating_add(dedup)
}

/// Refuses a rule set whose state would exceed its `max_state_mib`, saying by how much.
pub fn check_state(rules: &RuleSet) -> Result<(), String> {
    let need = state_bytes(rules);
    if need > rules.max_state_bytes {
        return Err(format!(
            "this rule set needs {} MiB of state; the limit is {} MiB (shorten windows or baselines, score fewer levels, or raise max_state_mib in ruleset.toml)",
            need.div_ceil(1 << 20),
            rules.max_state_bytes >> 20
        ));
    }
    Ok(())
}

/// Per alarm cut: (indicator id, scan windows, baseline windows).
fn cut_ids(rules: &RuleSet) -> Vec<(String, usize, usize)> {
    rules.alarm.as_ref().map_or_else(Vec::new, |a| {
        a.cuts.iter().map(|c| (rules.indicators[c.indicator].id.clone(), c.windows, c.baseline)).collect()
    })
}

/// The result of `region`'s latest evaluation of `ind`, which was given `value` and `support`:
/// the history ring has moved on to the next evaluation's slot since, so it is read as of one
/// evaluation back (see [`crate::deferred`]).
fn score_latest(
    ind: &vigil_rules::Indicator,
    hist: &History,
    det: &mut DetectorState,
    region: usize,
    value: Option<f64>,
    support: u64,
    floats: &mut Vec<f64>,
) -> Latest {
    let s = normalise::score_as_of(ind, hist, hist.evals.saturating_sub(1), region, value, support, det, floats);
    Latest { value: s.value, expected: s.expected, score: s.score, support }
}

/// The history ring an indicator needs: its normalisation's, or where it is scanned for alarms
/// the scan's and baseline's units, whichever is longer; a cut scanned in units shorter than
/// the window keeps each hop's unit count in one more float of every entry.
fn history_needs(rules: &RuleSet, ind: &vigil_rules::Indicator) -> normalise::HistoryNeeds {
    let mut h = normalise::history_needs(ind);
    let cut = rules.alarm.as_ref().and_then(|a| a.cuts.iter().find(|c| rules.indicators[c.indicator].id == ind.id));
    if let Some(c) = cut {
        h.len = h.len.max((c.windows + c.baseline + 1) * c.hops_per_unit(ind.hop.0) + 1);
        if c.unit != ind.window.0 {
            h.width += 1;
        }
    }
    h
}

/// Where an indicator's unit counts are kept and read from (see [`history_needs`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnitCount {
    /// The float of each history entry that holds the count.
    pub at: usize,
    /// The unit, in bins of the indicator.
    pub bins: i64,
}

/// Per indicator: whether the alarm scans it in units shorter than its window, and where.
fn unit_counts(rules: &RuleSet, layouts: &[Layout]) -> Vec<Option<UnitCount>> {
    rules
        .indicators
        .iter()
        .zip(layouts)
        .map(|(ind, layout)| {
            let a = rules.alarm.as_ref()?;
            let c = a.cuts.iter().find(|c| rules.indicators[c.indicator].id == ind.id && c.unit != ind.window.0)?;
            Some(UnitCount { at: normalise::history_needs(ind).width, bins: c.unit / layout.bin })
        })
        .collect()
}

/// Unit counts for a history ring that kept none (an alarm now reads the indicator in units
/// shorter than its window, after a reload or an upgrade), so that its cut need not wait half a
/// baseline for them. Only where the hop is the unit (a 7-day count evaluated daily): the units
/// of the last window are read from the bins, and each earlier one from the window values, as a
/// window less the one a unit later gives the unit that left it: d(B − window) = d(B) − v(B) +
/// v(B − unit). `last` is the last boundary evaluated (local). A count that comes out negative
/// (events counted after an evaluation, or a value the ring lost) stays unknown, as does every
/// unit of a region whose bins no longer hold it.
fn backfill_units(hist: &mut History, bins: &vigil_window::Bins, layout: &Layout, u: UnitCount, hop: i64, last: i64) {
    let unit = u.bins * layout.bin;
    if hop != unit || u.bins <= 0 || layout.window_bins % u.bins != 0 {
        return;
    }
    let k = (layout.window_bins / u.bins) as usize;
    let newest = last - last.rem_euclid(hop);
    let filled = hist.filled();
    let regions = hist.regions();
    for r in 0..regions {
        for lag in 1..=filled {
            let d = if lag <= k {
                let (_, end) = layout.window_of(newest - (lag as i64 - 1) * unit);
                let first = end - u.bins + 1;
                if first <= bins.newest(r).saturating_sub(bins.ring as i64) {
                    continue;
                }
                let mut n = 0i64;
                bins.each_in(r, first, end, |s| n = n.saturating_add(s[0]));
                n as f64
            } else {
                let (Some(d), Some(v), Some(later)) =
                    (hist.value_at(r, lag - k, u.at), hist.value(r, lag - k), hist.value(r, lag - k + 1))
                else {
                    continue;
                };
                d - v + later
            };
            if d >= 0.0 {
                hist.put_at(r, lag, u.at, d as f32);
            }
        }
    }
}

/// Fresh quiet-series tracking for every indicator (see `Pipeline::quiet`).
fn quiet_series(rules: &RuleSet, state: &State, regions: usize) -> Vec<Option<Quiet>> {
    rules
        .indicators
        .iter()
        .zip(&state.indicators)
        .map(|(ind, st)| Quiet::new(ind, st.hist.len, regions, st.hist.evals))
        .collect()
}

/// Per scored slot, whether the alarm scans it (see `Pipeline::scanned`).
fn scanned_slots(rules: &RuleSet, scored: &[u32]) -> Vec<bool> {
    scored.iter().map(|&r| rules.alarm.is_some() && rules.raises_alerts(r as usize)).collect()
}
