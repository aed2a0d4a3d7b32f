//! The roll-up of scale-out mode: scores and alerts of the regions above the partition level
//! (the city, and the districts too when tasks are partitioned by street), made from the score
//! records that the tasks publish for the partition level's regions ("parts"), since no single
//! task sees those regions' events.
//!
//! For each evaluation hour, once every part of a region has published its record for that
//! hour, the region's composite, domain and category scores are the population-weighted means of
//! its parts' scores (grey where less than the rule set's `min_available` share of the
//! population has a score), graded with the rule set's grading into alerts that name the parts
//! behind them. An hour that some part will never publish (it started later, or has moved past
//! it) is skipped. Records come per part in hour order, so anything at or before a part's last
//! hour is a replayed duplicate and is ignored: the result depends only on the records, not on
//! how the partitions of the score topic interleave.
//!
//! Like the pipeline, this stage never reads a clock and does no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vigil_alert::GradeState;
use vigil_model::record::{AlertRecord, RegionScore, ScoreRecord};
use vigil_model::time::{format_utc, parse_rfc3339};
use vigil_model::{Level, Ts};
use vigil_rules::{OverrideWhen, RuleSet};

use crate::Output;
use crate::explain::round;

/// How many parts a rolled-up alert names.
pub const TOP_REGIONS: usize = 5;

/// One part's scores for one hour: the composite, then each domain, then each category, in
/// the rule set's order.
type Parts = Vec<Option<f64>>;

/// What the roll-up remembers, as saved in its checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RollupState {
    /// Per part code: the last hour taken.
    last: BTreeMap<String, Ts>,
    /// Per rolled-up region (index among them), per hour: the part records received so far.
    pending: Vec<BTreeMap<Ts, BTreeMap<String, Parts>>>,
    /// Per rolled-up region: the composite's grade, then one per domain.
    grades: Vec<Vec<GradeState>>,
    /// Per rolled-up region: the last hour rolled up.
    done: Vec<Option<Ts>>,
}

/// A region above the partition level.
struct City {
    region: usize,
    /// Its parts (its regions at the partition level): region index and population weight
    /// (summing to 1).
    districts: Vec<(usize, f64)>,
}

/// The roll-up stage (see the module documentation).
pub struct CityRollup {
    rules: Arc<RuleSet>,
    cities: Vec<City>,
    /// The partition level.
    level: u8,
    /// Part code -> the rolled-up regions it is a part of (its ancestors).
    district_of: BTreeMap<String, Vec<usize>>,
    state: RollupState,
}

impl CityRollup {
    /// The roll-up of the city from its districts (tasks partitioned by district).
    pub fn new(rules: Arc<RuleSet>) -> CityRollup {
        CityRollup::at_level(rules, 1)
    }

    /// The roll-up of every region above `level` from its regions at `level` (the partition
    /// level of the tasks: 1 for districts, 2 for streets).
    pub fn at_level(rules: Arc<RuleSet>, level: u8) -> CityRollup {
        let r = &rules.regions;
        let mut cities = Vec::new();
        let mut district_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for c in (0..r.len()).filter(|&i| r.levels[i] < level) {
            let districts: Vec<usize> = (0..r.len())
                .filter(|&i| r.levels[i] == level && r.chains[i].iter().any(|&a| a as usize == c))
                .collect();
            if districts.is_empty() {
                continue;
            }
            // Population shares where every part declares one; otherwise parts weigh alike.
            let pops: Option<Vec<u64>> = districts.iter().map(|&d| r.populations[d]).collect();
            let total: u64 = pops.as_ref().map_or(0, |p| p.iter().sum());
            let districts: Vec<(usize, f64)> = districts
                .iter()
                .enumerate()
                .map(|(k, &d)| {
                    let w = match &pops {
                        Some(p) if total > 0 => p[k] as f64 / total as f64,
                        _ => 1.0 / districts.len() as f64,
                    };
                    (d, w)
                })
                .collect();
            for &(d, _) in &districts {
                district_of.entry(r.codes[d].clone()).or_default().push(cities.len());
            }
            cities.push(City { region: c, districts });
        }
        // Nearest first: a part's district is rolled up before its city.
        for list in district_of.values_mut() {
            list.sort_by_key(|&k| (std::cmp::Reverse(r.levels[cities[k].region]), cities[k].region));
        }
        let state = RollupState {
            grades: vec![vec![GradeState::default(); 1 + rules.domains.len()]; cities.len()],
            done: vec![None; cities.len()],
            pending: vec![BTreeMap::new(); cities.len()],
            last: BTreeMap::new(),
        };
        CityRollup { rules, cities, level, district_of, state }
    }

