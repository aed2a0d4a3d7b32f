//! Every metric vigil exports, defined in one place. Names follow `vigil_<noun>_<unit>[_total]`;
//! label values are bounded (sources, reason codes, levels, lifecycle events, assigned
//! partitions, regions at city and district level), never a region below the district level
//! and never anything from an event's payload.

use std::sync::atomic::AtomicU64;
use vigil_model::record::RejectCode;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub source: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub level: String,
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabel {
    pub level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IndexLabels {
    pub region: String,
    pub region_name: String,
    /// "composite" or a domain id.
    pub scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RulesLabels {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    pub version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Handles of the per-source event counters, taken once, so that counting a consumed, late,
/// duplicate or refused event increments an atomic instead of building its label strings and
/// looking the series up: the per-event paths allocate nothing. A refusal reason's handle is
/// taken at its first use, so that only the series `Metrics::init_series` creates are shown
/// before any event needs them.
#[derive(Debug)]
pub struct EventCounters {
    sources: Vec<String>,
    consumed: Vec<Counter>,
    late: Vec<Counter>,
    duplicate: Vec<Counter>,
    rejected: Vec<Vec<Option<Counter>>>,
    /// The family refusals are counted in (a clone shares its series).
    rejected_family: Family<RejectLabels, Counter>,
}

/// Refusal reasons: one more than the largest code (they are numbered from 0).
const REJECT_CODES: usize = RejectCode::TimestampInFuture as usize + 1;

impl EventCounters {
    pub fn new(metrics: &Metrics, sources: &[String]) -> EventCounters {
        let of = |family: &Family<SourceLabel, Counter>| {
            sources.iter().map(|s| family.get_or_create(&SourceLabel { source: s.clone() }).clone()).collect()
        };
        EventCounters {
            sources: sources.to_vec(),
            consumed: of(&metrics.events_consumed),
            late: of(&metrics.events_late),
            duplicate: of(&metrics.events_duplicate),
            rejected: vec![vec![None; REJECT_CODES]; sources.len()],
            rejected_family: metrics.events_rejected.clone(),
        }
    }

    pub fn consumed(&self, source: usize) {
        self.consumed[source].inc();
    }

    pub fn late(&self, source: usize) {
        self.late[source].inc();
    }

    pub fn duplicate(&self, source: usize) {
        self.duplicate[source].inc();
    }

    pub fn rejected(&mut self, source: usize, code: RejectCode) {
        let handle = self.rejected[source][code as usize].get_or_insert_with(|| {
            let labels = RejectLabels { source: self.sources[source].clone(), reason: code.as_str().into() };
            self.rejected_family.get_or_create(&labels).clone()
        });
        handle.inc();
    }
}

/// The engine's metrics. Cloning shares the underlying series.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub events_consumed: Family<SourceLabel, Counter>,
    pub events_rejected: Family<RejectLabels, Counter>,
    pub events_late: Family<SourceLabel, Counter>,
    pub events_duplicate: Family<SourceLabel, Counter>,
    /// Messages between the engine's position and the broker's high watermark.
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// Event time of each source's watermark (its slowest partition), seconds since the epoch.
    pub watermark: Family<SourceLabel, Gauge>,
    /// Wall clock minus each source's watermark.
    pub watermark_delay: Family<SourceLabel, FloatGauge>,
    /// Wall time of one evaluation (one hour boundary: every indicator, region and alert).
    pub evaluation_duration: Histogram,
    pub evaluations: Counter,
    /// Of those, the ones that kept the previous result, and of those the ones of sleeping
    /// series (docs/methodology.md §2.2).
    pub evaluations_kept: Counter,
    pub evaluations_asleep: Counter,
    /// Scores of regions nothing reads, replaced before being read (docs/methodology.md §2.2).
    pub unread_scores_skipped: Counter,
    pub alerts: Family<AlertLabels, Counter>,
    pub alerts_active: Family<LevelLabel, Gauge>,
    pub alerts_overdue: Family<LevelLabel, Gauge>,
    pub risk_index: Family<IndexLabels, FloatGauge>,
    pub rule_reloads: Family<ResultLabel, Counter>,
    /// Posts to Alertmanager (`--alertmanager`), by result (ok, failed).
    pub alertmanager_posts: Family<ResultLabel, Counter>,
    pub rules_info: Family<RulesLabels, Gauge>,
    pub checkpoint_duration: Histogram,
    pub checkpoint_size: Gauge,
    pub checkpoint_last_success: FloatGauge,
    pub build_info: Family<VersionLabel, Gauge>,
    /// Scale-out: the tasks this instance runs, and the hours the city roll-up waits on.
    pub tasks: Gauge,
    pub rollup_pending: Gauge,
    /// Scale-out: each task's watermark per source, by (source index, task); the source's
    /// watermark gauges show the slowest task.
    pub task_watermarks: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<(usize, i32), i64>>>,
}

/// Bucket bounds (seconds) for evaluations and checkpoints: from half a millisecond to 10 s.
const DURATION_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Default for Metrics {
    fn default() -> Self {
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info.get_or_create(&VersionLabel { version: env!("CARGO_PKG_VERSION").into() }).set(1);
        Metrics {
            events_consumed: Family::default(),
            events_rejected: Family::default(),
            events_late: Family::default(),
            events_duplicate: Family::default(),
            consumer_lag: Family::default(),
            watermark: Family::default(),
            watermark_delay: Family::default(),
            evaluation_duration: Histogram::new(DURATION_BUCKETS),
            evaluations: Counter::default(),
            evaluations_kept: Counter::default(),
            evaluations_asleep: Counter::default(),
            unread_scores_skipped: Counter::default(),
            alerts: Family::default(),
            alerts_active: Family::default(),
            alerts_overdue: Family::default(),
            risk_index: Family::default(),
            rule_reloads: Family::default(),
            alertmanager_posts: Family::default(),
            rules_info: Family::default(),
            checkpoint_duration: Histogram::new(DURATION_BUCKETS),
            checkpoint_size: Gauge::default(),
            checkpoint_last_success: FloatGauge::default(),
            build_info,
            tasks: Gauge::default(),
            rollup_pending: Gauge::default(),
            task_watermarks: Default::default(),
        }
    }
}

impl Metrics {
    /// Creates every series whose labels are known in advance at zero, so that dashboards and
    /// `rate()` see them before the first increment: per source, every decode reason; reload
    /// results.
    pub fn init_series(&self, sources: &[String]) {
        for source in sources {
            let s = SourceLabel { source: source.clone() };
            let _ = self.events_consumed.get_or_create(&s);
            let _ = self.events_late.get_or_create(&s);
            let _ = self.events_duplicate.get_or_create(&s);
            for code in vigil_model::record::RejectCode::DECODE.into_iter().chain([RejectCode::WrongPartition]) {
                let _ = self
                    .events_rejected
                    .get_or_create(&RejectLabels { source: source.clone(), reason: code.as_str().into() });
            }
        }
        for result in ["ok", "rejected"] {
            let _ = self.rule_reloads.get_or_create(&ResultLabel { result: result.into() });
        }
    }

    /// Marks `version` of the rules named `name` as the one in force.
    pub fn set_rules(&self, name: &str, version: &str) {
        self.rules_info.clear();
        self.rules_info.get_or_create(&RulesLabels { name: name.into(), version: version.into() }).set(1);
    }

    /// Registers every metric; the registry adds the `_total` suffix to counters.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register("vigil_events_consumed", "Events consumed, by source", self.events_consumed.clone());
        r.register(
            "vigil_events_rejected",
            "Events rejected at decode (sent to the dead-letter topic), by source and reason",
            self.events_rejected.clone(),
        );
        r.register(
            "vigil_events_late",
            "Events later than the allowed lateness (sent to the late topic), by source",
            self.events_late.clone(),
        );
        r.register(
            "vigil_events_duplicate",
            "Resent events counted once (same producer id within the source's dedup_horizon), by source",
            self.events_duplicate.clone(),
        );
        r.register(
            "vigil_consumer_lag_messages",
            "Messages between the engine's position and the broker's high watermark, by partition",
            self.consumer_lag.clone(),
        );
        r.register(
            "vigil_watermark_timestamp_seconds",
            "Event time of each source's watermark (its slowest partition), seconds since the epoch",
            self.watermark.clone(),
        );
        r.register(
            "vigil_watermark_delay_seconds",
            "Wall clock minus each source's watermark",
            self.watermark_delay.clone(),
        );
        r.register(
            "vigil_evaluation_duration_seconds",
            "Wall time of one evaluation (one hour boundary: every indicator, region and alert)",
            self.evaluation_duration.clone(),
        );
        r.register(
            "vigil_indicator_evaluations",
            "Indicator evaluations (one per region and indicator at each hop)",
            self.evaluations.clone(),
        );
        r.register(
            "vigil_indicator_evaluations_kept",
            "Of the indicator evaluations, those that kept the previous result: nothing the score reads had changed",
            self.evaluations_kept.clone(),
        );
        r.register(
            "vigil_indicator_evaluations_asleep",
            "Of the kept evaluations, those of sleeping series (no event in their window), not even looked at",
            self.evaluations_asleep.clone(),
        );
        r.register(
            "vigil_indicator_scores_unread_skipped",
            "Indicator scores of regions nothing reads (no alerts, no score records), marked stale again before anything read them: never computed",
            self.unread_scores_skipped.clone(),
        );
        r.register("vigil_alerts", "Alert lifecycle events emitted, by level and event", self.alerts.clone());
        r.register("vigil_alerts_active", "Open alert episodes, by current level", self.alerts_active.clone());
        r.register(
            "vigil_alerts_overdue",
            "Open alert episodes past their level's deadline (grading.toml), by current level",
            self.alerts_overdue.clone(),
        );
        r.register(
            "vigil_risk_index_score",
            "Latest risk index (0-100) of the city and each district, composite and by domain",
            self.risk_index.clone(),
        );
        r.register("vigil_rule_reloads", "Rule reloads, by result (ok, rejected)", self.rule_reloads.clone());
        r.register(
            "vigil_alertmanager_posts",
            "Posts of open and ended alert episodes to Alertmanager, by result (ok, failed)",
            self.alertmanager_posts.clone(),
        );
        r.register("vigil_rules_info", "The rule set in force (value 1)", self.rules_info.clone());
        r.register(
            "vigil_checkpoint_duration_seconds",
            "Wall time of writing a checkpoint (writing the archive and flushing outputs included)",
            self.checkpoint_duration.clone(),
        );
        r.register("vigil_checkpoint_size_bytes", "Size of the last checkpoint", self.checkpoint_size.clone());
        r.register("vigil_tasks", "Scale-out tasks (partition numbers) this instance runs", self.tasks.clone());
        r.register(
            "vigil_rollup_pending_evaluations",
            "Hourly city evaluations the roll-up holds while waiting for some district's score record",
            self.rollup_pending.clone(),
        );
        r.register(
            "vigil_checkpoint_last_success_timestamp_seconds",
            "Wall clock of the last successful checkpoint, seconds since the epoch",
            self.checkpoint_last_success.clone(),
        );
        r.register("vigil_build_info", "Build information (value 1)", self.build_info.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(m: &Metrics) -> String {
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    /// The handles count into the labelled series the exposition shows, each event into its own
    /// source's; a refusal reason's series appears at its first use.
    #[test]
    fn event_counters_count_into_their_series() {
        let m = Metrics::default();
        let sources = ["police".to_string(), "petition".to_string()];
        m.init_series(&sources);
        let mut c = EventCounters::new(&m, &sources);
        assert!(!exposition(&m).contains(r#"reason="late""#));
        c.consumed(0);
        c.consumed(0);
        c.late(1);
        c.duplicate(0);
        c.rejected(1, RejectCode::Late);
        c.rejected(1, RejectCode::Late);
        c.rejected(0, RejectCode::TooLarge);
        let text = exposition(&m);
        for line in [
            r#"vigil_events_consumed_total{source="police"} 2"#,
            r#"vigil_events_consumed_total{source="petition"} 0"#,
            r#"vigil_events_late_total{source="petition"} 1"#,
            r#"vigil_events_late_total{source="police"} 0"#,
            r#"vigil_events_duplicate_total{source="police"} 1"#,
            r#"vigil_events_rejected_total{source="petition",reason="late"} 2"#,
            r#"vigil_events_rejected_total{source="police",reason="too_large"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
