//! Ground truth: the surges injected into a stream (`truth.json`, written by
//! `benches/detection/prepare.py`), checked against the rule set that scores the stream.

use std::collections::HashSet;

use serde::Deserialize;
use vigil_rules::RuleSet;

use crate::{EvalError, input_error, parse_day};

#[derive(Debug, Deserialize)]
struct RawTruth {
    stream: String,
    start: String,
    end: String,
    surges: Vec<RawSurge>,
}

#[derive(Debug, Deserialize)]
struct RawSurge {
    id: String,
    regions: Vec<String>,
    category: String,
    #[serde(default)]
    also: Vec<String>,
    start: String,
    days: u32,
    #[serde(default)]
    shape: String,
    bucket: String,
    #[serde(default)]
    added: Vec<u32>,
}

/// One injected surge.
#[derive(Clone, Debug, PartialEq)]
pub struct Surge {
    pub id: String,
    /// Region indices of the rule set (one, or 2-3 siblings for a spatial surge).
    pub regions: Vec<u32>,
    pub category: String,
    /// Other categories the surge's events count in (a synthetic incident's police calls,
    /// petitions and posts): an alarm naming one of them is localised too.
    pub also: Vec<String>,
    /// First and last day (days since 1970-01-01, local calendar days).
    pub first: i64,
    pub last: i64,
    pub shape: String,
    pub bucket: String,
    /// Events added on each day.
    pub added: Vec<u32>,
}

impl Surge {
    /// Whether an alarm naming `category` names this surge's category (its own or one of
    /// `also`).
    pub fn names(&self, category: &str) -> bool {
        self.category == category || self.also.iter().any(|c| c == category)
    }
}

/// The truth of one stream: its span and its surges.
#[derive(Clone, Debug, PartialEq)]
pub struct Truth {
    pub stream: String,
    pub first_day: i64,
    pub last_day: i64,
    /// The surges scored.
    pub surges: Vec<Surge>,
    /// Surges outside the measured span ([`Truth::within`]) that still reach into it: not
    /// scored, but their days (and grace days) are no false alerts either.
    pub context: Vec<Surge>,
}

impl Truth {
    /// The truth restricted to the days `from..=to` (local days since 1970-01-01): the span
    /// narrowed, and only the surges that lie wholly inside it scored; the others stay as
    /// context, so alarms on their days inside the span are not counted as false. Measuring on a
    /// later period than the one a detector was calibrated on.
    pub fn within(mut self, from: Option<i64>, to: Option<i64>) -> Truth {
        if let Some(f) = from {
            self.first_day = self.first_day.max(f);
        }
        if let Some(t) = to {
            self.last_day = self.last_day.min(t);
        }
        let (a, b) = (self.first_day, self.last_day);
        let (inside, outside): (Vec<Surge>, Vec<Surge>) =
            std::mem::take(&mut self.surges).into_iter().partition(|s| s.first >= a && s.last <= b);
        self.surges = inside;
        self.context.extend(outside);
        self
    }
}

/// The line of `text` on which the surge with `id` is declared (1 when not found).
fn line_of(text: &str, id: &str) -> usize {
    let quoted = format!("\"{id}\"");
    text.lines().position(|l| l.contains(&quoted)).map_or(1, |i| i + 1)
}

/// Parses and checks a truth file: every surge's regions and category must exist in `rules`
/// (categories are the ids of the index's categories), its days must lie in the stream's span,
/// and no two surges may overlap in region, category and time. Every problem is refused with
/// the line of the surge.
pub fn parse_truth(file: &str, text: &str, rules: &RuleSet) -> Result<Truth, Vec<EvalError>> {
    let raw: RawTruth = serde_json::from_str(text).map_err(|e| vec![input_error(file, e.line(), e.to_string())])?;
    let mut errs = Vec::new();
    let (Some(first_day), Some(last_day)) = (parse_day(&raw.start), parse_day(&raw.end)) else {
        return Err(vec![input_error(file, 1, "`start` and `end` must be dates YYYY-MM-DD")]);
    };
    let categories: HashSet<&str> = rules.categories.iter().map(|c| c.id.as_str()).collect();
    let mut ids = HashSet::new();
    let mut surges = Vec::with_capacity(raw.surges.len());
    for s in raw.surges {
        let line = line_of(text, &s.id);
        let mut bad = |m: String| errs.push(input_error(file, line, format!("surge `{}`: {m}", s.id)));
        if !ids.insert(s.id.clone()) {
            bad("the id is used twice".into());
        }
        let mut regions = Vec::new();
        for r in &s.regions {
            match rules.regions.lookup(r) {
                Some(i) => regions.push(i),
                None => bad(format!("unknown region `{r}` (not in the rule set's regions.csv)")),
            }
        }
        if s.regions.is_empty() {
            bad("names no region".into());
        }
        for c in std::iter::once(&s.category).chain(&s.also) {
            if !categories.contains(c.as_str()) {
                let mut known: Vec<&str> = categories.iter().copied().collect();
                known.sort();
                bad(format!("unknown category `{c}` (the rule set's categories: {})", known.join(", ")));
            }
        }
        let Some(first) = parse_day(&s.start) else {
            bad(format!("start `{}` is not a date YYYY-MM-DD", s.start));
            continue;
        };
        if s.days == 0 || s.days > 60 {
            bad(format!("days = {} must be 1 to 60", s.days));
            continue;
        }
        let last = first + s.days as i64 - 1;
        if first < first_day || last > last_day {
            bad(format!(
                "{} .. {} lies outside the stream ({} .. {})",
                s.start,
                crate::format_day(last),
                raw.start,
                raw.end
            ));
        }
        if !s.added.is_empty() && s.added.len() != s.days as usize {
            bad(format!("`added` has {} days, `days` is {}", s.added.len(), s.days));
        }
        surges.push(Surge {
            id: s.id,
            regions,
            category: s.category,
            also: s.also,
            first,
            last,
            shape: s.shape,
            bucket: s.bucket,
            added: s.added,
        });
    }
    // Overlaps: the same region and category at the same time would make one surge's events
    // count for the other.
    for (i, a) in surges.iter().enumerate() {
        for b in &surges[..i] {
            if a.category == b.category
                && a.first <= b.last
                && b.first <= a.last
                && a.regions.iter().any(|r| b.regions.contains(r))
            {
                errs.push(input_error(
                    file,
                    line_of(text, &a.id),
                    format!("surge `{}` overlaps surge `{}` in region, category and time", a.id, b.id),
                ));
            }
        }
    }
    if errs.is_empty() {
        Ok(Truth { stream: raw.stream, first_day, last_day, surges, context: Vec::new() })
    } else {
        Err(errs)
    }
}
