//! Backtests: two rule sets over the same history, and what the change would have done to the
//! alerts.
//!
//! The unit of comparison is the alert *episode* (one `alert_id`: opened, escalated or
//! de-escalated, resolved) of one region and scope. An episode of the new rules matches one of
//! the baseline when both concern the same region and scope and their active periods overlap.
//! A matched pair is *unchanged* when it opened and resolved at the same windows with the same
//! peak level, and *changed* otherwise; an unmatched new episode is *added*, an unmatched baseline one
//! *removed*. Both rule sets replay the whole history up to `to` (so baselines warm up the same
//! way); only episodes that open in `[from, to)` are compared.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::Arc;

use serde::Serialize;
use vigil_core::{Options, Pipeline, ScoreDetail};
use vigil_model::record::{AlertEvent, AlertRecord};
use vigil_model::time::{format_utc, parse_rfc3339};
use vigil_model::{Level, Ts};
use vigil_replay::{Input, MemSink, Summary};
use vigil_rules::RuleSet;

/// One replay's alerts.
#[derive(Debug)]
pub struct Run {
    pub rules_version: String,
    pub summary: Summary,
    pub alerts: Vec<AlertRecord>,
}

/// Replays `inputs` under `rules`, keeping only alerts (no score records are built).
pub fn run(rules: Arc<RuleSet>, inputs: Vec<Input>) -> io::Result<Run> {
    let rules_version = rules.version.clone();
    let mut pipeline = Pipeline::new(
        rules,
        Options {
            scores: ScoreDetail::None,
            score_levels: vigil_core::ScoreLevels::NONE,
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
    );
    let mut sink = MemSink::default();
    let summary = vigil_replay::replay(&mut pipeline, inputs, &mut sink)?;
    Ok(Run { rules_version, summary, alerts: sink.alerts })
}

/// One alert episode, folded from its lifecycle records.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Episode {
    pub alert_id: String,
    pub region: String,
    pub region_name: String,
    pub scope: String,
    pub opened: String,
    /// When it resolved; `None` when still open at the end of the history.
    pub resolved: Option<String>,
    pub peak: Level,
    pub peak_score: Option<f64>,
    #[serde(skip)]
    opened_ts: Ts,
    #[serde(skip)]
    end_ts: Ts,
}

/// Folds lifecycle records into episodes, in order of opening.
pub fn episodes(alerts: &[AlertRecord]) -> Vec<Episode> {
    let mut by_id: BTreeMap<&str, Episode> = BTreeMap::new();
    for a in alerts {
        let ts = parse_rfc3339(&a.window_end).unwrap_or(0);
        let e = by_id.entry(&a.alert_id).or_insert_with(|| Episode {
            alert_id: a.alert_id.clone(),
            region: a.region.clone(),
            region_name: a.region_name.clone(),
            scope: a.scope.clone(),
            opened: a.window_end.clone(),
            resolved: None,
            peak: a.level.unwrap_or(Level::Blue),
            peak_score: a.score,
            opened_ts: ts,
            end_ts: Ts::MAX,
        });
        if let Some(l) = a.level
            && l.rank() > e.peak.rank()
        {
            e.peak = l;
            e.peak_score = a.score;
        }
        if a.event == AlertEvent::Resolved {
            e.resolved = Some(a.window_end.clone());
            e.end_ts = ts;
        }
    }
    let mut out: Vec<Episode> = by_id.into_values().collect();
    out.sort_by(|a, b| (a.opened_ts, &a.region, &a.scope).cmp(&(b.opened_ts, &b.region, &b.scope)));
    out
}

/// How one episode differs between the two rule sets.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Change {
    Added { new: Episode },
    Removed { baseline: Episode },
    Changed { baseline: Episode, new: Episode },
}

impl Change {
    /// Time order: when the (new, else baseline) episode opened, then where.
    fn key(&self) -> (Ts, &str, &str) {
        match self {
            Change::Added { new: e } | Change::Removed { baseline: e } | Change::Changed { new: e, .. } => {
                (e.opened_ts, &e.region, &e.scope)
            }
        }
    }
}

