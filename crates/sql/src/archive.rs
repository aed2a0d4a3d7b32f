//! The archive owns vigil's history on disk: decoded events, score records and alert records as
//! Parquet files under one root, partitioned the way DataFusion's listing tables read them.
//!
//! ```text
//! ROOT/events/source=police/date=2026-01-01/part-<tag>-00000.parquet
//! ROOT/scores/date=2026-01-01/part-<tag>-00000.parquet
//! ROOT/score_parts/date=2026-01-01/...     (one row per domain, category and indicator score)
//! ROOT/alerts/date=2026-01-01/...
//! ```
//!
//! Events are stored as decoded: a region code, the event time, the local hour and weekday the
//! filters see, and the source's declared attributes as typed columns (enum values as their
//! names). Nothing undeclared was kept by the decoder, so nothing undeclared can reach the
//! archive. Dates are UTC calendar dates of the event time (scores and alerts: of the window end).
//!
//! Files are written to a hidden temporary name and renamed when complete, so a reader (or a
//! crash) never sees half a file. `commit` closes every open file; the Kafka engine calls it at
//! each checkpoint, which makes the archive exactly as durable as the checkpoint: whatever was
//! consumed after it is consumed and archived again after a restart.
//!
//! A driver with checkpoints names its files by the interval's starting position and by its
//! run's token (`part-<tag>.<token>-<position>-<n>.parquet`), and its checkpoints log the last
//! position each run landed ([`vigil_core::ArchiveLog`]). A run killed between committing an
//! interval's files and landing the checkpoint leaves files no checkpoint covers; `rewind`
//! finds them by the log wherever they are (a scale-out task may have moved to another machine
//! meanwhile and archived the same positions anew there), and leaves running writers alone
//! ([`crate::writers`]). So the archives of a group's instances, each on its own disk, add up to
//! every row once.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, DictionaryArray, Float64Array, Float64Builder, Int32Array,
    Int64Array, Int64Builder, RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use vigil_core::{ArchiveLog, Output, Position};
use vigil_model::record::{AlertRecord, RejectCode, Rejection, ScoreRecord};
use vigil_model::time::{DAY, civil_from_days, parse_rfc3339};
use vigil_model::{Event, Ts};
use vigil_replay::{Input, Next, Records};
use vigil_rules::decode::{Decoder, SourceHint};
use vigil_rules::filter::EvalCtx;
use vigil_rules::{AttrType, RuleSet};

use crate::writers::{Ended, WriterLock};

/// Rows buffered per open file before they are handed to the Parquet writer.
const BATCH_ROWS: usize = 8192;
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 128 * 1024;

pub const EVENTS: &str = "events";
pub const SCORES: &str = "scores";
pub const SCORE_PARTS: &str = "score_parts";
pub const ALERTS: &str = "alerts";

/// Columns every event table has before the source's own attributes.
pub const EVENT_COLUMNS: [&str; 4] = ["region", "ts", "hour", "dow"];
/// Hive partition columns, which live in directory names rather than in the files.
pub const PARTITION_COLUMNS: [&str; 2] = ["source", "date"];

/// Which tables a writer produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tables {
    pub events: bool,
    pub results: bool,
}

/// What happens to tables that already hold files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The tables this writer produces are emptied first: a rerun of `vigil gen` or
    /// `vigil replay` replaces its output instead of doubling it.
    Replace,
    /// Files are added next to those present (the Kafka engine across restarts).
    Append,
}

fn utc() -> Arc<str> {
    Arc::from("UTC")
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(utc()))
}

/// The Arrow type an attribute is stored as.
pub fn attr_type(ty: &AttrType) -> DataType {
    match ty {
        AttrType::Enum(_) => DataType::Utf8,
        AttrType::Int { .. } => DataType::Int64,
        AttrType::Float { .. } => DataType::Float64,
        AttrType::Bool => DataType::Boolean,
    }
}

/// The file schema of one source's events.
pub fn event_schema(rules: &RuleSet, source: usize) -> SchemaRef {
    let mut fields = vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("ts", ts_type(), false),
        Field::new("hour", DataType::Int64, false),
        Field::new("dow", DataType::Int64, false),
    ];
    for a in &rules.sources[source].attrs {
        fields.push(Field::new(&a.name, attr_type(&a.ty), true));
    }
    Arc::new(Schema::new(fields))
}

pub fn score_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("region_level", DataType::Utf8, false),
        Field::new("window_end", ts_type(), false),
        Field::new("rules_version", DataType::Utf8, false),
        Field::new("composite", DataType::Float64, true),
        Field::new("grade", DataType::Utf8, true),
    ]))
}

pub fn score_part_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("region_level", DataType::Utf8, false),
        Field::new("window_end", ts_type(), false),
        Field::new("rules_version", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
        Field::new("expected", DataType::Float64, true),
        Field::new("score", DataType::Float64, true),
    ]))
}

pub fn alert_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("alert_id", DataType::Utf8, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("level", DataType::Utf8, true),
        Field::new("previous_level", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, false),
        Field::new("region_name", DataType::Utf8, false),
        Field::new("region_level", DataType::Utf8, false),
        Field::new("scope", DataType::Utf8, false),
        Field::new("score", DataType::Float64, true),
        Field::new("window_end", ts_type(), false),
        Field::new("rules_version", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("domains", DataType::Utf8, false),
        Field::new("top_contributors", DataType::Utf8, false),
        // The record's evidence (JSON), response, deadline and override floor (JSON): what the
        // bulletin explains an episode with. Archives written before these columns read them
        // as null.
        Field::new("evidence", DataType::Utf8, true),
        Field::new("response", DataType::Utf8, true),
        Field::new("deadline", DataType::Utf8, true),
        Field::new("floor", DataType::Utf8, true),
    ]))
}

