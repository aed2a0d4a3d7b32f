//! Turning pipeline state into the records analysts read: score records and self-explaining
//! alerts (composite, domain scores, and the indicators that contributed most, each with its
//! value, expected value and score). Numbers are rounded so that outputs are short and stable.

use std::collections::BTreeMap;

use vigil_alert::Transition;
use vigil_model::record::{AlertRecord, IndicatorScore, Names, ScoreRecord};
use vigil_model::time::format_utc;
use vigil_model::{Level, Ts};
use vigil_rules::RuleSet;
use vigil_score::rollup::Rollup;

use crate::pipeline::{IndicatorState, Latest};

/// The evaluation period a record describes: UTC instants of its start and end, and the local
/// data day when the cadence is a day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: Ts,
    pub end: Ts,
    pub date: Option<String>,
}

impl Period {
    /// The period of the evaluation at local boundary `b` under the rule set's cadence.
    pub fn at(rules: &RuleSet, b: i64) -> Period {
        let every = rules.evaluate_every.0;
        let zone = &rules.zone;
        let date = (every == vigil_model::time::DAY).then(|| vigil_model::Zone::date_of_local(b - 1));
        Period { start: zone.utc(b - every), end: zone.utc(b), date }
    }

    /// True for a period wholly inside time skipped by the clocks.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The published period whose end is the instant `t` (a record's window end): the earliest
    /// boundary passing at `t`, since a later one passing at the same instant has no length.
    pub fn ending_at(rules: &RuleSet, t: Ts) -> Period {
        let every = rules.evaluate_every.0;
        let zone = &rules.zone;
        let mut b = zone.local_floor(t).div_euclid(every) * every;
        while b > zone.local_floor(t) - vigil_model::time::DAY && zone.utc(b - every) == t {
            b -= every;
        }
        Period::at(rules, b)
    }
}

/// How many indicators an alert names.
pub const TOP_CONTRIBUTORS: usize = 5;

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    let r = (x * f).round() / f;
    if r == 0.0 { 0.0 } else { r }
}

/// A digest of what a score record says besides its period (0 is never returned: it marks
/// "nothing written yet"). Over the record's JSON, so it covers exactly what a reader sees.
pub(crate) fn content_digest(r: &ScoreRecord) -> u64 {
    let content =
        (&r.region, &r.level, &r.rules_version, r.composite, r.grade, &r.domains, &r.categories, &r.indicators);
    let json = serde_json::to_string(&content).expect("a score record serialises");
    vigil_rules::decode::fnv1a(&json).max(1)
}

/// The lowest indicator score listed as a reason for an alert (z = 1).
const MIN_REASON_SCORE: f64 = 25.0;

fn score(x: Option<f64>) -> Option<f64> {
    x.map(|v| round(v, 1))
}

fn value(x: Option<f64>) -> Option<f64> {
    x.map(|v| round(v, 3))
}

fn indicator_score(rules: &RuleSet, i: usize, l: Latest) -> IndicatorScore {
    let ind = &rules.indicators[i];
    // Small cells are never published as values (the statistical-disclosure threshold rule).
    let v = if l.support < ind.min_support as u64 { None } else { l.value };
    IndicatorScore {
        indicator: ind.id.clone(),
        name: None,
        value: value(v),
        expected: value(l.expected),
        score: score(l.score),
    }
}

fn domains(rules: &RuleSet, roll: &Rollup) -> BTreeMap<String, Option<f64>> {
    rules.domains.iter().zip(&roll.domains).map(|(d, s)| (d.id.clone(), score(*s))).collect()
}