    /// Resumes from a saved state (of the same rules' regions and domains, and partition level).
    pub fn restore(rules: Arc<RuleSet>, level: u8, state: RollupState) -> Result<CityRollup, String> {
        let mut r = CityRollup::at_level(rules, level);
        if state.grades.len() != r.state.grades.len()
            || state.pending.len() != r.state.grades.len()
            || state.done.len() != r.state.grades.len()
            || state.grades.iter().any(|g| g.len() != 1 + r.rules.domains.len())
        {
            return Err("the roll-up state was saved for other regions, domains or partition level".into());
        }
        r.state = state;
        Ok(r)
    }

    pub fn state(&self) -> &RollupState {
        &self.state
    }

    /// Hours waiting for some part's record.
    pub fn pending_hours(&self) -> usize {
        self.state.pending.iter().map(BTreeMap::len).sum()
    }

    /// Takes one score record; part records complete hours, which are rolled up in order.
    /// Returns whether the record was taken (a part's, and new).
    pub fn record(&mut self, rec: &ScoreRecord, out: &mut dyn Output) -> bool {
        if self.rules.regions.level_names.get(self.level as usize).is_none_or(|l| *l != rec.level) {
            return false;
        }
        let Some(cities) = self.district_of.get(&rec.region) else { return false };
        let Ok(t) = parse_rfc3339(&rec.window_end) else { return false };
        if self.state.last.get(&rec.region).is_some_and(|&l| t <= l) {
            return false;
        }
        let cities = cities.clone();
        self.state.last.insert(rec.region.clone(), t);
        let rules = &self.rules;
        let mut parts = Vec::with_capacity(1 + rules.domains.len() + rules.categories.len());
        parts.push(rec.composite);
        parts.extend(rules.domains.iter().map(|d| rec.domains.get(&d.id).copied().flatten()));
        parts.extend(rules.categories.iter().map(|c| rec.categories.get(&c.id).copied().flatten()));
        // Each rolled-up region it is part of, from the nearest up (a district before its city).
        for &city in &cities {
            if self.state.done[city].is_some_and(|d| t <= d) {
                continue;
            }
            self.state.pending[city].entry(t).or_default().insert(rec.region.clone(), parts.clone());
            self.drain(city, out);
        }
        true
    }

    /// Rolls up every complete hour of region `c` in order, and skips those some part has moved
    /// past without publishing; stops at the first hour still waiting.
    fn drain(&mut self, c: usize, out: &mut dyn Output) {
        loop {
            let Some((&t, got)) = self.state.pending[c].first_key_value() else { return };
            let districts = &self.cities[c].districts;
            let codes = &self.rules.regions.codes;
            if got.len() == districts.len() {
                let got = self.state.pending[c].remove(&t).unwrap_or_default();
                self.emit(c, t, &got, out);
                self.state.done[c] = Some(t);
            } else if districts.iter().filter(|(d, _)| !got.contains_key(&codes[*d])).all(|(d, _)| {
                // Missing, and past it already: this hour will never be complete.
                self.state.last.get(&codes[*d]).is_some_and(|&l| l > t)
            }) {
                self.state.pending[c].remove(&t);
            } else {
                return;
            }
        }
    }

