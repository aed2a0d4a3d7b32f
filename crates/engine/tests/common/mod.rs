//! Shared by the engine's end-to-end tests: one engine run, stopped once it has processed a
//! given number of messages.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vigil_core::{Options, ScoreDetail};
use vigil_engine::engine::RunSummary;
use vigil_engine::testkit::RunTopics;
use vigil_engine::{Engine, EngineConfig, Metrics};
use vigil_kafka::KafkaSettings;
use vigil_rules::RuleSet;

/// Runs an engine until it has processed `until` messages in this run (or `limit` passes), then
/// stops it gracefully. Returns the summary and the last hour evaluated.
pub fn run_engine(
    rules: &Arc<RuleSet>,
    settings: &KafkaSettings,
    topics: &RunTopics,
    until: u64,
    checkpoint_dir: Option<PathBuf>,
    limit: Duration,
) -> (RunSummary, i64) {
    run_engine_holding(rules, settings, topics, until, checkpoint_dir, limit, vigil_engine::engine::HOLD_PER_PARTITION)
}

/// [`run_engine`], pausing a partition once `hold` of its events wait for the others.
#[allow(dead_code)]
pub fn run_engine_holding(
    rules: &Arc<RuleSet>,
    settings: &KafkaSettings,
    topics: &RunTopics,
    until: u64,
    checkpoint_dir: Option<PathBuf>,
    limit: Duration,
    hold: usize,
) -> (RunSummary, i64) {
    let progress = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ecfg = EngineConfig {
        group: "test".into(),
        outputs: topics.outputs.clone(),
        event_topics: topics.events.clone(),
        idle_timeout: Duration::from_secs(2),
        options: Options {
            scores: ScoreDetail::None,
            score_levels: vigil_core::ScoreLevels::NONE,
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
        progress: Some(Arc::clone(&progress)),
        state: checkpoint_dir.map(vigil_engine::StateLocation::Dir),
        checkpoint_every: Duration::from_secs(3600),
        hold_per_partition: hold,
        ..EngineConfig::new(settings.clone())
    };
    let mut engine = Engine::new(Arc::clone(rules), ecfg, Metrics::default()).unwrap();
    let stopper = {
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        std::thread::spawn(move || {
            let t = Instant::now();
            while progress.load(Ordering::Relaxed) < until && t.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let summary = engine.run(&stop, &mut |_| {}).unwrap();
    stopper.join().unwrap();
    (summary, engine.last_evaluated().unwrap())
}