/// Counts for one level (the peak level of the episode: the new one's for added and changed,
/// the baseline's for removed).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LevelRow {
    pub baseline: usize,
    pub new: usize,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
}

/// Per-region counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RegionRow {
    pub region: String,
    pub region_name: String,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub baseline_rules: String,
    pub new_rules: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub events: u64,
    pub by_level: BTreeMap<String, LevelRow>,
    pub by_region: Vec<RegionRow>,
    pub changes: Vec<Change>,
}

fn overlaps(a: &Episode, b: &Episode) -> bool {
    a.region == b.region && a.scope == b.scope && a.opened_ts <= b.end_ts && b.opened_ts <= a.end_ts
}

/// Compares the episodes of two runs. Episodes are matched over the whole history, so that an
/// episode just inside `[from, to)` still finds its counterpart just outside; an unmatched
/// episode counts when it opens inside the window, a matched pair when either of its two does.
pub fn compare(baseline: &Run, new: &Run, from: Option<Ts>, to: Option<Ts>) -> Report {
    let within = |e: &Episode| from.is_none_or(|f| e.opened_ts >= f) && to.is_none_or(|t| e.opened_ts < t);
    let base = episodes(&baseline.alerts);
    let newe = episodes(&new.alerts);
    let mut by_level: BTreeMap<String, LevelRow> =
        Level::ALL.iter().map(|l| (l.as_str().to_string(), LevelRow::default())).collect();
    // Greedy matching in opening order: each new episode takes the earliest-opening overlapping
    // baseline episode not yet taken. Both lists are sorted, so the result is deterministic.
    let mut taken = vec![false; base.len()];
    let mut changes = Vec::new();
    for n in &newe {
        let m = base.iter().enumerate().find(|(i, b)| !taken[*i] && overlaps(b, n)).map(|(i, _)| i);
        match m {
            Some(i) => {
                taken[i] = true;
                let b = &base[i];
                if !within(b) && !within(n) {
                    continue;
                }
                by_level.entry(b.peak.as_str().into()).or_default().baseline += 1;
                let row = by_level.entry(n.peak.as_str().into()).or_default();
                row.new += 1;
                if b.peak == n.peak && b.opened_ts == n.opened_ts && b.end_ts == n.end_ts {
                    row.unchanged += 1;
                } else {
                    row.changed += 1;
                    changes.push(Change::Changed { baseline: b.clone(), new: n.clone() });
                }
            }
            None if within(n) => {
                let row = by_level.entry(n.peak.as_str().into()).or_default();
                row.new += 1;
                row.added += 1;
                changes.push(Change::Added { new: n.clone() });
            }
            None => {}
        }
    }
    for (i, b) in base.iter().enumerate() {
        if !taken[i] && within(b) {
            let row = by_level.entry(b.peak.as_str().into()).or_default();
            row.baseline += 1;
            row.removed += 1;
            changes.push(Change::Removed { baseline: b.clone() });
        }
    }
    changes.sort_by(|a, b| a.key().cmp(&b.key()));
    let mut regions: BTreeMap<&str, RegionRow> = BTreeMap::new();
    for c in &changes {
        let e = match c {
            Change::Added { new: e } | Change::Removed { baseline: e } | Change::Changed { new: e, .. } => e,
        };
        let r = regions.entry(&e.region).or_insert_with(|| RegionRow {
            region: e.region.clone(),
            region_name: e.region_name.clone(),
            ..RegionRow::default()
        });
        match c {
            Change::Added { .. } => r.added += 1,
            Change::Removed { .. } => r.removed += 1,
            Change::Changed { .. } => r.changed += 1,
        }
    }
    let mut by_region: Vec<RegionRow> = regions.into_values().collect();
    by_region.sort_by(|a, b| {
        (b.added + b.removed + b.changed).cmp(&(a.added + a.removed + a.changed)).then_with(|| a.region.cmp(&b.region))
    });
    Report {
        baseline_rules: baseline.rules_version.clone(),
        new_rules: new.rules_version.clone(),
        from: from.map(format_utc),
        to: to.map(format_utc),
        events: new.summary.accepted + new.summary.accepted_late,
        by_level,
        by_region,
        changes,
    }
}

