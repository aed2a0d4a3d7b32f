//! vigil-replay is the file driver: it reads JSON Lines event files, merges them in event-time
//! order, decodes each line under the rule set's schemas, drives the pipeline with per-file
//! watermarks, and writes scores, alerts, rejections and late events as JSON Lines. It is the
//! deterministic harness shared by `vigil replay`, `vigil rules test`, the tests and the
//! benchmarks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use vigil_core::{Ingest, Options, Output, Pipeline};
use vigil_model::record::{AlertRecord, RejectCode, Rejection, ScoreRecord};
use vigil_model::time::format_utc;
use vigil_model::{Event, SourceIdx, Ts};
use vigil_rules::RuleSet;
use vigil_rules::decode::{Decoder, SourceHint};
use vigil_window::Watermarks;

/// One input stream: JSON lines, or events already decoded elsewhere (a Parquet archive).
pub struct Input {
    /// Shown in rejection records (a file name, never a full path).
    pub name: String,
    /// The source every record belongs to, when the input says it (`police.jsonl`).
    pub source: Option<SourceIdx>,
    pub records: Box<dyn Records>,
}

impl Input {
    /// Opens a JSON Lines file; its source is taken from the file stem when it names one.
    pub fn open(rules: &RuleSet, path: &Path) -> io::Result<Input> {
        let file = File::open(path)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let name = path.file_name().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        Ok(Input::lines(name, rules.source_index(stem), Box::new(BufReader::with_capacity(1 << 16, file))))
    }

    /// JSON lines from any reader.
    pub fn lines(name: String, source: Option<SourceIdx>, reader: Box<dyn BufRead>) -> Input {
        Input { name, source, records: Box::new(Lines { reader, buf: String::new(), line_no: 0 }) }
    }
}

/// What one step of an input yields.
#[derive(Debug)]
pub enum Next {
    /// `out` now holds an event, found at `pos` (a line or row number, 1-based).
    Event { pos: u64, dropped_fields: u32 },
    /// The record at `pos` could not be used.
    Rejected { pos: u64, rejection: Rejection },
    /// The input is exhausted.
    End,
}

/// A stream of event records in the order they arrived. The decoder is the rule set's; inputs
/// that hold raw bytes use it, inputs that hold typed values check them against its schemas.
pub trait Records {
    fn next_record(&mut self, decoder: &Decoder<'_>, hint: SourceHint, out: &mut Event) -> io::Result<Next>;
}

/// JSON lines, one event per line; blank lines are skipped without counting.
struct Lines {
    reader: Box<dyn BufRead>,
    buf: String,
    line_no: u64,
}

impl Records for Lines {
    fn next_record(&mut self, decoder: &Decoder<'_>, hint: SourceHint, out: &mut Event) -> io::Result<Next> {
        loop {
            self.buf.clear();
            if self.reader.read_line(&mut self.buf)? == 0 {
                return Ok(Next::End);
            }
            self.line_no += 1;
            let line = self.buf.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            *out = Event::default();
            return Ok(match decoder.decode(hint, line.as_bytes(), out) {
                Ok(info) => Next::Event { pos: self.line_no, dropped_fields: info.dropped_fields },
                Err(rejection) => Next::Rejected { pos: self.line_no, rejection },
            });
        }
    }
}

/// A line that could not be used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejected {
    pub input: String,
    pub line: u64,
    pub code: RejectCode,
    pub detail: String,
}

/// An event that arrived after its window was closed for good.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LateRecord {
    pub input: String,
    pub line: u64,
    pub ts: String,
    pub watermark: String,
    pub code: RejectCode,
}

/// Where replay results go.
pub trait Sink: Output {
    fn rejected(&mut self, r: Rejected);
    fn late(&mut self, r: LateRecord);
}

