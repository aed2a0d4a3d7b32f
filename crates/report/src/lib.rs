//! vigil-report: the periodic bulletin (星级发布). From the composite index of every region of
//! one level (districts by default) and the alert records of an archive, it builds a week's or
//! a month's bulletin: each region's index for the period, its star rating, the change since
//! the previous period, the top movers, and the period's alert episodes with their
//! explanations; [`html`] renders it as one self-contained page with charts.
//!
//! Pure: no clock and no I/O. The same records give the same bulletin, byte for byte.
//!
//! Star ratings (docs/methodology.md §17): a region's period index is the mean of its daily
//! mean composite over the period. Its stars come from where that index falls among every
//! rated region's period indices of the archive's history (up to [`HISTORY_PERIODS`] periods
//! back, this one included): in the lowest fifth five stars (calmest), in the highest fifth one
//! star. An alert episode at red in the region or below it during the period caps its rating at
//! two stars, one at orange at three: a bulletin never calls a region calm while it had an
//! urgent alert.

pub mod html;

use std::collections::BTreeMap;

use vigil_model::record::{AlertEvent, AlertRecord};
use vigil_model::time::{DAY, civil_from_days, days_from_civil, parse_rfc3339};
use vigil_model::{Level, Ts};
use vigil_rules::RuleSet;

/// How many earlier periods the star thresholds look back on.
pub const HISTORY_PERIODS: usize = 52;
/// Episodes listed per region in the bulletin (all are counted).
pub const EPISODES_LISTED: usize = 8;
/// Movers listed each way.
pub const MOVERS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeriodKind {
    Week,
    Month,
}

/// A span of whole local days, `[start, end)`, in days since 1970-01-01 on the local axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub kind: PeriodKind,
    pub start: i64,
    pub end: i64,
}

impl Period {
    /// The week (Monday to Sunday) or calendar month holding local day `day`.
    pub fn containing(kind: PeriodKind, day: i64) -> Period {
        match kind {
            PeriodKind::Week => {
                // 1970-01-01 was a Thursday: day + 3 counts from a Monday.
                let start = day - (day + 3).rem_euclid(7);
                Period { kind, start, end: start + 7 }
            }
            PeriodKind::Month => {
                let (y, m, _) = civil_from_days(day);
                let start = days_from_civil(y, m, 1);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                Period { kind, start, end: days_from_civil(ny, nm, 1) }
            }
        }
    }

    pub fn previous(&self) -> Period {
        Period::containing(self.kind, self.start - 1)
    }

    pub fn days(&self) -> i64 {
        self.end - self.start
    }

    /// `2026-W05` (ISO week) or `2026-02`.
    pub fn label(&self) -> String {
        match self.kind {
            PeriodKind::Week => {
                // The ISO week belongs to the year of its Thursday.
                let thursday = self.start + 3;
                let (y, _, _) = civil_from_days(thursday);
                let week = (thursday - days_from_civil(y, 1, 1)) / 7 + 1;
                format!("{y}-W{week:02}")
            }
            PeriodKind::Month => {
                let (y, m, _) = civil_from_days(self.start);
                format!("{y}-{m:02}")
            }
        }
    }
}

/// `YYYY-MM-DD` of a local day.
pub fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// What a bulletin is made from.
pub struct Inputs<'a> {
    pub rules: &'a RuleSet,
    /// The region level rated (an index into the rule set's levels).
    pub level: usize,
    /// Composite index by (region, evaluation end), any order.
    pub scores: Vec<(String, Ts, f64)>,
    /// Alert lifecycle records, any order.
    pub alerts: Vec<AlertRecord>,
}

/// One rated region in the bulletin.
#[derive(Clone, Debug, PartialEq)]
pub struct Rated {
    pub code: String,
    pub name: String,
    pub index: Option<f64>,
    pub previous: Option<f64>,
    pub stars: Option<u8>,
    pub previous_stars: Option<u8>,
    /// What capped the stars, if anything: the highest level of the period's episodes.
    pub capped_by: Option<Level>,
    /// Daily mean composite over the period, one entry per day.
    pub daily: Vec<Option<f64>>,
    pub episodes: Vec<EpisodeLine>,
    /// Episodes of the period in all (the list above holds at most [`EPISODES_LISTED`]).
    pub episode_count: usize,
}

