//! The Kafka engine loop: consume, decode, route, advance watermarks, evaluate, produce.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rdkafka::consumer::Consumer;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, Producer as _};
use serde::Serialize;
use std::sync::mpsc::{Receiver, SyncSender};

use vigil_core::{ActiveAlert, Archive, ArchiveLog, Carried, Ingest, Options, Output, Pipeline, Position, RegionView};
use vigil_kafka::{KafkaSettings, Message};
use vigil_model::record::{AlertRecord, RejectCode, ScoreRecord};
use vigil_model::time::format_utc;
use vigil_model::{Event, SourceIdx};
use vigil_rules::RuleSet;
use vigil_rules::decode::{Decoder, SourceHint};
use vigil_window::Watermarks;

use crate::metrics::{AlertLabels, EventCounters, IndexLabels, LevelLabel, Metrics, PartitionLabels, SourceLabel};
use crate::store::{StateLocation, Store};

/// How far ahead of the slowest moving partition a partition may run before it is paused (and
/// rewound to the message that was too early). Without this alignment a consumer catching up
/// on a backlog reads days of one partition before another, and the pipeline would have to
/// drop what does not fit its bins.
pub const MAX_SKEW_MS: i64 = 6 * vigil_model::time::HOUR;

/// Events held per partition before the partition is paused: holding in memory is cheap, and
/// pausing a partition costs fetch round trips when it resumes.
pub const HOLD_PER_PARTITION: usize = 200_000;

/// Version of the JSON records on the output topics, sent as a header.
pub const SCHEMA_VERSION: &str = "1";

/// Opens the archive writer of one engine of a scale-out instance (a task or the roll-up), named
/// by that engine's consumer group, for the rule set it runs. The binary supplies it, so that the
/// engine needs no storage crates; each writer's files are its own, so that a task that moves
/// between instances rewinds only what it archived itself.
pub type ArchiveFactory = Arc<dyn Fn(&str, &Arc<RuleSet>) -> std::io::Result<Box<dyn Archive>> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Kafka(#[from] vigil_kafka::KafkaEdgeError),
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("cannot resume: {0}")]
    Resume(String),
    #[error("archive: {0}")]
    Archive(std::io::Error),
    #[error(
        "the archive already holds {files} files of this consumer group from an earlier run, and this run starts \
         from the beginning of the topics (no checkpoint to resume): move them away or archive to another \
         directory; vigil does not delete archived history"
    )]
    ArchiveNotEmpty { files: usize },
    #[error(
        "exactly-once delivery needs checkpoints: the state of each committed interval must be kept with it \
         (set [engine] checkpoint_dir or state_topic, or --checkpoint-dir or --state-topic)"
    )]
    ExactlyOnceNeedsCheckpoints,
    #[error(
        "checkpoint_every = {every:?} is too long for exactly-once delivery: each interval is one transaction, \
         and brokers abort transactions older than their transaction.max.timeout.ms (15 min by default); use at \
         most 5 min"
    )]
    CheckpointIntervalTooLong { every: Duration },
    #[error("the commit topic {topic} holds a record vigil cannot read ({why}); it is written by vigil alone")]
    CommitRecord { topic: String, why: String },
    #[error("scale-out: {0}")]
    ScaleOut(String),
    #[error(
        "lost the lock of state topic {topic} (consumer group {group}): this instance's session timed out (it \
         stalled, or lost sight of the brokers) and another instance may have resumed from the last checkpoint, \
         so this one stopped without writing another. Start it again: it stands by while the other one runs"
    )]
    LockLost { topic: String, group: String },
    #[error(
        "this task was lost to the consumer group (the instance's session lapsed) and another instance may have \
         resumed it from its last checkpoint: stopped without writing another"
    )]
    TaskLost,
}

/// What the engine guarantees about its outputs across crashes (README, "Delivery guarantees").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Outputs are flushed to the brokers before each checkpoint. After a crash, what was
    /// published since the last checkpoint is published again: the same records with the same
    /// ids, byte for byte, which consumers de-duplicate by key. Works on any broker.
    #[default]
    AtLeastOnce,
    /// The outputs of each checkpoint interval (scores, alerts, dead letters, late events), a
    /// record naming the checkpoint on the commit topic and the consumed offsets commit in one
    /// Kafka transaction; a restart resumes from the checkpoint of the last committed one, and
    /// `read_committed` consumers see every record once. Needs brokers with transactions and a
    /// checkpoint directory; outputs become visible at each checkpoint, not as they are made.
    ExactlyOnce,
}

impl Delivery {
    pub fn parse(text: &str) -> Option<Delivery> {
        match text {
            "at-least-once" => Some(Delivery::AtLeastOnce),
            "exactly-once" => Some(Delivery::ExactlyOnce),
            _ => None,
        }
    }
}

/// The record each transaction writes to the commit topic (keyed by the consumer group).
#[derive(Debug, Serialize, serde::Deserialize)]
struct CommitRecord {
    group: String,
    checkpoint: u64,
}

/// Output topic names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputTopics {
    pub scores: String,
    pub alerts: String,
    pub dlq: String,
    pub late: String,
    /// One record per committed transaction in exactly-once mode (compact it, keyed by group).
    pub commits: String,
}

impl Default for OutputTopics {
    fn default() -> Self {
        OutputTopics {
            scores: "vigil.scores".into(),
            alerts: "vigil.alerts".into(),
            dlq: "vigil.dlq".into(),
            late: "vigil.late".into(),
            commits: "vigil.commits".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub kafka: KafkaSettings,
    pub group: String,
    pub outputs: OutputTopics,
    /// A partition with no message for this long stops holding the watermark back.
    pub idle_timeout: Duration,
    pub options: Options,
    /// Messages processed so far, published for a producer in the same process that must not
    /// run too far ahead (the embedded broker keeps a bounded log per partition) and for tests.
    pub progress: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Where checkpoints go (a directory or a state topic); `None` runs without them (state is
    /// lost on exit).
    pub state: Option<StateLocation>,
    /// How often a checkpoint is taken (and always on a graceful stop).
    pub checkpoint_every: Duration,
    /// Event topic per source id, where it differs from the rules' `topic` (shared clusters,
    /// test isolation).
    pub event_topics: BTreeMap<String, String>,
    /// Stop by itself (gracefully) once every partition has been silent this long: a batch
    /// catch-up run over a backlog, or a test.
    pub exit_when_idle: Option<Duration>,
    /// When every partition is idle, let event time follow the wall clock (minus the largest
    /// allowed delay), so that hours keep being evaluated through a quiet night. Off by
    /// default: with it, results depend on when events arrive, not only on the events (an
    /// event arriving after the clock passed its hour goes to the late topic).
    pub wall_clock_advance: bool,
    pub delivery: Delivery,
    /// Scale-out (see [`crate::scale`]): instances in one consumer group share the partitions,
    /// one task per partition number, with producers keying events by district code under this
    /// partitioner. `None`: one engine reads every partition.
    pub scale_out: Option<vigil_kafka::Partitioner>,
    /// Scale-out: the region level events are keyed by and tasks are cut at (1, districts, by
    /// default; 2, streets, for more tasks than districts). The levels above are rolled up.
    pub partition_level: u8,
    /// Set by the scale-out supervisor on the engine of one task.
    pub task: Option<Task>,
    /// Events held per partition before watermark alignment pauses it ([`HOLD_PER_PARTITION`]
    /// by default; tests lower it so that partitions pause and resume often).
    pub hold_per_partition: usize,
    /// Sees every score record as it is produced (the console's recent history), in every
    /// task of a scale-out instance.
    pub score_tap: Option<ScoreTap>,
}

/// A reader of score records beside the topics: called on the engine thread, so it must be
/// quick (the console copies a few numbers under a lock).
#[derive(Clone)]
pub struct ScoreTap(pub Arc<dyn Fn(&ScoreRecord) + Send + Sync>);

impl std::fmt::Debug for ScoreTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScoreTap")
    }
}

/// One scale-out task: partition `partition` of every event topic (each of `partitions`
/// partitions), and the regions of level `level` (districts by default) whose code
/// `partitioner` puts there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    pub partition: i32,
    pub partitions: i32,
    pub partitioner: vigil_kafka::Partitioner,
    /// The region level events are keyed by (1: district; 2: street, ...).
    pub level: u8,
}

