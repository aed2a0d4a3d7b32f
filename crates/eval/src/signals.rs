//! Daily signals of one detector: for every region that can alarm and every day of the stream,
//! the largest score the detector gave that region that day and the category it named. Built
//! from vigil's alert records (the level held each day), vigil's full score records (each
//! indicator's score), or a baseline's statistics (`method,region,category,date,stat`).

use std::collections::{BTreeMap, HashMap};

use vigil_model::record::{AlertRecord, ScoreRecord};
use vigil_rules::RuleSet;

use crate::{EvalError, input_error, parse_day};

/// One detector's daily signals over a stream's days.
#[derive(Clone, Debug)]
pub struct Signals {
    pub method: String,
    pub first_day: i64,
    pub days: usize,
    /// The regions that can alarm (rule-set indices), in slot order.
    pub regions: Vec<u32>,
    /// Category names the signals use.
    pub categories: Vec<String>,
    slot_of: HashMap<u32, usize>,
    /// `slot * days + day`: the day's largest score (NaN: no signal).
    score: Vec<f64>,
    /// Category index of that score (`u16::MAX`: none).
    category: Vec<u16>,
}

impl Signals {
    fn new(method: &str, first_day: i64, last_day: i64, regions: Vec<u32>) -> Signals {
        let days = (last_day - first_day + 1).max(0) as usize;
        let slot_of = regions.iter().enumerate().map(|(s, &r)| (r, s)).collect();
        Signals {
            method: method.to_string(),
            first_day,
            days,
            score: vec![f64::NAN; regions.len() * days],
            category: vec![u16::MAX; regions.len() * days],
            regions,
            categories: Vec::new(),
            slot_of,
        }
    }

    fn category_index(&mut self, name: &str) -> u16 {
        match self.categories.iter().position(|c| c == name) {
            Some(i) => i as u16,
            None => {
                self.categories.push(name.to_string());
                (self.categories.len() - 1) as u16
            }
        }
    }

    /// Records a score; the day keeps its largest (ties: the category named first in sort order).
    fn add(&mut self, region: u32, day: i64, category: Option<&str>, score: f64) {
        let (Some(&slot), true) =
            (self.slot_of.get(&region), (self.first_day..self.first_day + self.days as i64).contains(&day))
        else {
            return;
        };
        if score.is_nan() {
            return;
        }
        let i = slot * self.days + (day - self.first_day) as usize;
        let c = category.map_or(u16::MAX, |c| self.category_index(c));
        let old = self.score[i];
        let better = old.is_nan()
            || score > old
            || (score == old && self.name(c) < self.name(self.category[i]) && c != u16::MAX);
        if better {
            self.score[i] = score;
            self.category[i] = c;
        }
    }

    fn name(&self, c: u16) -> &str {
        self.categories.get(c as usize).map_or("\u{10ffff}", String::as_str)
    }

    pub fn slot(&self, region: u32) -> Option<usize> {
        self.slot_of.get(&region).copied()
    }

    /// The score of region slot `slot` on day index `d` (NaN: none).
    #[inline]
    pub fn at(&self, slot: usize, d: usize) -> f64 {
        self.score[slot * self.days + d]
    }

    /// The category named by that score.
    pub fn category_at(&self, slot: usize, d: usize) -> Option<&str> {
        let c = self.category[slot * self.days + d];
        self.categories.get(c as usize).map(String::as_str)
    }

    /// Every score present, for choosing thresholds.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.score.iter().copied().filter(|v| !v.is_nan())
    }
}

/// The local data day of a record: its `date`, or the local day of the instant before its
/// window end.
fn record_day(rules: &RuleSet, date: &Option<String>, window_end: &str) -> Option<i64> {
    if let Some(d) = date {
        return parse_day(d);
    }
    let end = vigil_model::time::parse_rfc3339(window_end).ok()?;
    Some(rules.zone.local(end - 1).div_euclid(vigil_model::time::DAY))
}

/// The index category of an indicator id.
fn indicator_category<'r>(rules: &'r RuleSet, indicator: &str) -> Option<&'r str> {
    let i = rules.indicator_index(indicator)?;
    Some(rules.categories[rules.indicators[i].category].id.as_str())
}

/// The JSON Lines records of `text` with their 0-based line numbers, refusing any made with
/// other rules than `rules`.
fn records<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
    rules: &RuleSet,
    kind: &str,
    version: impl Fn(&T) -> &str,
) -> Result<Vec<(usize, T)>, EvalError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: T = serde_json::from_str(line).map_err(|e| input_error(file, n + 1, e.to_string()))?;
        if version(&r) != rules.version {
            return Err(input_error(
                file,
                n + 1,
                format!(
                    "{kind} from rules {} but the rules given are {}: score {kind}s with the rules that made them",
                    version(&r),
                    rules.version
                ),
            ));
        }
        out.push((n, r));
    }
    Ok(out)
}