/// One column being filled.
enum ColBuf {
    Str(StringBuilder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMillisecondBuilder),
}

impl ColBuf {
    fn for_type(t: &DataType) -> ColBuf {
        match t {
            DataType::Utf8 => ColBuf::Str(StringBuilder::new()),
            DataType::Int64 => ColBuf::I64(Int64Builder::new()),
            DataType::Float64 => ColBuf::F64(Float64Builder::new()),
            DataType::Boolean => ColBuf::Bool(BooleanBuilder::new()),
            _ => ColBuf::Ts(TimestampMillisecondBuilder::new().with_timezone(utc())),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColBuf::Str(b) => Arc::new(b.finish()),
            ColBuf::I64(b) => Arc::new(b.finish()),
            ColBuf::F64(b) => Arc::new(b.finish()),
            ColBuf::Bool(b) => Arc::new(b.finish()),
            ColBuf::Ts(b) => Arc::new(b.finish()),
        }
    }
}

/// An open file of one partition: rows are appended column by column.
struct Part {
    schema: SchemaRef,
    cols: Vec<ColBuf>,
    rows: usize,
    writer: ArrowWriter<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl Part {
    fn str(&mut self, i: usize, v: Option<&str>) {
        if let ColBuf::Str(b) = &mut self.cols[i] {
            b.append_option(v)
        }
    }
    fn i64(&mut self, i: usize, v: Option<i64>) {
        if let ColBuf::I64(b) = &mut self.cols[i] {
            b.append_option(v)
        }
    }
    fn f64(&mut self, i: usize, v: Option<f64>) {
        if let ColBuf::F64(b) = &mut self.cols[i] {
            b.append_option(v)
        }
    }
    fn bool(&mut self, i: usize, v: Option<bool>) {
        if let ColBuf::Bool(b) = &mut self.cols[i] {
            b.append_option(v)
        }
    }
    fn ts(&mut self, i: usize, v: Ts) {
        if let ColBuf::Ts(b) = &mut self.cols[i] {
            b.append_value(v)
        }
    }

    /// Ends a row; hands a full batch to the Parquet writer.
    fn end_row(&mut self) -> io::Result<()> {
        self.rows += 1;
        if self.rows >= BATCH_ROWS { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self.cols.iter_mut().map(ColBuf::finish).collect();
        self.rows = 0;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays).map_err(io::Error::other)?;
        self.writer.write(&batch).map_err(io::Error::other)
    }

    fn close(mut self) -> io::Result<()> {
        self.flush().map_err(|e| with_path(&self.tmp, e))?;
        self.writer.close().map_err(|e| with_path(&self.tmp, e))?;
        fs::rename(&self.tmp, &self.dest).map_err(|e| with_path(&self.dest, e))
    }
}

/// Table slots: sources first, then the three result tables.
type TableId = usize;

/// Writes events and results into an archive. Also an [`Output`], so it can be handed to the
/// pipeline (or teed next to another sink) as is.
pub struct ArchiveWriter {
    root: PathBuf,
    rules: Arc<RuleSet>,
    tag: String,
    /// The checkpoint interval being written, when a driver with checkpoints uses the writer.
    interval: Option<Position>,
    /// This run's token and lock, taken at its first interval (crate::writers).
    token: Option<u64>,
    lock: Option<WriterLock>,
    /// Earlier runs that ended without finishing, held to be judged by `rewind`.
    held: BTreeMap<u64, Ended>,
    mode: Mode,
    schemas: Vec<SchemaRef>,
    /// Relative directory of each table slot (`events/source=police`, `scores`, ...).
    dirs: Vec<PathBuf>,
    open: BTreeMap<(TableId, i64), Part>,
    next_file: BTreeMap<(TableId, i64), u32>,
    files_written: u64,
    rows_written: u64,
    error: Option<io::Error>,
}

impl ArchiveWriter {
    /// Opens an archive at `root` for the given tables. `tag` names this writer's files (`gen`,
    /// `replay`, `engine-<group>-<n>`), so that writers sharing an archive never collide.
    pub fn create(root: &Path, rules: Arc<RuleSet>, tables: Tables, mode: Mode, tag: &str) -> io::Result<Self> {
        if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("archive tag `{tag}` must be [A-Za-z0-9_-]+"),
            ));
        }
        let mut schemas = Vec::new();
        let mut dirs = Vec::new();
        for (i, s) in rules.sources.iter().enumerate() {
            schemas.push(event_schema(&rules, i));
            dirs.push(Path::new(EVENTS).join(format!("source={}", s.id)));
        }
        for (name, schema) in [(SCORES, score_schema()), (SCORE_PARTS, score_part_schema()), (ALERTS, alert_schema())] {
            schemas.push(schema);
            dirs.push(PathBuf::from(name));
        }
        fs::create_dir_all(root)?;
        if mode == Mode::Replace {
            let mut clear = Vec::new();
            if tables.events {
                clear.push(EVENTS);
            }
            if tables.results {
                clear.extend([SCORES, SCORE_PARTS, ALERTS]);
            }
            for t in clear {
                let dir = root.join(t);
                if let Some(stranger) = foreign_entry(&dir)? {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "refusing to replace {}: it holds {}, which is not an archive partition",
                            dir.display(),
                            stranger.display()
                        ),
                    ));
                }
                match fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(with_path(&dir, e)),
                    _ => {}
                }
            }
        }
        Ok(ArchiveWriter {
            root: root.to_path_buf(),
            rules,
            tag: tag.to_string(),
            interval: None,
            token: None,
            lock: None,
            held: BTreeMap::new(),
            mode,
            schemas,
            dirs,
            open: BTreeMap::new(),
            next_file: BTreeMap::new(),
            files_written: 0,
            rows_written: 0,
            error: None,
        })
    }

    fn slot_scores(&self) -> TableId {
        self.rules.sources.len()
    }

    /// Finds or opens the file for a table and date.
    fn part(&mut self, table: TableId, day: i64) -> io::Result<&mut Part> {
        if !self.open.contains_key(&(table, day)) {
            let (y, m, d) = civil_from_days(day);
            let dir = self.root.join(&self.dirs[table]).join(format!("date={y:04}-{m:02}-{d:02}"));
            fs::create_dir_all(&dir).map_err(|e| with_path(&dir, e))?;
            let prefix = self.prefix(self.interval);
            // Within an interval numbers count up in memory; a new interval's position is new
            // (a restart rewinds to it first), so only position-less appends look at the disk.
            let n = match self.next_file.get(&(table, day)) {
                Some(n) => *n,
                None if self.mode == Mode::Append && self.interval.is_none() => next_free(&dir, &prefix)?,
                None => 0,
            };
            self.next_file.insert((table, day), n + 1);
            let name = format!("{prefix}{n:05}.parquet");
            let tmp = dir.join(format!(".{name}.tmp"));
            let dest = dir.join(name);
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .build();
            let schema = Arc::clone(&self.schemas[table]);
            let file = File::create(&tmp).map_err(|e| with_path(&tmp, e))?;
            let writer =
                ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(|e| with_path(&tmp, e))?;
            let cols = schema.fields().iter().map(|f| ColBuf::for_type(f.data_type())).collect();
            self.open.insert((table, day), Part { schema, cols, rows: 0, writer, tmp, dest });
        }
        Ok(self.open.get_mut(&(table, day)).expect("inserted above"))
    }

    /// File names of this writer (and interval) start with this. An interval's position is in
    /// the name with fixed widths, so names sort in the order intervals were written.
    fn prefix(&self, interval: Option<Position>) -> String {
        match (interval, self.token) {
            (Some(p), Some(t)) => format!("part-{}.{t:016x}-{:020}-{:013}-", self.tag, p.offsets, p.evaluated.max(0)),
            (Some(p), None) => format!("part-{}-{:020}-{:013}-", self.tag, p.offsets, p.evaluated.max(0)),
            (None, _) => format!("part-{}-", self.tag),
        }
    }

    /// This driver's files that belong to an interval, with their writers' tokens (`None`:
    /// written before files carried one) and positions (temporary files a crash left behind
    /// included, flagged).
    fn interval_files(&self) -> io::Result<Vec<(PathBuf, IntervalName)>> {
        let mut out = Vec::new();
        for dir in &self.dirs {
            let dir = self.root.join(dir);
            let dates = match fs::read_dir(&dir) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(with_path(&dir, e)),
            };
            for date in dates.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
                for f in fs::read_dir(date.path()).map_err(|e| with_path(&date.path(), e))?.filter_map(|e| e.ok()) {
                    let name = f.file_name();
                    if let Some(parsed) = parse_interval_name(&name.to_string_lossy(), &self.tag) {
                        out.push((f.path(), parsed));
                    }
                }
            }
        }
        Ok(out)
    }

    fn keep(&mut self, r: io::Result<()>) {
        if let Err(e) = r
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }

    /// Appends one decoded event. Allocation happens only when a batch is handed to the writer
    /// or a new file opens, not per event.
    pub fn event(&mut self, ev: &Event) {
        let r = self.try_event(ev);
        self.keep(r);
    }

    fn try_event(&mut self, ev: &Event) -> io::Result<()> {
        let rules = Arc::clone(&self.rules);
        let source = &rules.sources[ev.source as usize];
        let cx = EvalCtx::new(ev, &rules.zone);
        let p = self.part(ev.source as usize, ev.ts.div_euclid(DAY))?;
        p.str(0, Some(&rules.regions.codes[ev.region as usize]));
        p.ts(1, ev.ts);
        p.i64(2, Some(cx.hour));
        p.i64(3, Some(cx.dow));
        for (i, a) in source.attrs.iter().enumerate() {
            let v = ev.get(i);
            let c = 4 + i;
            match &a.ty {
                AttrType::Enum(values) => p.str(c, v.and_then(|v| values.get(v as usize)).map(String::as_str)),
                AttrType::Int { .. } => p.i64(c, v),
                AttrType::Float { .. } => p.f64(c, v.map(|v| a.to_real(v))),
                AttrType::Bool => p.bool(c, v.map(|v| v != 0)),
            }
        }
        p.end_row()?;
        self.rows_written += 1;
        Ok(())
    }

    fn try_score(&mut self, r: &ScoreRecord) -> io::Result<()> {
        let ts = parse_rfc3339(&r.window_end).map_err(|e| io::Error::other(format!("window_end: {e:?}")))?;
        let day = ts.div_euclid(DAY);
        let slot = self.slot_scores();
        let p = self.part(slot, day)?;
        p.str(0, Some(&r.region));
        p.str(1, Some(&r.level));
        p.ts(2, ts);
        p.str(3, Some(&r.rules_version));
        p.f64(4, r.composite);
        p.str(5, r.grade.map(|g| g.as_str()));
        p.end_row()?;
        let p = self.part(slot + 1, day)?;
        let mut rows = 1;
        let parts = r.domains.iter().map(|(n, s)| ("domain", n.as_str(), None, None, *s));
        let parts = parts.chain(r.categories.iter().map(|(n, s)| ("category", n.as_str(), None, None, *s)));
        let parts =
            parts.chain(r.indicators.iter().map(|i| ("indicator", i.indicator.as_str(), i.value, i.expected, i.score)));
        for (kind, name, value, expected, score) in parts {
            p.str(0, Some(&r.region));
            p.str(1, Some(&r.level));
            p.ts(2, ts);
            p.str(3, Some(&r.rules_version));
            p.str(4, Some(kind));
            p.str(5, Some(name));
            p.f64(6, value);
            p.f64(7, expected);
            p.f64(8, score);
            p.end_row()?;
            rows += 1;
        }
        self.rows_written += rows;
        Ok(())
    }

    fn try_alert(&mut self, r: &AlertRecord) -> io::Result<()> {
        let ts = parse_rfc3339(&r.window_end).map_err(|e| io::Error::other(format!("window_end: {e:?}")))?;
        let domains = serde_json::to_string(&r.domains).map_err(io::Error::other)?;
        let top = serde_json::to_string(&r.top_contributors).map_err(io::Error::other)?;
        let evidence = r.evidence.as_ref().map(serde_json::to_string).transpose().map_err(io::Error::other)?;
        let floor = r.floor.as_ref().map(serde_json::to_string).transpose().map_err(io::Error::other)?;
        let slot = self.slot_scores() + 2;
        let p = self.part(slot, ts.div_euclid(DAY))?;
        p.str(0, Some(&r.alert_id));
        p.i64(1, Some(r.seq as i64));
        p.str(2, Some(r.event.as_str()));
        p.str(3, r.level.map(|l| l.as_str()));
        p.str(4, r.previous_level.map(|l| l.as_str()));
        p.str(5, Some(&r.region));
        p.str(6, Some(&r.region_name));
        p.str(7, Some(&r.region_level));
        p.str(8, Some(&r.scope));
        p.f64(9, r.score);
        p.ts(10, ts);
        p.str(11, Some(&r.rules_version));
        p.str(12, Some(&r.reason));
        p.str(13, Some(&domains));
        p.str(14, Some(&top));
        p.str(15, evidence.as_deref());
        p.str(16, r.response.as_deref());
        p.str(17, r.deadline.as_deref());
        p.str(18, floor.as_deref());
        p.end_row()?;
        self.rows_written += 1;
        Ok(())
    }

    /// Closes every open file, making everything appended so far visible and durable. Reports
    /// the first error since the last commit (appends cannot report their own).
    pub fn commit(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        while let Some((_, part)) = self.open.pop_first() {
            part.close()?;
            self.files_written += 1;
        }
        Ok(())
    }

    /// Commits and reports (files written, rows written).
    pub fn finish(mut self) -> io::Result<(u64, u64)> {
        self.commit()?;
        Ok((self.files_written, self.rows_written))
    }
}

