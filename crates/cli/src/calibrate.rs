//! `vigil calibrate`: fits the evidence alarm's thresholds to history (docs/methodology.md
//! §16.3). Replays the events through the pipeline, keeps each day's largest evidence over the
//! alarm regions, sets every level's threshold at its recurrence interval, prints what each
//! threshold achieved, and with `--write` puts them into `alarm.toml`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use vigil_core::{Options, Output, Period, RegionEvidence, ScoreDetail};
use vigil_model::record::{AlertRecord, ScoreRecord};
use vigil_replay::{LateRecord, Rejected, Sink};
use vigil_rules::RuleSet;
use vigil_scan::Calibration;

#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// Rule set directory (with an alarm.toml).
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    /// Event files (JSON Lines) or archive directories, as for `vigil replay`.
    #[arg(long, num_args = 1.., required = true)]
    events: Vec<PathBuf>,
    /// First local day calibrated on (YYYY-MM-DD); default the first day with a full baseline.
    #[arg(long)]
    from: Option<String>,
    /// Last local day calibrated on (YYYY-MM-DD), inclusive; default the last day.
    #[arg(long)]
    to: Option<String>,
    /// Write the thresholds into the rule set's alarm.toml.
    #[arg(long)]
    write: bool,
    /// Write every region-day's evidence as `method,region,category,date,stat` (the format
    /// `vigil scorecard --signals` reads), over the whole replay.
    #[arg(long)]
    signals: Option<PathBuf>,
    /// With `per = "region"`: one set of thresholds for every region level, fitted on all
    /// their region-days together, instead of each alerting region level on its own.
    #[arg(long)]
    pool_levels: bool,
    /// Monte Carlo replicates of the history to fit on as well (methodology §16.3): each a
    /// history whose every day is a recorded day of the same weekday, dealt in a random order
    /// (every recorded day once before any twice), as long
    /// as the recorded one or as a full baseline and a calibration need. For a history too
    /// short to calibrate on; replicates lose the order of days, so real multi-day clusters
    /// pass their thresholds more often than promised.
    #[arg(long, default_value_t = 0)]
    replicates: u32,
    /// Seed of the replicates' draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fit each threshold so that it holds its recurrence interval with this confidence (0.5
    /// to 0.99) given how few days of the history lie above it (methodology §16.3): fewer
    /// days may reach it than the point estimate allows, none where the history is too short
    /// to vouch for the rate.
    #[arg(long, value_parser = parse_confidence, default_value_t = 0.9)]
    confidence: f64,
    /// Fit the point estimate instead (exactly history ÷ recurrence days reach each
    /// threshold), which a later period passes more often than promised about half the time.
    #[arg(long, conflicts_with = "confidence")]
    point_estimate: bool,
}

impl CalibrateArgs {
    /// The confidence thresholds are fitted at (`None`: the point estimate).
    fn confidence(&self) -> Option<f64> {
        (!self.point_estimate).then_some(self.confidence)
    }
}

