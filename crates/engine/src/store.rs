//! Where an engine's (or the roll-up's) checkpoints live: a local directory, or a Kafka topic.
//!
//! A directory holds two files, the current and the previous checkpoint, and is locked by one
//! instance at a time (see [`crate::checkpoint`]). Scaled out over several machines, a task's
//! directory must move with the task, which takes a volume every instance can mount.
//!
//! A state topic needs nothing but the brokers: each checkpoint is written as records keyed by
//! the consumer group of the engine that owns it (a task's is `<group>.task-<p>`), so the new
//! owner of a moved task reads its state from the topic, and instances keep no disk at all. It
//! mirrors the two files with two *slots*, written in turn: a checkpoint, compressed (LZ4: the
//! state is mostly zeros and small numbers), is cut into chunks
//! (records `<key>/<slot>/<i>`, each led by the checkpoint's sequence number) followed by a
//! manifest (`<key>/<slot>`: the sequence number and the chunk count). The slot whose manifest
//! carries the higher number is the current checkpoint, the other the previous one. A write cut
//! off half way leaves chunks of one number under a manifest of another, which reads as an
//! unusable checkpoint, and the other slot is intact: the same guarantees as the files'.
//! A write that needs fewer chunks than the slot held before deletes the rest (tombstones). A
//! compacted topic keeps only the newest record per key once a segment rolls, so with
//! `cleanup.policy=compact` and a short `segment.ms` it stays at a few times the size of the
//! state (deploy/README.md creates it so); without compaction every checkpoint stays, and a
//! start reads them all.
//!
//! In exactly-once mode the records go through the transactional producer, in the transaction
//! that commits the checkpoint's interval: on a broker that writes transaction markers a
//! checkpoint becomes visible (`read_committed`) exactly when its outputs do, and a fenced,
//! older owner of the task cannot write one. A restart still picks the slot by the transaction
//! number the commit topic shows, as it picks between two files, so a broker that shows aborted
//! records (librdkafka's mock cluster) is handled the same way. In
//! at-least-once mode they are flushed before the checkpoint counts as written, as a file is
//! synced: the chunks first, each acknowledged (a failed delivery fails the checkpoint and
//! leaves the slots as they were), then the manifest. Nothing fences an older owner there,
//! which the group's eager rebalancing makes wait for its last checkpoint before the task moves.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, Producer as _};
use vigil_kafka::{DeliveryCheck, KafkaSettings};

use crate::checkpoint::{self, Checkpoint, CheckpointError, DirLock, Loaded, Pair, Resolved};
use crate::engine::EngineError;

/// Where checkpoints go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateLocation {
    /// Files in this directory (each task or the roll-up in a sub-directory of its own).
    Dir(PathBuf),
    /// Records on this topic, keyed by the owning engine's consumer group.
    Topic(String),
}

impl StateLocation {
    /// The location of a part (a scale-out task, the roll-up) named `name`: a sub-directory, or
    /// the same topic (the part's own consumer group keys its records).
    pub fn part(&self, name: &str) -> StateLocation {
        match self {
            StateLocation::Dir(d) => StateLocation::Dir(d.join(name)),
            StateLocation::Topic(t) => StateLocation::Topic(t.clone()),
        }
    }

    /// For log lines: the directory's path or the topic's name.
    pub fn describe(&self) -> String {
        match self {
            StateLocation::Dir(d) => format!("directory {}", d.display()),
            StateLocation::Topic(t) => format!("topic {t}"),
        }
    }
}

/// The transaction timeout of exactly-once mode for a checkpoint interval: three intervals, at
/// least a minute. It bounds how long a crashed instance's open transaction holds back
/// `read_committed` readers.
pub fn transaction_timeout(checkpoint_every: Duration) -> Duration {
    (checkpoint_every * 3).max(Duration::from_secs(60))
}

/// The largest record of a state topic: brokers refuse messages over 1 MiB by default
/// (`message.max.bytes`), record framing included.
pub const CHUNK: usize = 512 * 1024;

const MANIFEST: &[u8; 8] = b"VIGILSM1";

/// An open checkpoint store, held for the engine's run.
pub enum Store {
    Dir { dir: PathBuf, _lock: DirLock },
    Topic(TopicStore),
}