/// How many changed regions and individual changes the text report lists.
const SHOW_REGIONS: usize = 15;
const SHOW_CHANGES: usize = 25;

/// Pads `s` to `width` terminal columns, counting CJK characters as two.
fn pad(s: &str, width: usize) -> String {
    let w: usize = s.chars().map(|c| if (c as u32) >= 0x1100 && !c.is_ascii() { 2 } else { 1 }).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

fn describe(e: &Episode) -> String {
    format!(
        "{} {} opened {} ({}{})",
        e.peak.as_str(),
        e.scope,
        e.opened,
        e.peak_score.map_or("-".to_string(), |s| format!("{s:.1}")),
        e.resolved.as_ref().map_or(", still open".to_string(), |r| format!(", resolved {r}"))
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "backtest: baseline rules {} -> new rules {}", self.baseline_rules, self.new_rules)?;
        writeln!(
            f,
            "history: {} events; episodes opening in [{}, {})",
            self.events,
            self.from.as_deref().unwrap_or("start"),
            self.to.as_deref().unwrap_or("end")
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<8} {:>9} {:>6} {:>7} {:>8} {:>8} {:>10}",
            "level", "baseline", "new", "added", "removed", "changed", "unchanged"
        )?;
        let mut total = LevelRow::default();
        for l in Level::ALL {
            let r = &self.by_level[l.as_str()];
            writeln!(
                f,
                "{:<8} {:>9} {:>6} {:>7} {:>8} {:>8} {:>10}",
                l.as_str(),
                r.baseline,
                r.new,
                r.added,
                r.removed,
                r.changed,
                r.unchanged
            )?;
            total.baseline += r.baseline;
            total.new += r.new;
            total.added += r.added;
            total.removed += r.removed;
            total.changed += r.changed;
            total.unchanged += r.unchanged;
        }
        writeln!(
            f,
            "{:<8} {:>9} {:>6} {:>7} {:>8} {:>8} {:>10}",
            "total", total.baseline, total.new, total.added, total.removed, total.changed, total.unchanged
        )?;
        if self.changes.is_empty() {
            return writeln!(f, "\nno differences: the new rules raise exactly the baseline's alert episodes");
        }
        writeln!(f, "\nregions with differences ({} in all):", self.by_region.len())?;
        writeln!(f, "  {:<14} {} {:>6} {:>8} {:>8}", "region", pad("name", 16), "added", "removed", "changed")?;
        for r in self.by_region.iter().take(SHOW_REGIONS) {
            let name = pad(&r.region_name, 16);
            writeln!(f, "  {:<14} {name} {:>6} {:>8} {:>8}", r.region, r.added, r.removed, r.changed)?;
        }
        writeln!(f, "\ndifferences ({} in all, in time order):", self.changes.len())?;
        for c in self.changes.iter().take(SHOW_CHANGES) {
            match c {
                Change::Added { new } => writeln!(f, "  + {} {}: {}", new.region, new.region_name, describe(new))?,
                Change::Removed { baseline } => {
                    writeln!(f, "  - {} {}: {}", baseline.region, baseline.region_name, describe(baseline))?
                }
                Change::Changed { baseline, new } => writeln!(
                    f,
                    "  ~ {} {}: {}\n      was {}",
                    new.region,
                    new.region_name,
                    describe(new),
                    describe(baseline)
                )?,
            }
        }
        if self.changes.len() > SHOW_CHANGES {
            writeln!(f, "  ... {} more (--json lists all)", self.changes.len() - SHOW_CHANGES)?;
        }
        Ok(())
    }
}
