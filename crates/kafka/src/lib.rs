//! vigil-kafka is vigil's edge to Kafka: client settings (anything librdkafka accepts passes
//! through, so SSL and SASL work as on any librdkafka client), the embedded broker used by the
//! default run (librdkafka's in-process mock cluster, reached through the same client code as a
//! real cluster), topic creation, a durable producer and a consumer with explicit partition
//! assignment. It knows nothing about scoring.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DefaultProducerContext, DeliveryResult, Producer as _, ProducerContext,
};
use rdkafka::{Offset, TopicPartitionList};

pub mod partitioner;
pub use partitioner::Partitioner;

pub use rdkafka::Message;
pub use rdkafka::message::{Header, Headers};
pub use rdkafka::producer::BaseProducer as OutputProducer;

/// Errors at the Kafka edge; the operator must act on them (brokers, topics, settings).
#[derive(Debug, thiserror::Error)]
pub enum KafkaEdgeError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("kafka: could not create topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("kafka: topic {0} does not exist on the brokers")]
    MissingTopic(String),
    #[error("kafka: the consumer has no group metadata to commit offsets in a transaction with (no group.id?)")]
    NoGroupMetadata,
    #[error("kafka: reading {topic} to its end stalled for {seconds} s (an open transaction, or brokers out of reach)")]
    ReadTimeout { topic: String, seconds: u64 },
    #[error(
        "kafka: topic {topic} has {found} partitions where {want} were expected: scale-out needs every event \
         topic co-partitioned (the same partition count, keyed by district)"
    )]
    PartitionCount { topic: String, found: usize, want: i32 },
}

pub type Result<T> = std::result::Result<T, KafkaEdgeError>;

/// Where the brokers are and any further librdkafka settings (`security.protocol`,
/// `sasl.mechanism`, `ssl.ca.location`, ...), passed through unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaSettings {
    pub brokers: String,
    pub client: BTreeMap<String, String>,
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaSettings { brokers: brokers.into(), client: BTreeMap::new() }
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }
}

/// An in-process Kafka cluster (librdkafka's mock cluster). Clients reach it over TCP on
/// localhost like any broker; it lives as long as this value.
pub struct Embedded {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl Embedded {
    pub fn start(brokers: i32) -> Result<Embedded> {
        Ok(Embedded { cluster: MockCluster::new(brokers)? })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.cluster.create_topic(name, partitions, 1)?;
        Ok(())
    }

    /// Takes broker `id` (1-based) down: its connections close and it refuses new ones, as a
    /// crashed broker would (fault tests).
    pub fn broker_down(&self, id: i32) -> Result<()> {
        self.cluster.broker_down(id)?;
        Ok(())
    }

    /// Brings broker `id` back.
    pub fn broker_up(&self, id: i32) -> Result<()> {
        self.cluster.broker_up(id)?;
        Ok(())
    }
}

/// Creates the topics that do not exist yet (real clusters; tansu does not auto-create).
pub fn ensure_topics(settings: &KafkaSettings, topics: &[(String, i32)]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = settings.config().create()?;
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|(name, parts)| NewTopic::new(name, *parts, TopicReplication::Fixed(1))).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = futures_executor::block_on(admin.create_topics(&new, &opts))?;
    for r in results {
        if let Err((topic, code)) = r
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(KafkaEdgeError::CreateTopic { topic, reason: code.to_string() });
        }
    }
    Ok(())
}

/// The settings of every producer of outputs: every write acknowledged by all in-sync
/// replicas, idempotent.
fn output_config(settings: &KafkaSettings) -> ClientConfig {
    let mut c = settings.config();
    c.set("acks", "all").set("enable.idempotence", "true").set("linger.ms", "5").set("message.max.bytes", "1048576");
    c
}

/// A producer for outputs (see [`output_config`]).
pub fn producer(settings: &KafkaSettings) -> Result<BaseProducer> {
    Ok(output_config(settings).create()?)
}

/// Counts the messages a producer could not deliver (after librdkafka's retries): the default
/// context drops those reports, which is fine for outputs re-sent after a restart but not for a
/// write that must know it landed (checkpoints on a state topic).
#[derive(Default)]
pub struct DeliveryCheck {
    failed: std::sync::atomic::AtomicU64,
}

