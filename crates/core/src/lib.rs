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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub offsets: u64,
    pub evaluated: i64,
}

/// Which archive writers a driver's checkpoints have seen, each with the position of the last
/// checkpoint it landed: the only files of a writer that a checkpoint covers are those of the
/// intervals that began before that position. A writer is one run of a task (or a single
/// engine, or the roll-up) on one machine, named by a random token.
///
/// Instances of a scale-out group may archive to disks of their own: the files of a run killed
/// between committing an interval's files and landing its checkpoint then sit on its own disk,
/// where the task's next owner cannot see them. Whoever later opens that disk with the task's
/// newest checkpoint (the killed instance restarting, or the task moving back) tells them apart
/// by this log; positions alone cannot, since the next owner archives the same positions anew.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveLog {
    /// (writer token, position of its last checkpoint), the most recently written last.
    pub writers: Vec<(u64, Position)>,
    /// Whether older writers were dropped to keep the log within [`ArchiveLog::MAX`]: a writer
    /// absent from a trimmed log may have landed checkpoints.
    pub trimmed: bool,
}

impl ArchiveLog {
    /// Writers kept: one is added per run of the driver (a start, a restart, a move), so this
    /// bounds the checkpoint, not anything an input can grow.
    pub const MAX: usize = 1024;

    /// Records that `writer` landed a checkpoint at `at`.
    pub fn record(&mut self, writer: u64, at: Position) {
        self.writers.retain(|(w, _)| *w != writer);
        self.writers.push((writer, at));
        if self.writers.len() > Self::MAX {
            self.writers.remove(0);
            self.trimmed = true;
        }
    }

    /// Whether the files of `writer`'s interval that began at `start` are covered by a landed
    /// checkpoint, for a driver that resumes from `resumed`: yes when the writer's last
    /// checkpoint is later than the interval's start. A writer the log does not know landed
    /// none, unless the log was trimmed, when only what begins at or after `resumed` is surely
    /// uncovered.
    pub fn covers(&self, writer: u64, start: Position, resumed: Position) -> bool {
        match self.writers.iter().find(|(w, _)| *w == writer) {
            Some((_, last)) => start < *last,
            None => self.trimmed && start < resumed,
        }
    }
}

/// A durable copy of what a driver consumed and produced (the Parquet archive of `vigil-sql`
/// implements it; drivers only see this trait, so they need no storage crates).
///
/// Drivers with checkpoints work in intervals between checkpoints: `commit` makes the current
/// interval's rows durable just before a checkpoint is written, and `begin` starts the next
/// interval at the position of that checkpoint. After a crash, the driver resumes from its last
/// good checkpoint and first calls `rewind` with that checkpoint's position and [`ArchiveLog`],
/// removing whatever no landed checkpoint covers, so that nothing is archived twice.
pub trait Archive: Send {
    fn event(&mut self, event: &Event);
    fn score(&mut self, record: &ScoreRecord);
    fn alert(&mut self, record: &AlertRecord);
    fn commit(&mut self) -> std::io::Result<()>;
    fn begin(&mut self, at: Position);
    /// This writer's token for the checkpoint's [`ArchiveLog`] (`None` before its first
    /// interval).
    fn writer(&self) -> Option<u64>;
    /// Takes hold of the earlier runs of this driver here that ended without finishing
    /// (killed, or failed before their last checkpoint landed), so that they can be judged by
    /// [`Archive::rewind`]: held, no one else judges them meanwhile. Read the checkpoint to judge
    /// them by after this, not before: a run that was still going may have landed more. Returns
    /// how many are held.
    fn hold_ended(&mut self) -> std::io::Result<usize>;
    /// Removes the files of this archive's driver that no landed checkpoint covers, for a driver
    /// resuming from the checkpoint at `at` whose log is `log`: files of the runs held by
    /// [`Archive::hold_ended`] the log does not cover, files of earlier versions (without a run
    /// token) and of this run at or after `at`, temporary files. Files of other runs (running,
    /// or finished) are left alone. The held runs are then forgotten. Returns how many files
    /// were removed.
    fn rewind(&mut self, at: Position, log: &ArchiveLog) -> std::io::Result<usize>;
    /// Counts this driver's files (of any run) of intervals that began after `at`.
    fn count_after(&self, at: Position) -> std::io::Result<usize>;
    /// This run finished: its last checkpoint landed and covers every file it wrote.
    fn finished(&mut self);
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

#[cfg(test)]
mod tests {
    use super::{ArchiveLog, Position};

    fn at(k: u64) -> Position {
        Position { offsets: k, evaluated: 0 }
    }

    #[test]
    fn an_archive_log_covers_what_began_before_each_runs_last_checkpoint() {
        let mut log = ArchiveLog::default();
        log.record(1, at(10));
        log.record(2, at(20));
        log.record(1, at(30));
        assert_eq!(log.writers, vec![(2, at(20)), (1, at(30))], "the latest write last, each run once");
        assert!(log.covers(2, at(19), at(30)) && !log.covers(2, at(20), at(30)));
        assert!(log.covers(1, at(20), at(30)) && !log.covers(1, at(30), at(30)));
        // A run the log never heard of landed nothing.
        assert!(!log.covers(3, at(0), at(30)));
        // Past its bound the oldest run is dropped; an unknown run then may have landed, but
        // not at or after the position resumed from.
        for w in 10..(10 + ArchiveLog::MAX as u64) {
            log.record(w, at(40 + w));
        }
        assert_eq!(log.writers.len(), ArchiveLog::MAX);
        assert!(log.trimmed && !log.writers.iter().any(|(w, _)| *w == 2));
        assert!(log.covers(2, at(19), at(30)) && !log.covers(2, at(30), at(30)));
    }
}
