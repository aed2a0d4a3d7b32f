//! The history commands: `vigil backtest`, `vigil sql` and `vigil weights`, and the archive
//! plumbing shared with `vigil gen` and `vigil replay` (event inputs from an archive or from
//! files, and a sink that writes JSON Lines and the archive at once).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use vigil_core::Output;
use vigil_model::Ts;
use vigil_model::record::{AlertRecord, ScoreRecord};
use vigil_replay::{DirSink, Input, LateRecord, Rejected, Sink};
use vigil_rules::RuleSet;
use vigil_sql::archive::{self, ArchiveWriter, Mode, Tables};
use vigil_sql::backtest;
use vigil_sql::query::{Format, History};

/// Parses `--from` / `--to`: a UTC date (`2026-01-15`) or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<Ts> {
    let text = if s.len() == 10 { format!("{s}T00:00:00Z") } else { s.to_string() };
    vigil_model::time::parse_rfc3339(&text)
        .map_err(|_| anyhow::anyhow!("`{s}` is not a date (YYYY-MM-DD, UTC) or an RFC 3339 time"))
}

/// Event inputs from paths: an archive directory gives one input per archived source, any other
/// path is a JSON Lines file.
pub fn event_inputs(rules: &RuleSet, paths: &[PathBuf], until: Option<Ts>) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for p in paths {
        if p.is_dir() {
            if !archive::is_archive(p) {
                bail!("{} is a directory but not an archive (no events/ inside)", p.display());
            }
            let found =
                archive::event_inputs(p, rules, until).with_context(|| format!("read archive {}", p.display()))?;
            if found.is_empty() {
                bail!("archive {} holds no events of this rule set's sources", p.display());
            }
            inputs.extend(found);
        } else {
            if until.is_some() {
                bail!("--to works on archives only; {} is a file", p.display());
            }
            inputs.push(Input::open(rules, p).with_context(|| format!("open {}", p.display()))?);
        }
    }
    Ok(inputs)
}

/// Replay results to JSON Lines files, to an archive, or both.
pub struct TeeSink {
    pub files: Option<DirSink>,
    pub archive: Option<ArchiveWriter>,
}

impl Output for TeeSink {
    fn score(&mut self, r: ScoreRecord) {
        match (&mut self.files, &mut self.archive) {
            (Some(f), Some(a)) => {
                a.score(r.clone());
                f.score(r);
            }
            (Some(f), None) => f.score(r),
            (None, Some(a)) => a.score(r),
            (None, None) => {}
        }
    }
    fn alert(&mut self, r: AlertRecord) {
        match (&mut self.files, &mut self.archive) {
            (Some(f), Some(a)) => {
                a.alert(r.clone());
                f.alert(r);
            }
            (Some(f), None) => f.alert(r),
            (None, Some(a)) => a.alert(r),
            (None, None) => {}
        }
    }
}

impl Sink for TeeSink {
    fn rejected(&mut self, r: Rejected) {
        if let Some(f) = &mut self.files {
            f.rejected(r);
        }
    }
    fn late(&mut self, r: LateRecord) {
        if let Some(f) = &mut self.files {
            f.late(r);
        }
    }
}

impl TeeSink {
    pub fn create(rules: &Arc<RuleSet>, out: Option<&Path>, archive: Option<&Path>) -> Result<TeeSink> {
        let files = out.map(|d| DirSink::create(d).with_context(|| format!("create {}", d.display()))).transpose()?;
        let archive = archive
            .map(|d| {
                ArchiveWriter::create(
                    d,
                    Arc::clone(rules),
                    Tables { events: false, results: true },
                    Mode::Replace,
                    "replay",
                )
                .with_context(|| format!("open archive {}", d.display()))
            })
            .transpose()?;
        Ok(TeeSink { files, archive })
    }

    pub fn finish(self) -> Result<()> {
        if let Some(f) = self.files {
            f.finish().context("write replay outputs")?;
        }
        if let Some(a) = self.archive {
            a.finish().context("write the archive")?;
        }
        Ok(())
    }
}