impl Task {
    /// Per region, the partition its events are keyed to: the code of its region at the
    /// partition level (its district's), or its own code above that level.
    pub fn region_partitions(&self, rules: &RuleSet) -> Vec<i32> {
        let r = &rules.regions;
        (0..r.len())
            .map(|i| {
                let key = r.chains[i].iter().find(|&&a| r.levels[a as usize] == self.level).map_or(i, |&a| a as usize);
                self.partitioner.partition(r.codes[key].as_bytes(), self.partitions)
            })
            .collect()
    }

    /// Per region, whether this task scores it: its regions at the partition level and below
    /// (the levels above come from the roll-up).
    pub fn owned(&self, rules: &RuleSet) -> Vec<bool> {
        let levels = &rules.regions.levels;
        self.region_partitions(rules)
            .iter()
            .zip(levels)
            .map(|(&p, &l)| p == self.partition && l >= self.level)
            .collect()
    }
}

impl EngineConfig {
    /// Defaults for everything but where Kafka is.
    pub fn new(kafka: KafkaSettings) -> EngineConfig {
        EngineConfig {
            kafka,
            group: "vigil".into(),
            outputs: OutputTopics::default(),
            idle_timeout: Duration::from_secs(30),
            options: Options::default(),
            progress: None,
            state: None,
            checkpoint_every: Duration::from_secs(10),
            event_topics: BTreeMap::new(),
            exit_when_idle: None,
            wall_clock_advance: false,
            delivery: Delivery::AtLeastOnce,
            scale_out: None,
            partition_level: 1,
            task: None,
            hold_per_partition: HOLD_PER_PARTITION,
            score_tap: None,
        }
    }

    /// The topic each source of `rules` is read from, in source order.
    pub fn source_topics(&self, rules: &RuleSet) -> Vec<String> {
        rules.sources.iter().map(|s| self.event_topics.get(&s.id).unwrap_or(&s.topic).clone()).collect()
    }
}

/// A dead letter: where the message was and why it was refused. The payload itself is not
/// copied (it may carry fields vigil must not keep); operators read it from the source topic
/// at the given offset while retention lasts.
#[derive(Serialize)]
struct DeadLetter<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    reason: RejectCode,
    detail: &'a str,
    payload_bytes: usize,
}

/// A late event, as decoded (allow-listed attributes only).
#[derive(Serialize)]
struct LateEvent<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    reason: RejectCode,
    region: &'a str,
    ts: String,
    watermark: String,
}

pub(crate) struct KafkaOutput<'a> {
    pub(crate) producer: &'a BaseProducer,
    pub(crate) archive: Option<&'a mut dyn Archive>,
    pub(crate) topics: &'a OutputTopics,
    pub(crate) rules_version: String,
    pub(crate) metrics: &'a Metrics,
    pub(crate) on_alert: &'a mut dyn FnMut(&AlertRecord),
    pub(crate) score_tap: Option<ScoreTap>,
    pub(crate) error: Option<vigil_kafka::KafkaEdgeError>,
}

impl KafkaOutput<'_> {
    fn headers(&self) -> OwnedHeaders {
        OwnedHeaders::new()
            .insert(Header { key: "vigil-rules-version", value: Some(self.rules_version.as_str()) })
            .insert(Header { key: "vigil-schema-version", value: Some(SCHEMA_VERSION) })
    }

    fn send<T: Serialize>(&mut self, topic: &str, key: &str, v: &T) {
        let Ok(bytes) = serde_json::to_vec(v) else { return };
        let headers = self.headers();
        if let Err(e) = vigil_kafka::send(self.producer, topic, key, &bytes, Some(headers))
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }
}

impl Output for KafkaOutput<'_> {
    fn score(&mut self, record: ScoreRecord) {
        if let Some(a) = &mut self.archive {
            a.score(&record);
        }
        if let Some(tap) = &self.score_tap {
            (tap.0)(&record);
        }
        let topic = self.topics.scores.clone();
        self.send(&topic, &record.region.clone(), &record);
    }

    fn alert(&mut self, record: AlertRecord) {
        if let Some(a) = &mut self.archive {
            a.alert(&record);
        }
        let topic = self.topics.alerts.clone();
        self.send(&topic, &record.region.clone(), &record);
        self.metrics
            .alerts
            .get_or_create(&AlertLabels {
                level: record.level.map_or("none", |l| l.as_str()).to_string(),
                event: record.event.as_str().to_string(),
            })
            .inc();
        (self.on_alert)(&record);
    }
}

/// A question the HTTP API asks the running engine, answered between polling rounds (the
/// pipeline stays owned by the engine thread; nothing is shared or locked).
pub enum Query {
    Region(String, SyncSender<Option<RegionView>>),
    Alerts(SyncSender<Vec<ActiveAlert>>),
    /// New rules, compiled and validated: swapped in between two rounds, unless the asker has
    /// given up by the deadline.
    Reload(Arc<RuleSet>, Instant, SyncSender<Result<Carried, String>>),
}

/// Why a query got no answer.
#[derive(Debug, thiserror::Error)]
#[error("the engine is not running or did not answer in time")]
pub struct Unavailable;

/// The API's end of the query channel, and the engine's readiness (partitions assigned, state
/// restored, running). Cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    tx: SyncSender<Query>,
    ready: Arc<AtomicBool>,
}

/// The engine's end of the query channel.
pub struct QueryInbox {
    pub(crate) rx: Receiver<Query>,
    pub(crate) ready: Arc<AtomicBool>,
}

impl EngineHandle {
    pub fn new() -> (EngineHandle, QueryInbox) {
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let ready = Arc::new(AtomicBool::new(false));
        (EngineHandle { tx, ready: Arc::clone(&ready) }, QueryInbox { rx, ready })
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn ask<T>(&self, make: impl FnOnce(SyncSender<T>) -> Query, timeout: Duration) -> Result<T, Unavailable> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.tx.try_send(make(tx)).map_err(|_| Unavailable)?;
        rx.recv_timeout(timeout).map_err(|_| Unavailable)
    }

    /// One region's standing; `Ok(None)` for an unknown or unscored region.
    pub fn region(&self, code: &str, timeout: Duration) -> Result<Option<RegionView>, Unavailable> {
        self.ask(|tx| Query::Region(code.to_string(), tx), timeout)
    }

    /// The open alert episodes.
    pub fn alerts(&self, timeout: Duration) -> Result<Vec<ActiveAlert>, Unavailable> {
        self.ask(Query::Alerts, timeout)
    }

    /// Swaps in compiled rules; `Err` explains a change that needs a restart.
    pub fn reload(&self, rules: Arc<RuleSet>, timeout: Duration) -> Result<Result<Carried, String>, Unavailable> {
        self.ask(|tx| Query::Reload(rules, Instant::now() + timeout, tx), timeout)
    }
}

/// Why `new` rules cannot replace `running` ones live, if they cannot: the decoder, the partition
/// assignment and the state layout are built on the sources, regions, scored levels, cadence,
/// time zone and domains, and a restart applies changes to those (rebuilding state from the
/// topics).
pub(crate) fn live_reload_refusal(running: &RuleSet, new: &RuleSet) -> Option<String> {
    (new.layout_fingerprint() != running.layout_fingerprint()
        || new.domains.iter().map(|d| &d.id).ne(running.domains.iter().map(|d| &d.id)))
    .then(|| {
        "sources, regions, scored levels, cadence, time zone or domains changed: restart vigil to apply them \
         (state is then rebuilt from the topics)"
            .to_string()
    })
}