impl DeliveryCheck {
    /// Messages whose delivery failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ClientContext for DeliveryCheck {}

impl ProducerContext for DeliveryCheck {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A producer like [`producer`] whose failed deliveries are counted ([`DeliveryCheck`]).
pub fn checked_producer(settings: &KafkaSettings) -> Result<BaseProducer<DeliveryCheck>> {
    Ok(output_config(settings).create_with_context(DeliveryCheck::default())?)
}

/// Sends one message, waiting (and serving delivery reports) while the local queue is full, so
/// that a fast producer slows down instead of failing. `payload` `None` is a tombstone.
pub fn send<C: ProducerContext<DeliveryOpaque = ()>>(
    p: &BaseProducer<C>,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
) -> Result<()> {
    send_record(p, topic, key, Some(payload), headers)
}

/// Sends a tombstone (a record without a value): compaction then drops every record of `key`.
pub fn send_tombstone<C: ProducerContext<DeliveryOpaque = ()>>(
    p: &BaseProducer<C>,
    topic: &str,
    key: &str,
) -> Result<()> {
    send_record(p, topic, key, None, None)
}

fn send_record<C: ProducerContext<DeliveryOpaque = ()>>(
    p: &BaseProducer<C>,
    topic: &str,
    key: &str,
    payload: Option<&[u8]>,
    headers: Option<OwnedHeaders>,
) -> Result<()> {
    let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).key(key);
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    if let Some(h) = headers {
        record = record.headers(h);
    }
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Serves delivery reports without waiting.
pub fn poll(p: &BaseProducer) {
    p.poll(Duration::ZERO);
}

/// Waits until every queued message is acknowledged (or the timeout passes).
pub fn flush<C: ProducerContext>(p: &BaseProducer<C>, timeout: Duration) -> Result<()> {
    p.flush(timeout)?;
    Ok(())
}

/// The broker's offsets of each assigned partition, as librdkafka last reported them in its
/// statistics (refreshed every `STATS_INTERVAL`): what consumer lag and idleness are judged by.
/// Each report also says whether the partition was being fetched from a reachable leader, and
/// since when without a break: offsets from a broker that is down, or from before a reconnect
/// whose first fetch has not answered yet, can be stale, and a stale high offset would make a
/// partition with messages waiting look caught up.
#[derive(Clone, Default)]
pub struct PartitionOffsets(Arc<Mutex<HashMap<TopicPartition, Reported>>>);

#[derive(Clone, Copy, Debug)]
struct Reported {
    low: i64,
    high: i64,
    /// The position the application has been handed messages up to (past any transaction
    /// markers, which are never handed over).
    app: i64,
    /// Since when every report found the partition fetching from a leader that is up.
    live_since: Option<Instant>,
}

/// A topic and a partition number.
pub type TopicPartition = (String, i32);

impl PartitionOffsets {
    /// (low, high) watermark offsets of a partition, once the broker has reported them.
    pub fn get(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(topic.to_string(), partition)).map(|r| (r.low, r.high))
    }

    /// The offset librdkafka has handed messages up to (-1 or less before the first). It is past
    /// the commit markers of transactional producers, which the application never sees, so a
    /// partition they write can still be read to its high watermark.
    pub fn app_offset(&self, topic: &str, partition: i32) -> i64 {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(topic.to_string(), partition)).map_or(-1, |r| r.app)
    }

    /// How long the partition has been fetched without a break from a leader that is up (`None`
    /// while it is not, or before the first report).
    pub fn live_for(&self, topic: &str, partition: i32) -> Option<Duration> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(topic.to_string(), partition)).and_then(|r| r.live_since).map(|t| t.elapsed())
    }
}

/// How often librdkafka reports partition offsets.
pub const STATS_INTERVAL: Duration = Duration::from_millis(100);

/// The consumer's context: keeps the partition offsets from librdkafka's statistics.
pub struct OffsetsContext {
    offsets: PartitionOffsets,
}