fn parse_confidence(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(c) if (0.5..=0.99).contains(&c) => Ok(c),
        Ok(c) => Err(format!("{c} is not between 0.5 and 0.99")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// A day of the calibration: the replicate it belongs to (0: the recorded history) and its date.
type Day = (u32, String);

struct Collect<'r> {
    rules: &'r RuleSet,
    /// Days of warm-up after the first evaluation: the baseline is not full before.
    warmup: usize,
    seen_days: usize,
    last_date: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// The replicate replayed (0: the recorded history).
    replicate: u32,
    /// Day -> (largest statistic, each alarm region's largest statistic that day: below a
    /// daily cadence a day holds many evaluations).
    days: BTreeMap<Day, (f64, BTreeMap<u32, f64>)>,
    signals: Option<std::io::BufWriter<std::fs::File>>,
    error: Option<std::io::Error>,
}

impl<'r> Collect<'r> {
    /// Collects the days of `replicate` (0: the recorded history) from `period` (first and last
    /// dates, inclusive) after `warmup` days, writing the signals to `signals` if given.
    fn new(
        rules: &'r RuleSet,
        warmup: usize,
        (from, to): (Option<String>, Option<String>),
        replicate: u32,
        signals: Option<std::io::BufWriter<std::fs::File>>,
    ) -> Self {
        Collect {
            rules,
            warmup,
            seen_days: 0,
            last_date: None,
            from,
            to,
            replicate,
            days: BTreeMap::new(),
            signals,
            error: None,
        }
    }
}

impl Output for Collect<'_> {
    fn score(&mut self, _: ScoreRecord) {}
    fn alert(&mut self, _: AlertRecord) {}
    fn evidence(&mut self, p: &Period, regions: &[RegionEvidence]) {
        // The local day of the period, as the scorecard dates records (below a daily cadence,
        // the day its last instant falls on).
        let zone = &self.rules.zone;
        let date = p.date.clone().unwrap_or_else(|| vigil_model::Zone::date_of_local(zone.local(p.end) - 1));
        if self.last_date.as_deref() != Some(date.as_str()) {
            self.seen_days += 1;
            self.last_date = Some(date.clone());
        }
        if let Some(w) = &mut self.signals {
            for e in regions {
                let category =
                    e.indicator.map_or("all", |i| &self.rules.categories[self.rules.indicators[i].category].id);
                let line = format!(
                    "vigil-evidence,{},{},{},{:.4}\n",
                    self.rules.regions.codes[e.region as usize], category, date, e.stat
                );
                if let Err(err) = w.write_all(line.as_bytes()) {
                    self.error.get_or_insert(err);
                }
            }
        }
        if self.seen_days <= self.warmup
            || self.from.as_ref().is_some_and(|f| date < *f)
            || self.to.as_ref().is_some_and(|t| date > *t)
        {
            return;
        }
        let alerting = regions.iter().filter(|e| self.rules.raises_alerts(e.region as usize));
        let entry = self.days.entry((self.replicate, date)).or_insert((0.0, BTreeMap::new()));
        for e in alerting {
            entry.0 = entry.0.max(e.stat);
            let r = entry.1.entry(e.region).or_insert(0.0);
            *r = r.max(e.stat);
        }
    }
}

impl Sink for Collect<'_> {
    fn rejected(&mut self, _: Rejected) {}
    fn late(&mut self, _: LateRecord) {}
}

/// Calibration passes at most: linking (a child alarming on its own at the lowest threshold,
/// docs/methodology.md §16.2) depends on the thresholds being fitted, so a pass replays with
/// the thresholds the one before fitted until the lowest stays where it was.
const MAX_PASSES: usize = 4;

/// The thresholds fitted for some region levels: the rule set's (`region_level` `None`, in
/// `thresholds`), or one region level's own (`region_level_thresholds`).
struct Group {
    region_level: Option<u8>,
    /// The region levels whose region-days it was fitted on.
    levels: Vec<u8>,
    cal: Calibration,
    /// Per raised level, the fitted threshold (rounded up to 2 decimals).
    fitted: Vec<(vigil_model::Level, f64, f64)>,
}

/// One pass: replays the history with `rules`' thresholds and fits new ones.
struct Pass {
    days: BTreeMap<Day, (f64, BTreeMap<u32, f64>)>,
    /// The rule set's thresholds first, then region levels with their own.
    groups: Vec<Group>,
}

/// The replicates to fit on with the recorded history: the history they are drawn from, and
/// each one's length in days.
struct Replicates {
    recorded: Arc<crate::resample::Recorded>,
    days: i64,
}