/// A reload the engine accepted, to apply once the state before it is checkpointed.
struct PendingReload {
    rules: Arc<RuleSet>,
    reply: SyncSender<Result<Carried, String>>,
}

impl QueryInbox {
    /// Answers what is waiting; a reload that can be applied live is handed back.
    fn answer(&self, pipeline: &Pipeline) -> Option<PendingReload> {
        let mut pending = None;
        while let Ok(q) = self.rx.try_recv() {
            // A caller that gave up has dropped its receiver; nothing to do then.
            match q {
                Query::Region(code, reply) => {
                    let _ = reply.send(pipeline.region_view(&code));
                }
                Query::Alerts(reply) => {
                    let _ = reply.send(pipeline.active_alerts());
                }
                // Too late: the asker reported the reload as not applied.
                Query::Reload(_, deadline, _) if Instant::now() > deadline => {}
                Query::Reload(rules, _, reply) => {
                    if let Some(why) = live_reload_refusal(pipeline.rules(), &rules) {
                        let _ = reply.send(Err(why));
                    } else {
                        pending = Some(PendingReload { rules, reply });
                    }
                }
            }
        }
        pending
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub consumed: u64,
    /// Messages fully processed (counted, rejected or late); consumed ones may still be held.
    pub processed: u64,
    pub rejected: u64,
    pub late: u64,
    pub alerts: u64,
    /// Times watermark alignment paused a partition that ran ahead.
    pub pauses: u64,
}

/// The engine: a consumer over every event topic of the rules, a producer for the outputs, and
/// the pipeline.
pub struct Engine {
    rules: Arc<RuleSet>,
    cfg: EngineConfig,
    pipeline: Pipeline,
    consumer: vigil_kafka::EventConsumer,
    broker_offsets: vigil_kafka::PartitionOffsets,
    producer: BaseProducer,
    /// (topic, partition) -> watermark input.
    /// Topic -> partition number -> watermark input (looked up by `&str`, without allocating).
    inputs: HashMap<String, Vec<Option<usize>>>,
    /// Per source, its event counters (handles: no label built per event).
    counters: EventCounters,
    input_source: Vec<SourceIdx>,
    last_seen: Vec<Instant>,
    /// Partitions paused by watermark alignment, and the events they delivered meanwhile.
    paused: Vec<bool>,
    held: Vec<VecDeque<(Event, i64)>>,
    /// Per partition, the offset after the last message processed (-1: none yet).
    next_offset: Vec<i64>,
    partitions: Vec<(String, i32)>,
    watermarks: Watermarks,
    metrics: Metrics,
    gauges: Gauges,
    inbox: Option<QueryInbox>,
    archive: Option<Box<dyn Archive>>,
    /// The position of the checkpoint this run resumed from (see [`Archive`]); `None` when it
    /// starts from the beginning of the topics.
    resumed_at: Option<Position>,
    /// The archive writers of this task's runs, from the checkpoint resumed (see [`ArchiveLog`]).
    archive_log: ArchiveLog,
    /// The state topic's lock, when this engine holds one ([`crate::lock`]).
    lock: Option<crate::lock::StateLock>,
    /// Set when the task was lost to the group: stop without a checkpoint ([`Engine::abort_when`]).
    abort: Option<Arc<AtomicBool>>,
    /// Exactly-once mode's transaction numbers.
    txn: Option<TxnState>,
    /// Where checkpoints go (a directory is locked while the engine exists: one instance per
    /// directory).
    store: Option<Store>,
    /// A scale-out task's partition, and per region the partition its events belong on.
    routing: Option<(i32, Vec<i32>)>,
    /// Per partition, the offset of the next message expected: the one this run resumed at,
    /// then one past the last message received. Reading starts a little earlier after a
    /// restore or a pause (see [`vigil_kafka::RESUME_LOOKBACK`]), and what lies below was read
    /// before.
    resume_at: Vec<i64>,
}

impl Engine {
    pub fn new(rules: Arc<RuleSet>, cfg: EngineConfig, metrics: Metrics) -> Result<Engine, EngineError> {
        let topics = cfg.source_topics(&rules);
        let warn = &mut |w: String| tracing::warn!("{w}");
        // The checkpoint directory is locked for the run, first of all: an instance that finds
        // it taken refuses to start before it could disturb the holder. In exactly-once mode the
        // producer registers next, which fences an earlier instance of the group (on another
        // machine, say) and aborts the transaction it left open, so the commit topic then shows
        // exactly the transactions that committed.
        let mut store =
            cfg.state.as_ref().map(|l| Store::open(l, &cfg.kafka, &cfg.group, cfg.checkpoint_every)).transpose()?;
        let committed = |cfg: &EngineConfig| last_committed(&cfg.kafka, &cfg.outputs.commits, &cfg.group);
        let (producer, restored, txn) = match (&mut store, cfg.delivery) {
            (None, Delivery::ExactlyOnce) => return Err(EngineError::ExactlyOnceNeedsCheckpoints),
            (Some(_), Delivery::ExactlyOnce) if cfg.checkpoint_every > MAX_TXN_INTERVAL => {
                return Err(EngineError::CheckpointIntervalTooLong { every: cfg.checkpoint_every });
            }
            (Some(store), Delivery::ExactlyOnce) => {
                let timeout = crate::store::transaction_timeout(cfg.checkpoint_every);
                let producer = vigil_kafka::transactional_producer(&cfg.kafka, &transactional_id(&cfg.group), timeout)?;
                let committed = committed(&cfg)?;
                let resolved = store.read_committed(committed, warn)?;
                (producer, resolved.checkpoint, Some(TxnState { last: resolved.last_txn, committed }))
            }
            (Some(store), Delivery::AtLeastOnce) => {
                let mut restored = store.read(warn)?;
                // Switched from exactly-once: the newest checkpoint may belong to a transaction
                // that never committed (its outputs were aborted), so the commit topic decides.
                if restored.as_ref().is_some_and(|c| c.txn.is_some()) {
                    restored = store.read_committed(committed(&cfg)?, warn)?.checkpoint;
                }
                (vigil_kafka::producer(&cfg.kafka)?, restored, None)
            }
            (None, Delivery::AtLeastOnce) => (vigil_kafka::producer(&cfg.kafka)?, None, None),
        };
        // The state first: a checkpoint taken under other rules is adopted as a rule reload
        // would be (unchanged indicators keep their state). One whose layout cannot be carried
        // over (sources, regions, cadence changed) or of an older format is not resumed at all:
        // state is rebuilt from the beginning of the topics instead of going grey for weeks.
        // A task holds state only for the regions it owns (a checkpoint of the whole rule set,
        // from before, is narrowed to them).
        let owned = cfg.task.map(|t| t.owned(&rules));
        let mut resumed: Option<(crate::checkpoint::Checkpoint, Pipeline)> = None;
        if let Some(cp) = restored {
            match Pipeline::restore_adopting(Arc::clone(&rules), cfg.options, owned.as_deref(), &cp.pipeline) {
                Ok((_, Some(c))) if c.layout_changed => tracing::warn!(
                    "the checkpoint was taken with rules {} whose sources, regions, scored levels, cadence or \
                     time zone differ from rules {}, or holds other regions than this task's: rebuilding state from \
                     the beginning of the topics",
                    cp.rules_version,
                    rules.version
                ),
                Ok((pipeline, carried)) => {
                    if let Some(c) = &carried {
                        tracing::info!(
                            "the checkpoint was taken with rules {}, now {}: {}",
                            cp.rules_version,
                            rules.version,
                            describe(c)
                        );
                    }
                    resumed = Some((cp, pipeline));
                }
                Err(vigil_core::snapshot::SnapshotError::Version { found }) => tracing::warn!(
                    "the checkpoint's state is of format {found}, which this version does not read: \
                     rebuilding state from the beginning of the topics"
                ),
                Err(e) => return Err(EngineError::Resume(e.to_string())),
            }
        }
        let mut start = BTreeMap::new();
        let mut restored_log = ArchiveLog::default();
        if let Some((cp, _)) = &mut resumed {
            for (t, p, o) in &cp.offsets {
                start.insert((t.clone(), *p), *o);
            }
            restored_log = std::mem::take(&mut cp.archive);
        }
        let only = cfg.task.map(|t| (t.partition, t.partitions));
        let vigil_kafka::Assigned { consumer, partitions, offsets: broker_offsets, resume_at } =
            vigil_kafka::assigned_consumer_of(&cfg.kafka, &cfg.group, &topics, &start, only)?;
        let mut inputs = HashMap::new();
        let mut input_source = Vec::new();
        let mut delays = Vec::new();
        for (topic, partition) in partitions.iter().cloned() {
            let s = topics.iter().position(|t| *t == topic).unwrap_or(0);
            let slots: &mut Vec<Option<usize>> = inputs.entry(topic).or_default();
            let p = partition.max(0) as usize;
            if slots.len() <= p {
                slots.resize(p + 1, None);
            }
            slots[p] = Some(input_source.len());
            input_source.push(s as SourceIdx);
            delays.push(rules.sources[s].allowed_delay.0);
        }
        let mut watermarks = Watermarks::new(&delays);
        let pipeline = match resumed {
            Some((cp, pipeline)) => {
                let same = cp.offsets.iter().map(|(t, p, _)| (t.clone(), *p)).eq(partitions.iter().cloned());
                if same {
                    watermarks = cp.watermarks;
                    // Whether a partition is idle is judged afresh: what was quiet before the
                    // stop may hold the downtime's backlog now.
                    (0..watermarks.len()).for_each(|i| watermarks.set_idle(i, false));
                }
                pipeline
            }
            None => Pipeline::scoped(Arc::clone(&rules), cfg.options, owned.as_deref()),
        };
        let routing = cfg.task.map(|t| (t.partition, t.region_partitions(&rules)));
        let next_offset = partitions.iter().map(|tp| start.get(tp).copied().unwrap_or(-1)).collect();
        let resumed_at = (!start.is_empty()).then(|| position(start.values().copied(), pipeline.last_evaluated()));
        let archive_log = if resumed_at.is_some() { restored_log } else { ArchiveLog::default() };
        metrics.set_rules(&rules.name, &rules.version);
        metrics.init_series(&rules.sources.iter().map(|s| s.id.clone()).collect::<Vec<_>>());
        let gauges = Gauges::new(
            &rules,
            &partitions,
            &input_source,
            owned.as_deref(),
            cfg.task.map(|t| t.partition),
            metrics.clone(),
        );
        let sources: Vec<String> = rules.sources.iter().map(|s| s.id.clone()).collect();
        let counters = EventCounters::new(&metrics, &sources);
        let now = Instant::now();
        Ok(Engine {
            next_offset,
            last_seen: vec![now; input_source.len()],
            paused: vec![false; input_source.len()],
            held: vec![VecDeque::new(); input_source.len()],
            partitions,
            watermarks,
            rules,
            cfg,
            pipeline,
            consumer,
            broker_offsets,
            producer,
            gauges,
            inbox: None,
            archive: None,
            resumed_at,
            archive_log,
            lock: None,
            abort: None,
            txn,
            store,
            routing,
            resume_at,
            counters,
            inputs,
            input_source,
            metrics,
        })
    }