/// The state of one engine on a state topic.
pub struct TopicStore {
    settings: KafkaSettings,
    topic: String,
    /// The owning engine's consumer group: the records' key prefix.
    key: String,
    /// The slot of the current checkpoint (the next write goes to the other one), and the
    /// highest sequence number any record of either slot carries.
    current: Option<(u8, u64)>,
    /// Per slot, the chunks its newest manifest names: a shorter write deletes the rest.
    chunks: [u32; 2],
    /// The producer of at-least-once writes, whose failed deliveries are counted (made at the
    /// first such write).
    own: Option<BaseProducer<DeliveryCheck>>,
    /// How long reading may stall: past the transaction timeout, so that another task's open
    /// transaction left by a crash (which holds every `read_committed` reader back until it is
    /// fenced or times out) delays a start instead of failing it.
    stall: Duration,
}

impl Store {
    /// Opens `location` for the engine of consumer group `group`, checkpointing every
    /// `checkpoint_every`. A directory is locked first of all (see [`DirLock`]); a topic is only
    /// named here and read by [`Store::read`].
    pub fn open(
        location: &StateLocation,
        settings: &KafkaSettings,
        group: &str,
        checkpoint_every: Duration,
    ) -> Result<Store, CheckpointError> {
        Ok(match location {
            StateLocation::Dir(dir) => Store::Dir { dir: dir.clone(), _lock: DirLock::acquire(dir)? },
            // Keys are `<group>/<slot>[/<chunk>]`: a group with a `/` could read another's.
            StateLocation::Topic(topic) if group.contains('/') => {
                return Err(CheckpointError::Topic {
                    topic: topic.clone(),
                    why: format!("consumer group {group:?} contains '/', which keys on a state topic cannot hold"),
                });
            }
            StateLocation::Topic(topic) => Store::Topic(TopicStore {
                settings: settings.clone(),
                topic: topic.clone(),
                key: group.to_string(),
                current: None,
                chunks: [0; 2],
                own: None,
                stall: transaction_timeout(checkpoint_every) + Duration::from_secs(30),
            }),
        })
    }

    /// The newest good checkpoint: `None` when there is none.
    pub fn read(&mut self, warn: &mut dyn FnMut(String)) -> Result<Option<Checkpoint>, CheckpointError> {
        match self {
            Store::Dir { dir, .. } => checkpoint::read(dir, warn),
            Store::Topic(t) => {
                let pair = t.load()?;
                let back = !matches!(pair.files[0], Some(Ok(_))) && matches!(pair.files[1], Some(Ok(_)));
                let cp = checkpoint::newest(pair, warn)?;
                if back {
                    t.step_back();
                }
                Ok(cp)
            }
        }
    }

    /// The checkpoint of the transaction the group last committed (see
    /// [`checkpoint::read_committed`]).
    pub fn read_committed(
        &mut self,
        committed: Option<u64>,
        warn: &mut dyn FnMut(String),
    ) -> Result<Resolved, CheckpointError> {
        match self {
            Store::Dir { dir, .. } => checkpoint::read_committed(dir, committed, warn),
            Store::Topic(t) => {
                let pair = t.load()?;
                let resolved = checkpoint::committed_of(pair, committed, warn)?;
                if resolved.stepped_back {
                    t.step_back();
                }
                Ok(resolved)
            }
        }
    }

    /// Writes `cp`; returns its size in bytes (compressed, on a topic). On a topic in
    /// exactly-once mode (`transactional`) the records go through `producer` and join its open
    /// transaction; otherwise through the store's own producer, each acknowledged before this
    /// returns (a failed delivery is an error, and the slots stay as they were).
    pub fn write(&mut self, cp: &Checkpoint, producer: &BaseProducer, transactional: bool) -> Result<u64, EngineError> {
        match self {
            Store::Dir { dir, .. } => Ok(checkpoint::write(dir, cp)?),
            Store::Topic(t) => t.write(cp, producer, transactional),
        }
    }
}