impl Output for ArchiveWriter {
    fn score(&mut self, r: ScoreRecord) {
        let res = self.try_score(&r);
        self.keep(res);
    }
    fn alert(&mut self, r: AlertRecord) {
        let res = self.try_alert(&r);
        self.keep(res);
    }
}

impl vigil_core::Archive for ArchiveWriter {
    fn event(&mut self, event: &Event) {
        ArchiveWriter::event(self, event)
    }
    fn score(&mut self, record: &ScoreRecord) {
        let r = self.try_score(record);
        self.keep(r);
    }
    fn alert(&mut self, record: &AlertRecord) {
        let r = self.try_alert(record);
        self.keep(r);
    }
    fn commit(&mut self) -> io::Result<()> {
        ArchiveWriter::commit(self)
    }
    fn begin(&mut self, at: Position) {
        if self.token.is_none() {
            let token = crate::writers::new_token();
            match WriterLock::take(&self.root, &self.tag, token) {
                Ok(l) => self.lock = Some(l),
                Err(e) => self.keep(Err(with_path(&self.root.join(crate::writers::WRITERS), e))),
            }
            self.token = Some(token);
        }
        // Two checkpoints at the same position (nothing moved in between) share an interval:
        // its file numbers simply continue.
        if self.interval != Some(at) {
            self.interval = Some(at);
            self.next_file.clear();
        }
    }
    fn writer(&self) -> Option<u64> {
        self.token
    }
    fn hold_ended(&mut self) -> io::Result<usize> {
        for t in crate::writers::tokens(&self.root, &self.tag)? {
            if Some(t) != self.token
                && !self.held.contains_key(&t)
                && let Some(e) = crate::writers::ended(&self.root, &self.tag, t)?
            {
                self.held.insert(t, e);
            }
        }
        Ok(self.held.len())
    }
    fn rewind(&mut self, at: Position, log: &ArchiveLog) -> io::Result<usize> {
        let mut removed = 0;
        for (path, n) in self.interval_files()? {
            let stale = match n.token {
                // Another run's files: judged only when that run ended without finishing
                // (held); what its landed checkpoints do not cover.
                Some(t) if Some(t) != self.token => self.held.contains_key(&t) && (n.tmp || !log.covers(t, n.at, at)),
                // This run's own (rewinding after it began) and those of versions without
                // tokens: what began at or after the position resumed from.
                _ => n.tmp || n.at >= at,
            };
            if stale {
                fs::remove_file(&path).map_err(|e| with_path(&path, e))?;
                removed += usize::from(!n.tmp);
            }
        }
        std::mem::take(&mut self.held).into_values().for_each(Ended::forget);
        Ok(removed)
    }
    fn count_after(&self, at: Position) -> io::Result<usize> {
        Ok(self.interval_files()?.into_iter().filter(|(_, n)| !n.tmp && n.at > at).count())
    }
    fn finished(&mut self) {
        if let Some(l) = &mut self.lock {
            l.finish();
        }
    }
}