fn pass(rules: &Arc<RuleSet>, args: &CalibrateArgs, warmup: usize, replicates: Option<&Replicates>) -> Result<Pass> {
    let alarm = rules.alarm.as_ref().expect("checked by the caller");
    let signals = match &args.signals {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let warmup_days = if args.from.is_some() { 0 } else { warmup };
    let mut sink = Collect::new(rules, warmup_days, (args.from.clone(), args.to.clone()), 0, signals);
    if let Some(w) = &mut sink.signals {
        w.write_all(b"method,region,category,date,stat\n")?;
    }
    let inputs = crate::history::event_inputs(rules, &args.events, None)?;
    let options = Options { scores: ScoreDetail::None, ..Options::default() };
    let mut pipeline = vigil_core::Pipeline::new(Arc::clone(rules), options);
    vigil_replay::replay(&mut pipeline, inputs, &mut sink).context("replay")?;
    if let Some(e) = sink.error.take() {
        return Err(e).context("writing the signals");
    }
    if let Some(mut w) = sink.signals.take() {
        w.flush()?;
    }
    for (k, r) in (1..=args.replicates).filter_map(|k| replicates.map(|r| (k, r))) {
        let input = r.recorded.replicate(args.seed, k, r.days)?;
        // A replicate's days are all drawn from the calibration period: every one with a full
        // baseline is calibrated on.
        let mut rep = Collect::new(rules, warmup, (None, None), k, None);
        let mut pipeline = vigil_core::Pipeline::new(Arc::clone(rules), options);
        vigil_replay::replay(&mut pipeline, vec![input], &mut rep).with_context(|| format!("replicate {k}"))?;
        sink.days.append(&mut rep.days);
    }
    if sink.days.is_empty() {
        bail!("no day with a full baseline in the calibration period: give more history (or --replicates)");
    }
    if sink.days.len() < vigil_scan::recurrence::MIN_DAYS {
        bail!(
            "{} days with a full baseline; calibration needs at least {} (give more history, or --replicates)",
            sink.days.len(),
            vigil_scan::recurrence::MIN_DAYS
        );
    }
    // Recurrence per rule set: the distribution of the daily maximum. Per region: of every
    // region-day's statistic, each alerting region level on its own region-days (a city's
    // statistic, on counts a hundred times a street's, has a heavier tail than a street's, and
    // fitted together one level's region-days would spend the others' budget), unless asked to
    // pool them. The level with the most region-days gives `thresholds`; a level with fewer
    // region-days than a calibration needs is pooled into it.
    let level_of = |r: &u32| rules.regions.levels[*r as usize];
    let mut by_level: BTreeMap<u8, Vec<f64>> = BTreeMap::new();
    if alarm.per_region {
        for d in sink.days.values() {
            for (r, v) in &d.1 {
                by_level.entry(if args.pool_levels { 0 } else { level_of(r) }).or_default().push(*v);
            }
        }
    }
    let main = by_level.iter().max_by_key(|(l, v)| (v.len(), std::cmp::Reverse(**l))).map(|(l, _)| *l);
    let mut shared: (Vec<u8>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut own: Vec<(u8, Vec<f64>)> = Vec::new();
    for (l, v) in by_level {
        if Some(l) == main || v.len() < vigil_scan::recurrence::MIN_DAYS {
            shared.0.push(l);
            shared.1.extend(v);
        } else {
            own.push((l, v));
        }
    }
    if !alarm.per_region {
        shared.1 = sink.days.values().map(|d| d.0).collect();
    }
    if args.pool_levels {
        shared.0.clear();
    }
    let fit = |region_level: Option<u8>, levels: Vec<u8>, values: &[f64]| -> Result<Group> {
        let Some(cal) = Calibration::from_daily_maxima(values) else {
            bail!(
                "{} region-days to calibrate on; calibration needs at least {}",
                values.len(),
                vigil_scan::recurrence::MIN_DAYS
            );
        };
        // Higher levels need higher thresholds (the rules refuse others): the empirical floor of
        // a lower level's (one to four days above it) can lie above the exponential tail a
        // higher level is extrapolated from, on a short history.
        let mut prev = f64::NEG_INFINITY;
        let fitted = alarm
            .levels
            .iter()
            .flatten()
            .map(|l| {
                let t = ((cal.threshold(l.recurrence_days, args.confidence()) * 100.0).ceil() / 100.0).max(prev + 0.01);
                prev = t;
                (l.level, l.recurrence_days, t)
            })
            .collect();
        Ok(Group { region_level, levels, cal, fitted })
    };
    let mut groups = vec![fit(None, shared.0, &shared.1)?];
    for (l, v) in own {
        groups.push(fit(Some(l), vec![l], &v)?);
    }
    Ok(Pass { days: sink.days, groups })
}

/// The lowest threshold of each group as `rules` has it (the rule set's at its main region
/// level, a region level's own at that level), against the one fitted: linking settles when
/// they agree.
fn settled(rules: &RuleSet, groups: &[Group]) -> Vec<(f64, f64)> {
    let Some(alarm) = &rules.alarm else { return Vec::new() };
    groups
        .iter()
        .map(|g| {
            let used = match g.region_level {
                Some(l) => alarm.lowest_threshold(l),
                None => vigil_rules::lowest(&alarm.levels),
            };
            let fitted = g.fitted.iter().map(|f| f.2).fold(f64::INFINITY, f64::min);
            (used, fitted)
        })
        .collect()
}

pub fn run(args: CalibrateArgs) -> Result<ExitCode> {
    let mut rules = crate::load_rules(&args.rules)?;
    let Some(alarm) = rules.alarm.clone() else {
        bail!("{} has no alarm.toml: there is nothing to calibrate", args.rules.display());
    };
    let warmup = alarm
        .cuts
        .iter()
        .map(|c| ((c.windows + c.baseline) as i64 * c.unit).div_euclid(vigil_model::time::DAY) as usize + 1)
        .max()
        .unwrap_or(0);
    let replicates = if args.replicates > 0 {
        let last = match &args.to {
            Some(t) => Some(vigil_eval::parse_day(t).with_context(|| format!("--to {t}: not a YYYY-MM-DD date"))?),
            None => None,
        };
        let inputs = || crate::history::event_inputs(&rules, &args.events, None);
        let refused = crate::resample::refused(&rules, inputs()?)?;
        let recorded = crate::resample::Recorded::read(&rules, inputs()?, &refused, last)?;
        let (first, last) = recorded.span();
        let days = (last - first + 1).max((warmup + vigil_scan::recurrence::MIN_DAYS) as i64);
        Some(Replicates { recorded: Arc::new(recorded), days })
    } else {
        None
    };
    let mut passes = 0;
    let fit = loop {
        passes += 1;
        let fit = pass(&rules, &args, warmup, replicates.as_ref())?;
        let lowest = settled(&rules, &fit.groups);
        if lowest.iter().all(|(u, f)| u == f) || passes == MAX_PASSES {
            for (u, f) in lowest.iter().filter(|(u, f)| u != f) {
                // Part of the report: the thresholds printed are not yet the ones that link.
                println!(
                    "note: after {passes} passes the lowest threshold has not settled (replayed at {u:.2}, fitted {f:.2}); calibrate the written rules again"
                );
            }
            break fit;
        }
        // Replay with what was fitted: the children linked are those that alarm at it.
        let mut next = (*rules).clone();
        if let Some(a) = &mut next.alarm {
            apply(a, &fit.groups);
        }
        rules = Arc::new(next);
    };
    let Pass { days: by_day, groups } = fit;
    // The recorded days calibrated on, and the replicates' (their days drawn from the same
    // history, dated as its own).
    let recorded: Vec<&String> = by_day.keys().filter(|(k, _)| *k == 0).map(|(_, d)| d).collect();
    let span = match (recorded.first(), recorded.last()) {
        (Some(first), Some(last)) => format!("{first}..{last}"),
        _ => "no recorded day with a full baseline".to_string(),
    };
    let region_days: usize = by_day.values().map(|d| d.1.len()).sum();
    let days = by_day.len();
    // `calibrated_on` and the report's first line: the recorded days calibrated on and, with
    // replicates, what they were drawn from.
    let (period, header) = match &replicates {
        Some(r) => {
            let (first, last) = r.recorded.span();
            let date = crate::resample::date;
            let drawn = format!(
                "{span} and {} replicates of {}..{} ({} days each, seed {})",
                args.replicates,
                date(first),
                date(last),
                r.days,
                args.seed
            );
            (format!("{drawn}, {days} days"), format!("{drawn}: {days} days ({} recorded)", recorded.len()))
        }
        None => (format!("{span}, {days} days"), format!("{span}: {days} days")),
    };
    let (period, header) = match args.confidence() {
        Some(c) => {
            let at = format!(", at {} % confidence", (c * 100.0).round());
            (format!("{period}{at}"), format!("{header}{at}"))
        }
        None => (period, header),
    };
    let unit = if alarm.per_region { "region-days" } else { "days" };
    println!(
        "calibrated on {header}, {region_days} alarm region-days; recurrence per {}{}",
        if alarm.per_region { "region" } else { "rule set" },
        if passes > 1 {
            format!(" ({passes} passes: children linked at the fitted thresholds)")
        } else {
            String::new()
        }
    );
    let names = &rules.regions.level_names;
    let mut lines = Vec::new();
    for g in &groups {
        // Region-days of this group's region levels (all of them when the thresholds are the
        // rule set's and pooled).
        let mine = |r: &u32| g.levels.is_empty() || g.levels.contains(&rules.regions.levels[*r as usize]);
        let group_days: usize = by_day.values().map(|d| d.1.keys().filter(|r| mine(r)).count()).sum();
        if groups.len() > 1 {
            let which: Vec<&str> = g.levels.iter().map(|&l| names[l as usize].as_str()).collect();
            println!(
                "\n{} ({group_days} region-days){}",
                which.join(", "),
                if g.region_level.is_none() { ": thresholds" } else { ": region_level_thresholds" }
            );
        }
        println!(
            "{:<8} {:>10} {:>10} {:>18} {:>14} {:>22}",
            "level",
            "recurrence",
            "threshold",
            format!("{unit} reached"),
            "once in (days)",
            "alarm /100 region-days"
        );
        let mut written = Vec::new();
        for &(level, recurrence, t) in &g.fitted {
            let a = g.cal.achieved(t);
            let alarm_days = by_day
                .values()
                .flat_map(|d| d.1.iter().filter(|(r, _)| mine(r)).map(|(_, s)| *s))
                .filter(|&s| s >= t)
                .count();
            println!(
                "{:<8} {:>10} {:>10.2} {:>18} {:>14} {:>22.3}",
                level.as_str(),
                format!("{recurrence}d"),
                t,
                a.days,
                a.every_days.map_or("never".to_string(), |e| format!("{e:.1}")),
                100.0 * alarm_days as f64 / group_days.max(1) as f64
            );
            written.push(format!("{} = {t:.2}", level.as_str()));
        }
        lines.push((g.region_level, format!("{{ {} }}", written.join(", "))));
    }
    let mut toml = vec![format!("thresholds = {}", lines[0].1)];
    let own: Vec<String> =
        lines[1..].iter().filter_map(|(l, t)| l.map(|l| format!("{} = {t}", names[l as usize]))).collect();
    if !own.is_empty() {
        toml.push(format!("region_level_thresholds = {{ {} }}", own.join(", ")));
    }
    toml.push(format!("calibrated_on = \"{period}\""));
    println!("\n# alarm.toml\n{}", toml.join("\n"));
    if args.write {
        write_thresholds(&args.rules, &toml)?;
        println!("written to {}", args.rules.join("alarm.toml").display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Puts the fitted thresholds into `alarm`: the rule set's (the first group), and each region
/// level's own.
fn apply(alarm: &mut vigil_rules::Alarm, groups: &[Group]) {
    let set = |levels: &mut [Option<vigil_rules::AlarmLevel>; 4], fitted: &[(vigil_model::Level, f64, f64)]| {
        for l in levels.iter_mut().flatten() {
            if let Some(f) = fitted.iter().find(|f| f.0 == l.level) {
                l.threshold = f.2;
            }
        }
    };
    alarm.region_levels.clear();
    for g in groups {
        match g.region_level {
            None => set(&mut alarm.levels, &g.fitted),
            Some(rl) => {
                let mut own = alarm.levels;
                set(&mut own, &g.fitted);
                alarm.region_levels.push((rl, own));
            }
        }
    }
}

/// Replaces `thresholds`, `region_level_thresholds` and `calibrated_on` in alarm.toml with
/// `lines` (after `recurrence`), and checks the rule set still compiles, restoring the file if
/// not.
fn write_thresholds(dir: &std::path::Path, lines: &[String]) -> Result<()> {
    let path = dir.join("alarm.toml");
    let old = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut placed = false;
    for line in old.lines() {
        let key = line.trim_start();
        if key.starts_with("thresholds")
            || key.starts_with("region_level_thresholds")
            || key.starts_with("calibrated_on")
        {
            continue;
        }
        out.push(line.to_string());
        if key.starts_with("recurrence") && !placed {
            out.extend(lines.iter().cloned());
            placed = true;
        }
    }
    if !placed {
        bail!("{}: no `recurrence` line to put the thresholds after", path.display());
    }
    std::fs::write(&path, out.join("\n") + "\n")?;
    if let Err(e) = crate::load_rules(dir) {
        std::fs::write(&path, old)?;
        return Err(e.context("the calibrated thresholds were refused; alarm.toml is unchanged"));
    }
    Ok(())
}