    /// Archives every decoded event, score and alert, committed with each checkpoint. Whatever
    /// a crashed run archived after the checkpoint this run resumes from is discarded first.
    ///
    /// A run that starts from the beginning of the topics (no checkpoint, or one it cannot
    /// resume) only removes what an earlier run committed before its first checkpoint; it refuses
    /// to start if anything later is archived, since re-reading the topics would archive it twice
    /// and deleting it could lose history the topics no longer hold.
    pub fn set_archive(&mut self, mut archive: Box<dyn Archive>) -> Result<(), EngineError> {
        resume_archive(archive.as_mut(), self.resumed_at, &self.archive_log)?;
        self.archive = Some(archive);
        Ok(())
    }

    /// Keeps `lock` for the run, serving its group membership; the run stops with
    /// [`EngineError::LockLost`] if it is lost.
    pub fn hold(&mut self, lock: crate::lock::StateLock) {
        self.lock = Some(lock);
    }

    /// Stops the run with [`EngineError::TaskLost`], writing nothing more (no final checkpoint,
    /// no archive commit), once `flag` is set: a scale-out task whose partitions the group gave
    /// to another instance while this one's session had lapsed, which may have resumed from the
    /// last checkpoint already.
    pub fn abort_when(&mut self, flag: Arc<AtomicBool>) {
        self.abort = Some(flag);
    }

    /// Answers the queries of `handle`'s API while running.
    pub fn attach(&mut self, inbox: QueryInbox) {
        self.inbox = Some(inbox);
    }

    /// The last hour boundary the pipeline evaluated.
    pub fn last_evaluated(&self) -> Option<i64> {
        self.pipeline.last_evaluated()
    }

    /// Runs until `stop` is set, then flushes the outputs.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        on_alert: &mut dyn FnMut(&AlertRecord),
    ) -> Result<RunSummary, EngineError> {
        if let Some(inbox) = &self.inbox {
            inbox.ready.store(true, Ordering::Relaxed);
        }
        let result = self.run_inner(stop, on_alert);
        // Not ready any more, however the run ended.
        if let Some(inbox) = &self.inbox {
            inbox.ready.store(false, Ordering::Relaxed);
        }
        result
    }

