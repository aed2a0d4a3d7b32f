//! `vigil scorecard` against a truth of injected surges: one detector's alerts, score records or
//! baseline statistics, at one level or as a trade-off curve (vigil-eval does the scoring).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use vigil_eval::{Evaluation, LevelCard, Signals};
use vigil_model::Level;

use crate::gen_cmd::ScorecardArgs;

/// The false-alert rates (per 100 region-days) detection is reported at.
pub const TARGETS: [f64; 4] = [0.03, 0.1, 1.0, 5.0];

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

fn errors(errs: Vec<vigil_eval::EvalError>) -> anyhow::Error {
    anyhow::anyhow!("{}", errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))
}

pub fn run(args: &ScorecardArgs, truth_text: &str) -> Result<ExitCode> {
    let rules = crate::load_rules(&args.rules)?;
    let day = |flag: &str, d: &Option<String>| -> Result<Option<i64>> {
        d.as_deref()
            .map(|t| vigil_eval::parse_day(t).with_context(|| format!("{flag} {t:?}: expected YYYY-MM-DD")))
            .transpose()
    };
    let (from, to) = (day("--from", &args.from)?, day("--to", &args.to)?);
    let truth = vigil_eval::parse_truth(&args.truth.display().to_string(), truth_text, &rules)
        .map_err(errors)?
        .within(from, to);
    if truth.first_day > truth.last_day {
        bail!(
            "--from/--to leave no day of the stream ({}..{})",
            args.from.as_deref().unwrap_or(""),
            args.to.as_deref().unwrap_or("")
        );
    }
    let (first, last) = (truth.first_day, truth.last_day);
    let (sig, threshold): (Signals, Option<f64>) = if let Some(p) = &args.alerts {
        let level = Level::parse(&args.min_level)
            .with_context(|| format!("--min-level {:?}: expected blue, yellow, orange or red", args.min_level))?;
        let sig =
            vigil_eval::from_alerts(&p.display().to_string(), &read(p)?, &rules, first, last, args.scope.as_deref())?;
        (sig, Some(level.rank() as f64))
    } else if let Some(p) = &args.scores {
        (vigil_eval::from_scores(&p.display().to_string(), &read(p)?, &rules, first, last)?, None)
    } else if let Some(p) = &args.signals {
        let method = args.method.as_deref().unwrap_or_default();
        (vigil_eval::from_baseline_csv(&p.display().to_string(), &read(p)?, &rules, method, first, last)?, None)
    } else {
        bail!("give the detector's --alerts, --scores or --signals (with --method)");
    };
    let ev = Evaluation::new(&rules, &truth, &sig, args.grace_days);
    let curve = (args.curve.is_some() || threshold.is_none()).then(|| ev.curve());
    if let (Some(path), Some(c)) = (&args.curve, &curve) {
        std::fs::write(path, serde_json::to_vec(c)?).with_context(|| format!("write {}", path.display()))?;
    }
    if let Some(t) = threshold {
        let card = ev.card(t);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&card)?);
        } else {
            print!("{}", table(&card, &args.min_level));
        }
    } else if let Some(c) = &curve {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&vigil_eval::matched(c, &TARGETS))?);
        } else {
            println!(
                "{} on {}: {} regions, {} region-days, {} surges",
                c.method,
                c.stream,
                c.regions,
                c.region_days,
                truth.surges.len()
            );
            print!("{}", vigil_eval::summarise(c, &TARGETS));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn pct(n: usize, of: usize) -> String {
    format!("{n}/{of} ({:.0} %)", 100.0 * n as f64 / of.max(1) as f64)
}

/// The human form of a single-level card.
fn table(c: &LevelCard, level: &str) -> String {
    let p = &c.point;
    let mut s = format!(
        "{} on {} at {level} and above: {} regions, {} region-days, grace {} day(s)\n",
        c.method, c.stream, c.regions, c.region_days, c.grace_days
    );
    s += &format!("  detected in own region      {}\n", pct(p.detected_own, p.surges));
    s += &format!("  in region or an ancestor    {}\n", pct(p.detected_related, p.surges));
    s += &format!("  chance level (own region)   {:.1} of {}\n", p.chance, p.surges);
    s += &format!("  localised (region+category) {}\n", pct(p.localised, p.detected_related));
    s += &format!("    of own-region detections  {}\n", pct(p.localised_own, p.detected_own));
    s += &format!(
        "  delay, days                 median {}, p90 {}\n",
        p.median_delay_days.map_or("-".into(), |d| d.to_string()),
        p.p90_delay_days.map_or("-".into(), |d| d.to_string())
    );
    s += &format!(
        "  false alerts                {} ({:.3} per 100 region-days)\n",
        p.false_alerts, p.false_per_100_region_days
    );
    s += "  by bucket                   own / related / chance\n";
    for (b, x) in &p.by_bucket {
        s += &format!("    {b:<8} {:>3}/{:<3} {:>3} {:>6.1}\n", x.detected_own, x.surges, x.detected_related, x.chance);
    }
    s
}