/// The engine's archive: appended to across restarts, its files named after the consumer group.
pub fn engine_archive(dir: &Path, rules: &Arc<RuleSet>, group: &str) -> Result<Box<dyn vigil_core::Archive>> {
    let tag: String = format!("engine-{group}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    let w = ArchiveWriter::create(dir, Arc::clone(rules), Tables { events: true, results: true }, Mode::Append, &tag)
        .with_context(|| format!("open archive {}", dir.display()))?;
    Ok(Box::new(w))
}

#[derive(clap::Args)]
pub struct BacktestArgs {
    /// The rule set under test.
    #[arg(long)]
    rules: PathBuf,
    /// The rule set to compare against (usually the one in force).
    #[arg(long)]
    baseline: PathBuf,
    /// History to replay: an archive directory (`vigil gen --archive`, or the engine's archive),
    /// or JSON Lines event files.
    #[arg(long, num_args = 1.., required = true)]
    events: Vec<PathBuf>,
    /// Compare episodes opening at or after this time (YYYY-MM-DD or RFC 3339, UTC). History
    /// before it is still replayed, so baselines warm up.
    #[arg(long)]
    from: Option<String>,
    /// Stop the history here (exclusive).
    #[arg(long)]
    to: Option<String>,
    /// Ground truth (`ground_truth.json` from `vigil gen`) for a detection scorecard of both
    /// rule sets; found next to an archive by default.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Hours after an incident's end during which alerts still count as detections.
    #[arg(long, default_value_t = 72)]
    grace_hours: u32,
    /// Print the report as JSON (every difference, not only the first ones).
    #[arg(long)]
    json: bool,
}

pub fn run_backtest(args: BacktestArgs) -> Result<ExitCode> {
    let new_rules = crate::load_rules(&args.rules)?;
    let base_rules = crate::load_rules(&args.baseline)?;
    let from = args.from.as_deref().map(parse_time).transpose()?;
    let to = args.to.as_deref().map(parse_time).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        bail!("--from must be before --to");
    }
    let started = std::time::Instant::now();
    let base = backtest::run(Arc::clone(&base_rules), event_inputs(&base_rules, &args.events, to)?)
        .context("replay under the baseline rules")?;
    let new = backtest::run(Arc::clone(&new_rules), event_inputs(&new_rules, &args.events, to)?)
        .context("replay under the new rules")?;
    let elapsed = started.elapsed().as_secs_f64();
    let report = backtest::compare(&base, &new, from, to);
    let truth_path = args.truth.clone().or_else(|| {
        args.events.iter().filter(|p| p.is_dir()).map(|p| p.join("ground_truth.json")).find(|p| p.is_file())
    });
    let cards = match &truth_path {
        Some(p) => {
            let truth: vigil_sim::GroundTruth = serde_json::from_reader(BufReader::new(
                File::open(p).with_context(|| format!("open {}", p.display()))?,
            ))
            .with_context(|| format!("read ground truth {}", p.display()))?;
            let regions = new_rules.regions.specs();
            let within = |a: &&AlertRecord| {
                let t = vigil_model::time::parse_rfc3339(&a.window_end).unwrap_or(0);
                from.is_none_or(|f| t >= f)
            };
            let b: Vec<AlertRecord> = base.alerts.iter().filter(within).cloned().collect();
            let n: Vec<AlertRecord> = new.alerts.iter().filter(within).cloned().collect();
            let incidents: Vec<_> = truth
                .incidents
                .iter()
                .filter(|i| from.is_none_or(|f| i.start >= f) && to.is_none_or(|t| i.start < t))
                .cloned()
                .collect();
            Some((
                vigil_sim::scorecard(&incidents, &b, &regions, args.grace_hours),
                vigil_sim::scorecard(&incidents, &n, &regions, args.grace_hours),
            ))
        }
        None => None,
    };
    if args.json {
        let v = serde_json::json!({
            "report": report,
            "scorecard": cards.as_ref().map(|(b, n)| serde_json::json!({"baseline": b, "new": n})),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{report}");
        if let Some((b, n)) = &cards {
            println!(
                "\ndetection scorecard against {}:",
                truth_path.as_ref().map_or(String::new(), |p| p.display().to_string())
            );
            println!("  {:<34} {:>12} {:>12}", "", "baseline", "new");
            let pct = |x: f64| format!("{:.1}%", 100.0 * x);
            let hours = |x: Option<f64>| x.map_or("-".to_string(), |h| format!("{h:.1} h"));
            println!("  {:<34} {:>12} {:>12}", "incidents", b.incidents, n.incidents);
            println!("  {:<34} {:>12} {:>12}", "detected", b.detected, n.detected);
            println!("  {:<34} {:>12} {:>12}", "detection rate", pct(b.detection_rate), pct(n.detection_rate));
            println!(
                "  {:<34} {:>12} {:>12}",
                "median detection delay",
                hours(b.median_delay_hours),
                hours(n.median_delay_hours)
            );
            println!("  {:<34} {:>12} {:>12}", "alerts opened", b.alerts_opened, n.alerts_opened);
            println!(
                "  {:<34} {:>12} {:>12}",
                "alerts outside incidents", b.alerts_outside_incidents, n.alerts_outside_incidents
            );
            println!(
                "  {:<34} {:>12} {:>12}",
                "yellow+ alerts outside incidents", b.yellow_plus_outside_incidents, n.yellow_plus_outside_incidents
            );
        }
    }
    let events = new.summary.accepted + new.summary.accepted_late;
    eprintln!(
        "backtest: {} events replayed twice in {elapsed:.2}s ({:.0} events/s)",
        events,
        2.0 * events as f64 / elapsed.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Csv,
    Json,
}

#[derive(clap::Args)]
pub struct SqlArgs {
    /// One SQL statement over the tables events, events_<source>, scores, score_parts, alerts.
    query: Option<String>,
    /// The archive directory.
    #[arg(long, default_value = "archive", env = "VIGIL_ARCHIVE")]
    archive: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: FormatArg,
    /// List the tables and their columns instead of running a query.
    #[arg(long)]
    tables: bool,
}

pub fn run_sql(args: SqlArgs) -> Result<ExitCode> {
    let h = History::open(&args.archive)?;
    if args.tables || args.query.is_none() {
        for t in h.tables() {
            println!("{t}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let q = args.query.unwrap_or_default();
    let batches = h.query(&q)?;
    let format = match args.format {
        FormatArg::Table => Format::Table,
        FormatArg::Csv => Format::Csv,
        FormatArg::Json => Format::Json,
    };
    let text = vigil_sql::query::render(&batches, format)?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    Entropy,
}

#[derive(clap::Args)]
pub struct WeightsArgs {
    /// Weighting method (docs/methodology.md §8.4).
    #[arg(long, value_enum, default_value = "entropy")]
    method: MethodArg,
    /// Archive holding the calibration period's scores (`vigil replay --scores full --archive`).
    #[arg(long)]
    scores: PathBuf,
    /// The rule set whose weights are calibrated.
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    /// Region level whose scores form the cross-section.
    #[arg(long, default_value = "street")]
    level: String,
    /// Calibration period start (YYYY-MM-DD or RFC 3339, UTC).
    #[arg(long)]
    from: Option<String>,
    /// Calibration period end (exclusive).
    #[arg(long)]
    to: Option<String>,
    /// Also write a copy of the rule set with the new weights to this directory.
    #[arg(long)]
    apply: Option<PathBuf>,
    /// Print JSON instead of TOML.
    #[arg(long)]
    json: bool,
}

pub fn run_weights(args: WeightsArgs) -> Result<ExitCode> {
    let MethodArg::Entropy = args.method;
    let rules = crate::load_rules(&args.rules)?;
    if rules.regions.level_index(&args.level).is_none() {
        bail!("unknown region level `{}` (the rules declare: {})", args.level, rules.regions.level_names.join(", "));
    }
    let norm = |s: &Option<String>| -> Result<Option<String>> {
        s.as_deref().map(|t| parse_time(t).map(vigil_model::time::format_utc)).transpose()
    };
    let (from, to) = (norm(&args.from)?, norm(&args.to)?);
    let h = History::open(&args.scores)?;
    let cal = vigil_sql::weights::calibrate(&h, &rules, &args.level, from.as_deref(), to.as_deref())?;
    if cal.domains.units == 0 {
        bail!(
            "no {}-level scores in {} for the period: replay with `--score-levels {}` and `--archive`",
            args.level,
            args.scores.display(),
            args.level
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&cal)?);
    } else {
        print!("{}", cal.to_toml());
    }
    if let Some(out) = &args.apply {
        let n =
            vigil_sql::weights::apply(&cal, &args.rules, out).with_context(|| format!("write {}", out.display()))?;
        let check = vigil_core::load_rules(out);
        eprintln!(
            "wrote {} with {n} weights replaced; {}",
            out.display(),
            match check {
                Ok(r) => r.summary(),
                Err(d) =>
                    format!("it does not compile ({} errors): run `vigil rules check {}`", d.len(), out.display()),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
