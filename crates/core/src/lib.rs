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
