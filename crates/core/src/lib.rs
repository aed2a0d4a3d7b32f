//! vigil-core assembles the pure stages into the scoring pipeline: events are routed to the
//! indicators of their source, update the bins of their region and every ancestor, and each
//! time the watermark passes a local boundary of the cadence the due indicators are evaluated, scored, rolled
//! up and graded into alerts. The pipeline owns all scoring state and can snapshot it; it never
//! reads a clock and does no I/O (drivers feed it events and watermarks and take its output).

mod alarm;
pub mod cityroll;
mod dedup;
mod deferred;
mod explain;
mod pipeline;
pub mod ruletest;
mod scope;
mod series;
pub mod snapshot;

pub use alarm::RegionEvidence;
pub use explain::Period;
pub use pipeline::{
    ActiveAlert, Carried, Counters, Ingest, Options, Output, Pipeline, RegionView, ScoreDetail, ScoreFilter,
    ScoreLevels, VecOutput, check_state, parse_score_every, state_bytes,
};

use vigil_model::Event;
use vigil_model::record::{AlertRecord, ScoreRecord};

/// Where a driver with checkpoints stands: the sum of its partitions' next offsets and the last
/// hour it evaluated. Both only grow from one checkpoint to the next, so positions order the
/// intervals between checkpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub offsets: u64,
    pub evaluated: i64,
}

/// A durable copy of what a driver consumed and produced (the Parquet archive of `vigil-sql`
/// implements it; drivers only see this trait, so they need no storage crates).
///
/// Drivers with checkpoints work in intervals between checkpoints: `commit` makes the current
/// interval's rows durable just before a checkpoint is written, and `begin` starts the next
/// interval at the position of that checkpoint. After a crash, the driver resumes from its last
/// good checkpoint and first calls `rewind` with that checkpoint's position, removing whatever
/// was committed at or after it, so that nothing is archived twice.
pub trait Archive: Send {
    fn event(&mut self, event: &Event);
    fn score(&mut self, record: &ScoreRecord);
    fn alert(&mut self, record: &AlertRecord);
    fn commit(&mut self) -> std::io::Result<()>;
    fn begin(&mut self, at: Position);
    /// Removes this writer's files at or after `at`; returns how many.
    fn rewind(&mut self, at: Position) -> std::io::Result<usize>;
    /// Counts this writer's files after `at`.
    fn count_after(&self, at: Position) -> std::io::Result<usize>;
}

/// The one rule every driver applies before an event can move any watermark: an event whose time
/// lies more than its source's `max_ahead` beyond `reference` (the broker's timestamp of the
/// message, or in a replay the time of the input's next event) is refused as
/// `timestamp_in_future`. One mistyped year would otherwise carry the watermark months ahead and
/// make every later event late.
pub fn ahead_of_reference(
    rules: &vigil_rules::RuleSet,
    ev: &Event,
    reference: vigil_model::Ts,
) -> Option<vigil_model::record::Rejection> {
    let max = rules.sources[ev.source as usize].max_ahead;
    (ev.ts > reference.saturating_add(max.0)).then(|| vigil_model::record::Rejection {
        code: vigil_model::record::RejectCode::TimestampInFuture,
        detail: format!(
            "event time is {} ahead of its reference time {} (the source allows {max})",
            vigil_model::Duration((ev.ts - reference) / 60_000 * 60_000),
            vigil_model::time::format_utc(reference)
        ),
    })
}

/// Loads a rule set as every command and reload must: compiled (every problem with file:line)
/// and within its state budget ([`check_state`], reported against ruleset.toml).
pub fn load_rules(dir: &std::path::Path) -> Result<vigil_rules::RuleSet, vigil_rules::Diagnostics> {
    budget(vigil_rules::load(dir)?)
}

/// [`load_rules`] for rule files in memory.
pub fn compile_rules(files: &vigil_rules::RuleFiles) -> Result<vigil_rules::RuleSet, vigil_rules::Diagnostics> {
    budget(vigil_rules::compile(files)?)
}

fn budget(rules: vigil_rules::RuleSet) -> Result<vigil_rules::RuleSet, vigil_rules::Diagnostics> {
    match check_state(&rules) {
        Ok(()) => Ok(rules),
        Err(message) => Err(vigil_rules::Diagnostics(vec![vigil_rules::Diagnostic {
            file: "ruleset.toml".into(),
            line: 1,
            col: 1,
            message,
        }])),
    }
}

/// The per-event step every driver (the Kafka engine, `vigil replay`) runs, so that they cannot
/// drift apart: the event moves its input's watermark first and event time advances (through
/// `advance`, which a driver may time) before the event is counted, so a sparse input that jumps
/// ahead is never "too early" for itself. Drivers refuse what [`ahead_of_reference`] refuses
/// before calling it, so no time it refuses moves a watermark.
pub fn step(
    pipeline: &mut Pipeline,
    watermarks: &mut vigil_window::Watermarks,
    input: usize,
    ev: &Event,
    advance: &mut dyn FnMut(&mut Pipeline, vigil_model::Ts),
) -> Ingest {
    pipeline.saw(ev.ts);
    watermarks.observe(input, ev.ts);
    if let Some(wm) = watermarks.current() {
        advance(pipeline, wm);
    }
    pipeline.ingest(ev)
}
