//! Snapshots of the pipeline's state: everything needed to continue exactly where it stopped,
//! tied to the rules version it was computed with.

use std::sync::Arc;

use vigil_rules::RuleSet;

use crate::pipeline::{Carried, Options, Pipeline, State};
use crate::scope;

/// Format version of snapshots; bumped whenever the layout of the state changes.
pub const SNAPSHOT_VERSION: u32 = 9;

/// The oldest format still read. 8: the scored slots in region order, not coarsest level first
/// (`crate::scope::scored_in`), laid out anew when restored ([`reorder`]); 7: besides, each
/// indicator's window bins region-major ([`vigil_window::Bins::from_region_major`]).
const OLDEST_SNAPSHOT_VERSION: u32 = 7;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not readable: {0}")]
    Corrupt(String),
    #[error("snapshot format {found} is not one this version reads ({OLDEST_SNAPSHOT_VERSION} to {SNAPSHOT_VERSION})")]
    Version { found: u32 },
    #[error("snapshot was taken with rules {found}, but rules {expected} are loaded")]
    RulesMismatch { found: String, expected: String },
    #[error("snapshot does not fit the rules it names: {0} (a bug, or a file edited by hand; start from the topics)")]
    Shape(String),
    #[error("snapshot could not be written: {0} (a bug)")]
    Write(String),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    version: u32,
    state: State,
}

/// Reads a snapshot of this format or of an older one still read, laid out as this format lays
/// out the state of `rules` (and `scope`, see [`reorder`]).
fn read(bytes: &[u8], rules: &RuleSet, scope: Option<&[bool]>) -> Result<State, SnapshotError> {
    let env: Envelope = postcard::from_bytes(bytes).map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
    match env.version {
        SNAPSHOT_VERSION => Ok(env.state),
        v @ OLDEST_SNAPSHOT_VERSION..SNAPSHOT_VERSION => {
            let mut state = env.state;
            if v == 7 {
                for st in &mut state.indicators {
                    st.bins = std::mem::take(&mut st.bins).from_region_major();
                }
            }
            Ok(reorder(rules, scope, state))
        }
        found => Err(SnapshotError::Version { found }),
    }
}

/// A state of a format before 9, whose scored slots lie in region order, with its slots in the
/// order of [`scope::scored_in`] (coarsest level first) and the layout fingerprint that order
/// gives: when it holds the loaded rules' regions, all of them or `scope`'s. A state of other
/// regions is left as it is: adoption finds its layout changed, as it did before.
fn reorder(rules: &RuleSet, scope: Option<&[bool]>, state: State) -> State {
    let old_all = scope::scored_in_region_order(rules, None);
    let scoped = scope.map(|s| scope::scored_in_region_order(rules, Some(s)));
    let (old, new) = if state.layout == scope::layout(rules, &old_all) {
        (old_all, scope::scored_in(rules, None))
    } else if let (Some(s), Some(old)) = (scope, scoped)
        && state.layout == scope::layout(rules, &old)
    {
        (old, scope::scored_in(rules, Some(s)))
    } else {
        return state;
    };
    let at: std::collections::HashMap<u32, usize> = old.iter().enumerate().map(|(d, &r)| (r, d)).collect();
    let from: Vec<Option<usize>> = new.iter().map(|r| at.get(r).copied()).collect();
    scope::select(&state, &from, scope::layout(rules, &new))
}

