//! `vigil gen` and `vigil scorecard`: the synthetic city's streams and the detection scorecard.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use std::sync::Arc;
use vigil_model::record::AlertRecord;

use vigil_rules::decode::{Decoder, SourceHint};
use vigil_sim::{EventSink, GenConfig, IncidentPlan};
use vigil_sql::archive::{ArchiveWriter, Mode, Tables};

#[derive(clap::Args)]
pub struct GenArgs {
    /// Days of events to generate.
    #[arg(long, default_value_t = 60)]
    days: u32,
    /// Seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output directory (police.jsonl, case.jsonl, petition.jsonl, opinion.jsonl,
    /// ground_truth.json).
    #[arg(long, required_unless_present = "archive")]
    out: Option<PathBuf>,
    /// Also (or instead) write the events, decoded, into this Parquet archive (with
    /// ground_truth.json at its root), replacing the archive's earlier events.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Rule set whose region registry the events use.
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    /// Scales every event rate (1.0 = the default city's volumes).
    #[arg(long, default_value_t = 1.0)]
    volume: f64,
    /// Inject no incidents: a surge-free city, the history `vigil calibrate` fits the
    /// default alarm thresholds on.
    #[arg(long)]
    no_incidents: bool,
}

#[derive(clap::Args)]
pub struct ScorecardArgs {
    /// ground_truth.json written by `vigil gen`, or a truth.json of injected surges (written by
    /// benches/detection/prepare.py), which selects the detection yardstick.
    #[arg(long)]
    pub(crate) truth: PathBuf,
    /// alerts.jsonl written by `vigil replay`.
    #[arg(long)]
    pub(crate) alerts: Option<PathBuf>,
    /// Surges: score records written with `--scores full`; each indicator's score is a signal.
    #[arg(long, conflicts_with_all = ["alerts", "signals"])]
    pub(crate) scores: Option<PathBuf>,
    /// Surges: a baseline's statistics (`method,region,category,date,stat`).
    #[arg(long, conflicts_with = "alerts", requires = "method")]
    pub(crate) signals: Option<PathBuf>,
    /// Surges: the method of `--signals` to score.
    #[arg(long)]
    pub(crate) method: Option<String>,
    /// Surges, alerts: the lowest level that counts as an alarm (blue, yellow, orange, red).
    #[arg(long, default_value = "orange")]
    pub(crate) min_level: String,
    /// Surges: days after a surge's last day during which alarms in its regions and their
    /// ancestors are not false alerts.
    #[arg(long, default_value_t = 1)]
    pub(crate) grace_days: i64,
    /// Surges: sweep every threshold and write the trade-off curve to this JSON file.
    #[arg(long)]
    pub(crate) curve: Option<PathBuf>,
    /// Rule set (for the region tree).
    #[arg(long, default_value = "rules")]
    pub(crate) rules: PathBuf,
    /// Hours after an incident's end during which alerts still count as detections.
    #[arg(long, default_value_t = 72)]
    grace_hours: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Surges: measure only from this local day (YYYY-MM-DD): region-days before it and surges
    /// starting before it are left out (out-of-sample, after `vigil calibrate --to`).
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Surges, alerts: count only the alerts of this scope ("evidence", "composite" or a
    /// domain id).
    #[arg(long, requires = "alerts")]
    pub(crate) scope: Option<String>,
    /// Surges: measure only up to this local day, inclusive.
    #[arg(long)]
    pub(crate) to: Option<String>,
}

struct FileSinks<'r> {
    files: Vec<(String, BufWriter<File>)>,
    /// The archive and the decoder that turns each line into the event the engine would see.
    archive: Option<(ArchiveWriter, Decoder<'r>)>,
    event: vigil_model::Event,
}

impl EventSink for FileSinks<'_> {
    fn emit(&mut self, source: &str, line: &str) -> std::io::Result<()> {
        if let Some((archive, decoder)) = &mut self.archive {
            let idx = decoder.rules().source_index(source);
            let hint = idx.map_or(SourceHint::None, SourceHint::Fixed);
            match decoder.decode(hint, line.as_bytes(), &mut self.event) {
                Ok(_) => archive.event(&self.event),
                Err(r) => return Err(std::io::Error::other(format!("generated event refused: {}", r.detail))),
            }
        }
        if self.files.is_empty() {
            return Ok(());
        }
        let w = match self.files.iter_mut().find(|(s, _)| s == source) {
            Some((_, w)) => w,
            None => return Err(std::io::Error::other(format!("unknown source {source}"))),
        };
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")
    }
}