/// Counts of what a replay did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub lines: u64,
    pub accepted: u64,
    pub accepted_late: u64,
    /// Resends of events already counted (same id within the source's dedup_horizon).
    pub duplicates: u64,
    pub rejected: BTreeMap<String, u64>,
    pub late: u64,
    pub dropped_fields: u64,
    pub scores: u64,
    pub alerts: u64,
    /// Series evaluations (indicator × scored region × evaluation of its hop), of which `kept`
    /// kept the previous result (nothing their score reads had changed) and `asleep` were not
    /// even looked at (an empty window, docs/methodology.md §2.2).
    pub evaluations: u64,
    pub kept: u64,
    pub asleep: u64,
    /// Scores of regions whose scores nothing reads (no alerts, no score records), marked
    /// stale again before anything read them: never computed (§2.2).
    pub unread_scores_skipped: u64,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
}

struct Stream {
    input: Input,
    /// Two records and their positions, read in place (an event is a few hundred bytes, and
    /// reading in place rather than moving it between look-ahead slots saved about 6 % of a
    /// replay at ten times the city's rate): `slots[cur]` is the head when `has_head`, the
    /// other the record after it when `has_ahead`, the reference time a head must not run
    /// ahead of.
    slots: [(Event, u64); 2],
    cur: usize,
    has_head: bool,
    has_ahead: bool,
    /// The time of the last record that became the head (the reference at the end of the input).
    prev: Option<Ts>,
    delay: i64,
}

impl Stream {
    fn head(&self) -> Option<&(Event, u64)> {
        self.has_head.then(|| &self.slots[self.cur])
    }
}

/// Counts outputs on their way to the real sink.
struct Counting<'a, S: Sink> {
    inner: &'a mut S,
    scores: u64,
    alerts: u64,
}

impl<S: Sink> Output for Counting<'_, S> {
    fn score(&mut self, r: ScoreRecord) {
        self.scores += 1;
        self.inner.score(r);
    }
    fn alert(&mut self, r: AlertRecord) {
        self.alerts += 1;
        self.inner.alert(r);
    }
    fn evidence(&mut self, p: &vigil_core::Period, regions: &[vigil_core::RegionEvidence]) {
        self.inner.evidence(p, regions);
    }
}

/// Replays `inputs` through `pipeline` to the end of the input.
pub fn replay<S: Sink>(pipeline: &mut Pipeline, inputs: Vec<Input>, sink: &mut S) -> io::Result<Summary> {
    let rules = Arc::clone(pipeline.rules());
    let decoder = Decoder::new(&rules);
    let min_delay = rules.sources.iter().map(|s| s.allowed_delay.0).min().unwrap_or(0);
    let mut streams: Vec<Stream> = inputs
        .into_iter()
        .map(|input| {
            let delay = input.source.map_or(min_delay, |s| rules.sources[s as usize].allowed_delay.0);
            Stream {
                input,
                slots: [(Event::default(), 0), (Event::default(), 0)],
                cur: 0,
                has_head: false,
                has_ahead: false,
                prev: None,
                delay,
            }
        })
        .collect();
    let mut wms = Watermarks::new(&streams.iter().map(|s| s.delay).collect::<Vec<_>>());
    let mut summary = Summary::default();
    let mut out = Counting { inner: sink, scores: 0, alerts: 0 };
    for (i, s) in streams.iter_mut().enumerate() {
        refill(s, &rules, &decoder, &mut summary, out.inner)?;
        if !s.has_head {
            wms.set_idle(i, true);
        }
    }
    let mut first: Option<Ts> = None;
    let mut last: Option<Ts> = None;
    // Always take the stream whose next event is earliest (ties: the first input).
    while let Some(i) =
        streams.iter().enumerate().filter_map(|(i, s)| s.head().map(|(e, _)| (e.ts, i))).min().map(|(_, i)| i)
    {
        let Some((ev, line)) = streams[i].head() else { break };
        let line = *line;
        first = Some(first.map_or(ev.ts, |f: Ts| f.min(ev.ts)));
        last = Some(last.map_or(ev.ts, |l: Ts| l.max(ev.ts)));
        match vigil_core::step(pipeline, &mut wms, i, ev, &mut |p, wm| p.advance(wm, &mut out)) {
            Ingest::Accepted => summary.accepted += 1,
            Ingest::AcceptedLate => summary.accepted_late += 1,
            Ingest::Duplicate => summary.duplicates += 1,
            Ingest::Overflow => {
                let code = RejectCode::SumOverflow;
                *summary.rejected.entry(code.as_str().to_string()).or_default() += 1;
                out.inner.rejected(Rejected {
                    input: streams[i].input.name.clone(),
                    line,
                    code,
                    detail: "an attribute value would overflow a sum the rules keep; nothing of the event was counted"
                        .into(),
                });
            }
            outcome @ (Ingest::Late | Ingest::TooEarly) => {
                summary.late += 1;
                out.inner.late(LateRecord {
                    input: streams[i].input.name.clone(),
                    line,
                    ts: format_utc(ev.ts),
                    watermark: pipeline.watermark().map(format_utc).unwrap_or_default(),
                    code: if outcome == Ingest::Late { RejectCode::Late } else { RejectCode::OutOfRange },
                });
            }
        }
        streams[i].has_head = false;
        refill(&mut streams[i], &rules, &decoder, &mut summary, out.inner)?;
        if !streams[i].has_head {
            wms.set_idle(i, true);
        }
    }
    // The input is complete: every window up to the last event can close.
    if let Some(l) = last {
        pipeline.advance(l, &mut out);
    }
    summary.scores = out.scores;
    summary.alerts = out.alerts;
    summary.evaluations = pipeline.counters().evaluations;
    summary.kept = pipeline.kept_evaluations();
    summary.asleep = pipeline.asleep_evaluations();
    summary.unread_scores_skipped = pipeline.skipped_scores();
    summary.first_event = first.map(format_utc);
    summary.last_event = last.map(format_utc);
    Ok(summary)
}

