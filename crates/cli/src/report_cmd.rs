//! `vigil report`: the periodic bulletin (星级发布) of an archive: every district's index for a
//! week or a month, its star rating, the change since the previous period, the top movers and
//! the period's alert episodes, as one HTML page (deterministic for a given archive and rules),
//! or a PDF printed from it by headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use vigil_report::{Inputs, PeriodKind};
use vigil_rules::RuleSet;
use vigil_sql::query::History;

#[derive(Clone, Copy, ValueEnum)]
pub enum PeriodArg {
    Week,
    Month,
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The archive (`vigil replay --archive`, `vigil run`/`demo --archive`).
    #[arg(long)]
    archive: PathBuf,
    /// Rule set directory (names, time zone, levels).
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    #[arg(long, value_enum, default_value = "week")]
    period: PeriodArg,
    /// A local date inside the period (YYYY-MM-DD); default: the last period the archive
    /// covers to its end.
    #[arg(long)]
    date: Option<String>,
    /// The region level rated (a level name of the rules; default: the second level).
    #[arg(long)]
    level: Option<String>,
    /// Language of the page: zh or en.
    #[arg(long, default_value = "zh")]
    lang: String,
    /// Output file: `.html`, or `.pdf` (printed by headless Chromium, `VIGIL_CHROMIUM` or
    /// `chromium` on the PATH).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let rules = crate::load_rules(&args.rules)?;
    let kind = match args.period {
        PeriodArg::Week => PeriodKind::Week,
        PeriodArg::Month => PeriodKind::Month,
    };
    let day = args.date.as_deref().map(parse_date).transpose()?;
    let line = write(&args.archive, &rules, kind, day, args.level.as_deref(), &args.lang, &args.out)?;
    eprintln!("{line}");
    Ok(ExitCode::SUCCESS)
}

fn parse_date(s: &str) -> Result<i64> {
    let parts: Vec<&str> = s.split('-').collect();
    let bad = || anyhow::anyhow!("`{s}` is not a date (YYYY-MM-DD)");
    let [y, m, d] = parts[..] else { return Err(bad()) };
    let (y, m, d): (i64, u32, u32) =
        (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(vigil_model::time::days_from_civil(y, m, d))
}

/// Builds the bulletin from `archive` and writes it to `out`; returns a line saying what was
/// written.
pub fn write(
    archive: &Path,
    rules: &RuleSet,
    kind: PeriodKind,
    day: Option<i64>,
    level: Option<&str>,
    lang: &str,
    out: &Path,
) -> Result<String> {
    if lang != "zh" && lang != "en" {
        bail!("--lang must be zh or en");
    }
    let level = match level {
        Some(name) => rules.regions.level_index(name).with_context(|| {
            format!("the rules have no region level {name:?} ({})", rules.regions.level_names.join(", "))
        })?,
        None => 1.min(rules.regions.level_names.len() - 1),
    };
    let h = History::open(archive)?;
    let level_name = &rules.regions.level_names[level];
    let inputs = Inputs {
        rules,
        level,
        scores: vigil_sql::read::composite(&h, level_name)?,
        alerts: vigil_sql::read::alerts(&h)?,
    };
    let bulletin = vigil_report::build(&inputs, kind, day)?;
    let html = vigil_report::html::render(&bulletin, rules, lang);
    let pdf = out.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
    if pdf {
        print_pdf(&html, out)?;
    } else {
        std::fs::write(out, &html).with_context(|| format!("write {}", out.display()))?;
    }
    let rated = bulletin.regions.iter().filter(|r| r.stars.is_some()).count();
    Ok(format!(
        "vigil report: {} {}{}: {} of {} {}s rated, {} alert episodes; wrote {}",
        if kind == PeriodKind::Week { "week" } else { "month" },
        bulletin.period.label(),
        if bulletin.partial { " (partial)" } else { "" },
        rated,
        bulletin.regions.len(),
        level_name,
        bulletin.by_level.iter().sum::<usize>(),
        out.display()
    ))
}

/// The page printed to PDF by headless Chromium (the PDF is not byte-stable: Chromium stamps
/// its creation time; the HTML it comes from is).
fn print_pdf(html: &str, out: &Path) -> Result<()> {
    let exe = std::env::var_os("VIGIL_CHROMIUM").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
            .find(|p| p.is_file())
    });
    let Some(exe) = exe else {
        bail!("a PDF is printed by headless Chromium, which is not installed (apt install chromium), or write .html")
    };
    // Removed when dropped, whichever way this returns (Chromium's profile is a few MB).
    let scratch = tempfile::Builder::new().prefix("vigil-report-").tempdir()?;
    let dir = scratch.path();
    let page = dir.join("bulletin.html");
    std::fs::write(&page, html)?;
    let out_abs = std::path::absolute(out)?;
    let status = Command::new(&exe)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--print-to-pdf={}", out_abs.display()))
        .arg(format!("file://{}", std::path::absolute(&page)?.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("run {}", exe.display()))?;
    drop(scratch);
    if !status.success() || !out_abs.is_file() {
        bail!("{} could not print the bulletin to {}", exe.display(), out.display());
    }
    Ok(())
}
