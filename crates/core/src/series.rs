//! One indicator's evaluation at an hour boundary: every scored region's value read from its
//! window, its history entry written and, where anything can have changed, its score.
//!
//! Indicators share nothing while they are evaluated: each has its own bins, history, detector
//! states and bookkeeping, and reads the rules only.

use vigil_rules::{Indicator, RuleSet};
use vigil_score::normalise;
use vigil_score::quiet::Quiet;
use vigil_window::Running;
use vigil_window::measure::{self, Layout};
use vigil_window::running::Mode;

use crate::deferred::{Deferred, every, ones};
use crate::pipeline::{IndicatorState, Latest, UnitCount};

/// What the evaluations at one boundary add to the pipeline's counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    /// Indicators evaluated.
    pub due: u64,
    pub kept: u64,
    pub slept: u64,
    pub skipped: u64,
}

impl Tally {
    fn sum(a: Tally, b: Tally) -> Tally {
        Tally { due: a.due + b.due, kept: a.kept + b.kept, slept: a.slept + b.slept, skipped: a.skipped + b.skipped }
    }
}

/// The evaluation's scratch, reused across evaluations (nothing is allocated once it has
/// grown to the rule set's size). Every use overwrites what it reads.
#[derive(Debug)]
pub(crate) struct Scratch {
    /// One bit per scored slot: the series to look at.
    visit: Vec<u64>,
    lanes: Vec<i64>,
    floats: Vec<f64>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch { visit: Vec::new(), lanes: vec![0; measure::MAX_LANES], floats: Vec::with_capacity(2048) }
    }
}

/// One indicator's part of the pipeline, borrowed for an evaluation.
pub(crate) struct Series<'a> {
    pub ind: &'a Indicator,
    pub layout: &'a Layout,
    pub st: &'a mut IndicatorState,
    pub run: Option<&'a mut Running>,
    pub unit: Option<UnitCount>,
    pub defer: Option<&'a mut Deferred>,
    pub quiet: Option<&'a mut Quiet>,
}

/// Evaluates every indicator of `rules` due at boundary `b` (its hop divides `b`). `unread`
/// marks the scored slots nothing reads (see [`crate::deferred`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate_due(
    rules: &RuleSet,
    b: i64,
    regions: usize,
    unread: &[bool],
    layouts: &[Layout],
    states: &mut [IndicatorState],
    runs: &mut [Option<Running>],
    units: &[Option<UnitCount>],
    deferred: &mut [Option<Deferred>],
    quiet: &mut [Option<Quiet>],
    scratch: &mut Scratch,
) -> Tally {
    let mut tally = Tally::default();
    for (i, ind) in rules.indicators.iter().enumerate() {
        if b.rem_euclid(ind.hop.0) != 0 {
            continue;
        }
        let series = Series {
            ind,
            layout: &layouts[i],
            st: &mut states[i],
            run: runs[i].as_mut(),
            unit: units[i],
            defer: deferred[i].as_mut(),
            quiet: quiet[i].as_mut(),
        };
        tally = Tally::sum(tally, evaluate(series, b, regions, unread, scratch));
    }
    tally
}

/// One indicator at boundary `b`.
fn evaluate(s: Series<'_>, b: i64, regions: usize, unread: &[bool], scratch: &mut Scratch) -> Tally {
    let Series { ind, layout, st, mut run, unit, mut defer, mut quiet } = s;
    let mut tally = Tally { due: 1, ..Tally::default() };
    let (first, last) = layout.window_of(b);
    let mode = run.as_ref().map_or(Mode::Full, |r| r.begin(&st.bins, first, last));
    let visit = &mut scratch.visit;
    // An unread series (scored only when read, `crate::deferred`) whose window and unit
    // neither gained nor lost a bin with events, and had no event counted, has the value and
    // history entry it had: it is passed over, and only the rest are looked at, one by one.
    match (mode, defer.as_deref_mut()) {
        (Mode::Slide { first: f, last: l, .. }, Some(d)) if st.hist.evals > 0 => {
            let (passed, stale) = d.pass_over(visit, |held| {
                st.bins.mark_held(f, first - 1, held);
                st.bins.mark_held(l + 1, last, held);
                if let Some(u) = unit {
                    st.bins.mark_held(l - u.bins + 1, last - u.bins, held);
                }
            });
            st.hist.repeat_previous();
            tally.skipped += stale;
            tally.kept += passed;
            tally.slept += passed;
        }
        (_, d) => {
            if let Some(d) = d {
                d.untouch();
            }
            every(regions, visit);
        }
    }
    for r in ones(visit) {
        if let Some(q) = quiet.as_deref_mut()
            && q.asleep(r, st.hist.evals)
        {
            // Its window holds no event and its inputs are as they were: only its (unchanged)
            // entry is written, and a unit count of an empty window.
            st.hist.set(r, &q.entry(r));
            if let Some(u) = unit {
                st.hist.set_at(r, u.at, 0.0);
            }
            tally.kept += 1;
            tally.slept += 1;
            // One nothing reads sleeps through changes its score reads: its result is this
            // evaluation's, stale even if computed since it fell asleep.
            if unread[r]
                && let Some(d) = defer.as_deref_mut()
            {
                d.mark(r);
            }
            continue;
        }
        let wv = match run.as_deref_mut() {
            Some(run) => {
                run.read(&st.bins, r, mode, first, last);
                run.value(ind, layout, &st.bins, r, b)
            }
            None => measure::extract(ind, layout, &st.bins, r, b, &mut scratch.lanes),
        };
        st.hist.set(r, &normalise::history_entry(wv.value, wv.support));
        if let Some(u) = unit {
            // The alarm reads this count in its own units: the newest unit's count.
            let mut n = 0i64;
            st.bins.each_in(r, last - u.bins + 1, last, |s| n = n.saturating_add(s[0]));
            st.hist.set_at(r, u.at, n as f32);
        }
        if unread[r]
            && let (Some(d), Some(q)) = (defer.as_deref_mut(), quiet.as_deref_mut())
        {
            // Nothing reads its score before it is computed as of its latest evaluation
            // (`crate::deferred`): its result is stale, whatever changed, and it sleeps as soon
            // as its window is empty, until an event wakes it.
            q.remember(r, wv.value, wv.support);
            tally.skipped += u64::from(d.mark(r));
            if st.bins.newest(r) < first - layout.lookback_bins {
                q.sleep_until_woken(r, st.hist.evals);
            }
            continue;
        }
        if let Some(q) = quiet.as_deref_mut()
            && q.unchanged(r, wv.value, wv.support, st.hist.evals)
        {
            tally.kept += 1;
            // No bin its value reads holds an event: nothing changes until one is counted (which
            // wakes it) or a changed entry reaches a lag its score reads, so it is not even
            // looked at till then.
            if st.bins.newest(r) < first - layout.lookback_bins {
                q.sleep(r, st.hist.evals);
            }
            continue;
        }
        let s = normalise::score(ind, &st.hist, r, wv.value, wv.support, &mut st.det[r], &mut scratch.floats);
        st.latest[r] = Latest { value: s.value, expected: s.expected, score: s.score, support: wv.support };
    }
    st.hist.advance();
    if let Some(run) = run {
        run.end(first, last);
    }
    tally
}
