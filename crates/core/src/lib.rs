//! vigil-core assembles the pure stages into the scoring pipeline: events are routed to the
//! indicators of their source, update the bins of their region and every ancestor, and each
//! time the watermark passes a local boundary of the cadence the due indicators are evaluated, scored, rolled
//! up and graded into alerts. The pipeline owns all scoring state and can snapshot it; it never
//! reads a clock and does no I/O (drivers feed it events and watermarks and take its output).

pub mod cityroll;
mod explain;
mod pipeline;
pub mod ruletest;
pub mod snapshot;

pub use explain::Period;
pub use pipeline::{
    ActiveAlert, Carried, Counters, Ingest, Options, Output, Pipeline, RegionView, ScoreDetail, ScoreFilter,
    ScoreLevels, VecOutput,
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