/// Makes the input's next usable record its head. A record more than its source's `max_ahead`
/// ahead of both the record before it and the record after it (the last record of an input is
/// never refused) is refused as
/// `timestamp_in_future` before it can move any watermark: the shared rule of
/// [`vigil_core::ahead_of_reference`], with the later of the input's own neighbours as
/// reference (a gap in the data is followed by records after the gap; an outlier is not). Two
/// outliers in a row vouch for each other and are not caught.
fn refill<S: Sink>(
    s: &mut Stream,
    rules: &RuleSet,
    decoder: &Decoder<'_>,
    summary: &mut Summary,
    sink: &mut S,
) -> io::Result<()> {
    loop {
        // The candidate, in `slots[cur]`: the record read ahead, or the next one.
        if s.has_ahead {
            s.cur = 1 - s.cur;
            s.has_ahead = false;
        } else if !read_record(&mut s.input, &mut s.slots[s.cur], decoder, summary, sink)? {
            s.has_head = false;
            return Ok(());
        }
        let next = 1 - s.cur;
        s.has_ahead = read_record(&mut s.input, &mut s.slots[next], decoder, summary, sink)?;
        // The later of its neighbours, and only while a record follows: a late record after it
        // must not make it look early, and the last record of a sparse input is not judged by
        // the one before it alone.
        let reference = s.has_ahead.then(|| {
            let e = &s.slots[next].0;
            e.ts.max(s.prev.unwrap_or(e.ts))
        });
        let (ev, pos) = &s.slots[s.cur];
        if let Some(rejection) = reference.and_then(|r| vigil_core::ahead_of_reference(rules, ev, r)) {
            *summary.rejected.entry(rejection.code.as_str().to_string()).or_default() += 1;
            sink.rejected(Rejected {
                input: s.input.name.clone(),
                line: *pos,
                code: rejection.code,
                detail: rejection.detail,
            });
            continue;
        }
        s.prev = Some(ev.ts);
        s.has_head = true;
        return Ok(());
    }
}