/// The checkpoint at `location` that the engine of consumer group `group` would resume from,
/// read without taking the store over: no lock taken, nothing written (the engine that owns it
/// may be running elsewhere). A store written in exactly-once mode is resolved by the group's
/// last commit on `commits`, as the engine resolves it (its newest checkpoint may belong to a
/// transaction that never committed).
pub fn peek(
    location: &StateLocation,
    settings: &KafkaSettings,
    group: &str,
    commits: &str,
    checkpoint_every: Duration,
    warn: &mut dyn FnMut(String),
) -> Result<Option<Checkpoint>, EngineError> {
    let pair = load(location, settings, group, checkpoint_every)?;
    let transactional = pair.files.iter().any(|f| matches!(f, Some(Ok(c)) if c.txn.is_some()));
    if !transactional {
        return Ok(checkpoint::newest(pair, warn)?);
    }
    // The last commit first, then the checkpoints again, as an engine starting reads them: a
    // transaction the owner commits in between then shows as a checkpoint one step ahead, which
    // is passed over, rather than as a commit without its checkpoint.
    let committed = crate::engine::last_committed(settings, commits, group)?;
    let pair = load(location, settings, group, checkpoint_every)?;
    Ok(checkpoint::committed_of(pair, committed, warn)?.checkpoint)
}

fn load(
    location: &StateLocation,
    settings: &KafkaSettings,
    group: &str,
    checkpoint_every: Duration,
) -> Result<Pair, CheckpointError> {
    match location {
        StateLocation::Dir(dir) => checkpoint::load_dir(dir, true),
        StateLocation::Topic(_) => match Store::open(location, settings, group, checkpoint_every)? {
            Store::Topic(mut t) => t.load(),
            Store::Dir { .. } => unreachable!("a topic location opens a topic store"),
        },
    }
}

impl TopicStore {
    fn err(&self, why: impl Into<String>) -> CheckpointError {
        CheckpointError::Topic { topic: self.topic.clone(), why: why.into() }
    }

    /// Makes the previous slot current, when it was resumed from: the next checkpoint then
    /// replaces the uncommitted or unusable one, never the one resumed from.
    fn step_back(&mut self) {
        if let Some((slot, seq)) = self.current {
            self.current = Some((1 - slot, seq));
        }
    }

    /// Reads both slots (the newest record of each key of this engine) and notes which is
    /// current.
    fn load(&mut self) -> Result<Pair, CheckpointError> {
        let prefix = format!("{}/", self.key);
        let mut newest: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        vigil_kafka::scan_committed_within(&self.settings, &self.topic, self.stall, &mut |k, v| {
            if let Some(k) = k
                && let Some(rest) = k.strip_prefix(prefix.as_bytes())
            {
                newest.insert(rest.to_vec(), v.map(<[u8]>::to_vec));
            }
        })
        .map_err(|e| self.err(e.to_string()))?;
        let manifest = |slot: u8| -> Option<Result<(u64, u32), String>> {
            let v = newest.get(slot.to_string().as_bytes())?.as_ref()?;
            Some(match v.strip_prefix(MANIFEST) {
                Some(rest) if rest.len() == 12 => {
                    let seq = u64::from_le_bytes(rest[..8].try_into().unwrap_or_default());
                    let chunks = u32::from_le_bytes(rest[8..].try_into().unwrap_or_default());
                    Ok((seq, chunks))
                }
                _ => Err("its manifest is not a vigil state manifest".to_string()),
            })
        };
        let slot = |slot: u8| -> (u64, Loaded) {
            match manifest(slot) {
                None => (0, None),
                Some(Err(why)) => (0, Some(Err(why))),
                Some(Ok((seq, chunks))) => {
                    let mut bytes = Vec::new();
                    for i in 0..chunks {
                        let chunk = newest.get(format!("{slot}/{i}").as_bytes()).and_then(Option::as_ref);
                        match chunk.and_then(|c| c.split_at_checked(8)) {
                            Some((s, body)) if s == seq.to_le_bytes() => bytes.extend_from_slice(body),
                            Some(_) => {
                                return (
                                    seq,
                                    Some(Err(format!("chunk {i} of {chunks} belongs to another checkpoint"))),
                                );
                            }
                            None => return (seq, Some(Err(format!("chunk {i} of {chunks} is missing")))),
                        }
                    }
                    (seq, Some(checkpoint::decompress(&bytes).and_then(|b| checkpoint::decode(&b))))
                }
            }
        };
        let (s0, l0) = slot(0);
        let (s1, l1) = slot(1);
        let cur: u8 = if s1 > s0 { 1 } else { 0 };
        // Numbers go on from the highest any record carries, torn chunks included, so that a
        // retried write never mixes with the chunks of the one cut off.
        let highest = newest
            .iter()
            // Chunks (`<slot>/<i>`) lead with their number; manifests (`<slot>`) with MANIFEST.
            .filter(|(k, _)| k.contains(&b'/'))
            .filter_map(|(_, v)| Some(u64::from_le_bytes(v.as_ref()?.get(..8)?.try_into().ok()?)))
            .chain([s0, s1])
            .max()
            .unwrap_or(0);
        self.chunks = [0, 1].map(|s| manifest(s).and_then(Result::ok).map_or(0, |(_, n)| n));
        self.current = (l0.is_some() || l1.is_some() || highest > 0).then_some((cur, highest));
        let name = |s: u8| format!("{}/{s}", self.key);
        let (labels, files) = if cur == 0 { ([name(0), name(1)], [l0, l1]) } else { ([name(1), name(0)], [l1, l0]) };
        let names = labels.clone().map(|l| format!("{l} on {}", self.topic));
        Ok(Pair { store: format!("state topic {} (key {})", self.topic, self.key), names, labels, files })
    }