    fn run_inner(
        &mut self,
        stop: &AtomicBool,
        on_alert: &mut dyn FnMut(&AlertRecord),
    ) -> Result<RunSummary, EngineError> {
        if self.txn.is_some() {
            self.producer.begin_transaction()?;
        }
        let rules = Arc::clone(&self.rules);
        let decoder = Decoder::new(&rules);
        let mut summary = RunSummary::default();
        let mut ev = Event::default();
        let mut out = KafkaOutput {
            producer: &self.producer,
            archive: self.archive.as_deref_mut().map(|a| a as &mut dyn Archive),
            topics: &self.cfg.outputs,
            rules_version: rules.version.clone(),
            metrics: &self.metrics,
            on_alert,
            score_tap: self.cfg.score_tap.clone(),
            error: None,
        };
        let mut st = LoopState {
            pipeline: &mut self.pipeline,
            watermarks: &mut self.watermarks,
            metrics: &self.metrics,
            rules: &rules,
            partitions: &self.partitions,
            input_source: &self.input_source,
            next_offset: &mut self.next_offset,
            counters: &mut self.counters,
        };
        let mut last_check = Instant::now();
        let mut last_checkpoint = Instant::now();
        let debug = std::env::var_os("VIGIL_DEBUG").is_some();
        let mut last_debug = Instant::now();
        loop {
            // Read once per round: a stop seen here still gets this round's final checkpoint.
            let mut stopping = stop.load(Ordering::Relaxed);
            let polled = self.consumer.poll(Duration::from_millis(20));
            let idle_poll = polled.is_none();
            // One clock read per message: it is the loop's own cost per event on a busy stream.
            let now = Instant::now();
            match polled {
                Some(Ok(m)) => {
                    let (topic, partition) = (m.topic(), m.partition());
                    let slot = self.inputs.get(topic).and_then(|v| v.get(usize::try_from(partition).ok()?));
                    let Some(&Some(input)) = slot else { continue };
                    // Offsets only grow within a partition: one below the next expected is a
                    // message read before (a resume fetches from before its checkpoint or pause).
                    if m.offset() < self.resume_at[input] {
                        continue;
                    }
                    self.resume_at[input] = m.offset() + 1;
                    summary.consumed += 1;
                    if st.watermarks.is_idle(input) {
                        // One partition waking suggests the stream as a whole resumed (a producer
                        // pause, a broker outage): every idle partition holds time back again
                        // until it has been silent for the idle timeout once more, by which time
                        // fresh broker offsets show whether it has messages waiting. Otherwise the
                        // first partition to wake would move time past events its siblings are
                        // about to deliver, and they would count as late.
                        for (j, seen) in self.last_seen.iter_mut().enumerate() {
                            if st.watermarks.is_idle(j) {
                                st.watermarks.set_idle(j, false);
                                *seen = now;
                            }
                        }
                    }
                    self.last_seen[input] = now;
                    let source = self.input_source[input];
                    st.counters.consumed(source as usize);
                    let payload = m.payload().unwrap_or_default();
                    let mut decoded = decoder.decode(SourceHint::Fixed(source), payload, &mut ev);
                    // The broker's timestamp of the message (or, without one, the wall clock) is
                    // the reference no event time may run far ahead of.
                    if decoded.is_ok() {
                        let reference = m.timestamp().to_millis().unwrap_or_else(|| {
                            std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_millis() as i64)
                        });
                        if let Some(rej) = vigil_core::ahead_of_reference(&rules, &ev, reference) {
                            decoded = Err(rej);
                        }
                    }
                    if decoded.is_ok()
                        && let Some((task, of)) = &self.routing
                        && of.get(ev.region as usize).is_some_and(|p| p != task)
                    {
                        decoded = Err(misrouted(&rules, self.cfg.partition_level, ev.region, of, *task));
                    }
                    match decoded {
                        Ok(_) if !self.held[input].is_empty() || st.too_early(input, ev.ts) => {
                            // Watermark alignment: a partition far ahead of the slowest one waits
                            // (paused, its messages held in order) instead of racing on.
                            self.held[input].push_back((ev, m.offset()));
                            if !self.paused[input] && self.held[input].len() >= self.cfg.hold_per_partition.max(1) {
                                self.consumer.pause(&one(topic, partition))?;
                                self.paused[input] = true;
                                summary.pauses += 1;
                            }
                        }
                        Ok(_) => st.accept(input, &ev, m.offset(), &mut out, &mut summary),
                        Err(rej) => {
                            summary.rejected += 1;
                            summary.processed += 1;
                            st.next_offset[input] = m.offset() + 1;
                            st.counters.rejected(source as usize, rej.code);
                            let dl = DeadLetter {
                                topic,
                                partition,
                                offset: m.offset(),
                                reason: rej.code,
                                detail: &rej.detail,
                                payload_bytes: payload.len(),
                            };
                            out.send(&self.cfg.outputs.dlq.clone(), topic, &dl);
                        }
                    }
                }
                Some(Err(e)) => tracing::warn!("consumer error: {e}"),
                None => {}
            }
            if idle_poll || now.duration_since(last_check) >= Duration::from_millis(50) {
                last_check = now;
                // Lost, the lock's new holder may have resumed from the last checkpoint already:
                // stop before writing anything more.
                if let Some(l) = &mut self.lock {
                    l.check()?;
                }
                // Lost with its partitions, likewise (checked again before any checkpoint).
                if self.abort.as_ref().is_some_and(|a| a.load(Ordering::SeqCst)) {
                    return Err(EngineError::TaskLost);
                }
                // Delivery reports are served here, not per message: the output producer's
                // context drops them (outputs are re-sent after a restart), and a full local
                // queue is served by the send that meets it.
                vigil_kafka::poll(&self.producer);
                if debug && last_debug.elapsed() >= Duration::from_secs(2) {
                    last_debug = Instant::now();
                    tracing::info!(
                        "debug: consumed {} held {} paused {} min_active {:?} wm {:?} idle? {:?} inputs {:?} held {:?}",
                        summary.consumed,
                        self.held.iter().map(|h| h.len()).sum::<usize>(),
                        self.paused.iter().filter(|p| **p).count(),
                        st.watermarks.min_active().map(format_utc),
                        st.pipeline.watermark().map(format_utc),
                        self.last_seen.iter().map(|t| t.elapsed().as_secs()).collect::<Vec<_>>(),
                        (0..self.held.len())
                            .map(|i| st.watermarks.input_watermark(i).map(|w| format_utc(w)[5..16].to_string()))
                            .collect::<Vec<_>>(),
                        self.held.iter().map(|h| h.len()).collect::<Vec<_>>(),
                    );
                }
                // A partition is idle when it has been silent for the idle timeout and has
                // nothing left to read: a busy engine must not mistake its own backlog for
                // silence, or time would run ahead of events still waiting on the broker.
                // And an idle partition that the broker reports new messages for holds time
                // back again at once, before they arrive (other partitions may be delivering a
                // large batch meanwhile).
                // Silence only counts while the broker can be heard: a partition becomes idle
                // once its leader has been up and fetched from for the whole idle timeout, so
                // a broker outage holds time still rather than letting it run ahead of the
                // messages that broker will deliver when it returns.
                let (offsets, parts, timeout) = (&self.broker_offsets, &self.partitions, self.cfg.idle_timeout);
                for (i, seen) in self.last_seen.iter().enumerate() {
                    if !self.paused[i]
                        && self.held[i].is_empty()
                        && seen.elapsed() >= timeout
                        && caught_up(offsets, parts, st.next_offset, i, idle_poll, timeout)
                    {
                        st.watermarks.set_idle(i, true);
                    } else if st.watermarks.is_idle(i)
                        && !caught_up(offsets, parts, st.next_offset, i, idle_poll, Duration::ZERO)
                    {
                        st.watermarks.set_idle(i, false);
                    }
                }
                if self.cfg.wall_clock_advance
                    && (0..self.last_seen.len()).all(|i| st.watermarks.is_idle(i))
                    && let Some(max_delay) = self.rules.sources.iter().map(|s| s.allowed_delay.0).max()
                {
                    st.watermarks.advance_to((unix_now() * 1000.0) as i64 - max_delay);
                }
                // A batch run ends once everything is quiet: every partition counts as idle then,
                // so time advances to the furthest any partition reached before the last checkpoint.
                // Partitions whose streams ended earlier in event time may still hold others'
                // events back (watermark alignment): those with nothing held turn idle first, so
                // that the held events are released in order, and the run ends once none is left.
                if let Some(quiet) = self.cfg.exit_when_idle
                    && idle_poll
                    && self.last_seen.iter().all(|t| t.elapsed() >= quiet)
                    && (0..self.last_seen.len())
                        .all(|i| caught_up(&self.broker_offsets, &self.partitions, st.next_offset, i, idle_poll, quiet))
                {
                    if self.held.iter().all(VecDeque::is_empty) {
                        (0..self.last_seen.len()).for_each(|i| st.watermarks.set_idle(i, true));
                        stopping = true;
                    } else {
                        (0..self.last_seen.len())
                            .filter(|&i| self.held[i].is_empty())
                            .for_each(|i| st.watermarks.set_idle(i, true));
                    }
                }
                self.gauges.update(&st, &self.broker_offsets, &self.partitions, &self.held);
                if let Some(inbox) = &self.inbox
                    && let Some(reload) = inbox.answer(st.pipeline)
                {
                    // A checkpoint first: a restart after a crash then resumes exactly where the
                    // old rules stopped, and replays under the new rules what this run will.
                    checkpoint(
                        &self.cfg,
                        self.store.as_mut(),
                        Fence { lock: self.lock.as_mut(), abort: self.abort.as_deref() },
                        &mut self.archive_log,
                        out.archive.as_deref_mut(),
                        &self.producer,
                        &self.metrics,
                        &self.partitions,
                        st.next_offset,
                        &self.held,
                        st.watermarks,
                        &mut *st.pipeline,
                        self.txn.as_mut().map(|state| Txn { state, consumer: &self.consumer, begin_next: true }),
                    )?;
                    last_checkpoint = Instant::now();
                    let carried = st.pipeline.reload(Arc::clone(&reload.rules));
                    let _ = reload.reply.send(Ok(carried));
                    out.rules_version = reload.rules.version.clone();
                    self.metrics.set_rules(&reload.rules.name, &reload.rules.version);
                    self.rules = reload.rules;
                }
                // Release held events that the slowest partition has caught up with.
                let mut progress = true;
                while progress {
                    progress = false;
                    for input in 0..self.held.len() {
                        while let Some(&(hev, offset)) = self.held[input].front() {
                            if st.too_early_to_release(input, hev.ts) {
                                break;
                            }
                            self.held[input].pop_front();
                            st.accept(input, &hev, offset, &mut out, &mut summary);
                            progress = true;
                        }
                        if self.held[input].is_empty() && self.paused[input] {
                            let (t, p) = &self.partitions[input];
                            // Messages below resume_at were received already and are dropped.
                            vigil_kafka::resume_from(&self.consumer, t, *p, self.resume_at[input].max(0))?;
                            self.paused[input] = false;
                            self.last_seen[input] = Instant::now();
                        }
                    }
                }
            }
            if let Some(wm) = st.watermarks.current() {
                st.advance(wm, &mut out, &mut summary);
            }
            if let Some(p) = &self.cfg.progress {
                p.store(summary.processed, Ordering::Relaxed);
            }
            if let Some(e) = out.error.take() {
                return Err(e.into());
            }
            // A checkpoint at the interval, and always on the way out (without checkpoints, the
            // archive still commits at that cadence).
            if (self.store.is_some() || out.archive.is_some())
                && (stopping || last_checkpoint.elapsed() >= self.cfg.checkpoint_every)
            {
                checkpoint(
                    &self.cfg,
                    self.store.as_mut(),
                    Fence { lock: self.lock.as_mut(), abort: self.abort.as_deref() },
                    &mut self.archive_log,
                    out.archive.as_deref_mut(),
                    &self.producer,
                    &self.metrics,
                    &self.partitions,
                    st.next_offset,
                    &self.held,
                    st.watermarks,
                    &mut *st.pipeline,
                    self.txn.as_mut().map(|state| Txn { state, consumer: &self.consumer, begin_next: !stopping }),
                )?;
                // The interval counts from the end of a checkpoint, so that a checkpoint slower
                // than the interval cannot starve processing.
                last_checkpoint = Instant::now();
            }
            if stopping {
                // The final checkpoint landed: it covers everything this run archived. (Without
                // checkpoints nothing covers it: a restart reads the topics from the beginning
                // and archives them again, so this run's files must go then.)
                if self.store.is_some()
                    && let Some(a) = out.archive.as_deref_mut()
                {
                    a.finished();
                }
                break;
            }
        }
        vigil_kafka::flush(&self.producer, Duration::from_secs(10))?;
        Ok(summary)
    }
}

