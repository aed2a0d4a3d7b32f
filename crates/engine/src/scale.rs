//! Scale-out: several vigil instances in one consumer group share the event partitions.
//!
//! A *task* is one partition number of every event topic; the topics are co-partitioned (same
//! partition count, events keyed by district code, or by the code of their region at another
//! `partition_level`, e.g. streets), so a task holds every event of the districts (streets)
//! whose code the producers' partitioner sends there. Each instance joins the group
//! with a member consumer that only holds partitions for the group's bookkeeping (the range
//! assignor gives a member the same partition numbers of every topic), and runs one [`Engine`]
//! per task it is assigned, on its own thread, with its own consumer, producer, watermarks and
//! checkpoints: in a directory (`<checkpoint_dir>/task-<p>`, which the instances must share),
//! or on a state topic under the task's consumer group (nothing shared but the brokers; see
//! [`crate::store`]). A task's engine scores only its districts (streets) and the regions
//! below them, the levels above coming from the roll-up; an event on the wrong partition goes to
//! the dead-letter topic.
//!
//! When the group moves a task, the instance giving it up stops its engine, which writes its
//! final checkpoint, before the rebalance completes (eager rebalancing waits for it); the new
//! owner restores that checkpoint and continues from its offsets. A task's outputs are a
//! function of its partitions' events, so a move changes nothing in them, as a restart does not.
//! Tasks an instance loses (its session lapsed while it stalled, and the group moved on) stop
//! without a final checkpoint instead: their new owner may have resumed from the last one.
//!
//! City scores and alerts come from the roll-up ([`crate::rollup`]), which runs alongside task 0.
//!
//! With an archive, every task and the roll-up write files of their own (named by their consumer
//! groups and their run), committed with their checkpoints, into the archive directory of the
//! instance running them: one shared directory, or one per instance. A run killed between
//! committing its files and landing its checkpoint leaves files that no checkpoint covers; each
//! checkpoint logs which runs' files it covers ([`vigil_core::ArchiveLog`]), and the files are
//! removed by whoever next opens that directory: the task's new owner when it is shared, this
//! instance's next start ([`sweep_archive`]) when it is its own. The instances' archives together
//! hold everything once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use vigil_core::Carried;
use vigil_model::record::AlertRecord;
use vigil_rules::RuleSet;

use crate::engine::{
    ArchiveFactory, Engine, EngineConfig, EngineError, EngineHandle, Query, QueryInbox, RunSummary, Task,
};
use crate::metrics::Metrics;
use crate::store::StateLocation;

/// How long the supervisor waits for a task's answer to an API query.
const ASK: Duration = Duration::from_secs(2);

/// A running task or roll-up.
struct Running {
    stop: Arc<AtomicBool>,
    /// The roll-up drains (reads what the tasks published) instead of stopping at once.
    drain: Arc<AtomicBool>,
    /// Lost to the group: stop without writing anything more (see [`Engine::abort_when`]).
    abort: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    api: Option<EngineHandle>,
}

impl Running {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

/// What the member's rebalance callbacks and the task threads share with the supervisor.
#[derive(Default)]
struct Shared {
    /// Tasks by partition number; the roll-up under -1.
    running: Mutex<BTreeMap<i32, Running>>,
    /// The tasks this member holds now (`None` before the first assignment): set by each
    /// assignment, and shrunk by each revocation, since a rebalance can take several polls
    /// between the two, during which revoked tasks must not be started again.
    assigned: Mutex<Option<BTreeSet<i32>>>,
    /// Tasks whose engine ended by itself (`exit_when_idle`) and what they did.
    finished: Mutex<BTreeSet<i32>>,
    summary: Mutex<RunSummary>,
    failure: Mutex<Option<EngineError>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const ROLLUP_KEY: i32 = -1;

struct Member {
    shared: Arc<Shared>,
    topics: usize,
}

impl vigil_kafka::Membership for Member {
    fn assigned(&self, partitions: &[vigil_kafka::TopicPartition]) {
        // A task is a partition number held on every event topic (the range assignor hands them
        // out together when the topics are co-partitioned).
        let mut count: BTreeMap<i32, usize> = BTreeMap::new();
        for (_, p) in partitions {
            *count.entry(*p).or_default() += 1;
        }
        let tasks: BTreeSet<i32> = count.iter().filter(|(_, n)| **n == self.topics).map(|(p, _)| *p).collect();
        if tasks.len() != count.len() {
            tracing::warn!("the group assigned partitions of only some event topics: {partitions:?}");
        }
        tracing::info!("assigned tasks {tasks:?}");
        *lock(&self.shared.assigned) = Some(tasks);
    }