impl Rated {
    pub fn change(&self) -> Option<f64> {
        Some(self.index? - self.previous?)
    }
}

/// One alert episode that was open during the period.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeLine {
    pub alert_id: String,
    pub region: String,
    pub region_name: String,
    pub scope: String,
    pub peak: Level,
    pub opened: Ts,
    pub resolved: Option<Ts>,
    /// The record that reached the peak: what explains the episode.
    pub peak_record: AlertRecord,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Bulletin {
    pub rules_name: String,
    pub rules_version: String,
    pub level_name: String,
    pub period: Period,
    pub previous: Period,
    /// The archive's data end before the period does (the last days are missing).
    pub partial: bool,
    /// The star thresholds (the 20th, 40th, 60th and 80th percentiles of the history), and how
    /// many period indices they were taken from.
    pub thresholds: Option<[f64; 4]>,
    pub history_values: usize,
    /// In region order.
    pub regions: Vec<Rated>,
    /// Largest rises and falls of the index since the previous period.
    pub risers: Vec<usize>,
    pub fallers: Vec<usize>,
    /// Episodes of the period by peak level (red first), over every rated region.
    pub by_level: [usize; 4],
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the archive holds no composite index at the {0} level (score records at that level are needed)")]
    NoScores(String),
    #[error("the rule set has no region level {0}")]
    NoLevel(usize),
}

/// The local day of an evaluation ending at `end` (its last instant's day).
fn day_of(rules: &RuleSet, end: Ts) -> i64 {
    rules.zone.local(end - 1).div_euclid(DAY)
}