impl Pipeline {
    /// Serialises the whole scoring state, computing the stale results of the regions nothing
    /// reads first (`crate::deferred`): a snapshot holds the state as scoring every series on
    /// time leaves it, so it restores to the same results.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, SnapshotError> {
        self.settle();
        #[derive(serde::Serialize)]
        struct Borrowed<'a> {
            version: u32,
            state: &'a State,
        }
        postcard::to_allocvec(&Borrowed { version: SNAPSHOT_VERSION, state: &self.state })
            .map_err(|e| SnapshotError::Write(e.to_string()))
    }

    /// Rebuilds a pipeline from a snapshot taken with the same rules and the same `scope`
    /// ([`Pipeline::scoped`]); with a scope, a snapshot of every region (taken before the
    /// pipeline was scoped) is restored too and narrowed to the scope.
    pub fn restore(
        rules: Arc<RuleSet>,
        options: Options,
        scope: Option<&[bool]>,
        bytes: &[u8],
    ) -> Result<Pipeline, SnapshotError> {
        let state = read(bytes, &rules, scope)?;
        if state.rules_version != rules.version {
            return Err(SnapshotError::RulesMismatch { found: state.rules_version, expected: rules.version.clone() });
        }
        resume(rules, options, scope, state)
    }

    /// Rebuilds a pipeline from a snapshot taken with the same rules or with others; with
    /// others, what can be is carried over as on a rule reload, and the report says what (also
    /// when the snapshot holds other regions than `scope`: then nothing is, `layout_changed`).
    pub fn restore_adopting(
        rules: Arc<RuleSet>,
        options: Options,
        scope: Option<&[bool]>,
        bytes: &[u8],
    ) -> Result<(Pipeline, Option<Carried>), SnapshotError> {
        let state = read(bytes, &rules, scope)?;
        // A task's checkpoint of other regions (the partitions changed) falls through to
        // adoption, which finds the layout changed: rebuilt from the topics, not refused. Without
        // a scope, a snapshot of the loaded rules that does not fit them is refused (below).
        let own_regions =
            state.layout == rules.layout_fingerprint() || state.layout == crate::scope::layout_of(&rules, scope);
        let fits = scope.is_none() || own_regions;
        // A state of these rules and regions that another build laid out otherwise (an alarm
        // that now reads a long window's unit counts keeps one more float per history entry)
        // is adopted too; one of other regions is still refused.
        let reshaped = own_regions && !resumable(&rules, options, scope, &state);
        if state.rules_version == rules.version && fits && !reshaped {
            return Ok((resume(rules, options, scope, state)?, None));
        }
        // A snapshot of every region under other rules is adopted whole, then narrowed.
        let whole = scope.is_some() && state.layout == rules.layout_fingerprint();
        let (mut p, carried) = Pipeline::adopt(rules, options, if whole { None } else { scope }, state);
        if let (true, Some(s)) = (whole, scope) {
            p.restrict(s);
        }
        Ok((p, Some(carried)))
    }
}

/// A pipeline of `scope` from a state taken with the same rules: of that scope, or of every
/// region and then narrowed to it.
fn resume(
    rules: Arc<RuleSet>,
    options: Options,
    scope: Option<&[bool]>,
    state: State,
) -> Result<Pipeline, SnapshotError> {
    if let Some(s) = scope
        && state.layout == rules.layout_fingerprint()
    {
        check_shape(&rules, options, None, &state)?;
        let mut p = Pipeline::from_state(rules, options, None, state);
        p.restrict(s);
        return Ok(p);
    }
    check_shape(&rules, options, scope, &state)?;
    Ok(Pipeline::from_state(rules, options, scope, state))
}

/// Whether [`resume`] would take `state` (its shape fits the rules).
fn resumable(rules: &Arc<RuleSet>, options: Options, scope: Option<&[bool]>, state: &State) -> bool {
    match scope {
        Some(_) if state.layout == rules.layout_fingerprint() => check_shape(rules, options, None, state).is_ok(),
        _ => check_shape(rules, options, scope, state).is_ok(),
    }
}