/// Reads the input's next record that decodes into `slot` (the event and its position);
/// `false` at the end. The ones that do not decode are reported on the way.
fn read_record<S: Sink>(
    input: &mut Input,
    slot: &mut (Event, u64),
    decoder: &Decoder<'_>,
    summary: &mut Summary,
    sink: &mut S,
) -> io::Result<bool> {
    let hint = input.source.map_or(SourceHint::None, SourceHint::Default);
    loop {
        match input.records.next_record(decoder, hint, &mut slot.0)? {
            Next::End => return Ok(false),
            Next::Event { pos, dropped_fields } => {
                summary.lines += 1;
                summary.dropped_fields += dropped_fields as u64;
                slot.1 = pos;
                return Ok(true);
            }
            Next::Rejected { pos, rejection } => {
                summary.lines += 1;
                *summary.rejected.entry(rejection.code.as_str().to_string()).or_default() += 1;
                sink.rejected(Rejected {
                    input: input.name.clone(),
                    line: pos,
                    code: rejection.code,
                    detail: rejection.detail,
                });
            }
        }
    }
}

/// Writes results as JSON Lines files in one directory.
pub struct DirSink {
    scores: BufWriter<File>,
    alerts: BufWriter<File>,
    rejected: BufWriter<File>,
    late: BufWriter<File>,
    error: Option<io::Error>,
}

impl DirSink {
    pub fn create(dir: &Path) -> io::Result<DirSink> {
        std::fs::create_dir_all(dir)?;
        let f = |n: &str| -> io::Result<BufWriter<File>> {
            Ok(BufWriter::with_capacity(1 << 16, File::create(dir.join(n))?))
        };
        Ok(DirSink {
            scores: f("scores.jsonl")?,
            alerts: f("alerts.jsonl")?,
            rejected: f("rejected.jsonl")?,
            late: f("late.jsonl")?,
            error: None,
        })
    }

    fn write<T: Serialize>(w: &mut BufWriter<File>, error: &mut Option<io::Error>, v: &T) {
        if error.is_some() {
            return;
        }
        let r = serde_json::to_writer(&mut *w, v).map_err(io::Error::other).and_then(|_| w.write_all(b"\n"));
        if let Err(e) = r {
            *error = Some(e);
        }
    }

    /// Flushes every file; reports the first write error, if any.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        for w in [&mut self.scores, &mut self.alerts, &mut self.rejected, &mut self.late] {
            w.flush()?;
        }
        Ok(())
    }
}

impl Output for DirSink {
    fn score(&mut self, r: ScoreRecord) {
        Self::write(&mut self.scores, &mut self.error, &r);
    }
    fn alert(&mut self, r: AlertRecord) {
        Self::write(&mut self.alerts, &mut self.error, &r);
    }
}

impl Sink for DirSink {
    fn rejected(&mut self, r: Rejected) {
        Self::write(&mut self.rejected, &mut self.error, &r);
    }
    fn late(&mut self, r: LateRecord) {
        Self::write(&mut self.late, &mut self.error, &r);
    }
}

/// Keeps everything in memory.
#[derive(Debug, Default)]
pub struct MemSink {
    pub scores: Vec<ScoreRecord>,
    pub alerts: Vec<AlertRecord>,
    pub rejected: Vec<Rejected>,
    pub late: Vec<LateRecord>,
}

impl Output for MemSink {
    fn score(&mut self, r: ScoreRecord) {
        self.scores.push(r);
    }
    fn alert(&mut self, r: AlertRecord) {
        self.alerts.push(r);
    }
}

impl Sink for MemSink {
    fn rejected(&mut self, r: Rejected) {
        self.rejected.push(r);
    }
    fn late(&mut self, r: LateRecord) {
        self.late.push(r);
    }
}

/// Replays files into a directory: the one-call form of `vigil replay`.
pub fn replay_files(rules: Arc<RuleSet>, events: &[PathBuf], out_dir: &Path, options: Options) -> io::Result<Summary> {
    let inputs = events.iter().map(|p| Input::open(&rules, p)).collect::<io::Result<Vec<_>>>()?;
    replay_inputs(rules, inputs, out_dir, options)
}

/// Replays prepared inputs into a directory of JSON Lines files.
pub fn replay_inputs(rules: Arc<RuleSet>, inputs: Vec<Input>, out_dir: &Path, options: Options) -> io::Result<Summary> {
    let mut pipeline = Pipeline::new(rules, options);
    let mut sink = DirSink::create(out_dir)?;
    let summary = replay(&mut pipeline, inputs, &mut sink)?;
    sink.finish()?;
    Ok(summary)
}
