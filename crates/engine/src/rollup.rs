//! The roll-up runner of scale-out mode: reads the score records of the partition level
//! (districts by default) that every task publishes on the score topic, feeds them to the pure
//! [`CityRollup`] stage, and publishes the scores and alerts of the levels above (the city) to
//! the same topics as the tasks. It checkpoints its state and offsets like an
//! engine (in `<checkpoint_dir>/rollup`, or on the state topic under its consumer group
//! `<group>.rollup`), so that it can move between instances with task 0.
//!
//! It is at-least-once in both delivery modes: after a crash it publishes again, byte for byte,
//! what it published since its last checkpoint. It reads the score topic `read_committed`, so
//! in exactly-once mode it only sees what the tasks committed.
//!
//! With an archive, it archives the city scores and alerts it publishes, committed with each
//! checkpoint like an engine's (see [`vigil_core::Archive`]): exactly once, across moves and
//! crashes, although the topic may see a record twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vigil_core::cityroll::{CityRollup, RollupState};
use vigil_kafka::Message;
use vigil_model::record::{AlertRecord, ScoreRecord};
use vigil_rules::RuleSet;
use vigil_window::Watermarks;

use crate::engine::{ArchiveFactory, EngineConfig, EngineError, KafkaOutput, position, resume_archive};
use crate::metrics::Metrics;
use crate::store::Store;

/// The consumer group (offsets are vigil's own; the name only identifies the client) and the
/// checkpoint sub-directory of the roll-up.
pub const ROLLUP: &str = "rollup";