/// The parts of the engine the per-event path touches, borrowed apart from the output.
/// Moves event time to `wm`, one evaluation at a time so that each is timed on its own.
fn advance_timed(
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    wm: i64,
    out: &mut KafkaOutput<'_>,
    summary: &mut RunSummary,
) {
    let before = pipeline.counters().evaluations;
    let (kept, asleep) = (pipeline.kept_evaluations(), pipeline.asleep_evaluations());
    let skipped = pipeline.skipped_scores();
    let alerts_before = pipeline.counters().alerts;
    while let Some(t) = pipeline.next_evaluation(wm) {
        let started = Instant::now();
        pipeline.advance(t, out);
        metrics.evaluation_duration.observe(started.elapsed().as_secs_f64());
    }
    pipeline.advance(wm, out);
    metrics.evaluations.inc_by(pipeline.counters().evaluations - before);
    metrics.evaluations_kept.inc_by(pipeline.kept_evaluations() - kept);
    metrics.evaluations_asleep.inc_by(pipeline.asleep_evaluations() - asleep);
    metrics.unread_scores_skipped.inc_by(pipeline.skipped_scores() - skipped);
    summary.alerts += pipeline.counters().alerts - alerts_before;
}

struct LoopState<'a> {
    pipeline: &'a mut Pipeline,
    watermarks: &'a mut Watermarks,
    metrics: &'a Metrics,
    rules: &'a RuleSet,
    partitions: &'a [(String, i32)],
    input_source: &'a [SourceIdx],
    next_offset: &'a mut [i64],
    counters: &'a mut EventCounters,
}

impl LoopState<'_> {
    fn advance(&mut self, wm: i64, out: &mut KafkaOutput<'_>, summary: &mut RunSummary) {
        advance_timed(self.pipeline, self.metrics, wm, out, summary);
    }

    /// The event time partitions are aligned on: the slowest moving partition, or, while some
    /// partition has not delivered anything yet, the earliest event seen (a partition that has
    /// not started is assumed to start there, so the others cannot race days ahead of it).
    fn reference(&self) -> Option<(i64, bool)> {
        if self.watermarks.all_active_have_data() {
            self.watermarks.min_active().map(|m| (m, true))
        } else {
            self.pipeline.first_event().map(|f| (f, false))
        }
    }

    /// Whether an event at `ts` must wait, with `skew` of allowed lead. The slowest partition
    /// itself never waits: it is what the others wait for.
    fn held_back(&self, input: usize, ts: i64, skew: i64) -> bool {
        match self.reference() {
            Some((m, true)) => ts > m + skew && self.watermarks.input_watermark(input).is_some_and(|w| w > m),
            // A partition's first event is always taken: it is what shows the partition has started.
            Some((first, false)) => ts > first + skew && self.watermarks.input_watermark(input).is_some(),
            None => false,
        }
    }

    fn too_early(&self, input: usize, ts: i64) -> bool {
        self.held_back(input, ts, MAX_SKEW_MS)
    }

    /// Held events are released with hysteresis, once within half the allowed skew.
    fn too_early_to_release(&self, input: usize, ts: i64) -> bool {
        self.held_back(input, ts, MAX_SKEW_MS / 2)
    }

    fn accept(&mut self, input: usize, ev: &Event, offset: i64, out: &mut KafkaOutput<'_>, summary: &mut RunSummary) {
        // Every decoded event is archived, late ones included: the archive is what arrived.
        if let Some(a) = &mut out.archive {
            a.event(ev);
        }
        // The event moves its partition's watermark first, and time advances to the new global
        // watermark before the event is counted: an event can then never be "too early" for the
        // time it itself has made current (a sparse partition may jump a day at once).
        self.next_offset[input] = offset + 1;
        summary.processed += 1;
        let metrics = self.metrics;
        let outcome = vigil_core::step(self.pipeline, self.watermarks, input, ev, &mut |p, wm| {
            advance_timed(p, metrics, wm, out, summary)
        });
        match outcome {
            Ingest::Accepted | Ingest::AcceptedLate => {}
            Ingest::Duplicate => self.counters.duplicate(self.input_source[input] as usize),
            Ingest::Overflow => {
                summary.rejected += 1;
                self.counters.rejected(self.input_source[input] as usize, RejectCode::SumOverflow);
                let (topic, partition) = &self.partitions[input];
                let dl = DeadLetter {
                    topic,
                    partition: *partition,
                    offset,
                    reason: RejectCode::SumOverflow,
                    detail: "an attribute value would overflow a sum the rules keep; nothing of the event was counted",
                    payload_bytes: 0,
                };
                let dlq = out.topics.dlq.clone();
                out.send(&dlq, topic, &dl);
            }
            outcome @ (Ingest::Late | Ingest::TooEarly) => {
                summary.late += 1;
                self.counters.late(self.input_source[input] as usize);
                let (topic, partition) = &self.partitions[input];
                let region = &self.rules.regions.codes[ev.region as usize];
                let late = LateEvent {
                    topic,
                    partition: *partition,
                    offset,
                    reason: if outcome == Ingest::Late { RejectCode::Late } else { RejectCode::OutOfRange },
                    region,
                    ts: format_utc(ev.ts),
                    watermark: self.pipeline.watermark().map(format_utc).unwrap_or_default(),
                };
                let topic = out.topics.late.clone();
                out.send(&topic, region, &late);
            }
        }
    }
}