    fn write(&mut self, cp: &Checkpoint, producer: &BaseProducer, transactional: bool) -> Result<u64, EngineError> {
        let raw = checkpoint::encode(cp).map_err(|e| self.err(format!("cannot encode a checkpoint: {e}")))?;
        let bytes = checkpoint::compress(&raw);
        let (slot, seq) = match self.current {
            Some((cur, seq)) => (1 - cur, seq.checked_add(1).ok_or_else(|| self.err("sequence numbers ran out"))?),
            None => (0, 1),
        };
        let chunks = bytes.chunks(CHUNK).count().max(1) as u32;
        let mut records = Vec::with_capacity(chunks as usize + 1);
        for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
            let mut record = Vec::with_capacity(chunk.len() + 8);
            record.extend_from_slice(&seq.to_le_bytes());
            record.extend_from_slice(chunk);
            records.push((format!("{}/{slot}/{i}", self.key), Some(record)));
        }
        // Chunks the slot's last checkpoint had beyond this one's: deleted.
        for i in chunks..self.chunks[slot as usize] {
            records.push((format!("{}/{slot}/{i}", self.key), None));
        }
        let mut manifest = MANIFEST.to_vec();
        manifest.extend_from_slice(&seq.to_le_bytes());
        manifest.extend_from_slice(&chunks.to_le_bytes());
        let manifest = (format!("{}/{slot}", self.key), manifest);
        // The number counts as used from here: a write that fails half way is retried under the
        // next one, whose chunks cannot be taken for this one's.
        self.current = Some((1 - slot, seq));
        if transactional {
            // The transaction commits all of it or none (a failed record aborts it).
            send_all(producer, &self.topic, &records)?;
            vigil_kafka::send(producer, &self.topic, &manifest.0, &manifest.1, None)?;
        } else {
            if self.own.is_none() {
                self.own = Some(vigil_kafka::checked_producer(&self.settings)?);
            }
            let own = self.own.as_ref().ok_or_else(|| self.err("no producer"))?;
            let failed = own.context().failed();
            let landed = |what: &str| -> Result<(), EngineError> {
                vigil_kafka::flush(own, Duration::from_secs(30))?;
                if own.in_flight_count() > 0 || own.context().failed() > failed {
                    return Err(self.err(format!("the brokers did not take a checkpoint's {what}")).into());
                }
                Ok(())
            };
            send_all(own, &self.topic, &records)?;
            // The manifest only once every chunk landed: a slot it names is complete.
            landed("chunks")?;
            vigil_kafka::send(own, &self.topic, &manifest.0, &manifest.1, None)?;
            landed("manifest")?;
        }
        self.current = Some((slot, seq));
        self.chunks[slot as usize] = chunks;
        Ok(bytes.len() as u64)
    }
}

/// Sends each (key, value) record, a tombstone where the value is `None`.
fn send_all<C: rdkafka::producer::ProducerContext<DeliveryOpaque = ()>>(
    producer: &BaseProducer<C>,
    topic: &str,
    records: &[(String, Option<Vec<u8>>)],
) -> Result<(), EngineError> {
    for (key, value) in records {
        match value {
            Some(v) => vigil_kafka::send(producer, topic, key, v, None)?,
            None => vigil_kafka::send_tombstone(producer, topic, key)?,
        }
    }
    Ok(())
}