/// `r` is the region's index; `full`, for a record that lists every
/// indicator, gives indicator `i`'s latest result for the region.
pub(crate) fn score_record(
    rules: &RuleSet,
    r: usize,
    p: &Period,
    roll: &Rollup,
    grade: Option<Level>,
    full: Option<&dyn Fn(usize) -> Latest>,
) -> ScoreRecord {
    ScoreRecord {
        region: rules.regions.codes[r].clone(),
        level: rules.regions.level_name(r as u32).to_string(),
        window_start: format_utc(p.start),
        window_end: format_utc(p.end),
        date: p.date.clone(),
        rules_version: rules.version.clone(),
        composite: score(roll.composite),
        grade,
        domains: domains(rules, roll),
        categories: rules.categories.iter().zip(&roll.categories).map(|(c, s)| (c.id.clone(), score(*s))).collect(),
        indicators: full.map_or_else(Vec::new, |latest| {
            (0..rules.indicators.len()).map(|i| indicator_score(rules, i, latest(i))).collect()
        }),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn alert_record(
    rules: &RuleSet,
    (r, slot): (usize, usize),
    p: &Period,
    scope: &str,
    domain: Option<usize>,
    scope_score: Option<f64>,
    tr: Transition,
    roll: &Rollup,
    st: &[IndicatorState],
) -> AlertRecord {
    // Rank indicators by their weighted contribution to the scope's score; ties by id so the
    // order is stable. What raises a level must be raised itself: on `opened` and `escalated`
    // records only indicators at least one standard deviation above their expectation (score
    // 25 on the probit scale u = 25 z) are reasons, since a score of 1.5 explains nothing; a
    // level set by an override or a floor may then list none (its `reason` says why). Falling
    // records list the indicators as they stand.
    let rising =
        matches!(tr.event, vigil_model::record::AlertEvent::Opened | vigil_model::record::AlertEvent::Escalated);
    let band = if rising { MIN_REASON_SCORE } else { f64::MIN_POSITIVE };
    let mut ranked: Vec<(f64, usize)> = rules
        .indicators
        .iter()
        .enumerate()
        .filter(|(_, ind)| domain.is_none_or(|d| ind.domain == d))
        .filter_map(|(i, ind)| st[i].latest[slot].score.filter(|s| *s >= band).map(|s| (s * ind.global_weight, i)))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(rules.indicators[a.1].id.cmp(&rules.indicators[b.1].id)));
    AlertRecord {
        domains: domains(rules, roll),
        top_contributors: ranked
            .iter()
            .take(TOP_CONTRIBUTORS)
            .map(|&(_, i)| {
                let n = &rules.indicators[i].name;
                IndicatorScore {
                    name: Some(Names { zh: n.zh.clone(), en: n.en.clone() }),
                    ..indicator_score(rules, i, st[i].latest[slot])
                }
            })
            .collect(),
        ..alert_head(rules, r, p, scope, score(scope_score), &tr)
    }
}

/// An alert record's lifecycle, region and period fields, with no reasons yet: what every
/// alert of a region and scope carries, whatever raised it.
pub(crate) fn alert_head(
    rules: &RuleSet,
    r: usize,
    p: &Period,
    scope: &str,
    score: Option<f64>,
    tr: &Transition,
) -> AlertRecord {
    let code = &rules.regions.codes[r];
    AlertRecord {
        alert_id: format!("{code}:{scope}:{}", format_utc(tr.episode_start)),
        seq: tr.seq,
        event: tr.event,
        level: tr.level,
        previous_level: tr.previous,
        region: code.clone(),
        region_name: rules.regions.names[r].clone(),
        region_level: rules.regions.level_name(r as u32).to_string(),
        scope: scope.to_string(),
        score,
        window_start: format_utc(p.start),
        window_end: format_utc(p.end),
        date: p.date.clone(),
        rules_version: rules.version.clone(),
        reason: tr.reason.as_str().to_string(),
        domains: BTreeMap::new(),
        top_contributors: Vec::new(),
        top_regions: Vec::new(),
        evidence: None,
        response: tr.level.map(|l| &rules.grading.spec(l).response).filter(|r| !r.is_empty()).cloned(),
        deadline: tr.level.and_then(|l| rules.grading.spec(l).deadline).map(|d| format_utc(p.end + d.0)),
        floor: None,
    }
}
