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
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

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
    #[error("kafka: could not read {topic} to its end within {seconds} s")]
    ReadTimeout { topic: String, seconds: u64 },
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

/// A producer for outputs: every write acknowledged by all in-sync replicas, idempotent.
pub fn producer(settings: &KafkaSettings) -> Result<BaseProducer> {
    let mut c = settings.config();
    c.set("acks", "all").set("enable.idempotence", "true").set("linger.ms", "5").set("message.max.bytes", "1048576");
    Ok(c.create()?)
}

/// Sends one message, waiting (and serving delivery reports) while the local queue is full, so
/// that a fast producer slows down instead of failing.
pub fn send(p: &BaseProducer, topic: &str, key: &str, payload: &[u8], headers: Option<OwnedHeaders>) -> Result<()> {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
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
pub fn flush(p: &BaseProducer, timeout: Duration) -> Result<()> {
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
}

/// A consumer assigned every partition of `topics` (no group rebalance: vigil assigns
/// explicitly and keeps its own offsets), starting from the given offsets or the beginning.
pub fn assigned_consumer(
    settings: &KafkaSettings,
    group: &str,
    topics: &[String],
    start: &BTreeMap<(String, i32), i64>,
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
        for id in ids {
            let offset = start.get(&(t.clone(), id)).map_or(Offset::Beginning, |&o| Offset::Offset(o));
            tpl.add_partition_offset(t, id, offset)?;
            partitions.push((t.clone(), id));
        }
    }
    consumer.assign(&tpl)?;
    Ok(Assigned { consumer, partitions, offsets })
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
    let mut c = settings.config();
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.max.bytes", "1048576")
        .set("transactional.id", transactional_id)
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
    // Each partition is read up to the high watermark it had when reading began. With
    // read_committed isolation, the end of a partition is first reported at its last stable
    // offset, which another producer's open transaction can hold back: reading goes on until
    // that transaction ends (committed records behind it count) or the time limit.
    let mut open = BTreeMap::new();
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        if high > low {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            open.insert(p.id(), high);
        }
    }
    if open.is_empty() {
        return Ok(None);
    }
    consumer.assign(&tpl)?;
    let limit = Duration::from_secs(60);
    let started = Instant::now();
    let mut last = None;
    while !open.is_empty() {
        if started.elapsed() > limit {
            return Err(KafkaEdgeError::ReadTimeout { topic: topic.into(), seconds: limit.as_secs() });
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if m.key() == Some(key) {
                    last = m.payload().map(<[u8]>::to_vec);
                }
                if open.get(&m.partition()).is_some_and(|&high| m.offset() + 1 >= high) {
                    open.remove(&m.partition());
                }
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
    Ok(last)
}

/// Asks the brokers for their metadata, within `timeout`: whether they can be reached at all
/// with these settings (address, TLS trust, SASL credentials). Returns how many brokers the
/// cluster reports.
pub fn check_connection(settings: &KafkaSettings, timeout: Duration) -> Result<usize> {
    let consumer: BaseConsumer = settings.config().create()?;
    let md = consumer.fetch_metadata(None, timeout)?;
    Ok(md.brokers().len())
}