/// What an interval file's name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IntervalName {
    /// The run that wrote it (`None`: a version before runs had tokens).
    token: Option<u64>,
    /// The position its interval began at.
    at: Position,
    /// A temporary file, never completed.
    tmp: bool,
}

/// Reads `[.]part-<tag>[.<16 hex digits>]-<20 digits>-<13 digits>-<5 digits>.parquet[.tmp]`
/// exactly. Other drivers' files (another tag, even one that starts with this one) do not
/// parse: a tag holds no `.`, so the token cannot be mistaken for the end of a longer tag.
fn parse_interval_name(name: &str, tag: &str) -> Option<IntervalName> {
    let (name, tmp) = match name.strip_prefix('.') {
        Some(n) => (n.strip_suffix(".tmp")?, true),
        None => (name, false),
    };
    let rest = name.strip_prefix("part-")?.strip_prefix(tag)?.strip_suffix(".parquet")?;
    let (token, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let (t, r) = r.split_once('-')?;
            (Some(crate::writers::parse_token(t)?), r)
        }
        None => (None, rest.strip_prefix('-')?),
    };
    let parts: Vec<&str> = rest.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [o, e, n] if digits(o, 20) && digits(e, 13) && digits(n, 5) => {
            Some(IntervalName { token, at: Position { offsets: o.parse().ok()?, evaluated: e.parse().ok()? }, tmp })
        }
        _ => None,
    }
}

