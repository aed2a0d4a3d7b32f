//! A pipeline's scope: the scored regions it holds state for. A scale-out task owns some
//! districts (or streets) and everything below them; its state, and so its memory and its
//! checkpoints, holds only those regions' slots, not the whole city's (the levels above come
//! from the roll-up). The scope is not saved: it is part of the layout fingerprint, so a
//! snapshot restores only with the scope it was taken with, and a task whose regions changed
//! rebuilds instead of reading another task's slots as its own.

use vigil_rules::RuleSet;

use crate::pipeline::{IndicatorState, State};

/// The regions whose level is scored and that `scope` marks (all with `None`): the coarsest
/// level first, each level in region order. A scored slot's place in every ring row follows
/// this order, so the regions that alert or publish (the coarser levels), read at every
/// evaluation, lie side by side in a few cache lines instead of one line each among the grid
/// cells of their branches (snapshot format 9; [`scored_in_region_order`] was the order
/// before).
pub(crate) fn scored_in(rules: &RuleSet, scope: Option<&[bool]>) -> Vec<u32> {
    let mut scored = scored_in_region_order(rules, scope);
    scored.sort_by_key(|&r| (rules.regions.levels[r as usize], r));
    scored
}

/// [`scored_in`] in region order: the slots of snapshots before format 9.
pub(crate) fn scored_in_region_order(rules: &RuleSet, scope: Option<&[bool]>) -> Vec<u32> {
    (0..rules.regions.len() as u32)
        .filter(|&r| rules.is_scored(r as usize))
        .filter(|&r| scope.is_none_or(|s| s.get(r as usize).copied().unwrap_or(false)))
        .collect()
}

/// The layout fingerprint of a state holding the scored regions `scored`: the rules' own when
/// they are all of them (an unscoped pipeline, or a task that owns everything), otherwise the
/// rules' combined with the regions' codes.
pub(crate) fn layout(rules: &RuleSet, scored: &[u32]) -> u64 {
    let base = rules.layout_fingerprint();
    if scored.len() == scored_in(rules, None).len() {
        return base;
    }
    let mut codes = String::new();
    for &r in scored {
        codes.push_str(&rules.regions.codes[r as usize]);
        codes.push('\n');
    }
    base ^ vigil_rules::decode::fnv1a(&codes).rotate_left(1)
}

/// The layout fingerprint of a pipeline of `scope` (see [`crate::Pipeline::scoped`]).
pub(crate) fn layout_of(rules: &RuleSet, scope: Option<&[bool]>) -> u64 {
    layout(rules, &scored_in(rules, scope))
}

/// The state of the slots `from` names, in that order (`None`: a slot the state did not hold,
/// which starts empty), under layout fingerprint `layout`. Everything not kept per region (event
/// time, counters, de-duplication tables, weekday factors) carries over as it is.
pub(crate) fn select(state: &State, from: &[Option<usize>], layout: u64) -> State {
    fn pick<T: Clone + Default>(v: &[T], from: &[Option<usize>]) -> Vec<T> {
        from.iter().map(|s| s.map_or_else(T::default, |d| v[d].clone())).collect()
    }
    let grades = from
        .iter()
        .map(|s| match s {
            Some(d) => state.grades[*d].clone(),
            None => vec![Default::default(); 1 + state.domains.len()],
        })
        .collect();
    State {
        rules_version: state.rules_version.clone(),
        layout,
        fingerprints: state.fingerprints.clone(),
        domains: state.domains.clone(),
        indicators: state
            .indicators
            .iter()
            .map(|st| IndicatorState {
                bins: st.bins.select(from),
                hist: st.hist.select(from),
                det: pick(&st.det, from),
                latest: pick(&st.latest, from),
            })
            .collect(),
        grades,
        evidence: pick(&state.evidence, from),
        written: pick(&state.written, from),
        cuts: state.cuts.iter().map(|c| pick(c, from)).collect(),
        factors: state.factors.clone(),
        cut_ids: state.cut_ids.clone(),
        seen: state.seen.clone(),
        watermark: state.watermark,
        last_eval: state.last_eval,
        first_ts: state.first_ts,
        counters: state.counters.clone(),
    }
}