fn regions(rules: &std::path::Path) -> Result<Vec<vigil_model::RegionSpec>> {
    Ok(crate::load_rules(rules)?.regions.specs())
}

pub fn run_gen(args: GenArgs) -> Result<ExitCode> {
    let rules = crate::load_rules(&args.rules)?;
    let regions = rules.regions.specs();
    let mut sinks = FileSinks { files: Vec::new(), archive: None, event: vigil_model::Event::default() };
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
        for s in ["police", "case", "petition", "opinion"] {
            let path = out.join(format!("{s}.jsonl"));
            let f = File::create(&path).with_context(|| format!("create {}", path.display()))?;
            sinks.files.push((s.to_string(), BufWriter::with_capacity(1 << 16, f)));
        }
    }
    if let Some(dir) = &args.archive {
        let w = ArchiveWriter::create(
            dir,
            Arc::clone(&rules),
            Tables { events: true, results: false },
            Mode::Replace,
            "gen",
        )
        .with_context(|| format!("open archive {}", dir.display()))?;
        sinks.archive = Some((w, Decoder::new(&rules)));
    }
    let cfg = GenConfig {
        seed: args.seed,
        days: args.days,
        volume: args.volume,
        incidents: if args.no_incidents { IncidentPlan::Explicit(Vec::new()) } else { IncidentPlan::Auto },
        ..GenConfig::default()
    };
    let truth = vigil_sim::generate(&cfg, &regions, &mut sinks).context("generate events")?;
    for (_, w) in &mut sinks.files {
        w.flush()?;
    }
    let truth_text = serde_json::to_string_pretty(&truth)? + "\n";
    let mut wrote = Vec::new();
    if let Some(out) = &args.out {
        std::fs::write(out.join("ground_truth.json"), &truth_text)?;
        wrote.push(out.display().to_string());
    }
    if let (Some((w, _)), Some(dir)) = (sinks.archive.take(), &args.archive) {
        let (files, rows) = w.finish().context("write the archive")?;
        std::fs::write(dir.join("ground_truth.json"), &truth_text)?;
        wrote.push(format!("{} ({rows} events in {files} Parquet files)", dir.display()));
    }
    eprintln!("wrote {} days of events and {} incidents to {}", args.days, truth.incidents.len(), wrote.join(" and "));
    Ok(ExitCode::SUCCESS)
}

pub fn run_scorecard(args: ScorecardArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.truth).with_context(|| format!("read {}", args.truth.display()))?;
    if text.contains("\"surges\"") {
        return crate::eval_cmd::run(&args, &text);
    }
    let Some(alerts_path) = &args.alerts else { anyhow::bail!("--alerts is required with a ground_truth.json") };
    let regions = regions(&args.rules)?;
    let truth: vigil_sim::GroundTruth = serde_json::from_str(&text).context("read ground truth")?;
    let mut alerts: Vec<AlertRecord> = Vec::new();
    let f = BufReader::new(File::open(alerts_path).with_context(|| format!("open {}", alerts_path.display()))?);
    for (n, line) in f.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        alerts.push(serde_json::from_str(&line).with_context(|| format!("{}:{}", alerts_path.display(), n + 1))?);
    }
    let card = vigil_sim::scorecard(&truth.incidents, &alerts, &regions, args.grace_hours);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&card)?);
    } else {
        println!("{card}");
    }
    Ok(ExitCode::SUCCESS)
}