impl ClientContext for OffsetsContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let now = Instant::now();
        let up: Vec<i32> = statistics.brokers.values().filter(|b| b.state == "UP").map(|b| b.nodeid).collect();
        let mut map = self.offsets.0.lock().unwrap_or_else(|e| e.into_inner());
        for (name, topic) in statistics.topics {
            for (id, p) in topic.partitions {
                // Partition -1 is librdkafka's internal unassigned partition; -1001 is "unknown".
                if id < 0 || p.hi_offset < 0 {
                    continue;
                }
                // The broker actually fetched from (the leader, or a follower with
                // fetch-from-follower); -1 while there is none.
                let live = p.fetch_state == "active" && p.broker >= 0 && up.contains(&p.broker);
                let key = (name.clone(), id);
                let was = map.get(&key).and_then(|r| r.live_since);
                let live_since = if live { Some(was.unwrap_or(now)) } else { None };
                map.insert(key, Reported { low: p.lo_offset.max(0), high: p.hi_offset, app: p.app_offset, live_since });
            }
        }
    }
}

impl ConsumerContext for OffsetsContext {}

/// The event consumer: explicit assignment, offsets kept by vigil, broker offsets observed.
pub type EventConsumer = BaseConsumer<OffsetsContext>;

/// A consumer with its assignment.
pub struct Assigned {
    pub consumer: EventConsumer,
    /// Every assigned partition, by topic in the order given, then by partition number.
    pub partitions: Vec<TopicPartition>,
    /// The broker's offsets of those partitions, as last reported.
    pub offsets: PartitionOffsets,
    /// Per partition, the offset reading resumes at (-1: from the beginning). Reading starts up
    /// to [`RESUME_LOOKBACK`] records earlier: drop every message below it.
    pub resume_at: Vec<i64>,
}

/// How many records before a stored offset a resumed partition is fetched from. A broker must
/// return the whole batch that holds the requested offset, and the client trims it; tansu 0.6
/// instead returns the batches that start at or after it, skipping the rest of that batch
/// (crates/kafka/tests/resume.rs shows it). Starting this much earlier reaches back past the
/// start of any batch a librdkafka producer writes (`batch.num.messages` is 10,000 at most by
/// default), and the consumer drops what it already processed.
pub const RESUME_LOOKBACK: i64 = 10_000;

/// Resumes a paused partition of `consumer` whose next message is `next`, fetching from
/// [`RESUME_LOOKBACK`] records before it: librdkafka fetches a resumed partition again from its
/// position, which usually lies inside a batch, and tansu 0.6 would then skip the rest of that
/// batch (crates/kafka/tests/resume.rs). The seek comes first, while the partition is still
/// paused, so that nothing is fetched from the old position. The caller drops every message
/// below the next one it expects: those below `next`, and any delivered again.
pub fn resume_from(consumer: &EventConsumer, topic: &str, partition: i32, next: i64) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    consumer.seek(topic, partition, Offset::Offset((next - RESUME_LOOKBACK).max(0)), Duration::from_secs(10))?;
    consumer.resume(&tpl)?;
    Ok(())
}

/// A consumer assigned every partition of `topics` (no group rebalance: vigil assigns
/// explicitly and keeps its own offsets), starting from the given offsets or the beginning.
pub fn assigned_consumer(
    settings: &KafkaSettings,
    group: &str,
    topics: &[String],
    start: &BTreeMap<(String, i32), i64>,
) -> Result<Assigned> {
    assigned_consumer_of(settings, group, topics, start, None)
}

