//! The state lock of an engine that is not scaled out and keeps its checkpoints on a state
//! topic: what a checkpoint directory's lock file is to an engine on a disk.
//!
//! Without it, a second instance started by mistake with the same consumer group and state topic
//! would publish everything the first does and overwrite its checkpoints. With it, an instance
//! first joins the consumer group `<group>.lock` on the topic `<state topic>.lock` (one
//! partition, created if missing) with the cooperative-sticky assignor, and runs only while it
//! holds that partition. The sticky assignor leaves it with its holder for as long as the holder
//! stays in the group, so a second instance stands by, a hot standby, and takes over (resuming
//! from the newest checkpoint) once the first stops or its session times out; a holder that
//! comes back after losing its session finds the partition taken. The lock lives in the
//! brokers' group coordinator: nothing on any disk. (On the state topic itself, of several
//! partitions, the assignor would spread them over the members and could hand the lock on.)
//!
//! An engine that loses the lock while running (its session timed out: the process stalled, or
//! the brokers lost sight of it) stops at once, without a final checkpoint, since another
//! instance may already have resumed from the last one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer as _;
use vigil_kafka::{GroupMember, Membership, TopicPartition};

use crate::engine::{EngineConfig, EngineError};
use crate::store::StateLocation;

const WAITING: u8 = 0;
const HELD: u8 = 1;
const LOST: u8 = 2;
/// In the group, with nothing assigned: another member holds the lock.
const STANDBY: u8 = 3;

/// How often a running engine serves the lock's group membership.
const SERVE_EVERY: Duration = Duration::from_millis(500);

/// Served less often than this (the process stalled), the membership is given a moment to
/// learn whether the group moved on before anything is written.
const STALLED: Duration = Duration::from_secs(3);

struct Holder {
    state: Arc<AtomicU8>,
}

impl Membership for Holder {
    fn assigned(&self, partitions: &[TopicPartition]) {
        let next = if partitions.is_empty() { STANDBY } else { HELD };
        for from in [WAITING, STANDBY] {
            let _ = self.state.compare_exchange(from, next, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    // Incremental rebalancing takes a partition back only to give it to another member.
    fn revoked(&self, partitions: &[TopicPartition]) {
        if !partitions.is_empty() {
            let _ = self.state.compare_exchange(HELD, LOST, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
}

/// The lock held: keep it with the engine ([`crate::Engine::hold`]); dropping it leaves the
/// group, which hands the lock to a standing-by instance at once.
pub struct StateLock {
    member: GroupMember<Holder>,
    state: Arc<AtomicU8>,
    group: String,
    topic: String,
    served: Instant,
}

impl StateLock {
    /// The group of the lock of an engine of consumer group `group`.
    pub fn group(group: &str) -> String {
        format!("{group}.lock")
    }

    /// Takes the lock of `cfg`'s engine when it keeps its checkpoints on a state topic and is
    /// not a scale-out task (`Ok(None)` otherwise: a directory has its own lock, and a
    /// scale-out group's tasks are handed out by the group itself). Waits, standing by, while
    /// another instance holds it; `Ok(None)` too when `stop` is set meanwhile.
    pub fn acquire(cfg: &EngineConfig, stop: &AtomicBool) -> Result<Option<StateLock>, EngineError> {
        let Some(StateLocation::Topic(topic)) = &cfg.state else { return Ok(None) };
        if cfg.task.is_some() || cfg.scale_out.is_some() {
            return Ok(None);
        }
        let group = StateLock::group(&cfg.group);
        let lock_topic = format!("{topic}.lock");
        vigil_kafka::ensure_single_partition(&cfg.kafka, &lock_topic)?;
        let state = Arc::new(AtomicU8::new(WAITING));
        let member = vigil_kafka::sticky_member(&cfg.kafka, &group, &lock_topic, Holder { state: Arc::clone(&state) })?;
        let mut lock = StateLock { member, state, group, topic: topic.clone(), served: Instant::now() };
        let mut said = false;
        loop {
            let _ = lock.member.poll(Duration::from_millis(100));
            // Given and taken back within one poll: still waiting.
            let _ = lock.state.compare_exchange(LOST, WAITING, Ordering::SeqCst, Ordering::SeqCst);
            match lock.state.load(Ordering::SeqCst) {
                HELD => {
                    if said {
                        tracing::info!("took over the state topic {} (group {})", lock.topic, lock.group);
                    }
                    lock.served = Instant::now();
                    return Ok(Some(lock));
                }
                STANDBY if !said => {
                    tracing::warn!(
                        "another vigil instance of consumer group {} holds the state topic {} (group {}): \
                         standing by until it stops",
                        cfg.group,
                        lock.topic,
                        lock.group
                    );
                    said = true;
                }
                _ => {}
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
        }
    }

    /// Serves the lock's group membership (every half second at most); an error once the lock
    /// is lost.
    pub fn check(&mut self) -> Result<(), EngineError> {
        if self.served.elapsed() >= SERVE_EVERY {
            self.serve();
        }
        self.verdict()
    }

    /// [`StateLock::check`] before a checkpoint is written, the membership served whatever the
    /// time.
    pub(crate) fn confirm(&mut self) -> Result<(), EngineError> {
        self.serve();
        self.verdict()
    }

    /// Serves the membership; after a stall (the session may have lapsed meanwhile), the
    /// group's verdict is waited for a second first, whichever check comes first.
    fn serve(&mut self) {
        if self.served.elapsed() >= STALLED {
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until && self.state.load(Ordering::SeqCst) == HELD {
                let _ = self.member.poll(Duration::from_millis(100));
            }
        } else {
            let _ = self.member.poll(Duration::ZERO);
        }
        self.served = Instant::now();
    }

    fn verdict(&mut self) -> Result<(), EngineError> {
        if self.state.load(Ordering::SeqCst) == LOST {
            // Out of the group at once: a member that stays in it only delays rebalances.
            self.member.unsubscribe();
            return Err(EngineError::LockLost { topic: self.topic.clone(), group: self.group.clone() });
        }
        Ok(())
    }

    /// Whether the lock is still held (as of the last time the membership was served).
    pub fn held(&self) -> bool {
        self.state.load(Ordering::SeqCst) == HELD
    }
}