/// The first entry of a table directory that is not a `source=` or `date=` partition, if any.
fn foreign_entry(dir: &Path) -> io::Result<Option<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(with_path(dir, e)),
    };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(e.path().is_dir() && (name.starts_with("source=") || name.starts_with("date="))) {
            return Ok(Some(e.path()));
        }
    }
    Ok(None)
}

fn with_path(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {e}", path.display()))
}

/// The next file number after those in `dir` whose names start with `prefix`.
fn next_free(dir: &Path, prefix: &str) -> io::Result<u32> {
    let mut next = 0;
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) =
            name.strip_prefix(prefix).and_then(|r| r.strip_suffix(".parquet")).and_then(|n| n.parse::<u32>().ok())
        {
            next = next.max(n + 1);
        }
    }
    Ok(next)
}

/// Copies the files of archive `from` into archive `into` (created if needed), hidden ones (lock
/// and temporary files) left out; returns how many. Writers never share a file name, so the
/// archives of a scale-out group's instances, each gathered into one directory this way, make
/// the group's whole archive. An archive holding runs that ended without finishing and have not
/// been judged yet (its instance was killed and has not started again on it) is refused: it may
/// hold rows no checkpoint covers, archived again elsewhere. Files already in `into` under the
/// same name (gathered before) are replaced.
pub fn gather(from: &Path, into: &Path) -> io::Result<u64> {
    let unjudged = crate::writers::unjudged(from)?;
    if unjudged > 0 {
        return Err(io::Error::other(format!(
            "{} holds {unjudged} runs that ended without finishing (killed, or failed) and have not been judged: \
             start its instance again on it first, which removes what no checkpoint covers",
            from.display()
        )));
    }
    copy_visible(from, into)
}

fn copy_visible(from: &Path, into: &Path) -> io::Result<u64> {
    fs::create_dir_all(into).map_err(|e| with_path(into, e))?;
    let mut copied = 0;
    for e in fs::read_dir(from).map_err(|e| with_path(from, e))? {
        let e = e?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let (src, dest) = (e.path(), into.join(&name));
        if src.is_dir() {
            copied += copy_visible(&src, &dest)?;
        } else {
            fs::copy(&src, &dest).map_err(|e| with_path(&src, e))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// True when `path` looks like an archive root (it has an `events` or `scores` directory).
pub fn is_archive(path: &Path) -> bool {
    path.join(EVENTS).is_dir() || path.join(SCORES).is_dir() || path.join(ALERTS).is_dir()
}

/// The Parquet files of one table directory, in date order and then file name order.
pub fn table_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut dates: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("date=")))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    dates.sort();
    let mut files = Vec::new();
    for d in dates {
        let mut fs_: Vec<PathBuf> = fs::read_dir(&d)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "parquet")
                    && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        fs_.sort();
        files.extend(fs_);
    }
    Ok(files)
}

