//! vigil-core assembles the pure stages into the scoring pipeline: events are routed to the
//! indicators of their source, update the bins of their region and every ancestor, and each
//! time the watermark passes an hour boundary the due indicators are evaluated, scored, rolled
//! up and graded into alerts. The pipeline owns all scoring state and can snapshot it; it never
//! reads a clock and does no I/O (drivers feed it events and watermarks and take its output).

mod explain;
mod pipeline;
pub mod ruletest;
pub mod snapshot;

pub use pipeline::{
    ActiveAlert, Carried, Counters, Ingest, Options, Output, Pipeline, RegionView, ScoreDetail, VecOutput,
};

use vigil_model::Event;
use vigil_model::record::{AlertRecord, ScoreRecord};

/// A durable copy of what a driver consumed and produced (the Parquet archive of `vigil-sql`
/// implements it; drivers only see this trait, so they need no storage crates).
///
/// Drivers with checkpoints work in intervals between checkpoints: `commit` makes the current
/// interval's rows durable just before a checkpoint is written, and `begin` starts the next
/// interval under an id derived from that checkpoint. After a crash, the driver resumes from
/// its last checkpoint and calls `discard` with that checkpoint's id first, removing whatever
/// the crashed run committed after it, so that nothing is archived twice.
pub trait Archive: Send {
    fn event(&mut self, event: &Event);
    fn score(&mut self, record: &ScoreRecord);
    fn alert(&mut self, record: &AlertRecord);
    fn commit(&mut self) -> std::io::Result<()>;
    fn begin(&mut self, interval: u64);
    fn discard(&mut self, interval: u64) -> std::io::Result<()>;
}