/// [`assigned_consumer`], restricted to partition number `only` of every topic when given (a
/// scale-out task); such a topic must have `only.1` partitions.
pub fn assigned_consumer_of(
    settings: &KafkaSettings,
    group: &str,
    topics: &[String],
    start: &BTreeMap<(String, i32), i64>,
    only: Option<(i32, i32)>,
) -> Result<Assigned> {
    let mut c = settings.config();
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "10")
        .set("statistics.interval.ms", STATS_INTERVAL.as_millis().to_string());
    let offsets = PartitionOffsets::default();
    let consumer: EventConsumer = c.create_with_context(OffsetsContext { offsets: offsets.clone() })?;
    let mut partitions = Vec::new();
    let mut resume_at = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = consumer.fetch_metadata(Some(t), Duration::from_secs(10))?;
        let topic =
            md.topics().iter().find(|x| x.name() == t).ok_or_else(|| KafkaEdgeError::MissingTopic(t.clone()))?;
        if topic.partitions().is_empty() {
            return Err(KafkaEdgeError::MissingTopic(t.clone()));
        }
        let mut ids: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        if let Some((p, count)) = only {
            if ids.len() != count as usize {
                return Err(KafkaEdgeError::PartitionCount { topic: t.clone(), found: ids.len(), want: count });
            }
            ids.retain(|&id| id == p);
        }
        for id in ids {
            let stored = start.get(&(t.clone(), id)).copied();
            // Below the low watermark, the reset policy (earliest) applies.
            let offset = stored.map_or(Offset::Beginning, |o| Offset::Offset((o - RESUME_LOOKBACK).max(0)));
            tpl.add_partition_offset(t, id, offset)?;
            partitions.push((t.clone(), id));
            resume_at.push(stored.unwrap_or(-1));
        }
    }
    consumer.assign(&tpl)?;
    Ok(Assigned { consumer, partitions, offsets, resume_at })
}

/// A transactional producer for outputs, registered under `transactional_id`: every write then
/// belongs to a transaction, and registering fences any earlier producer with the same id (an
/// instance that was thought dead) and aborts the transaction it left open, so that what it
/// wrote is never seen by `read_committed` consumers. The transaction timeout bounds how long
/// a crashed instance's open transaction can hold those consumers back.
pub fn transactional_producer(
    settings: &KafkaSettings,
    transactional_id: &str,
    transaction_timeout: Duration,
) -> Result<BaseProducer> {
    let mut c = output_config(settings);
    c.set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", transaction_timeout.as_millis().to_string());
    let p: BaseProducer = c.create()?;
    p.init_transactions(Duration::from_secs(30))?;
    Ok(p)
}

/// Commits the open transaction of `producer` together with the consumer's next offsets
/// (`(topic, partition, offset)`), so that the group's committed offsets move with the outputs.
pub fn commit_transaction(
    producer: &BaseProducer,
    consumer: &EventConsumer,
    offsets: &[(String, i32, i64)],
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in offsets {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
    }
    if tpl.count() > 0 {
        let meta = consumer.group_metadata().ok_or(KafkaEdgeError::NoGroupMetadata)?;
        producer.send_offsets_to_transaction(&tpl, &meta, Duration::from_secs(30))?;
    }
    producer.commit_transaction(Duration::from_secs(30))?;
    Ok(())
}

/// The value of the last record with `key` on `topic`, read from the beginning to the end with
/// `read_committed` isolation (what aborted transactions wrote is skipped): how an instance in
/// exactly-once mode learns which checkpoint its group last committed.
pub fn read_last_committed(settings: &KafkaSettings, topic: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut last = None;
    scan_committed(settings, topic, &mut |k, v| {
        if k == Some(key) {
            last = v.map(<[u8]>::to_vec);
        }
    })?;
    Ok(last)
}

/// What [`scan_committed`] hands each record to: its key and value (`None` for a tombstone).
pub type RecordVisitor<'a> = dyn FnMut(Option<&[u8]>, Option<&[u8]>) + 'a;

/// Reads every partition of `topic` from its beginning to the end it had when reading began,
/// with `read_committed` isolation (what aborted transactions wrote is skipped), handing each
/// record's key and value to `each` in offset order within a partition. A topic the brokers
/// do not know is an error, not an empty topic.
pub fn scan_committed(settings: &KafkaSettings, topic: &str, each: &mut RecordVisitor<'_>) -> Result<()> {
    scan_committed_within(settings, topic, Duration::from_secs(60), each)
}