/// Runs the roll-up until `stop` is set, or, once `drain` is set, until it has read the score
/// topic up to where it ended at that moment. `alerts` gets every city alert it publishes. Once
/// `abort` is set (task 0 was lost to the group), it stops without writing anything more.
#[allow(clippy::too_many_arguments)]
pub fn run(
    rules: Arc<RuleSet>,
    cfg: &EngineConfig,
    metrics: &Metrics,
    archive: Option<&ArchiveFactory>,
    stop: &AtomicBool,
    drain: &AtomicBool,
    abort: &AtomicBool,
    alerts: &mut dyn FnMut(&AlertRecord),
) -> Result<(), EngineError> {
    let name = crate::scale::part_name(ROLLUP, cfg.partition_level);
    let group = format!("{}.{name}", cfg.group);
    let location = cfg.state.as_ref().map(|s| s.part(&name));
    let mut warn = |w: String| tracing::warn!("roll-up: {w}");
    let mut store = match &location {
        Some(l) => Some(loop {
            // The instance that ran the roll-up before releases its directory's lock when it
            // stops.
            match Store::open(l, &cfg.kafka, &group, cfg.checkpoint_every) {
                Ok(s) => break s,
                Err(crate::checkpoint::CheckpointError::Locked { .. }) if !stop.load(Ordering::Relaxed) => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e.into()),
            }
        }),
        None => None,
    };
    let restored = match &mut store {
        Some(s) => s.read(&mut warn)?,
        None => None,
    };
    let topic = cfg.outputs.scores.clone();
    let mut start = BTreeMap::new();
    let mut stage = CityRollup::at_level(Arc::clone(&rules), cfg.partition_level);
    let mut resumed_at = None;
    let mut log = vigil_core::ArchiveLog::default();
    if let Some(cp) = restored {
        match serde_json::from_slice::<RollupState>(&cp.pipeline)
            .map_err(|e| e.to_string())
            .and_then(|s| CityRollup::restore(Arc::clone(&rules), cfg.partition_level, s))
        {
            Ok(s) => {
                stage = s;
                start = cp.offsets.iter().map(|(t, p, o)| ((t.clone(), *p), *o)).collect();
                resumed_at = Some(position(cp.offsets.iter().map(|(_, _, o)| *o), None));
                log = cp.archive;
            }
            Err(e) => warn(format!("its checkpoint cannot be resumed ({e}): reading {topic} from the beginning")),
        }
    }
    let mut archive = match archive {
        Some(open) => {
            let mut a = open(&group, &rules).map_err(EngineError::Archive)?;
            resume_archive(a.as_mut(), resumed_at, &log)?;
            Some(a)
        }
        None => None,
    };
    let assigned = vigil_kafka::assigned_consumer(&cfg.kafka, &group, std::slice::from_ref(&topic), &start)?;
    let consumer = assigned.consumer;
    let resume_at: BTreeMap<i32, i64> =
        assigned.partitions.iter().zip(&assigned.resume_at).map(|((_, p), o)| (*p, *o)).collect();
    let mut next: BTreeMap<i32, i64> =
        assigned.partitions.iter().map(|(t, p)| (*p, start.get(&(t.clone(), *p)).copied().unwrap_or(-1))).collect();
    let producer = vigil_kafka::producer(&cfg.kafka)?;
    let mut out = KafkaOutput {
        producer: &producer,
        archive: archive.as_deref_mut().map(|a| a as &mut dyn vigil_core::Archive),
        topics: &cfg.outputs,
        rules_version: rules.version.clone(),
        metrics,
        on_alert: alerts,
        score_tap: cfg.score_tap.clone(),
        error: None,
    };
    let mut last_checkpoint = Instant::now();
    // Where the topic ended when draining began: (partition, low, high).
    let mut drain_to: Option<Vec<(i32, i64, i64)>> = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        // Read after the stop: a loss sets it first, so a stop it caused is never taken for a
        // clean one (which would write a final checkpoint).
        if abort.load(Ordering::SeqCst) {
            tracing::warn!("roll-up: lost to the consumer group with task 0; stopped without a checkpoint");
            return Ok(());
        }
        if drain_to.is_none() && drain.load(Ordering::Relaxed) {
            drain_to = Some(vigil_kafka::watermarks(&cfg.kafka, &topic)?);
        }
        match consumer.poll(Duration::from_millis(50)) {
            // Reading resumes a little before the checkpoint (see vigil_kafka::RESUME_LOOKBACK).
            Some(Ok(m)) if m.offset() < resume_at.get(&m.partition()).copied().unwrap_or(-1) => {}
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                // The roll-up's own city records come back on the same topic; the stage takes
                // district records only.
                if let Some(rec) = m.payload().and_then(|p| serde_json::from_slice::<ScoreRecord>(p).ok()) {
                    stage.record(&rec, &mut out);
                }
            }
            Some(Err(e)) => tracing::warn!("roll-up consumer error: {e}"),
            None => {}
        }
        metrics.rollup_pending.set(stage.pending_hours() as i64);
        vigil_kafka::poll(&producer);
        if let Some(e) = out.error.take() {
            return Err(e.into());
        }
        let drained = drain_to.as_ref().is_some_and(|ends| {
            ends.iter().all(|&(p, low, high)| next.get(&p).copied().unwrap_or(-1).max(low) >= high)
        });
        let done = stopping || drained;
        if done || last_checkpoint.elapsed() >= cfg.checkpoint_every {
            // The archive commits first, as an engine's: a checkpoint that then fails to land
            // leaves files that a restart from the previous one discards.
            if let Some(a) = out.archive.as_deref_mut() {
                a.commit().map_err(EngineError::Archive)?;
            }
            vigil_kafka::flush(&producer, Duration::from_secs(30))?;
            // Offsets alone order the roll-up's intervals: it publishes only on reading a
            // record, and every record read moves them.
            let at = position(next.values().copied(), None);
            if let Some(w) = out.archive.as_deref().and_then(|a| a.writer()) {
                log.record(w, at);
            }
            if let Some(store) = &mut store {
                let cp = crate::checkpoint::Checkpoint {
                    format: crate::checkpoint::CHECKPOINT_FORMAT,
                    rules_version: rules.version.clone(),
                    offsets: next.iter().filter(|(_, o)| **o >= 0).map(|(p, o)| (topic.clone(), *p, *o)).collect(),
                    watermarks: Watermarks::new(&[]),
                    pipeline: serde_json::to_vec(stage.state()).unwrap_or_default(),
                    txn: None,
                    after: None,
                    archive: log.clone(),
                };
                store.write(&cp, &producer, false)?;
            }
            if let Some(a) = out.archive.as_deref_mut() {
                a.begin(at);
                // The final checkpoint landed: it covers everything this run archived.
                if done && store.is_some() {
                    a.finished();
                }
            }
            last_checkpoint = Instant::now();
        }
        if done {
            // The roll-up may move to another instance: this one no longer waits on anything.
            metrics.rollup_pending.set(0);
            return Ok(());
        }
    }
}
