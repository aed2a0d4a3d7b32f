//! SQL over the archive with DataFusion: which tables an archive offers, how they are
//! registered, and how a result is printed.
//!
//! Tables (each with the hive partition column `date`, a `YYYY-MM-DD` string of the UTC date):
//! - `events_<source>`: one source's events with its declared attributes;
//! - `events`: every source together (`source` column), with each attribute column that all
//!   sources declaring it store with the same type;
//! - `scores`: one row per score record; `score_parts`: one row per domain, category and (with
//!   `--scores full`) indicator score; `alerts`: one row per alert lifecycle record.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::archive::{ALERTS, EVENTS, SCORE_PARTS, SCORES, archived_sources};

/// Why a query could not run, said for the person who typed it.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("cannot read the archive at {path}: {source}")]
    Archive { path: PathBuf, source: std::io::Error },
    #[error(
        "{0} is not an archive (no events/, scores/ or alerts/ directory); write one with `vigil gen --archive` or `vigil replay --archive`"
    )]
    NotAnArchive(PathBuf),
    #[error("the archive has no `{0}` table: {1}")]
    MissingTable(&'static str, &'static str),
    #[error("query failed: {0}")]
    Query(#[from] DataFusionError),
    #[error("cannot format the result: {0}")]
    Format(#[from] arrow::error::ArrowError),
    #[error("cannot start the query runtime: {0}")]
    Runtime(std::io::Error),
}

/// How to print a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// A registered table and where it comes from, for `vigil sql --tables`.
#[derive(Clone, Debug)]
pub struct TableInfo {
    pub name: String,
    pub columns: Vec<(String, DataType)>,
    /// Attribute columns left out of the joint `events` table (declared with different types by
    /// different sources); they remain in the per-source tables.
    pub left_out: Vec<String>,
}

impl fmt::Display for TableInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (", self.name)?;
        for (i, (n, t)) in self.columns.iter().enumerate() {
            write!(f, "{}{n} {t}", if i > 0 { ", " } else { "" })?;
        }
        write!(f, ")")?;
        if !self.left_out.is_empty() {
            write!(f, " -- left out, types differ between sources: {}", self.left_out.join(", "))?;
        }
        Ok(())
    }
}

/// An archive opened for SQL: a DataFusion session with its tables registered, and the runtime
/// that drives it (DataFusion is async; vigil's callers are not).
pub struct History {
    ctx: SessionContext,
    rt: tokio::runtime::Runtime,
    tables: Vec<TableInfo>,
}

fn url(dir: &Path) -> Result<String, SqlError> {
    let abs = std::path::absolute(dir).map_err(|source| SqlError::Archive { path: dir.to_path_buf(), source })?;
    // A trailing slash makes the URL a directory (a table of many files).
    Ok(format!("{}/", abs.display()))
}

fn has_files(dir: &Path) -> bool {
    crate::archive::table_files(dir).map(|f| !f.is_empty()).unwrap_or(false)
}

impl History {
    /// Opens the archive at `root` and registers every table it holds.
    pub fn open(root: &Path) -> Result<History, SqlError> {
        if !crate::archive::is_archive(root) {
            return Err(SqlError::NotAnArchive(root.to_path_buf()));
        }
        // DataFusion runs a query's partitions as tasks: a worker thread per core lets them run
        // in parallel.
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .map_err(SqlError::Runtime)?;
        // DataFusion 55's expression simplifier merges `x NOT IN (a) OR x NOT IN (b)` into
        // `TRUE` when the lists share no value, which is wrong when `x` is NULL (the result
        // is then NULL, and the row must not pass). The filter property test found it
        // (`crates/sql/tests/filter_sql.rs`); without that rule every filter means what the
        // streaming predicate means. Other rules (pushdown, projection pruning) stay.
        let rules: Vec<_> = datafusion::optimizer::Optimizer::new()
            .rules
            .into_iter()
            .filter(|r| r.name() != "simplify_expressions")
            .collect();
        let config = SessionConfig::new().with_target_partitions(threads).with_information_schema(true);
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let mut h = History { ctx, rt, tables: Vec::new() };
        h.register(root)?;
        Ok(h)
    }

