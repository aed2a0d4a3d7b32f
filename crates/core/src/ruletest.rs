//! `vigil rules test`: runs each indicator's inline test cases through a fresh pipeline and
//! compares the indicator's value, score or grey state at the stated evaluation time.

use std::sync::Arc;

use vigil_model::Event;
use vigil_rules::RuleSet;
use vigil_rules::decode::{Decoder, SourceHint};

use crate::{Options, Pipeline, ScoreDetail, VecOutput};

/// The result of one inline test.
#[derive(Clone, Debug, PartialEq)]
pub struct TestOutcome {
    pub indicator: String,
    /// `file:line:col` of the test in the rule files.
    pub origin: String,
    /// `None` when the test passed; otherwise what differed.
    pub failure: Option<String>,
}

/// Runs every inline test of the rule set.
pub fn run(rules: &Arc<RuleSet>) -> Vec<TestOutcome> {
    let mut out = Vec::new();
    for (i, ind) in rules.indicators.iter().enumerate() {
        for t in &ind.tests {
            let failure = run_one(rules, i, t).err();
            out.push(TestOutcome { indicator: ind.id.clone(), origin: t.origin.clone(), failure });
        }
    }
    out
}

fn run_one(rules: &Arc<RuleSet>, i: usize, t: &vigil_rules::IndicatorTest) -> Result<(), String> {
    let ind = &rules.indicators[i];
    let text = rules.fixtures.get(&t.events).ok_or_else(|| format!("fixture `{}` is missing", t.events))?;
    let decoder = Decoder::new(rules);
    let mut events = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut ev = Event::default();
        decoder.decode(SourceHint::Default(ind.source), line.as_bytes(), &mut ev).map_err(|r| {
            format!("{}:{}: fixture event rejected ({}): {}", t.events, n + 1, r.code.as_str(), r.detail)
        })?;
        events.push(ev);
    }
    events.sort_by_key(|e| e.ts);
    let region = rules.regions.lookup(&t.region).ok_or_else(|| format!("unknown region `{}`", t.region))? as usize;
    let mut p = Pipeline::new(
        Arc::clone(rules),
        Options {
            scores: ScoreDetail::None,
            score_levels: crate::ScoreLevels::NONE,
            score_filter: crate::ScoreFilter::All,
            score_every: None,
        },
    );
    let mut sink = VecOutput::default();
    if events.last().is_some_and(|e| e.ts >= t.at) {
        return Err("every fixture event must be before `at`".into());
    }
    // The stream is taken to be live from before the window under test, so that the window is
    // fully observed; then time follows the fixture's events, as it would on a live stream.
    let start = t.at - ind.window.0 - ind.lag.0 - ind.hop.0;
    p.advance(events.first().map_or(start, |e| e.ts.min(start)), &mut sink);
    for ev in &events {
        p.advance(ev.ts, &mut sink);
        p.ingest(ev);
    }
    p.advance(t.at, &mut sink);
    let (got, _support) = p.latest(i, region);
    let mut problems = Vec::new();
    if let Some(v) = t.expect_value {
        match got.value {
            Some(g) if (g - v).abs() <= 1e-6 * v.abs().max(1.0) => {}
            other => problems.push(format!("value: expected {v}, got {}", show(other))),
        }
    }
    if let Some(min) = t.score_min
        && !got.score.is_some_and(|s| s >= min)
    {
        problems.push(format!("score: expected at least {min}, got {}", show(got.score)));
    }
    if let Some(max) = t.score_max
        && !got.score.is_some_and(|s| s <= max)
    {
        problems.push(format!("score: expected at most {max}, got {}", show(got.score)));
    }
    if let Some(grey) = t.grey
        && grey != got.score.is_none()
    {
        problems.push(format!("grey: expected {grey}, got {}", got.score.is_none()));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "nothing (grey or suppressed)".to_string(), |x| format!("{x}"))
}