    /// Lost (this instance's session lapsed), the tasks may run elsewhere already, resumed from
    /// their last checkpoints: they stop without writing another, then as revoked.
    fn lost(&self, partitions: &[vigil_kafka::TopicPartition]) {
        let numbers: BTreeSet<i32> = partitions.iter().map(|(_, p)| *p).collect();
        {
            let running = lock(&self.shared.running);
            for (k, r) in running.iter() {
                if numbers.contains(k) || (*k == ROLLUP_KEY && numbers.contains(&0)) {
                    r.abort.store(true, Ordering::Relaxed);
                }
            }
        }
        self.revoked(partitions);
    }

    fn revoked(&self, partitions: &[vigil_kafka::TopicPartition]) {
        let numbers: BTreeSet<i32> = partitions.iter().map(|(_, p)| *p).collect();
        if let Some(held) = lock(&self.shared.assigned).as_mut() {
            held.retain(|p| !numbers.contains(p));
        }
        let mut taken = Vec::new();
        {
            let mut running = lock(&self.shared.running);
            for p in &numbers {
                taken.extend(running.remove(p));
            }
            if numbers.contains(&0) {
                taken.extend(running.remove(&ROLLUP_KEY));
            }
        }
        // Each writes its final checkpoint before the group hands its partitions on.
        for r in taken {
            r.stop();
        }
        let mut finished = lock(&self.shared.finished);
        numbers.iter().for_each(|p| {
            finished.remove(p);
        });
    }
}

/// Runs this instance's share of the group until `stop` is set (or, with `exit_when_idle`,
/// until every task it holds has gone quiet and the roll-up has read what they published).
/// With `archive`, each task and the roll-up archive what they consume and produce.
pub fn run(
    rules: Arc<RuleSet>,
    cfg: EngineConfig,
    metrics: Metrics,
    stop: &AtomicBool,
    inbox: Option<QueryInbox>,
    archive: Option<ArchiveFactory>,
    on_alert: &mut dyn FnMut(&AlertRecord),
) -> Result<RunSummary, EngineError> {
    let partitioner = cfg.scale_out.unwrap_or_default();
    let topics = cfg.source_topics(&rules);
    let counts = vigil_kafka::partition_counts(&cfg.kafka, &topics)?;
    let partitions = counts[0];
    if counts.iter().any(|&c| c != partitions) {
        let listed: Vec<String> = topics.iter().zip(&counts).map(|(t, c)| format!("{t}: {c}")).collect();
        return Err(EngineError::ScaleOut(format!(
            "the event topics must have the same partition count ({}), each keyed by district code",
            listed.join(", ")
        )));
    }
    let levels = rules.regions.level_names.len();
    if cfg.partition_level == 0 || cfg.partition_level as usize >= levels {
        return Err(EngineError::ScaleOut(format!(
            "partition level {} is not a level below the root of the rules' {levels}",
            cfg.partition_level
        )));
    }
    if let Some(StateLocation::Dir(dir)) = &cfg.state {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::ScaleOut(format!("{}: {e}", dir.display())))?;
    }
    if let (Some(open), Some(state)) = (&archive, &cfg.state) {
        sweep_archive(&rules, &cfg, state, partitions, open)?;
    }
    metrics.set_rules(&rules.name, &rules.version);
    metrics.init_series(&rules.sources.iter().map(|s| s.id.clone()).collect::<Vec<_>>());
    let shared = Arc::new(Shared::default());
    let member = vigil_kafka::group_member(
        &cfg.kafka,
        &cfg.group,
        &topics,
        Member { shared: Arc::clone(&shared), topics: topics.len() },
    )?;
    let (alerts_tx, alerts_rx) = std::sync::mpsc::channel::<AlertRecord>();
    if let Some(inbox) = &inbox {
        inbox.ready.store(true, Ordering::Relaxed);
    }
    let result = supervise(
        &rules,
        &cfg,
        &metrics,
        stop,
        &shared,
        &member,
        partitions,
        partitioner,
        archive.as_ref(),
        &alerts_tx,
        &alerts_rx,
        inbox.as_ref(),
        on_alert,
    );
    if let Some(inbox) = &inbox {
        inbox.ready.store(false, Ordering::Relaxed);
    }
    // Stop what still runs (final checkpoints), then leave the group.
    let rest: Vec<Running> = std::mem::take(&mut *lock(&shared.running)).into_values().collect();
    for r in rest {
        r.stop();
    }
    drop(member);
    while let Ok(a) = alerts_rx.try_recv() {
        on_alert(&a);
    }
    metrics.tasks.set(0);
    result?;
    if let Some(e) = lock(&shared.failure).take() {
        return Err(e);
    }
    Ok(lock(&shared.summary).clone())
}

#[allow(clippy::too_many_arguments)]
fn supervise(
    rules: &Arc<RuleSet>,
    cfg: &EngineConfig,
    metrics: &Metrics,
    stop: &AtomicBool,
    shared: &Arc<Shared>,
    member: &vigil_kafka::GroupMember<Member>,
    partitions: i32,
    partitioner: vigil_kafka::Partitioner,
    archive: Option<&ArchiveFactory>,
    alerts_tx: &Sender<AlertRecord>,
    alerts_rx: &Receiver<AlertRecord>,
    inbox: Option<&QueryInbox>,
    on_alert: &mut dyn FnMut(&AlertRecord),
) -> Result<(), EngineError> {
    let mut rules = Arc::clone(rules);
    loop {
        // Rebalance callbacks run inside this poll; the member never returns messages.
        let _ = member.poll(Duration::from_millis(100));
        while let Ok(a) = alerts_rx.try_recv() {
            on_alert(&a);
        }
        if lock(&shared.failure).is_some() || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let held = lock(&shared.assigned).clone();
        if let Some(tasks) = &held {
            let finished = lock(&shared.finished).clone();
            let mut running = lock(&shared.running);
            for &p in tasks {
                if !running.contains_key(&p) && !finished.contains(&p) {
                    let task = Task { partition: p, partitions, partitioner, level: cfg.partition_level };
                    running.insert(p, start_task(&rules, cfg, metrics, task, archive, shared, alerts_tx));
                }
            }
            if tasks.contains(&0) && !running.contains_key(&ROLLUP_KEY) {
                running.insert(ROLLUP_KEY, start_rollup(&rules, cfg, metrics, archive, shared, alerts_tx));
            }
            metrics.tasks.set(running.keys().filter(|&&k| k >= 0).count() as i64);
            // A batch run ends once every task it holds has gone quiet; the roll-up then reads
            // what they published before it stops.
            if cfg.exit_when_idle.is_some() && !tasks.is_empty() && tasks.iter().all(|p| finished.contains(p)) {
                let rollup = running.remove(&ROLLUP_KEY);
                drop(running);
                if let Some(r) = rollup {
                    r.drain.store(true, Ordering::Relaxed);
                    let _ = r.handle.join();
                }
                return Ok(());
            }
        }
        if let Some(inbox) = inbox
            && let Some(new) = answer(
                &rules,
                inbox,
                shared,
                Task { partition: 0, partitions, partitioner, level: cfg.partition_level },
            )
        {
            rules = new;
        }
    }
}

/// Judges what earlier runs on this instance's archive left that no checkpoint covers, for every
/// task and the roll-up, before this instance takes any: a task this instance was killed in
/// may run elsewhere now (or never come back here), so its new owner's start cannot clear this
/// disk.
fn sweep_archive(
    rules: &Arc<RuleSet>,
    cfg: &EngineConfig,
    state: &StateLocation,
    partitions: i32,
    open: &ArchiveFactory,
) -> Result<(), EngineError> {
    let names = (0..partitions)
        .map(|p| part_name(&format!("task-{p}"), cfg.partition_level))
        .chain([part_name(crate::rollup::ROLLUP, cfg.partition_level)]);
    for name in names {
        let group = format!("{}.{name}", cfg.group);
        let mut archive = open(&group, rules).map_err(EngineError::Archive)?;
        sweep_ended_runs(archive.as_mut(), cfg, &state.part(&name), &group)?;
    }
    Ok(())
}

/// Judges the runs of the driver of consumer group `group` that ended without finishing on this
/// archive by that driver's checkpoint at `location`, wherever it was written since, and removes
/// what they archived that no landed checkpoint covers; returns how many files. The runs are
/// held first and the checkpoint read after, so a run still going meanwhile cannot have landed
/// more than the checkpoint shows. Runs still going (sharing the directory) are left alone.
/// Without a checkpoint, only what such runs archived before any could land (their files of
/// the first interval) is removed, and only when nothing later is archived: a store emptied
/// while its archive was kept must not cost the archive its history.
pub fn sweep_ended_runs(
    archive: &mut dyn vigil_core::Archive,
    cfg: &EngineConfig,
    location: &StateLocation,
    group: &str,
) -> Result<usize, EngineError> {
    if archive.hold_ended().map_err(EngineError::Archive)? == 0 {
        return Ok(0);
    }
    let mut warn = |w: String| tracing::warn!("{group}: {w}");
    let cp =
        match crate::store::peek(location, &cfg.kafka, group, &cfg.outputs.commits, cfg.checkpoint_every, &mut warn) {
            Ok(cp) => cp,
            // Not this start's to fail on (the owner may be writing right now): the runs stay as
            // they are and are judged another time.
            Err(e) => {
                tracing::warn!("{group}: the archive's ended runs are not judged this time: {e}");
                return Ok(0);
            }
        };
    let (at, log) = match cp {
        // A checkpoint's own position is the last its log records (its writer records it before
        // writing); without a log (no archive then, or an older version) there is nothing to
        // judge by: the runs stay held until dropped, and are judged another time.
        Some(c) => match c.archive.writers.last() {
            Some(&(_, at)) => (at, c.archive),
            None => return Ok(0),
        },
        None if archive.count_after(vigil_core::Position::default()).map_err(EngineError::Archive)? > 0 => {
            return Ok(0);
        }
        None => (vigil_core::Position::default(), vigil_core::ArchiveLog::default()),
    };
    let removed = archive.rewind(at, &log).map_err(EngineError::Archive)?;
    if removed > 0 {
        tracing::info!("{group}: removed {removed} archive files of an earlier run that no checkpoint covers");
    }
    Ok(removed)
}

/// The name of a task or the roll-up (its consumer group's suffix and its state's place): cut at
/// another level than the district, it owns other regions, so its state must not be resumed
/// from a run cut at the district (it starts over from the beginning of the topics instead).
pub(crate) fn part_name(base: &str, level: u8) -> String {
    if level == 1 { base.to_string() } else { format!("{base}.level-{level}") }
}

fn start_task(
    rules: &Arc<RuleSet>,
    cfg: &EngineConfig,
    metrics: &Metrics,
    task: Task,
    archive: Option<&ArchiveFactory>,
    shared: &Arc<Shared>,
    alerts: &Sender<AlertRecord>,
) -> Running {
    let p = task.partition;
    let mut tcfg = cfg.clone();
    let name = part_name(&format!("task-{p}"), cfg.partition_level);
    tcfg.group = format!("{}.{name}", cfg.group);
    tcfg.state = cfg.state.as_ref().map(|s| s.part(&name));
    tcfg.task = Some(task);
    tcfg.scale_out = None;
    tcfg.progress = None;
    let stop = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    let abort2 = Arc::clone(&abort);
    let (api, inbox) = EngineHandle::new();
    let (rules, metrics, shared2, alerts, stop2, archive) =
        (Arc::clone(rules), metrics.clone(), Arc::clone(shared), alerts.clone(), Arc::clone(&stop), archive.cloned());
    let handle = std::thread::Builder::new()
        .name(format!("vigil-task-{p}"))
        .spawn(move || {
            let engine = loop {
                match Engine::new(Arc::clone(&rules), tcfg.clone(), metrics.clone()) {
                    Ok(e) => break e,
                    // The instance that held the task before may still be writing its last
                    // checkpoint (on another machine sharing the directory; a state topic
                    // needs no lock, the group's eager rebalancing orders the two).
                    Err(EngineError::Checkpoint(crate::checkpoint::CheckpointError::Locked { .. }))
                        if !stop2.load(Ordering::Relaxed) =>
                    {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => {
                        *lock(&shared2.failure) = Some(e);
                        return;
                    }
                }
            };
            let mut engine = engine;
            if let Some(open) = &archive {
                // The archive rewinds to the checkpoint the engine restored: what this task's
                // previous owner archived after it is done again here.
                let opened =
                    open(&tcfg.group, &rules).map_err(EngineError::Archive).and_then(|a| engine.set_archive(a));
                if let Err(e) = opened {
                    *lock(&shared2.failure) = Some(e);
                    return;
                }
            }
            engine.attach(inbox);
            engine.abort_when(abort2);
            let mut send = |a: &AlertRecord| {
                let _ = alerts.send(a.clone());
            };
            match engine.run(&stop2, &mut send) {
                Ok(s) => {
                    let mut sum = lock(&shared2.summary);
                    sum.consumed += s.consumed;
                    sum.processed += s.processed;
                    sum.rejected += s.rejected;
                    sum.late += s.late;
                    sum.alerts += s.alerts;
                    sum.pauses += s.pauses;
                    drop(sum);
                    if !stop2.load(Ordering::Relaxed) {
                        lock(&shared2.finished).insert(p);
                    }
                }
                // Not this instance's failure: the group has moved on, and the task with it. What
                // this run archived that its checkpoints do not cover goes at once, not at the
                // next start, judged by the checkpoint its new owner resumed from.
                Err(EngineError::TaskLost) => {
                    tracing::warn!("task {p}: {}", EngineError::TaskLost);
                    drop(engine);
                    if let (Some(open), Some(state)) = (&archive, &tcfg.state) {
                        let swept = open(&tcfg.group, &rules)
                            .map_err(EngineError::Archive)
                            .and_then(|mut a| sweep_ended_runs(a.as_mut(), &tcfg, state, &tcfg.group));
                        if let Err(e) = swept {
                            tracing::warn!("task {p}: {e}");
                        }
                    }
                }
                Err(e) => *lock(&shared2.failure) = Some(e),
            }
        })
        .expect("spawning a thread");
    Running { stop, drain: Arc::new(AtomicBool::new(false)), abort, handle, api: Some(api) }
}

fn start_rollup(
    rules: &Arc<RuleSet>,
    cfg: &EngineConfig,
    metrics: &Metrics,
    archive: Option<&ArchiveFactory>,
    shared: &Arc<Shared>,
    alerts: &Sender<AlertRecord>,
) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let drain = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    let archive = archive.cloned();
    let abort2 = Arc::clone(&abort);
    let (rules, cfg, metrics, shared2, alerts, stop2, drain2) = (
        Arc::clone(rules),
        cfg.clone(),
        metrics.clone(),
        Arc::clone(shared),
        alerts.clone(),
        Arc::clone(&stop),
        Arc::clone(&drain),
    );
    let handle = std::thread::Builder::new()
        .name("vigil-rollup".into())
        .spawn(move || {
            let mut send = |a: &AlertRecord| {
                let _ = alerts.send(a.clone());
            };
            let (stop, drain, abort) = (&*stop2, &*drain2, &*abort2);
            if let Err(e) = crate::rollup::run(rules, &cfg, &metrics, archive.as_ref(), stop, drain, abort, &mut send) {
                *lock(&shared2.failure) = Some(e);
            }
        })
        .expect("spawning a thread");
    Running { stop, drain, abort, handle, api: None }
}

/// Answers the HTTP API from the tasks: a region from the task that scores it, the open alerts
/// from all of them. The city's standing is not kept (its records are on the score topic).
fn answer(rules: &RuleSet, inbox: &QueryInbox, shared: &Shared, task: Task) -> Option<Arc<RuleSet>> {
    let mut reloaded = None;
    while let Ok(q) = inbox.rx.try_recv() {
        let handles: BTreeMap<i32, EngineHandle> =
            lock(&shared.running).iter().filter_map(|(p, r)| Some((*p, r.api.clone()?))).collect();
        match q {
            Query::Region(code, reply) => {
                let view = rules.regions.lookup(&code).and_then(|r| {
                    let p = task.region_partitions(rules)[r as usize];
                    handles.get(&p)?.region(&code, ASK).ok().flatten()
                });
                let _ = reply.send(view);
            }
            Query::Alerts(reply) => {
                let mut all = Vec::new();
                for h in handles.values() {
                    all.extend(h.alerts(ASK).unwrap_or_default());
                }
                all.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
                let _ = reply.send(all);
            }
            Query::Reload(new, _, reply) => {
                // All or nothing: every task of this instance takes the new rules (and tasks
                // started later get them), or none keeps them. What a task would refuse is
                // refused here first, once; a task that fails anyway (it stopped, or did not
                // answer) has the tasks that took the new rules put back on the running ones.
                // Other instances reload on their own signal.
                let result = match crate::engine::live_reload_refusal(rules, &new) {
                    Some(why) => Err(why),
                    None if handles.is_empty() => Err("no task is running on this instance".to_string()),
                    None => {
                        let mut done: Vec<&EngineHandle> = Vec::new();
                        let mut outcome = Ok(Carried::default());
                        for (p, h) in &handles {
                            match h.reload(Arc::clone(&new), ASK).unwrap_or_else(|e| Err(e.to_string())) {
                                Ok(c) => {
                                    done.push(h);
                                    outcome = Ok(c);
                                }
                                Err(e) => {
                                    outcome = Err(format!("task {p}: {e}; no task changed its rules"));
                                    break;
                                }
                            }
                        }
                        if outcome.is_err() {
                            let old = Arc::new(rules.clone());
                            for h in done {
                                let _ = h.reload(Arc::clone(&old), ASK);
                            }
                        }
                        outcome
                    }
                };
                if result.is_ok() {
                    reloaded = Some(new);
                }
                let _ = reply.send(result);
            }
        }
    }
    reloaded
}