/// [`scan_committed`], failing once reading has stalled for `stall` (no record read).
pub fn scan_committed_within(
    settings: &KafkaSettings,
    topic: &str,
    stall: Duration,
    each: &mut RecordVisitor<'_>,
) -> Result<()> {
    let mut c = settings.config();
    c.set("group.id", "vigil-commit-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer = c.create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    // A topic the brokers do not know comes back with an error and no partitions: that must
    // not read as "nothing committed yet".
    let t = md
        .topics()
        .iter()
        .find(|x| x.name() == topic && x.error().is_none() && !x.partitions().is_empty())
        .ok_or_else(|| KafkaEdgeError::MissingTopic(topic.into()))?;
    let mut tpl = TopicPartitionList::new();
    // Each partition is read up to the high watermark it had when reading began, and ends where
    // the consumer reports its end (PartitionEOF) at or past it: not at the record just below
    // it, since tansu 0.6 reports a high watermark one short after a batch of several records.
    // With read_committed isolation, the end of a partition is first reported at its last
    // stable offset, which another producer's open transaction can hold back: reading goes on
    // until that transaction ends (committed records behind it count) or the time limit.
    let mut open = BTreeMap::new();
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        if high > low {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            open.insert(p.id(), high);
        }
    }
    if open.is_empty() {
        return Ok(());
    }
    consumer.assign(&tpl)?;
    // The limit counts from the last record read: a large topic takes as long as it takes, a
    // stalled one (an open transaction, an unreachable broker) fails.
    let limit = stall;
    let mut progress = Instant::now();
    while !open.is_empty() {
        if progress.elapsed() > limit {
            return Err(KafkaEdgeError::ReadTimeout { topic: topic.into(), seconds: limit.as_secs() });
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                progress = Instant::now();
                each(m.key(), m.payload());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                let position = consumer.position()?;
                let at = position.find_partition(topic, p).and_then(|e| e.offset().to_raw());
                if open.get(&p).is_some_and(|&high| at.is_some_and(|o| o >= high)) {
                    open.remove(&p);
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(())
}

/// Asks the brokers for their metadata, within `timeout`: whether they can be reached at all
/// with these settings (address, TLS trust, SASL credentials). Returns how many brokers the
/// cluster reports.
pub fn check_connection(settings: &KafkaSettings, timeout: Duration) -> Result<usize> {
    let consumer: BaseConsumer = settings.config().create()?;
    let md = consumer.fetch_metadata(None, timeout)?;
    Ok(md.brokers().len())
}

/// The partition count of each of `topics`, in order.
pub fn partition_counts(settings: &KafkaSettings, topics: &[String]) -> Result<Vec<i32>> {
    let consumer: BaseConsumer = settings.config().create()?;
    let mut counts = Vec::with_capacity(topics.len());
    for t in topics {
        let md = consumer.fetch_metadata(Some(t), Duration::from_secs(10))?;
        let topic = md
            .topics()
            .iter()
            .find(|x| x.name() == t && x.error().is_none() && !x.partitions().is_empty())
            .ok_or_else(|| KafkaEdgeError::MissingTopic(t.clone()))?;
        counts.push(topic.partitions().len() as i32);
    }
    Ok(counts)
}

/// The (partition, low, high) watermarks of every partition of `topic`, asked of the brokers now.
pub fn watermarks(settings: &KafkaSettings, topic: &str) -> Result<Vec<(i32, i64, i64)>> {
    let consumer: BaseConsumer = settings.config().create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let t = md
        .topics()
        .iter()
        .find(|x| x.name() == topic && x.error().is_none() && !x.partitions().is_empty())
        .ok_or_else(|| KafkaEdgeError::MissingTopic(topic.into()))?;
    let mut out = Vec::new();
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        out.push((p.id(), low, high));
    }
    out.sort_unstable();
    Ok(out)
}

/// What a member of a consumer group is told when the group moves partitions. Both are called
/// on the thread that polls the member, inside the poll.
pub trait Membership: Send + Sync + 'static {
    /// The partitions now assigned to this member (the whole assignment: eager rebalancing).
    fn assigned(&self, partitions: &[TopicPartition]);
    /// The partitions this member gives up. Called before the group reassigns them, and the
    /// rebalance waits for it to return: the member must finish with them (checkpoint) first.
    fn revoked(&self, partitions: &[TopicPartition]);
    /// The partitions this member has lost: the group has moved on without it (its session
    /// timed out), so they may belong to another member already. [`Membership::revoked`] unless
    /// overridden.
    fn lost(&self, partitions: &[TopicPartition]) {
        self.revoked(partitions);
    }
}

/// The context of a group member: hands rebalances to its [`Membership`], and pauses whatever it
/// is assigned, since the member only holds partitions for the group's bookkeeping while the
/// tasks read them through consumers of their own.
pub struct MemberContext<M: Membership> {
    membership: M,
}

impl<M: Membership> ClientContext for MemberContext<M> {}

fn listed(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    let mut v: Vec<TopicPartition> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
    v.sort();
    v
}

impl<M: Membership> ConsumerContext for MemberContext<M> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if consumer.assignment_lost() {
                self.membership.lost(&listed(tpl));
            } else {
                self.membership.revoked(&listed(tpl));
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!("could not pause the group member's partitions: {e}");
                }
                self.membership.assigned(&listed(tpl));
            }
            Rebalance::Error(e) => tracing::warn!("consumer group rebalance failed: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// A member of consumer group `group`, subscribed to `topics` with the range assignor, which
/// gives one member the same partition numbers of co-partitioned topics. Poll it regularly (it
/// returns no messages: its partitions stay paused); dropping it leaves the group, revoking
/// first.
pub type GroupMember<M> = BaseConsumer<MemberContext<M>>;

pub fn group_member<M: Membership>(
    settings: &KafkaSettings,
    group: &str,
    topics: &[String],
    membership: M,
) -> Result<GroupMember<M>> {
    member(settings, group, topics, membership, "range")
}

/// A member of consumer group `group` subscribed to `topic` with the cooperative-sticky
/// assignor, which leaves a partition with the member holding it for as long as that member
/// stays in the group (a member that lost its session and comes back finds it with the member
/// that holds it now). On a topic of one partition the first member holds it and the ones that
/// join later stand by. [`Membership::assigned`] and [`Membership::revoked`] are told the
/// partitions added and taken away (incremental rebalancing).
pub fn sticky_member<M: Membership>(
    settings: &KafkaSettings,
    group: &str,
    topic: &str,
    membership: M,
) -> Result<GroupMember<M>> {
    member(settings, group, &[topic.to_string()], membership, "cooperative-sticky")
}

/// Makes sure `topic` exists with exactly one partition, creating it when it does not, with
/// three replicas (as many as there are brokers, when fewer).
pub fn ensure_single_partition(settings: &KafkaSettings, topic: &str) -> Result<()> {
    match partition_counts(settings, &[topic.to_string()]) {
        Ok(c) if c[0] == 1 => return Ok(()),
        Ok(c) => {
            return Err(KafkaEdgeError::CreateTopic {
                topic: topic.into(),
                reason: format!("it exists with {} partitions, where it must have exactly one", c[0]),
            });
        }
        Err(KafkaEdgeError::MissingTopic(_)) => {}
        Err(e) => return Err(e),
    }
    let brokers = {
        let consumer: BaseConsumer = settings.config().create()?;
        consumer.fetch_metadata(None, Duration::from_secs(10))?.brokers().len()
    };
    let admin: AdminClient<DefaultClientContext> = settings.config().create()?;
    let new = [NewTopic::new(topic, 1, TopicReplication::Fixed(brokers.clamp(1, 3) as i32))];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in futures_executor::block_on(admin.create_topics(&new, &opts))? {
        if let Err((topic, code)) = r
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(KafkaEdgeError::CreateTopic { topic, reason: code.to_string() });
        }
    }
    Ok(())
}

fn member<M: Membership>(
    settings: &KafkaSettings,
    group: &str,
    topics: &[String],
    membership: M,
    strategy: &str,
) -> Result<GroupMember<M>> {
    let mut c = ClientConfig::new();
    // A crashed member's tasks move after its session times out: 10 s (Kafka's default before
    // 3.0) rather than librdkafka's 45 s, with a heartbeat each second. Settings win.
    c.set("session.timeout.ms", "10000").set("heartbeat.interval.ms", "1000");
    let base = settings.config();
    for (k, v) in base.config_map() {
        c.set(k, v);
    }
    c.set("group.id", group)
        .set("partition.assignment.strategy", strategy)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    let consumer: GroupMember<M> = c.create_with_context(MemberContext { membership })?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    Ok(consumer)
}