/// Builds the bulletin of `kind` holding local day `day`, or, without a day, of the last
/// period the archive covers to its end (else the one it ends in, marked partial).
pub fn build(inputs: &Inputs<'_>, kind: PeriodKind, day: Option<i64>) -> Result<Bulletin, ReportError> {
    let rules = inputs.rules;
    let regs = &rules.regions;
    let level_name = regs.level_names.get(inputs.level).ok_or(ReportError::NoLevel(inputs.level))?.clone();
    let rated: Vec<u32> =
        (0..regs.len() as u32).filter(|&r| regs.levels[r as usize] as usize == inputs.level).collect();
    let slot: BTreeMap<&str, usize> =
        rated.iter().enumerate().map(|(i, &r)| (regs.codes[r as usize].as_str(), i)).collect();

    // Daily means of the composite per rated region: (sum, n) by day.
    let mut daily: Vec<BTreeMap<i64, (f64, u32)>> = vec![BTreeMap::new(); rated.len()];
    for (region, end, v) in &inputs.scores {
        if let Some(&i) = slot.get(region.as_str())
            && v.is_finite()
        {
            let e = daily[i].entry(day_of(rules, *end)).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
    }
    let first = daily.iter().filter_map(|d| d.keys().next()).min().copied();
    let last = daily.iter().filter_map(|d| d.keys().next_back()).max().copied();
    let (Some(first), Some(last)) = (first, last) else { return Err(ReportError::NoScores(level_name)) };
    let period = match day {
        Some(d) => Period::containing(kind, d),
        None => {
            let p = Period::containing(kind, last);
            if last < p.end - 1 && p.previous().end > first { p.previous() } else { p }
        }
    };
    let partial = last < period.end - 1;
    let mean_over = |d: &BTreeMap<i64, (f64, u32)>, p: &Period| -> Option<f64> {
        let days: Vec<f64> = d.range(p.start..p.end).map(|(_, (s, n))| s / *n as f64).collect();
        // A region counts for a period once it has data on at least half of its days.
        (days.len() as i64 * 2 >= p.days().min(last - p.start + 1).max(1))
            .then(|| days.iter().sum::<f64>() / days.len() as f64)
    };

    // The star thresholds: every rated region's index in each period of the history.
    let mut history = Vec::new();
    let mut p = period;
    for _ in 0..=HISTORY_PERIODS {
        if p.end <= first {
            break;
        }
        history.extend(daily.iter().filter_map(|d| mean_over(d, &p)));
        p = p.previous();
    }
    history.sort_by(f64::total_cmp);
    let thresholds = (!history.is_empty()).then(|| [0.2, 0.4, 0.6, 0.8].map(|q| nearest_rank(&history, q)));
    let stars_of = |v: f64| thresholds.map(|t| 5 - t.iter().filter(|&&x| v > x).count() as u8);

    // Episodes open during the period, by rated ancestor.
    let previous = period.previous();
    let episodes = fold_episodes(&inputs.alerts);
    let (from_ts, to_ts) = (rules.zone.utc(period.start * DAY), rules.zone.utc(period.end * DAY));
    let mut per_region: Vec<Vec<EpisodeLine>> = vec![Vec::new(); rated.len()];
    let mut by_level = [0usize; 4];
    for e in episodes {
        if e.opened >= to_ts || e.resolved.is_some_and(|r| r <= from_ts) {
            continue;
        }
        let Some(r) = regs.lookup(&e.region) else { continue };
        let Some(&i) = regs.chains[r as usize].iter().find_map(|&a| slot.get(regs.codes[a as usize].as_str())) else {
            continue;
        };
        by_level[4 - e.peak.rank() as usize] += 1;
        per_region[i].push(e);
    }

    let mut out = Vec::with_capacity(rated.len());
    for (i, &r) in rated.iter().enumerate() {
        let mut eps = std::mem::take(&mut per_region[i]);
        eps.sort_by(|a, b| b.peak.cmp(&a.peak).then(a.opened.cmp(&b.opened)).then(a.alert_id.cmp(&b.alert_id)));
        let capped_by = eps.first().map(|e| e.peak).filter(|&l| l >= Level::Orange);
        let cap = |s: u8| match capped_by {
            Some(Level::Red) => s.min(2),
            Some(Level::Orange) => s.min(3),
            _ => s,
        };
        let index = mean_over(&daily[i], &period);
        let previous_index = mean_over(&daily[i], &previous);
        let count = eps.len();
        eps.truncate(EPISODES_LISTED);
        out.push(Rated {
            code: regs.codes[r as usize].clone(),
            name: regs.names[r as usize].clone(),
            index,
            previous: previous_index,
            stars: index.and_then(stars_of).map(cap),
            previous_stars: previous_index.and_then(stars_of),
            capped_by,
            daily: (period.start..period.end).map(|d| daily[i].get(&d).map(|(s, n)| s / *n as f64)).collect(),
            episodes: eps,
            episode_count: count,
        });
    }
    let mut moving: Vec<(f64, usize)> = out.iter().enumerate().filter_map(|(i, r)| Some((r.change()?, i))).collect();
    moving.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // A change that shows as ±0.0 is no move.
    let risers = moving.iter().filter(|m| m.0 >= 0.05).take(MOVERS).map(|m| m.1).collect();
    let fallers = moving.iter().rev().filter(|m| m.0 <= -0.05).take(MOVERS).map(|m| m.1).collect();
    Ok(Bulletin {
        rules_name: rules.name.clone(),
        rules_version: rules.version.clone(),
        level_name,
        period,
        previous,
        partial,
        thresholds,
        history_values: history.len(),
        regions: out,
        risers,
        fallers,
        by_level,
    })
}

/// The nearest-rank percentile of sorted values (deterministic; no interpolation).
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Lifecycle records folded into episodes: when each opened, its peak and the record that
/// reached it, and when it was resolved.
fn fold_episodes(alerts: &[AlertRecord]) -> Vec<EpisodeLine> {
    let mut sorted: Vec<&AlertRecord> = alerts.iter().collect();
    sorted.sort_by(|a, b| (&a.alert_id, a.seq).cmp(&(&b.alert_id, b.seq)));
    let mut out: Vec<EpisodeLine> = Vec::new();
    let mut current: Option<&str> = None;
    for a in sorted {
        let ts = parse_rfc3339(&a.window_end).unwrap_or(0);
        if current != Some(a.alert_id.as_str()) {
            current = Some(&a.alert_id);
            out.push(EpisodeLine {
                alert_id: a.alert_id.clone(),
                region: a.region.clone(),
                region_name: a.region_name.clone(),
                scope: a.scope.clone(),
                peak: a.level.unwrap_or(Level::Blue),
                opened: ts,
                resolved: None,
                peak_record: a.clone(),
            });
        }
        let Some(e) = out.last_mut() else { continue };
        if let Some(l) = a.level
            && l > e.peak
        {
            e.peak = l;
            e.peak_record = a.clone();
        }
        if a.event == AlertEvent::Resolved {
            e.resolved = Some(ts);
        }
    }
    out
}

/// An alert record's reason in words, in `lang`: the evidence's own sentence, or the score
/// and the leading indicators with their values against expectation.
pub fn explain(a: &AlertRecord, lang: &str) -> String {
    if let Some(e) = &a.evidence {
        return e.summary.clone();
    }
    let expected = if lang == "en" { "expected" } else { "期望" };
    let top: Vec<String> = a
        .top_contributors
        .iter()
        .take(3)
        .map(|c| {
            let name = c.name.as_ref().map_or(c.indicator.as_str(), |n| if lang == "en" { &n.en } else { &n.zh });
            match (c.value, c.expected) {
                (Some(v), Some(x)) => format!("{name} {} ({expected} {})", number(v), number(x)),
                (Some(v), None) => format!("{name} {}", number(v)),
                _ => name.to_string(),
            }
        })
        .collect();
    let score = if lang == "en" { "score" } else { "评分" };
    let floor = a.floor.as_ref().map_or(String::new(), |f| format!("{}; ", f.describe(&f.trigger)));
    format!("{floor}{score} {}: {}", a.score.map_or("-".into(), |s| format!("{s:.1}")), top.join("; "))
}

/// A value in its own units: whole numbers as such, others with three significant digits.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::time::HOUR;

    fn rules() -> RuleSet {
        vigil_rules::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")).unwrap()
    }

    fn day(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d)
    }

    #[test]
    fn weeks_are_iso_weeks_and_months_calendar_months() {
        let w = Period::containing(PeriodKind::Week, day(2026, 1, 1));
        assert_eq!(
            (date(w.start), date(w.end - 1), w.label()),
            ("2025-12-29".into(), "2026-01-04".into(), "2026-W01".into())
        );
        assert_eq!(Period::containing(PeriodKind::Week, day(2027, 1, 1)).label(), "2026-W53");
        assert_eq!(Period::containing(PeriodKind::Week, day(2021, 1, 3)).label(), "2020-W53");
        assert_eq!(
            Period::containing(PeriodKind::Week, day(2026, 3, 2)).start,
            day(2026, 3, 2),
            "a Monday starts its week"
        );
        let m = Period::containing(PeriodKind::Month, day(2024, 2, 10));
        assert_eq!((m.start, m.days(), m.label()), (day(2024, 2, 1), 29, "2024-02".into()));
        let dec = Period::containing(PeriodKind::Month, day(2025, 12, 31));
        assert_eq!((dec.end, dec.previous().label()), (day(2026, 1, 1), "2025-11".into()));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!([0.2, 0.4, 0.6, 0.8].map(|q| nearest_rank(&v, q)), [2.0, 4.0, 6.0, 8.0]);
        assert_eq!(nearest_rank(&[3.0], 0.2), 3.0);
    }

    fn record(region: &str, seq: u32, event: &str, level: Option<&str>, at: Ts) -> AlertRecord {
        serde_json::from_value(serde_json::json!({
            "alert_id": format!("{region}:police:x"), "seq": seq, "event": event, "level": level,
            "previous_level": null, "region": region, "region_name": "n", "region_level": "street",
            "scope": "police", "score": 80.0, "window_end": vigil_model::time::format_utc(at),
            "rules_version": "v", "reason": "score", "domains": {},
            "top_contributors": [{"indicator": "jq_incident_count_24h", "name": {"zh": "警情总量", "en": "Calls"},
                                   "value": 40.0, "expected": 12.5, "score": 90.0}]
        }))
        .unwrap()
    }

    /// Eight districts over three weeks: district k's index is 10·k, except that the second
    /// district jumps to 95 in the last week and has a red episode in one of its streets.
    fn inputs(rules: &RuleSet) -> Inputs<'_> {
        let districts: Vec<&String> = (0..rules.regions.len())
            .filter(|&r| rules.regions.levels[r] == 1)
            .map(|r| &rules.regions.codes[r])
            .collect();
        let start = rules.zone.utc(day(2026, 3, 2) * DAY);
        let mut scores = Vec::new();
        for h in 0..21 * 24 {
            let end = start + (h + 1) * HOUR;
            for (k, d) in districts.iter().enumerate() {
                let v = if k == 1 && h >= 14 * 24 { 95.0 } else { 10.0 * k as f64 };
                scores.push(((*d).clone(), end, v));
            }
        }
        let street = (0..rules.regions.len())
            .find(|&r| rules.regions.parents[r].is_some_and(|p| rules.regions.codes[p as usize] == *districts[1]))
            .map(|r| rules.regions.codes[r].clone())
            .unwrap();
        let at = start + 15 * DAY;
        let alerts = vec![
            record(&street, 1, "escalated", Some("red"), at + HOUR),
            record(&street, 0, "opened", Some("yellow"), at),
            record(&street, 2, "resolved", None, at + DAY),
        ];
        Inputs { rules, level: 1, scores, alerts }
    }

    #[test]
    fn stars_movers_caps_and_episodes_of_the_last_week() {
        let rules = rules();
        let inputs = inputs(&rules);
        let b = build(&inputs, PeriodKind::Week, None).unwrap();
        assert_eq!(b.period.label(), "2026-W12");
        assert!(!b.partial);
        assert_eq!(b.regions.len(), 8);
        assert_eq!(b.history_values, 24, "eight districts, three weeks");
        let stars: Vec<Option<u8>> = b.regions.iter().map(|r| r.stars).collect();
        // Index 0 is the calmest (five stars); 70 the highest of the history but for 95.
        assert_eq!(stars[0], Some(5));
        assert_eq!(stars[7], Some(1));
        assert!(stars[2..].windows(2).all(|w| w[0] >= w[1]), "{stars:?}");
        // The jump: one star anyway, and red caps at two.
        let jumped = &b.regions[1];
        assert_eq!((jumped.index, jumped.previous), (Some(95.0), Some(10.0)));
        assert_eq!(jumped.capped_by, Some(Level::Red));
        assert_eq!(jumped.stars, Some(1));
        assert_eq!(jumped.previous_stars, Some(5));
        assert_eq!(b.risers, [1]);
        assert!(b.fallers.is_empty());
        assert_eq!(b.by_level, [1, 0, 0, 0]);
        let e = &jumped.episodes[0];
        assert_eq!((e.peak, e.resolved.is_some()), (Level::Red, true));
        assert_eq!(explain(&e.peak_record, "en"), "score 80.0: Calls 40 (expected 12.5)");
        // The week before: no episode, no cap, and the jump is not there yet.
        let before = build(&inputs, PeriodKind::Week, Some(day(2026, 3, 10))).unwrap();
        assert_eq!(before.period.label(), "2026-W11");
        assert_eq!(before.regions[1].index, Some(10.0));
        assert_eq!(before.by_level, [0; 4]);
        // A month holding only part of the data is partial.
        let month = build(&inputs, PeriodKind::Month, None).unwrap();
        assert_eq!(month.period.label(), "2026-03");
        assert!(month.partial);
    }

    #[test]
    fn the_page_is_deterministic_and_names_every_district() {
        let rules = rules();
        let inputs = inputs(&rules);
        let b = build(&inputs, PeriodKind::Week, None).unwrap();
        let (zh, en) = (html::render(&b, &rules, "zh"), html::render(&b, &rules, "en"));
        assert_eq!(zh, html::render(&build(&inputs, PeriodKind::Week, None).unwrap(), &rules, "zh"));
        for r in &b.regions {
            assert!(zh.contains(&format!("data-region=\"{}\"", r.code)) && zh.contains(&r.name));
        }
        assert!(zh.contains("社会治安风险星级发布") && zh.contains("★★★★★") && zh.contains("警情总量"));
        assert!(en.contains("Risk star ratings") && en.contains("Calls 40 (expected 12.5)"));
        assert!(!zh.contains("<script"), "a bulletin is a document, not an app");
    }

    #[test]
    fn no_scores_at_the_level_is_an_error_that_says_so() {
        let rules = rules();
        let inputs = Inputs { rules: &rules, level: 1, scores: Vec::new(), alerts: Vec::new() };
        let e = build(&inputs, PeriodKind::Week, None).unwrap_err();
        assert!(e.to_string().contains("district"), "{e}");
    }
}
