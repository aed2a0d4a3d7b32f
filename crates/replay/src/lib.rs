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
use vigil_model::record::{AlertRecord, RejectCode, ScoreRecord};
use vigil_model::time::format_utc;
use vigil_model::{Event, SourceIdx, Ts};
use vigil_rules::RuleSet;
use vigil_rules::decode::{Decoder, SourceHint};
use vigil_window::Watermarks;

/// One input stream of JSON lines.
pub struct Input {
    /// Shown in rejection records (a file name, never a full path).
    pub name: String,
    /// The source every line belongs to, when the file name says it (`police.jsonl`).
    pub source: Option<SourceIdx>,
    pub reader: Box<dyn BufRead>,
}

impl Input {
    /// Opens a file; its source is taken from the file stem when it names one.
    pub fn open(rules: &RuleSet, path: &Path) -> io::Result<Input> {
        let file = File::open(path)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let name = path.file_name().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        Ok(Input { name, source: rules.source_index(stem), reader: Box::new(BufReader::with_capacity(1 << 16, file)) })
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
    pub rejected: BTreeMap<String, u64>,
    pub late: u64,
    pub dropped_fields: u64,
    pub scores: u64,
    pub alerts: u64,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
}

struct Stream {
    input: Input,
    line_no: u64,
    buf: String,
    head: Option<(Event, u64)>,
    delay: i64,
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
            Stream { input, line_no: 0, buf: String::new(), head: None, delay }
        })
        .collect();
    let mut wms = Watermarks::new(&streams.iter().map(|s| s.delay).collect::<Vec<_>>());
    let mut summary = Summary::default();
    let mut out = Counting { inner: sink, scores: 0, alerts: 0 };
    for (i, s) in streams.iter_mut().enumerate() {
        refill(s, &decoder, &mut summary, out.inner)?;
        if s.head.is_none() {
            wms.set_idle(i, true);
        }
    }
    let mut first: Option<Ts> = None;
    let mut last: Option<Ts> = None;
    // Always take the stream whose next event is earliest (ties: the first input).
    while let Some(i) =
        streams.iter().enumerate().filter_map(|(i, s)| s.head.as_ref().map(|(e, _)| (e.ts, i))).min().map(|(_, i)| i)
    {
        let Some((ev, line)) = streams[i].head.take() else { break };
        first = Some(first.map_or(ev.ts, |f: Ts| f.min(ev.ts)));
        last = Some(last.map_or(ev.ts, |l: Ts| l.max(ev.ts)));
        // The event moves its input's watermark first and time advances before the event is
        // counted, so a sparse input that jumps ahead is never "too early" for itself.
        pipeline.saw(ev.ts);
        wms.observe(i, ev.ts);
        if let Some(wm) = wms.current() {
            pipeline.advance(wm, &mut out);
        }
        match pipeline.ingest(&ev) {
            Ingest::Accepted => summary.accepted += 1,
            Ingest::AcceptedLate => summary.accepted_late += 1,
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
        refill(&mut streams[i], &decoder, &mut summary, out.inner)?;
        if streams[i].head.is_none() {
            wms.set_idle(i, true);
        }
    }
    // The input is complete: every window up to the last event can close.
    if let Some(l) = last {
        pipeline.advance(l, &mut out);
    }
    summary.scores = out.scores;
    summary.alerts = out.alerts;
    summary.first_event = first.map(format_utc);
    summary.last_event = last.map(format_utc);
    Ok(summary)
}

fn refill<S: Sink>(s: &mut Stream, decoder: &Decoder<'_>, summary: &mut Summary, sink: &mut S) -> io::Result<()> {
    loop {
        s.buf.clear();
        let n = s.input.reader.read_line(&mut s.buf)?;
        if n == 0 {
            s.head = None;
            return Ok(());
        }
        s.line_no += 1;
        let line = s.buf.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        summary.lines += 1;
        let mut ev = Event::default();
        let hint = s.input.source.map_or(SourceHint::None, SourceHint::Default);
        match decoder.decode(hint, line.as_bytes(), &mut ev) {
            Ok(info) => {
                summary.dropped_fields += info.dropped_fields as u64;
                s.head = Some((ev, s.line_no));
                return Ok(());
            }
            Err(rej) => {
                *summary.rejected.entry(rej.code.as_str().to_string()).or_default() += 1;
                sink.rejected(Rejected {
                    input: s.input.name.clone(),
                    line: s.line_no,
                    code: rej.code,
                    detail: rej.detail,
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
    let mut pipeline = Pipeline::new(rules, options);
    let mut sink = DirSink::create(out_dir)?;
    let summary = replay(&mut pipeline, inputs, &mut sink)?;
    sink.finish()?;
    Ok(summary)
}