    fn options(partitions: &[&str]) -> ListingOptions {
        ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partitions.iter().map(|p| (p.to_string(), DataType::Utf8)).collect())
    }

    fn register(&mut self, root: &Path) -> Result<(), SqlError> {
        let sources =
            archived_sources(root).map_err(|source| SqlError::Archive { path: root.to_path_buf(), source })?;
        // The joint table's schema: the fixed columns, then each attribute in first-seen order,
        // unless two sources disagree on its type.
        let mut joint: Vec<Field> = Vec::new();
        let mut conflicts: Vec<String> = Vec::new();
        for s in &sources {
            let dir = root.join(EVENTS).join(format!("source={s}"));
            if !has_files(&dir) {
                continue;
            }
            let schema = self.register_one(&format!("events_{s}"), &dir, &["date"], None, Vec::new())?;
            for f in schema.fields() {
                if matches!(f.name().as_str(), "date") {
                    continue;
                }
                match joint.iter().find(|j| j.name() == f.name()) {
                    None if !conflicts.contains(f.name()) => {
                        joint.push(Field::new(f.name(), f.data_type().clone(), true));
                    }
                    Some(j) if j.data_type() != f.data_type() => conflicts.push(f.name().clone()),
                    _ => {}
                }
            }
        }
        if !joint.is_empty() {
            joint.retain(|f| !conflicts.contains(f.name()));
            let schema = Arc::new(Schema::new(joint));
            self.register_one("events", &root.join(EVENTS), &["source", "date"], Some(schema), conflicts)?;
        }
        for t in [SCORES, SCORE_PARTS, ALERTS] {
            let dir = root.join(t);
            if has_files(&dir) {
                self.register_one(t, &dir, &["date"], None, Vec::new())?;
            }
        }
        Ok(())
    }

    fn register_one(
        &mut self,
        name: &str,
        dir: &Path,
        partitions: &[&str],
        schema: Option<SchemaRef>,
        left_out: Vec<String>,
    ) -> Result<SchemaRef, SqlError> {
        let u = url(dir)?;
        let options = Self::options(partitions);
        let ctx = &self.ctx;
        self.rt.block_on(ctx.register_listing_table(name, &u, options, schema, None))?;
        let table = self.rt.block_on(ctx.table(name))?;
        let schema: SchemaRef = Arc::new(table.schema().as_arrow().clone());
        self.tables.push(TableInfo {
            name: name.to_string(),
            columns: schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect(),
            left_out,
        });
        Ok(schema)
    }

    /// The tables registered, in registration order.
    pub fn tables(&self) -> &[TableInfo] {
        &self.tables
    }

    /// Runs one statement and collects its result. An empty result is one empty batch, so that
    /// its columns can still be shown.
    pub fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
        let ctx = &self.ctx;
        Ok(self.rt.block_on(async {
            let df = ctx.sql(sql).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut batches = df.collect().await?;
            if batches.is_empty() {
                batches.push(RecordBatch::new_empty(schema));
            }
            Ok::<_, DataFusionError>(batches)
        })?)
    }

    /// Registers extra in-memory data as a table (used by tests and benchmarks).
    pub fn register_batches(&self, name: &str, batches: Vec<RecordBatch>) -> Result<(), SqlError> {
        let Some(first) = batches.first() else { return Ok(()) };
        let table = datafusion::datasource::MemTable::try_new(first.schema(), vec![batches])?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }
}

/// Renders batches as a table, CSV (with a header) or JSON lines.
pub fn render(batches: &[RecordBatch], format: Format) -> Result<String, SqlError> {
    Ok(match format {
        Format::Table => {
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let table = arrow::util::pretty::pretty_format_batches(batches)?;
            format!("{table}\n({rows} row{})\n", if rows == 1 { "" } else { "s" })
        }
        Format::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
                for b in batches {
                    w.write(b)?;
                }
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
        Format::Json => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
    })
}