/// Whether partition `input` has been read up to the broker's high watermark, by a report from a
/// leader that has been up and fetched from for at least `live_for`: a broker that is down, or
/// one reconnected too recently to have answered a fetch, may be holding messages that the last
/// report does not show, so the partition then does not count as caught up.
fn caught_up(
    offsets: &vigil_kafka::PartitionOffsets,
    partitions: &[(String, i32)],
    next_offset: &[i64],
    input: usize,
    idle_poll: bool,
    live_for: Duration,
) -> bool {
    let (t, p) = &partitions[input];
    match offsets.get(t, *p) {
        Some((low, high)) => {
            let read = next_offset[input].max(offsets.app_offset(t, *p)).max(low);
            offsets.live_for(t, *p).is_some_and(|l| l >= live_for) && read >= high
        }
        // Never reported: only an engine that has not required liveness (the un-idling check)
        // takes an empty poll for being caught up; a partition whose broker has been
        // unreachable since start-up never turns idle.
        None => idle_poll && live_for.is_zero(),
    }
}

/// The refusal of an event that arrived on another task's partition than its region's at the
/// partition level (its district's, by default).
fn misrouted(rules: &RuleSet, level: u8, region: u32, of: &[i32], task: i32) -> vigil_model::record::Rejection {
    let r = &rules.regions;
    let key = r.chains[region as usize].iter().find(|&&a| r.levels[a as usize] == level).copied().unwrap_or(region);
    let name = r.level_names.get(level as usize).map_or("district", String::as_str);
    vigil_model::record::Rejection {
        code: RejectCode::WrongPartition,
        detail: format!(
            "the event's {name} {} belongs on partition {}, not {task}: producers must key events by {name} \
             code with the partitioner vigil is configured with",
            r.codes[key as usize], of[region as usize]
        ),
    }
}

fn one(t: &str, p: i32) -> rdkafka::TopicPartitionList {
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(t, p);
    tpl
}

/// Writes a checkpoint (when a store is configured): outputs first (flushed to the
/// brokers), then state and offsets, and records its duration, size and time. A partition with
/// held events resumes from its first held message.
#[allow(clippy::too_many_arguments)]
fn checkpoint(
    cfg: &EngineConfig,
    store: Option<&mut Store>,
    fence: Fence<'_>,
    log: &mut ArchiveLog,
    mut archive: Option<&mut (dyn Archive + '_)>,
    producer: &BaseProducer,
    metrics: &Metrics,
    partitions: &[(String, i32)],
    next_offset: &[i64],
    held: &[VecDeque<(Event, i64)>],
    watermarks: &Watermarks,
    pipeline: &mut Pipeline,
    txn: Option<Txn<'_>>,
) -> Result<(), EngineError> {
    // Timed from here: writing the archive's files is part of a checkpoint's cost.
    let started = Instant::now();
    // Nothing is written once the state topic's lock or the task is lost: the new holder or
    // owner may have resumed from the last checkpoint already.
    fence.confirm()?;
    // The archive commits first: if the checkpoint then fails to land, a restart from the
    // previous one discards this interval's files before archiving it again.
    if let Some(a) = archive.as_deref_mut() {
        a.commit().map_err(EngineError::Archive)?;
    }
    let Some(store) = store else { return Ok(()) };
    vigil_kafka::flush(producer, Duration::from_secs(30))?;
    let offsets = partitions
        .iter()
        .enumerate()
        .filter_map(|(i, (t, p))| {
            let o = held[i].front().map_or(next_offset[i], |(_, o)| *o);
            (o >= 0).then(|| (t.clone(), *p, o))
        })
        .collect::<Vec<_>>();
    let at = position(offsets.iter().map(|(_, _, o)| *o), pipeline.last_evaluated());
    // This run's files up to here are covered once the checkpoint lands.
    if let Some(w) = archive.as_deref().and_then(|a| a.writer()) {
        log.record(w, at);
    }
    let cp = crate::checkpoint::Checkpoint {
        format: crate::checkpoint::CHECKPOINT_FORMAT,
        rules_version: pipeline.rules().version.clone(),
        offsets,
        watermarks: watermarks.clone(),
        pipeline: pipeline.snapshot().map_err(|e| EngineError::Resume(e.to_string()))?,
        txn: txn.as_ref().map(|t| t.state.last + 1),
        after: txn.as_ref().and_then(|t| t.state.committed),
        archive: log.clone(),
    };
    // The state is written before the transaction commits: a crash in between leaves a newest
    // file one step ahead of what consumers saw, which a restart recognises (its transaction is
    // not the last on the commit topic) and steps back from. On a state topic the records join
    // the transaction, so an uncommitted checkpoint is never read at all.
    let bytes = store.write(&cp, producer, txn.is_some())?;
    if let Some(t) = txn {
        let number = t.state.last + 1;
        let record = CommitRecord { group: cfg.group.clone(), checkpoint: number };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        vigil_kafka::send(producer, &cfg.outputs.commits, &cfg.group, &value, None)?;
        vigil_kafka::commit_transaction(producer, t.consumer, &cp.offsets)?;
        *t.state = TxnState { last: number, committed: Some(number) };
        if t.begin_next {
            producer.begin_transaction()?;
        }
    }
    if let Some(a) = archive {
        a.begin(at);
    }
    metrics.checkpoint_duration.observe(started.elapsed().as_secs_f64());
    metrics.checkpoint_size.set(bytes as i64);
    metrics.checkpoint_last_success.set(unix_now());
    Ok(())
}

/// The checkpoint number of the last transaction consumer group `group` committed, from its
/// newest record on the commit topic.
pub(crate) fn last_committed(kafka: &KafkaSettings, topic: &str, group: &str) -> Result<Option<u64>, EngineError> {
    match vigil_kafka::read_last_committed(kafka, topic, group.as_bytes())? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice::<CommitRecord>(&bytes)
            .map(|r| Some(r.checkpoint))
            .map_err(|e| EngineError::CommitRecord { topic: topic.to_string(), why: e.to_string() }),
    }
}

/// What must still be this engine's for a checkpoint to be written: the state topic's lock, and
/// (a scale-out task) its partitions.
struct Fence<'a> {
    lock: Option<&'a mut crate::lock::StateLock>,
    abort: Option<&'a AtomicBool>,
}

impl Fence<'_> {
    fn confirm(self) -> Result<(), EngineError> {
        if self.abort.is_some_and(|a| a.load(Ordering::SeqCst)) {
            return Err(EngineError::TaskLost);
        }
        match self.lock {
            Some(l) => l.confirm(),
            None => Ok(()),
        }
    }
}

/// Exactly-once mode's transaction numbers.
#[derive(Clone, Copy, Debug)]
struct TxnState {
    /// The highest number given to a checkpoint so far (committed or not).
    last: u64,
    /// The last transaction known to have committed.
    committed: Option<u64>,
}

/// The longest checkpoint interval of exactly-once mode: the transaction timeout is three
/// intervals, and brokers cap it at 15 minutes by default (`transaction.max.timeout.ms`).
pub const MAX_TXN_INTERVAL: Duration = Duration::from_secs(300);

/// The transaction a checkpoint commits in exactly-once mode.
struct Txn<'a> {
    /// Advanced when this transaction commits.
    state: &'a mut TxnState,
    consumer: &'a vigil_kafka::EventConsumer,
    /// Whether to open the next transaction (not on the way out).
    begin_next: bool,
}

/// The transactional id of a consumer group's engine: one active instance per group, which a
/// new instance fences off when it starts.
pub fn transactional_id(group: &str) -> String {
    format!("vigil-{group}")
}