    fn emit(&mut self, c: usize, t: Ts, got: &BTreeMap<String, Parts>, out: &mut dyn Output) {
        let rules = Arc::clone(&self.rules);
        let r = &rules.regions;
        let city = &self.cities[c];
        let width = 1 + rules.domains.len() + rules.categories.len();
        // Population-weighted means over the districts with a score, grey below the available
        // share the index requires.
        let rolled: Vec<Option<f64>> = (0..width)
            .map(|k| {
                let (mut sum, mut weight) = (0.0, 0.0);
                for &(d, w) in &city.districts {
                    if let Some(x) = got.get(&r.codes[d]).and_then(|p| p[k]) {
                        sum += w * x;
                        weight += w;
                    }
                }
                (weight > 0.0 && weight + 1e-9 >= rules.min_available).then(|| round(sum / weight, 1))
            })
            .collect();
        let domains: BTreeMap<String, Option<f64>> =
            rules.domains.iter().enumerate().map(|(i, d)| (d.id.clone(), rolled[1 + i])).collect();
        let level = r.levels[city.region] as usize;
        let mut alerts = Vec::new();
        if rules.alert_levels[level] {
            // Domains first: their grades set the composite's floor (hard-indicator overrides
            // need indicator scores, which a roll-up does not have).
            for (i, d) in rules.domains.iter().enumerate() {
                if let Some(tr) = self.state.grades[c][1 + i].step(&rules.grading, t, rolled[1 + i], None) {
                    alerts.push((d.id.as_str(), Some(i), rolled[1 + i], tr));
                }
            }
            let mut floor: Option<Level> = None;
            for o in rules.overrides.iter().filter(|o| o.when == OverrideWhen::AnyDomain) {
                if self.state.grades[c][1..].iter().any(|g| g.level >= Some(o.at_least)) {
                    floor = floor.max(Some(o.floor));
                }
            }
            if let Some(tr) = self.state.grades[c][0].step(&rules.grading, t, rolled[0], floor) {
                alerts.push(("composite", None, rolled[0], tr));
            }
        }
        let code = &r.codes[city.region];
        let period = crate::Period::ending_at(&rules, t);
        for (scope, domain, score, tr) in alerts {
            // The parts behind it, by their score in this scope; ties by code.
            let mut top: Vec<RegionScore> = city
                .districts
                .iter()
                .map(|&(d, w)| RegionScore {
                    region: r.codes[d].clone(),
                    region_name: r.names[d].clone(),
                    score: got.get(&r.codes[d]).and_then(|p| p[domain.map_or(0, |i| 1 + i)]),
                    weight: round(w, 4),
                })
                .filter(|x| x.score.is_some())
                .collect();
            top.sort_by(|a, b| {
                b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)).then_with(|| a.region.cmp(&b.region))
            });
            top.truncate(TOP_REGIONS);
            out.alert(AlertRecord {
                reason: format!("rollup:{}", tr.reason.as_str()),
                domains: domains.clone(),
                top_regions: top,
                ..crate::explain::alert_head(&rules, city.region, &period, scope, score, &tr)
            });
        }
        out.score(ScoreRecord {
            region: code.clone(),
            level: r.level_name(city.region as u32).to_string(),
            window_start: format_utc(period.start),
            window_end: format_utc(t),
            date: period.date,
            rules_version: rules.version.clone(),
            composite: rolled[0],
            grade: self.state.grades[c][0].level,
            domains,
            categories: rules
                .categories
                .iter()
                .enumerate()
                .map(|(i, cat)| (cat.id.clone(), rolled[1 + rules.domains.len() + i]))
                .collect(),
            indicators: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VecOutput;

    fn rules() -> Arc<RuleSet> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        Arc::new(vigil_rules::load(&dir).unwrap())
    }

    fn record(rules: &RuleSet, district: &str, t: Ts, score: f64) -> ScoreRecord {
        let r = &rules.regions;
        let level = r.lookup(district).map_or("district", |i| r.level_name(i));
        ScoreRecord {
            region: district.into(),
            level: level.into(),
            window_start: format_utc(t - H),
            window_end: format_utc(t),
            date: None,
            rules_version: rules.version.clone(),
            composite: Some(score),
            grade: None,
            domains: rules.domains.iter().map(|d| (d.id.clone(), Some(score))).collect(),
            categories: rules.categories.iter().map(|c| (c.id.clone(), Some(score))).collect(),
            indicators: Vec::new(),
        }
    }

    fn districts(rules: &RuleSet) -> Vec<String> {
        let r = &rules.regions;
        (0..r.len()).filter(|&i| r.levels[i] == 1).map(|i| r.codes[i].clone()).collect()
    }

    const H: Ts = vigil_model::time::HOUR;

    /// Hours 0..n of every district: the first `hot` districts at 90 from hour 5 on, the rest at 10.
    fn stream(rules: &RuleSet, n: i64, hot: usize) -> Vec<ScoreRecord> {
        let ds = districts(rules);
        let mut v = Vec::new();
        for h in 0..n {
            for (i, d) in ds.iter().enumerate() {
                v.push(record(
                    rules,
                    d,
                    1_700_000_000_000 / H * H + h * H,
                    if i < hot && h >= 5 { 90.0 } else { 10.0 },
                ));
            }
        }
        v
    }

    #[test]
    fn an_hour_is_rolled_up_once_every_district_has_published_it_whatever_the_interleaving() {
        let rules = rules();
        let s = stream(&rules, 24, 5);
        let mut straight = VecOutput::default();
        let mut a = CityRollup::new(Arc::clone(&rules));
        for r in &s {
            a.record(r, &mut straight);
        }
        assert_eq!(straight.scores.len(), 24);
        assert!(!straight.alerts.is_empty(), "five hot districts move the city");
        let a1 = &straight.alerts[0];
        assert_eq!(a1.region_level, "city");
        assert!(a1.top_regions.iter().all(|x| x.score == Some(90.0)), "{a1:?}");
        // Another interleaving: district by district, with every record sent twice (a replay).
        let mut by_district = s.clone();
        by_district.sort_by(|x, y| x.region.cmp(&y.region).then(x.window_end.cmp(&y.window_end)));
        let mut other = VecOutput::default();
        let mut b = CityRollup::new(Arc::clone(&rules));
        for r in by_district.iter().flat_map(|r| [r, r]) {
            b.record(r, &mut other);
        }
        let json =
            |o: &VecOutput| (serde_json::to_string(&o.scores).unwrap(), serde_json::to_string(&o.alerts).unwrap());
        assert_eq!(json(&other), json(&straight));
        assert_eq!(b.pending_hours(), 0);
    }

    #[test]
    fn hours_a_district_skipped_are_dropped_and_state_survives_a_restore() {
        let rules = rules();
        let ds = districts(&rules);
        // The first district starts 3 hours late: hours 0..3 never complete.
        let s = stream(&rules, 12, 6);
        let late: Vec<ScoreRecord> = s
            .iter()
            .enumerate()
            .filter(|(i, _)| !(i % ds.len() == 0 && i / ds.len() < 3))
            .map(|(_, r)| r.clone())
            .collect();
        let mut out = VecOutput::default();
        let mut a = CityRollup::new(Arc::clone(&rules));
        let half = late.len() / 2;
        for r in &late[..half] {
            a.record(r, &mut out);
        }
        // A checkpoint and restore in the middle changes nothing.
        let saved = serde_json::to_vec(a.state()).unwrap();
        let mut b = CityRollup::restore(Arc::clone(&rules), 1, serde_json::from_slice(&saved).unwrap()).unwrap();
        // Not as a roll-up of another partition level.
        assert!(CityRollup::restore(Arc::clone(&rules), 2, serde_json::from_slice(&saved).unwrap()).is_err());
        for r in &late[half..] {
            b.record(r, &mut out);
        }
        assert_eq!(out.scores.len(), 9, "hours 3..12");
        assert_eq!(out.scores[0].window_end, late[ds.len() * 3 - 3].window_end);
        assert_eq!(b.pending_hours(), 0);
        let mut straight = VecOutput::default();
        let mut c = CityRollup::new(rules);
        for r in &late {
            c.record(r, &mut straight);
        }
        assert!(!straight.alerts.is_empty());
        assert_eq!(serde_json::to_string(&out.alerts).unwrap(), serde_json::to_string(&straight.alerts).unwrap());
    }

    /// Partitioned by street, the roll-up makes every district and the city from the streets'
    /// records: a district whose streets run hot alerts, naming its streets, and the city's
    /// score is the population-weighted mean over all streets.
    #[test]
    fn by_street_the_districts_and_the_city_are_rolled_up_from_streets() {
        let rules = rules();
        let r = &rules.regions;
        let streets: Vec<usize> = (0..r.len()).filter(|&i| r.levels[i] == 2).collect();
        let hot_district = r.parents[streets[0]].unwrap();
        let mut out = VecOutput::default();
        let mut a = CityRollup::at_level(Arc::clone(&rules), 2);
        let t0 = 1_700_000_000_000 / H * H;
        for h in 0..12 {
            for &s in &streets {
                let hot = r.parents[s] == Some(hot_district) && h >= 4;
                // District records are not parts at this level: ignored.
                assert!(
                    !a.record(&record(&rules, &r.codes[r.parents[s].unwrap() as usize], t0 + h * H, 50.0), &mut out)
                );
                assert!(a.record(&record(&rules, &r.codes[s], t0 + h * H, if hot { 95.0 } else { 10.0 }), &mut out));
            }
        }
        let districts = (0..r.len()).filter(|&i| r.levels[i] == 1).count();
        assert_eq!(out.scores.len(), 12 * (districts + 1), "every district and the city, every hour");
        assert_eq!(a.pending_hours(), 0);
        let hot_code = &r.codes[hot_district as usize];
        let hot = out.scores.iter().rfind(|x| &x.region == hot_code).unwrap();
        assert_eq!((hot.level.as_str(), hot.composite), ("district", Some(95.0)));
        let alert = out.alerts.iter().find(|x| &x.region == hot_code).expect("the hot district alerts");
        assert!(
            alert.top_regions.iter().all(|x| r.parents[r.lookup(&x.region).unwrap() as usize] == Some(hot_district))
        );
        // The city: the population-weighted mean over every street.
        let city = out.scores.iter().rfind(|x| x.level == "city").unwrap();
        let pops: Option<Vec<u64>> = streets.iter().map(|&s| r.populations[s]).collect();
        let w = |s: usize| pops.as_ref().map_or(1.0, |_| r.populations[s].unwrap() as f64);
        let mean =
            streets.iter().map(|&s| w(s) * if r.parents[s] == Some(hot_district) { 95.0 } else { 10.0 }).sum::<f64>()
                / streets.iter().map(|&s| w(s)).sum::<f64>();
        assert!((city.composite.unwrap() - mean).abs() <= 0.05 + 1e-9, "{:?} against {mean}", city.composite);
    }
}