/// vigil's alerts as daily signals: on each day, the level (1 blue .. 4 red) each region is at in
/// its most alarming scope, carried from the record that set it until the next record of that
/// region and scope. The category is that of the record's top contributing indicator. With
/// `scope`, only that scope's records count (`evidence`: the evidence alarms alone).
pub fn from_alerts(
    file: &str,
    text: &str,
    rules: &RuleSet,
    first_day: i64,
    last_day: i64,
    scope: Option<&str>,
) -> Result<Signals, EvalError> {
    let regions: Vec<u32> = (0..rules.regions.len() as u32).filter(|&r| rules.raises_alerts(r as usize)).collect();
    let mut sig = Signals::new("vigil-alerts", first_day, last_day, regions);
    // (region, scope) -> changes (day, level rank, category), in file order.
    type Change = (i64, f64, Option<String>);
    let mut changes: BTreeMap<(u32, String), Vec<Change>> = BTreeMap::new();
    for (n, a) in records::<AlertRecord>(file, text, rules, "alert", |a| &a.rules_version)? {
        let region = rules
            .regions
            .lookup(&a.region)
            .ok_or_else(|| input_error(file, n + 1, format!("unknown region `{}`", a.region)))?;
        let day = record_day(rules, &a.date, &a.window_end)
            .ok_or_else(|| input_error(file, n + 1, "the record has no readable date or window_end"))?;
        let category =
            a.top_contributors.first().and_then(|c| indicator_category(rules, &c.indicator)).map(str::to_string);
        if scope.is_some_and(|s| s != a.scope) {
            continue;
        }
        let rank = a.level.map_or(0.0, |l| l.rank() as f64);
        changes.entry((region, a.scope.clone())).or_default().push((day, rank, category));
    }
    // Below a daily cadence a level changed on day d was still held for part of d.
    let sub_daily = rules.evaluate_every.0 < vigil_model::time::DAY;
    for ((region, _), list) in changes {
        for (k, (day, rank, category)) in list.iter().enumerate() {
            let until = list.get(k + 1).map_or(last_day + 1, |n| n.0 + i64::from(sub_daily));
            if *rank > 0.0 {
                for d in *day..until.max(day + 1) {
                    sig.add(region, d, category.as_deref(), *rank);
                }
            }
        }
    }
    Ok(sig)
}

/// vigil's full score records as daily signals: every indicator's score, under the category of
/// the indicator. Needs records written with `--scores full`.
pub fn from_scores(
    file: &str,
    text: &str,
    rules: &RuleSet,
    first_day: i64,
    last_day: i64,
) -> Result<Signals, EvalError> {
    let mut scored = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (n, s) in records::<ScoreRecord>(file, text, rules, "score", |s| &s.rules_version)? {
        let region = rules
            .regions
            .lookup(&s.region)
            .ok_or_else(|| input_error(file, n + 1, format!("unknown region `{}`", s.region)))?;
        if s.indicators.is_empty() {
            return Err(input_error(file, n + 1, "score record without indicators: replay with `--scores full`"));
        }
        seen.insert(region);
        scored.push((n, region, s));
    }
    let mut sig = Signals::new("vigil-indicators", first_day, last_day, seen.into_iter().collect());
    for (n, region, s) in scored {
        let day =
            record_day(rules, &s.date, &s.window_end).ok_or_else(|| input_error(file, n + 1, "no readable date"))?;
        for i in &s.indicators {
            if let Some(score) = i.score {
                sig.add(region, day, indicator_category(rules, &i.indicator), score);
            }
        }
    }
    Ok(sig)
}

/// A baseline's statistics (`method,region,category,date,stat`, as `baselines.R` writes them),
/// the rows of `method` only.
pub fn from_baseline_csv(
    file: &str,
    text: &str,
    rules: &RuleSet,
    method: &str,
    first_day: i64,
    last_day: i64,
) -> Result<Signals, EvalError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == "method,region,category,date,stat" => {}
        _ => return Err(input_error(file, 1, "expected the header `method,region,category,date,stat`")),
    }
    let mut rows = Vec::new();
    let mut regions = std::collections::BTreeSet::new();
    for (n, line) in lines {
        let mut f = line.split(',');
        let (Some(m), Some(r), Some(c), Some(d), Some(v)) = (f.next(), f.next(), f.next(), f.next(), f.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(input_error(file, n + 1, "expected 5 fields"));
        };
        if m != method {
            continue;
        }
        let region =
            rules.regions.lookup(r).ok_or_else(|| input_error(file, n + 1, format!("unknown region `{r}`")))?;
        let day = parse_day(d).ok_or_else(|| input_error(file, n + 1, format!("bad date `{d}`")))?;
        let stat = match v.trim() {
            "NA" | "NaN" | "" => continue,
            "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().map_err(|_| input_error(file, n + 1, format!("bad stat `{v}`")))?,
        };
        regions.insert(region);
        rows.push((region, day, c.to_string(), stat));
    }
    if rows.is_empty() {
        return Err(input_error(file, 1, format!("no rows for method `{method}`")));
    }
    let mut sig = Signals::new(method, first_day, last_day, regions.into_iter().collect());
    for (region, day, c, stat) in rows {
        sig.add(region, day, Some(&c), stat);
    }
    Ok(sig)
}