/// Prepares an archive for a driver that resumed from the checkpoint at `resumed_at` (`None`:
/// from the beginning of its topics), as [`Engine::set_archive`] describes; the roll-up shares it.
pub(crate) fn resume_archive(
    archive: &mut dyn Archive,
    resumed_at: Option<Position>,
    log: &ArchiveLog,
) -> Result<(), EngineError> {
    let at = resumed_at.unwrap_or_default();
    archive.hold_ended().map_err(EngineError::Archive)?;
    if resumed_at.is_none() {
        let files = archive.count_after(at).map_err(EngineError::Archive)?;
        if files > 0 {
            return Err(EngineError::ArchiveNotEmpty { files });
        }
    }
    let removed = archive.rewind(at, log).map_err(EngineError::Archive)?;
    if removed > 0 {
        tracing::info!("removed {removed} archive files that no checkpoint covers (a run ended before it landed)");
    }
    archive.begin(at);
    Ok(())
}

/// Where a checkpoint stands: the sum of its partitions' next offsets and the last hour
/// evaluated. Both only grow, so later checkpoints have larger positions (two with equal
/// offsets differ when idleness moved time between them).
pub(crate) fn position(offsets: impl Iterator<Item = i64>, last_evaluated: Option<i64>) -> Position {
    Position { offsets: offsets.map(|o| o.max(0) as u64).sum(), evaluated: last_evaluated.unwrap_or(0) }
}

/// One line on what a change of rules carried over.
pub fn describe(c: &Carried) -> String {
    if c.layout_changed {
        return "sources, regions, scored levels, cadence or time zone changed: all state starts fresh".into();
    }
    let mut text = format!("{} indicators keep their state", c.kept.len());
    if !c.fresh.is_empty() {
        text.push_str(&format!(", {} start fresh ({})", c.fresh.len(), c.fresh.join(", ")));
    }
    if !c.dropped.is_empty() {
        text.push_str(&format!(", {} removed ({})", c.dropped.len(), c.dropped.join(", ")));
    }
    text.push_str(if c.grades_kept { "; open alerts continue" } else { "; grades start fresh (domains changed)" });
    if c.evidence_dropped > 0 {
        text.push_str(&format!(
            "; {} open evidence alarm episode(s) end without a resolved record (the alarm was removed or its regions changed)",
            c.evidence_dropped
        ));
    }
    text
}

/// Seconds since the epoch on the wall clock (metrics only; never enters the pipeline).
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The gauges refreshed as the engine runs: consumer lag, source watermarks, and, after each
/// new evaluation, the risk index of the city and districts and the open alerts by level.
struct Gauges {
    metrics: Metrics,
    /// Per partition: its labels and source.
    partitions: Vec<(PartitionLabels, usize)>,
    sources: Vec<SourceLabel>,
    /// Regions whose index is exported (city and district levels).
    index_regions: Vec<String>,
    /// The evaluation the index gauges show.
    shown: Option<i64>,
    /// The open alerts by level this engine added to the gauges: scale-out tasks share them,
    /// so each moves them by its own changes.
    active: [i64; 5],
    /// Of those, the ones past their deadline.
    overdue: [i64; 5],
    /// The scale-out task's partition.
    task: Option<i32>,
}

impl Gauges {
    fn new(
        rules: &RuleSet,
        partitions: &[(String, i32)],
        input_source: &[SourceIdx],
        owned: Option<&[bool]>,
        task: Option<i32>,
        metrics: Metrics,
    ) -> Gauges {
        let r = &rules.regions;
        Gauges {
            partitions: partitions
                .iter()
                .zip(input_source)
                .map(|((t, p), s)| (PartitionLabels { topic: t.clone(), partition: p.to_string() }, *s as usize))
                .collect(),
            sources: rules.sources.iter().map(|s| SourceLabel { source: s.id.clone() }).collect(),
            index_regions: (0..r.len())
                .filter(|&i| r.levels[i] <= 1 && owned.is_none_or(|o| o[i]))
                .map(|i| r.codes[i].clone())
                .collect(),
            shown: None,
            active: [0; 5],
            overdue: [0; 5],
            task,
            metrics,
        }
    }

    fn update(
        &mut self,
        st: &LoopState<'_>,
        offsets: &vigil_kafka::PartitionOffsets,
        partitions: &[(String, i32)],
        held: &[VecDeque<(Event, i64)>],
    ) {
        let now = unix_now();
        let mut source_wm: Vec<Option<i64>> = vec![None; self.sources.len()];
        for (i, (labels, source)) in self.partitions.iter().enumerate() {
            let (t, p) = &partitions[i];
            if let Some((low, high)) = offsets.get(t, *p) {
                // Held messages are consumed but not yet processed: they count as lag.
                let position = held[i].front().map_or(st.next_offset[i], |(_, o)| *o).max(low);
                self.metrics.consumer_lag.get_or_create(labels).set((high - position).max(0));
            }
            // An idle partition does not hold its source's watermark back (nor does it in the
            // pipeline), so the gauge follows the live ones.
            if let Some(w) = st.watermarks.input_watermark(i).filter(|_| !st.watermarks.is_idle(i)) {
                let s = &mut source_wm[*source];
                *s = Some(s.map_or(w, |x| x.min(w)));
            }
        }
        if let Some(task) = self.task {
            // Tasks share the gauges: each records its own, and the gauge shows the slowest.
            let mut all = self.metrics.task_watermarks.lock().unwrap_or_else(|e| e.into_inner());
            for (s, wm) in source_wm.iter_mut().enumerate() {
                match *wm {
                    Some(w) => {
                        all.insert((s, task), w);
                    }
                    None => {
                        all.remove(&(s, task));
                    }
                }
                *wm = all.range((s, i32::MIN)..=(s, i32::MAX)).map(|(_, w)| *w).min();
            }
        }
        for (label, wm) in self.sources.iter().zip(source_wm) {
            if let Some(wm) = wm {
                self.metrics.watermark.get_or_create(label).set(wm.div_euclid(1000));
                self.metrics.watermark_delay.get_or_create(label).set(now - wm as f64 / 1000.0);
            }
        }
        let evaluated = st.pipeline.last_evaluated();
        if evaluated == self.shown {
            return;
        }
        self.shown = evaluated;
        for code in &self.index_regions {
            let Some(view) = st.pipeline.region_view(code) else { continue };
            let scopes = std::iter::once(("composite", view.score.composite))
                .chain(view.score.domains.iter().map(|(d, s)| (d.as_str(), *s)));
            for (scope, score) in scopes {
                let labels =
                    IndexLabels { region: code.clone(), region_name: view.region_name.clone(), scope: scope.into() };
                match score {
                    Some(x) => {
                        self.metrics.risk_index.get_or_create(&labels).set(x);
                    }
                    None => {
                        self.metrics.risk_index.remove(&labels);
                    }
                }
            }
        }
        let (mut active, mut overdue) = ([0i64; 5], [0i64; 5]);
        for a in st.pipeline.active_alerts() {
            active[a.level as usize] += 1;
            overdue[a.level as usize] += a.overdue as i64;
        }
        for level in vigil_model::Level::ALL {
            let i = level as usize;
            let label = LevelLabel { level: level.as_str().into() };
            self.metrics.alerts_active.get_or_create(&label).inc_by(active[i] - self.active[i]);
            self.metrics.alerts_overdue.get_or_create(&label).inc_by(overdue[i] - self.overdue[i]);
        }
        self.active = active;
        self.overdue = overdue;
    }
}

impl Drop for Gauges {
    /// An engine that stops (a task moving to another instance) takes its open alerts off.
    fn drop(&mut self) {
        if let Some(task) = self.task {
            self.metrics.task_watermarks.lock().unwrap_or_else(|e| e.into_inner()).retain(|(_, t), _| *t != task);
        }
        for level in vigil_model::Level::ALL {
            let i = level as usize;
            let label = LevelLabel { level: level.as_str().into() };
            self.metrics.alerts_active.get_or_create(&label).dec_by(self.active[i]);
            self.metrics.alerts_overdue.get_or_create(&label).dec_by(self.overdue[i]);
        }
    }
}