/// Checks that a state read back has every dimension the rules give it: as many indicators
/// with bins, history, detector and latest results for every scored region (of the scope), and
/// grades for every scored region and scope. Restoring a state that does not fit would index out
/// of bounds later.
fn check_shape(
    rules: &Arc<RuleSet>,
    options: Options,
    scope: Option<&[bool]>,
    state: &State,
) -> Result<(), SnapshotError> {
    let fresh = Pipeline::scoped(Arc::clone(rules), options, scope);
    let want = &fresh.state;
    let bad = |what: String| Err(SnapshotError::Shape(what));
    if state.layout != want.layout {
        return bad("the layout fingerprint differs".into());
    }
    if state.indicators.len() != want.indicators.len() || state.fingerprints != want.fingerprints {
        return bad(format!("{} indicators, the rules have {}", state.indicators.len(), want.indicators.len()));
    }
    for ((got, exp), (id, _)) in state.indicators.iter().zip(&want.indicators).zip(&want.fingerprints) {
        if !got.bins.same_shape(&exp.bins)
            || !got.hist.same_shape(&exp.hist)
            || got.det.len() != exp.det.len()
            || got.latest.len() != exp.latest.len()
        {
            return bad(format!("the state of indicator `{id}` has other dimensions"));
        }
    }
    if state.seen.len() != want.seen.len() {
        return bad(format!(
            "de-duplication tables for {} sources, the rules have {}",
            state.seen.len(),
            want.seen.len()
        ));
    }
    if state.grades.len() != want.grades.len() || state.grades.iter().any(|g| g.len() != 1 + rules.domains.len()) {
        return bad(format!("grades for {} regions, the rules score {}", state.grades.len(), want.grades.len()));
    }
    if state.cuts.len() != want.cuts.len()
        || state.factors.len() != want.cuts.len()
        || state.cuts.iter().any(|c| c.len() != want.evidence.len())
    {
        return bad(format!("evidence of {} alarm cuts, the rules scan {}", state.cuts.len(), want.cuts.len()));
    }
    if state.written.len() != want.written.len() {
        return bad(format!(
            "score digests for {} regions, the rules score {}",
            state.written.len(),
            want.written.len()
        ));
    }
    if state.evidence.len() != want.evidence.len() {
        return bad(format!(
            "evidence grades for {} regions, the rules score {}",
            state.evidence.len(),
            want.evidence.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::Event;

    /// A pipeline of `rules` fed `n` events, one every 20 minutes from 2026-03-01, in the regions
    /// `codes` in turn.
    fn fed(rules: &Arc<RuleSet>, codes: &[&str], n: usize) -> Pipeline {
        let mut p = Pipeline::new(Arc::clone(rules), Options::default());
        let start = vigil_model::time::parse_rfc3339("2026-03-01T00:00:00+08:00").unwrap();
        for (i, code) in codes.iter().cycle().take(n).enumerate() {
            let mut e = Event {
                region: rules.regions.lookup(code).unwrap(),
                ts: start + i as i64 * 1_200_000,
                ..Event::default()
            };
            e.set(0, (i % 2) as i64);
            p.ingest(&e);
            p.advance(e.ts, &mut crate::VecOutput::default());
        }
        p
    }

    /// Restoring `bytes`, and restoring them adopting, gives back the snapshot `now`.
    fn restores_to(rules: &Arc<RuleSet>, bytes: &[u8], now: &[u8]) {
        let mut restored = Pipeline::restore(Arc::clone(rules), Options::default(), None, bytes).unwrap();
        assert_eq!(restored.snapshot().unwrap(), now);
        let (mut adopted, carried) =
            Pipeline::restore_adopting(Arc::clone(rules), Options::default(), None, bytes).unwrap();
        assert!(carried.is_none());
        assert_eq!(adopted.snapshot().unwrap(), now);
    }

    /// `state` (of `scope`) with its slots in region order, as formats before 9 laid it out.
    fn in_region_order(rules: &RuleSet, scope: Option<&[bool]>, state: &State) -> State {
        let (old, new) = (scope::scored_in_region_order(rules, scope), scope::scored_in(rules, scope));
        assert_ne!(old, new, "the orders differ");
        let from: Vec<Option<usize>> = old.iter().map(|r| new.iter().position(|n| n == r)).collect();
        scope::select(state, &from, scope::layout(rules, &old))
    }

    /// A snapshot of the format before, whose bins are region-major, restores to the same
    /// state: written again, it is byte for byte the snapshot of the current format.
    #[test]
    fn a_snapshot_of_the_format_before_restores_to_the_same_state() {
        let rules = Arc::new(vigil_rules::compile(&vigil_rules::testing::files_with(&[])).unwrap());
        let now = fed(&rules, &["G1", "D2", "G1", "G1", "D2"], 200).snapshot().unwrap();
        let mut env: Envelope = postcard::from_bytes(&now).unwrap();
        assert!(env.state.indicators.iter().any(|st| st.bins.newest(0) > i64::MIN || st.bins.newest(1) > i64::MIN));
        for st in &mut env.state.indicators {
            st.bins = st.bins.to_region_major();
        }
        env.version = OLDEST_SNAPSHOT_VERSION;
        let before = postcard::to_allocvec(&env).unwrap();
        assert_ne!(before, now, "the layouts differ");
        restores_to(&rules, &before, &now);
        // A format older still is refused, and says which it reads.
        env.version = OLDEST_SNAPSHOT_VERSION - 1;
        let older = postcard::to_allocvec(&env).unwrap();
        let err = Pipeline::restore(rules, Options::default(), None, &older).err().unwrap();
        assert!(matches!(err, SnapshotError::Version { found: 6 }), "{err}");
    }

    /// A snapshot of a format before 9, whose slots lie in region order (here a district, its
    /// grid cell, then the other district), restores with its slots coarsest level first, to
    /// the state a snapshot of this format holds; narrowed to a scope it restores as the same
    /// scope's snapshot does.
    #[test]
    fn a_snapshot_in_region_order_restores_to_the_same_state() {
        let regions = "code,parent,level,name,population\nC,,city,City,30000\nD1,C,district,East,20000\n\
                       D1G,D1,grid,Cell,1\nD2,C,district,West,10000\n";
        let files = vigil_rules::testing::files_with(&[("regions.csv", regions)]);
        let rules = Arc::new(vigil_rules::compile(&files).unwrap());
        assert_eq!(scope::scored_in(&rules, None).len(), 4, "every level scored");
        let now = fed(&rules, &["D1G", "D2", "D1G", "D1", "D2"], 300).snapshot().unwrap();
        let env: Envelope = postcard::from_bytes(&now).unwrap();
        // The same state in region order, as format 8 wrote it.
        let mut before = Envelope { version: 8, state: in_region_order(&rules, None, &env.state) };
        let eight = postcard::to_allocvec(&before).unwrap();
        assert_ne!(eight, now);
        restores_to(&rules, &eight, &now);
        // Format 7: region order and region-major bins.
        for st in &mut before.state.indicators {
            st.bins = st.bins.to_region_major();
        }
        before.version = 7;
        let seven = postcard::to_allocvec(&before).unwrap();
        let mut restored = Pipeline::restore(Arc::clone(&rules), Options::default(), None, &seven).unwrap();
        assert_eq!(restored.snapshot().unwrap(), now);
        // A task's scope: its own snapshot in region order, and the whole one narrowed to it.
        let owned: Vec<bool> = rules.regions.codes.iter().map(|c| c != "C").collect();
        let mut task = Pipeline::restore(Arc::clone(&rules), Options::default(), Some(&owned), &now).unwrap();
        let task_now = task.snapshot().unwrap();
        let task_env: Envelope = postcard::from_bytes(&task_now).unwrap();
        let task_eight = Envelope { version: 8, state: in_region_order(&rules, Some(&owned), &task_env.state) };
        let task_eight = postcard::to_allocvec(&task_eight).unwrap();
        for bytes in [&task_eight, &eight] {
            let mut t = Pipeline::restore(Arc::clone(&rules), Options::default(), Some(&owned), bytes).unwrap();
            assert_eq!(t.snapshot().unwrap(), task_now);
        }
    }
}
