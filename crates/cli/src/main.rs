//! The `vigil` binary: a thin command line over the library crates. Each subcommand parses its
//! arguments, calls one library entry point and prints the result; errors that a person must act
//! on are printed plainly and set a non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use vigil_core::{Options, ScoreDetail};
use vigil_rules::RuleSet;

mod calibrate;
mod demo;
mod eval_cmd;
mod gen_cmd;
mod history;
mod log;
mod perms;
mod report_cmd;
mod resample;
mod run_cmd;
mod service;
mod tail;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Streaming regional risk early-warning engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on this machine: embedded Kafka, the synthetic city, the engine; print
    /// alerts and serve metrics.
    Demo(demo::DemoArgs),
    /// Run the engine against a Kafka cluster (configuration file, VIGIL_* variables, flags).
    Run(run_cmd::RunArgs),
    /// Check or test a rule set.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Generate the synthetic city's event streams (one JSON Lines file per source) with
    /// injected incidents and their ground truth.
    Gen(gen_cmd::GenArgs),
    /// Replay event files or an archive through the scoring core, in event-time order.
    Replay(ReplayArgs),
    /// Replay history under a new and a baseline rule set and compare their alerts.
    Backtest(history::BacktestArgs),
    /// Run SQL over an archive (tables events, events_<source>, scores, score_parts, alerts).
    Sql(history::SqlArgs),
    /// Calibrate weights from archived scores and print them in the rule files' terms.
    Weights(history::WeightsArgs),
    /// Fit the evidence alarm's thresholds (alarm.toml) to history: each level at its
    /// recurrence interval.
    Calibrate(calibrate::CalibrateArgs),
    /// Score alerts against the ground truth of a generated stream.
    Scorecard(gen_cmd::ScorecardArgs),
    /// Write the periodic bulletin (star ratings, movers, alert episodes) of an archive as
    /// HTML or PDF.
    Report(report_cmd::ReportArgs),
    /// Follow the alert topic: `vigil tail alerts --brokers HOST:PORT [--level orange] [--json]`.
    Tail(tail::TailArgs),
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Compile the rule set and print a summary, or every error as file:line:col.
    Check {
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
    /// Run the inline indicator tests.
    Test {
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
    /// Print the count indicators' windows as JSON (source, filter in SQL, window, hop) with
    /// the region -> scored ancestor pairs: what other engines compute to compare with vigil
    /// (benches/peers/run.py).
    Windows {
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ScoresArg {
    None,
    Summary,
    Full,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Rule set directory.
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    /// Event files (JSON Lines) or archive directories; a file named after a source
    /// (police.jsonl) holds that source, otherwise each event needs a `source` field.
    #[arg(long, num_args = 1.., required = true)]
    events: Vec<PathBuf>,
    /// Output directory for scores.jsonl, alerts.jsonl, rejected.jsonl and late.jsonl.
    #[arg(long, required_unless_present = "archive")]
    out: Option<PathBuf>,
    /// Also (or instead) write scores and alerts into this archive as Parquet, replacing the
    /// archive's earlier scores and alerts.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// How much of the scores to write.
    #[arg(long, value_enum, default_value = "summary")]
    scores: ScoresArg,
    /// Region levels whose scores are written, comma-separated level names of the rules
    /// (default: every level but the finest).
    #[arg(long, value_delimiter = ',')]
    score_levels: Option<Vec<String>>,
    /// Which score records to write: "all" (every scored region at every evaluation),
    /// "nonzero" (only records with a score above zero or an open alert), "graded" (only
    /// regions with an open alert episode) or "changed" (only records that differ from the
    /// region's previous one, the period aside: carried forward, they give every evaluation).
    #[arg(long, default_value = "all")]
    score_records: String,
    /// Write score records only at evaluations ending on a multiple of this much local time
    /// ("1d": local midnights), a multiple of the cadence that divides a day; alerts are
    /// written at every evaluation. Default: every evaluation.
    #[arg(long)]
    score_every: Option<String>,
}

/// Loads and compiles a rule set, printing every problem on failure.
pub(crate) fn load_rules(dir: &std::path::Path) -> Result<Arc<RuleSet>> {
    match vigil_core::load_rules(dir) {
        Ok(r) => Ok(Arc::new(r)),
        Err(diags) => {
            for d in &diags.0 {
                eprintln!("{}", prefix(dir, d));
            }
            bail!("{} error(s) in rule set {}", diags.len(), dir.display())
        }
    }
}

pub(crate) fn prefix(dir: &std::path::Path, d: &vigil_rules::Diagnostic) -> String {
    let mut d = d.clone();
    d.file = dir.join(&d.file).display().to_string();
    d.to_string()
}

/// `vigil … | head` closes the pipe before vigil has printed everything. Rust ignores SIGPIPE,
/// so the next `println!` panics ("failed printing to stdout: Broken pipe") and the reader sees
/// a backtrace after the lines it asked for. The reader has what it wanted: exit quietly with
/// success, as ripgrep does (restoring SIGPIPE's default would need `unsafe`, and would let a
/// closed client socket kill `vigil run`).
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg =
            payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        let msg = msg.unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info)
    }));
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    log::init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Rules { command: RulesCommand::Check { dir } } => {
            let rules = load_rules(&dir)?;
            println!("{}", rules.summary());
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { command: RulesCommand::Test { dir } } => {
            let rules = load_rules(&dir)?;
            let outcomes = vigil_core::ruletest::run(&rules);
            let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
            for o in &outcomes {
                match &o.failure {
                    None => println!("ok    {} ({})", o.indicator, o.origin),
                    Some(f) => println!("FAIL  {} ({}): {f}", o.indicator, dir.join(&o.origin).display()),
                }
            }
            println!("{} passed, {} failed", outcomes.len() - failed, failed);
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Rules { command: RulesCommand::Windows { dir } } => {
            let rules = load_rules(&dir)?;
            println!("{}", serde_json::to_string(&count_windows(&rules)?)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo::run(args),
        Command::Run(args) => run_cmd::run(args),
        Command::Gen(args) => gen_cmd::run_gen(args),
        Command::Scorecard(args) => gen_cmd::run_scorecard(args),
        Command::Tail(args) => tail::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Backtest(args) => history::run_backtest(args),
        Command::Sql(args) => history::run_sql(args),
        Command::Weights(args) => history::run_weights(args),
        Command::Replay(args) => {
            let rules = load_rules(&args.rules)?;
            let score_levels = vigil_core::ScoreLevels::from_names(&rules, args.score_levels.as_deref())
                .map_err(|e| anyhow::anyhow!("--score-levels: {e}"))?;
            let score_filter = vigil_core::ScoreFilter::parse(&args.score_records)
                .map_err(|e| anyhow::anyhow!("--score-records: {e}"))?;
            let score_every = args
                .score_every
                .as_deref()
                .map(|t| vigil_core::parse_score_every(&rules, t))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--score-every: {e}"))?;
            let scores = match args.scores {
                ScoresArg::None => ScoreDetail::None,
                ScoresArg::Summary => ScoreDetail::Summary,
                ScoresArg::Full => ScoreDetail::Full,
            };
            let started = std::time::Instant::now();
            let inputs = history::event_inputs(&rules, &args.events, None)?;
            let mut sink = history::TeeSink::create(&rules, args.out.as_deref(), args.archive.as_deref())?;
            let mut pipeline =
                vigil_core::Pipeline::new(rules, Options { scores, score_levels, score_filter, score_every });
            let summary = vigil_replay::replay(&mut pipeline, inputs, &mut sink).context("replay")?;
            sink.finish()?;
            eprintln!("{}", serde_json::to_string_pretty(&summary)?);
            let wrote: Vec<String> =
                args.out.iter().chain(args.archive.iter()).map(|p| p.display().to_string()).collect();
            eprintln!("replayed in {:.2}s; outputs in {}", started.elapsed().as_secs_f64(), wrote.join(" and "));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The windowed counts other engines can compute: every count indicator without a second
/// stream, with its filter as SQL, and each region's scored ancestors (itself included).
fn count_windows(rules: &RuleSet) -> Result<serde_json::Value> {
    if !rules.zone.is_fixed() {
        bail!("the zone {} changes its offset: peers bin by a fixed offset only", rules.zone.name());
    }
    let indicators: Vec<serde_json::Value> = rules
        .indicators
        .iter()
        .filter(|i| matches!(i.measure, vigil_rules::Measure::Count) && i.compare.is_none())
        .map(|i| {
            serde_json::json!({
                "id": i.id,
                "source": rules.sources[i.source as usize].id,
                "filter_sql": i.filter_sql,
                "window_s": i.window.ms() / 1000,
                "hop_s": i.hop.ms() / 1000,
            })
        })
        .collect();
    let r = &rules.regions;
    let chains: Vec<[&str; 2]> = (0..r.len())
        .flat_map(|i| {
            r.chains[i]
                .iter()
                .filter(|&&a| rules.is_scored(a as usize))
                .map(move |&a| [r.codes[i].as_str(), r.codes[a as usize].as_str()])
        })
        .collect();
    Ok(serde_json::json!({
        "rules_version": rules.version,
        "zone_offset_ms": rules.zone.offset_at(0),
        "sources": rules.sources.iter().map(|s| &s.id).collect::<Vec<_>>(),
        "regions": r.codes,
        "indicators": indicators,
        "chains": chains,
    }))
}