/// The source ids present in an archive's events table.
pub fn archived_sources(root: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    match fs::read_dir(root.join(EVENTS)) {
        Ok(rd) => {
            for e in rd {
                let name = e?.file_name().to_string_lossy().to_string();
                if let Some(id) = name.strip_prefix("source=") {
                    out.push(id.to_string());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort();
    Ok(out)
}

/// One replay input per source of `rules` found in the archive, reading events with event
/// times before `until` (all when `None`). Each source is read one date at a time, and within a
/// date in event-time order (a stable sort: equal times keep the order written). An archive of
/// `vigil gen`, written in time order, therefore replays exactly as its JSON lines do, and the
/// engine's archive, whose files interleave partitions in arrival order, replays in event time.
pub fn event_inputs(root: &Path, rules: &RuleSet, until: Option<Ts>) -> io::Result<Vec<Input>> {
    let present = archived_sources(root)?;
    let mut inputs = Vec::new();
    for (i, s) in rules.sources.iter().enumerate() {
        if !present.contains(&s.id) {
            continue;
        }
        let mut dates = date_groups(&root.join(EVENTS).join(format!("source={}", s.id)))?;
        if let Some(until) = until {
            // Dates after the last wanted day cannot hold wanted events.
            let (y, m, d) = civil_from_days((until - 1).div_euclid(DAY));
            let last = format!("date={y:04}-{m:02}-{d:02}");
            dates.retain(|(date, _)| date.as_str() <= last.as_str());
        }
        let records = ArchivedEvents {
            dates: dates.into_iter().map(|(_, files)| files).collect(),
            batches: Vec::new(),
            order: Vec::new(),
            next: 0,
            pos: 0,
            until,
        };
        inputs.push(Input {
            name: format!("{EVENTS}/source={}", s.id),
            source: Some(i as u8),
            records: Box::new(records),
        });
    }
    Ok(inputs)
}

/// The Parquet files of a table directory grouped by date directory, both in name order.
fn date_groups(dir: &Path) -> io::Result<Vec<(String, Vec<PathBuf>)>> {
    let mut groups: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for f in table_files(dir)? {
        let date = f.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match groups.last_mut() {
            Some((d, files)) if *d == date => files.push(f),
            _ => groups.push((date, vec![f])),
        }
    }
    Ok(groups)
}

/// A typed attribute column of a batch.
enum AttrCol {
    Missing,
    Str(StringArray),
    /// An enum read as a dictionary: each row's key, and each dictionary value's declared index
    /// (`None`: a value the rules do not declare), resolved once per batch rather than per row.
    Dict(Int32Array, Vec<Option<i64>>),
    I64(Int64Array),
    F64(Float64Array),
    Bool(BooleanArray),
    /// Present with a type the rules do not declare for it.
    Mismatch(DataType),
}

/// A batch with its columns resolved against the replaying rule set.
struct Bound {
    cols: Vec<AttrCol>,
    /// Attribute columns of the file that the rules do not declare (dropped, and counted).
    undeclared: Vec<ArrayRef>,
    region: Option<Codes>,
    ts: Option<TimestampMillisecondArray>,
    /// Why the batch cannot be used at all.
    problem: Option<String>,
}

/// A batch's region codes: as written, or read as a dictionary with each value's region index
/// (`None`: not in the registry) resolved once per batch.
enum Codes {
    Str(StringArray),
    Dict(Int32Array, Vec<Option<u32>>, StringArray),
}

/// The rows of one archive file. Its enum and region columns are read as dictionaries (a day's
/// file holds a few dozen distinct values in hundreds of thousands of rows, so each value is
/// looked up once per batch instead of once per row); a file that cannot be read so is read as
/// written.
fn open_rows(path: &Path, decoder: &Decoder<'_>, source: u8) -> Result<ParquetRecordBatchReader, String> {
    let open = || File::open(path).map_err(|e| e.to_string());
    let plain = ParquetRecordBatchReaderBuilder::try_new(open()?).map_err(|e| e.to_string())?;
    let src = &decoder.rules().sources[source as usize];
    let schema = plain.schema();
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut hinted = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let coded = f.name() == "region"
                || src.attr_index(f.name()).is_some_and(|i| matches!(src.attrs[i].ty, AttrType::Enum(_)));
            if coded && f.data_type() == &DataType::Utf8 {
                hinted = true;
                f.as_ref().clone().with_data_type(dictionary.clone())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let builder = if hinted {
        let options = ArrowReaderOptions::new()
            .with_schema(Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())));
        match ParquetRecordBatchReaderBuilder::try_new_with_options(open()?, options) {
            Ok(b) => b,
            Err(_) => plain,
        }
    } else {
        plain
    };
    builder.with_batch_size(BATCH_ROWS).build().map_err(|e| e.to_string())
}

/// Each value of a dictionary resolved by `f` (`None` for a null value, or where `f` finds none).
fn resolve<T>(values: &StringArray, f: impl Fn(&str) -> Option<T>) -> Vec<Option<T>> {
    (0..values.len()).map(|i| if values.is_null(i) { None } else { f(values.value(i)) }).collect()
}

/// Reads one source's archived events back into [`Event`]s, checking every value against the
/// rule set being replayed (which may differ from the one that wrote the archive).
struct ArchivedEvents {
    /// Files of the dates still to read.
    dates: VecDeque<Vec<PathBuf>>,
    /// The current date's batches, and its rows as (batch, row) in event-time order.
    batches: Vec<Bound>,
    order: Vec<(u32, u32)>,
    next: usize,
    pos: u64,
    until: Option<Ts>,
}

impl ArchivedEvents {
    /// Loads the next date that has rows; false at the end of the input.
    fn next_date(&mut self, decoder: &Decoder<'_>, source: u8) -> io::Result<bool> {
        while let Some(files) = self.dates.pop_front() {
            self.batches.clear();
            self.order.clear();
            self.next = 0;
            let mut keyed: Vec<(i64, u32, u32)> = Vec::new();
            for path in files {
                let with_path = |e: &dyn std::fmt::Display| io::Error::other(format!("{}: {e}", path.display()));
                let reader = open_rows(&path, decoder, source).map_err(|e| with_path(&e))?;
                for batch in reader {
                    let batch = batch.map_err(|e| with_path(&e))?;
                    let b = bind(decoder, source, &batch);
                    let bi = self.batches.len() as u32;
                    for r in 0..batch.num_rows() {
                        let ts = b.ts.as_ref().filter(|t| !t.is_null(r)).map_or(i64::MIN, |t| t.value(r));
                        keyed.push((ts, bi, r as u32));
                    }
                    self.batches.push(b);
                }
            }
            // Stable: rows of equal time keep the order they were written in.
            keyed.sort_by_key(|k| k.0);
            self.order = keyed.into_iter().map(|(_, b, r)| (b, r)).collect();
            if !self.order.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Resolves a batch's columns against the source's declared attributes.
fn bind(decoder: &Decoder<'_>, source: u8, b: &RecordBatch) -> Bound {
    let source = &decoder.rules().sources[source as usize];
    let schema = b.schema();
    let regions = &decoder.rules().regions;
    let region = b.column_by_name("region").and_then(|c| {
        let c = c.as_any();
        if let Some(s) = c.downcast_ref::<StringArray>() {
            return Some(Codes::Str(s.clone()));
        }
        let d = c.downcast_ref::<DictionaryArray<Int32Type>>()?;
        let values = d.values().as_any().downcast_ref::<StringArray>()?;
        Some(Codes::Dict(d.keys().clone(), resolve(values, |v| regions.lookup(v)), values.clone()))
    });
    let ts = b.column_by_name("ts").and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>()).cloned();
    let problem = (region.is_none() || ts.is_none())
        .then(|| "archive file lacks a `region` (string) or `ts` (timestamp) column".to_string());
    let cols = source
        .attrs
        .iter()
        .map(|a| match schema.index_of(&a.name) {
            Err(_) => AttrCol::Missing,
            Ok(i) => {
                let c = b.column(i).as_any();
                match &a.ty {
                    AttrType::Enum(_) if c.is::<StringArray>() => {
                        c.downcast_ref::<StringArray>().map_or(AttrCol::Missing, |c| AttrCol::Str(c.clone()))
                    }
                    AttrType::Enum(declared) if c.is::<DictionaryArray<Int32Type>>() => {
                        let d = c.downcast_ref::<DictionaryArray<Int32Type>>();
                        match d.and_then(|d| Some((d, d.values().as_any().downcast_ref::<StringArray>()?))) {
                            Some((d, values)) => {
                                let index = |v: &str| declared.iter().position(|x| x == v).map(|p| p as i64);
                                AttrCol::Dict(d.keys().clone(), resolve(values, index))
                            }
                            None => AttrCol::Mismatch(b.column(i).data_type().clone()),
                        }
                    }
                    AttrType::Int { .. } | AttrType::Float { .. } if c.is::<Int64Array>() => {
                        c.downcast_ref::<Int64Array>().map_or(AttrCol::Missing, |c| AttrCol::I64(c.clone()))
                    }
                    AttrType::Float { .. } if c.is::<Float64Array>() => {
                        c.downcast_ref::<Float64Array>().map_or(AttrCol::Missing, |c| AttrCol::F64(c.clone()))
                    }
                    AttrType::Bool if c.is::<BooleanArray>() => {
                        c.downcast_ref::<BooleanArray>().map_or(AttrCol::Missing, |c| AttrCol::Bool(c.clone()))
                    }
                    _ => AttrCol::Mismatch(b.column(i).data_type().clone()),
                }
            }
        })
        .collect();
    let undeclared = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !EVENT_COLUMNS.contains(&f.name().as_str()) && source.attr_index(f.name()).is_none())
        .map(|(i, _)| Arc::clone(b.column(i)))
        .collect();
    Bound { cols, undeclared, region, ts, problem }
}

impl Bound {
    /// Converts row `r` into `out`; returns the number of undeclared values dropped.
    fn convert(&self, decoder: &Decoder<'_>, source: u8, r: usize, out: &mut Event) -> Result<u32, Rejection> {
        let rules = decoder.rules();
        let (Some(region), Some(ts), None) = (&self.region, &self.ts, &self.problem) else {
            let detail = self.problem.clone().unwrap_or_default();
            return Err(Rejection { code: RejectCode::MissingField, detail });
        };
        *out = Event::default();
        out.source = source;
        let unknown = |code: &str| Rejection {
            code: RejectCode::UnknownRegion,
            detail: format!("`region` ({} characters) is not in the registry", code.chars().count()),
        };
        let missing = || Rejection { code: RejectCode::MissingField, detail: "`region` is missing".into() };
        out.region = match region {
            Codes::Str(c) if c.is_null(r) => return Err(missing()),
            Codes::Str(c) => rules.regions.lookup(c.value(r)).ok_or_else(|| unknown(c.value(r)))?,
            Codes::Dict(keys, _, _) if keys.is_null(r) => return Err(missing()),
            Codes::Dict(keys, map, values) => {
                let k = keys.value(r) as usize;
                match map.get(k) {
                    Some(Some(idx)) => *idx,
                    Some(None) if !values.is_null(k) => return Err(unknown(values.value(k))),
                    _ => return Err(missing()),
                }
            }
        };
        if ts.is_null(r) {
            return Err(Rejection { code: RejectCode::MissingField, detail: "`ts` is missing".into() });
        }
        out.ts = vigil_model::time::check_range(ts.value(r)).map_err(|_| Rejection {
            code: RejectCode::TimestampOutOfRange,
            detail: "timestamp outside 2000-01-01 .. 2100-01-01".into(),
        })?;
        let s = &rules.sources[source as usize];
        for (i, (a, col)) in s.attrs.iter().zip(&self.cols).enumerate() {
            let bad = |code, what: &str| Rejection { code, detail: format!("attribute `{}`: {what}", a.name) };
            let v: Option<i64> =
                match (col, &a.ty) {
                    (AttrCol::Missing, _) => None,
                    (AttrCol::Mismatch(t), _) => {
                        return Err(bad(
                            RejectCode::WrongType,
                            &format!("archived as {t}, which does not fit the declared type"),
                        ));
                    }
                    (AttrCol::Str(c), AttrType::Enum(values)) => {
                        match c.is_null(r) {
                            true => None,
                            false => Some(values.iter().position(|x| x == c.value(r)).ok_or_else(|| {
                                bad(RejectCode::UnknownValue, "value is not one of the declared values")
                            })? as i64),
                        }
                    }
                    (AttrCol::Dict(keys, map), AttrType::Enum(_)) => {
                        match keys.is_null(r) {
                            true => None,
                            // A key outside the dictionary cannot be written by arrow; treated as a
                            // value the rules do not declare rather than trusted.
                            false => Some(map.get(keys.value(r) as usize).copied().flatten().ok_or_else(|| {
                                bad(RejectCode::UnknownValue, "value is not one of the declared values")
                            })?),
                        }
                    }
                    (AttrCol::I64(c), AttrType::Int { min, max }) => match c.is_null(r) {
                        true => None,
                        false => {
                            let x = c.value(r);
                            if x < *min || x > *max {
                                return Err(bad(RejectCode::OutOfRange, &format!("outside {min}..={max}")));
                            }
                            Some(x)
                        }
                    },
                    (AttrCol::F64(_) | AttrCol::I64(_), AttrType::Float { min, max, scale, .. }) => {
                        let x = match col {
                            AttrCol::F64(c) if !c.is_null(r) => Some(c.value(r)),
                            AttrCol::I64(c) if !c.is_null(r) => Some(c.value(r) as f64),
                            _ => None,
                        };
                        match x {
                            None => None,
                            Some(x) if !x.is_finite() => return Err(bad(RejectCode::NotFinite, "not a finite number")),
                            Some(x) if x < *min || x > *max => {
                                return Err(bad(RejectCode::OutOfRange, &format!("outside {min}..={max}")));
                            }
                            Some(x) => Some((x * *scale as f64).round() as i64),
                        }
                    }
                    (AttrCol::Bool(c), AttrType::Bool) => (!c.is_null(r)).then(|| c.value(r) as i64),
                    _ => return Err(bad(RejectCode::WrongType, "archived with another type")),
                };
            match v {
                Some(v) => out.set(i, v),
                None if a.required => return Err(bad(RejectCode::MissingField, "required but missing")),
                None => {}
            }
        }
        Ok(self.undeclared.iter().filter(|c| !c.is_null(r)).count() as u32)
    }
}

impl Records for ArchivedEvents {
    fn next_record(&mut self, decoder: &Decoder<'_>, hint: SourceHint, out: &mut Event) -> io::Result<Next> {
        let source = match hint {
            SourceHint::Fixed(s) | SourceHint::Default(s) => s,
            SourceHint::None => 0,
        };
        if self.next >= self.order.len() && !self.next_date(decoder, source)? {
            return Ok(Next::End);
        }
        let (b, r) = self.order[self.next];
        self.next += 1;
        self.pos += 1;
        Ok(match self.batches[b as usize].convert(decoder, source, r as usize, out) {
            // Sorted by time: nothing after `until` is wanted.
            Ok(_) if self.until.is_some_and(|u| out.ts >= u) => {
                self.dates.clear();
                self.order.clear();
                self.next = 0;
                Next::End
            }
            Ok(dropped_fields) => Next::Event { pos: self.pos, dropped_fields },
            Err(rejection) => Next::Rejected { pos: self.pos, rejection },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_rules::testing as mini;

    /// Enum and region columns come back as dictionaries, each value resolved once per batch:
    /// a declared value and a known region convert, a value or region the replaying rules do
    /// not declare is refused with the same reason as when read as written.
    #[test]
    fn enum_and_region_columns_are_read_as_dictionaries() {
        let rules = Arc::new(vigil_rules::compile(&mini::files_with(&[])).unwrap());
        // Removed when dropped, also when an assertion fails.
        let scratch = tempfile::Builder::new().prefix("vigil-archive-dict-").tempdir().unwrap();
        let dir = scratch.path().join("archive");
        let mut w = ArchiveWriter::create(
            &dir,
            Arc::clone(&rules),
            Tables { events: true, results: false },
            Mode::Replace,
            "t",
        )
        .unwrap();
        let decoder = Decoder::new(&rules);
        let lines = [
            r#"{"region":"G1","ts":"2026-03-02T10:00:00+08:00","attrs":{"incident_type":"theft"}}"#,
            r#"{"region":"D2","ts":"2026-03-02T11:00:00+08:00","attrs":{"incident_type":"theft"}}"#,
            r#"{"region":"G1","ts":"2026-03-02T12:00:00+08:00","attrs":{"incident_type":"other"}}"#,
        ];
        for line in lines {
            let mut ev = Event::default();
            decoder.decode(SourceHint::Fixed(0), line.as_bytes(), &mut ev).unwrap();
            w.event(&ev);
        }
        w.finish().unwrap();
        let file = fs::read_dir(dir.join(EVENTS).join("source=police"))
            .unwrap()
            .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
            .map(|f| f.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "parquet"))
            .expect("an events file");
        let batch = open_rows(&file, &decoder, 0).unwrap().next().unwrap().unwrap();
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(batch.column_by_name("region").unwrap().data_type(), &dictionary);
        assert_eq!(batch.column_by_name("incident_type").unwrap().data_type(), &dictionary);
        let b = bind(&decoder, 0, &batch);
        let mut ev = Event::default();
        let codes: Vec<u32> = (0..3).map(|r| b.convert(&decoder, 0, r, &mut ev).map(|_| ev.region).unwrap()).collect();
        assert_eq!(
            codes,
            [
                rules.regions.lookup("G1").unwrap(),
                rules.regions.lookup("D2").unwrap(),
                rules.regions.lookup("G1").unwrap()
            ]
        );
        b.convert(&decoder, 0, 2, &mut ev).unwrap();
        assert_eq!(ev.get(0), Some(3), "other is the fourth declared incident type");

        // Replayed by rules without `other` and without D2: refused, each with its reason.
        let narrowed = mini::files_with(&[
            (
                "sources.toml",
                &mini::SOURCES.replace(
                    r#"values = ["theft", "fight", "dispute", "other"]"#,
                    r#"values = ["theft", "fight", "dispute"]"#,
                ),
            ),
            ("regions.csv", &mini::REGIONS.replace("D2,C,district,West,10000\n", "")),
        ]);
        let narrowed = vigil_rules::compile(&narrowed).unwrap();
        let decoder = Decoder::new(&narrowed);
        let b = bind(&decoder, 0, &batch);
        assert!(b.convert(&decoder, 0, 0, &mut ev).is_ok());
        let refused = b.convert(&decoder, 0, 1, &mut ev).unwrap_err();
        assert_eq!(refused.code, RejectCode::UnknownRegion, "{}", refused.detail);
        let refused = b.convert(&decoder, 0, 2, &mut ev).unwrap_err();
        assert_eq!(refused.code, RejectCode::UnknownValue, "{}", refused.detail);
    }
}
