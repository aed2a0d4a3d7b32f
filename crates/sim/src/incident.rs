//! Injected incidents: the ground truth a detector is scored against. This module owns the
//! incident description (kind, region, time span, strength), the automatic plan used when the
//! caller does not give one, and the extra events each kind of incident adds to the streams.
//!
//! An incident adds events on top of the unchanged baseline: its extra rate for each affected
//! stream is `strength × share × (the region's baseline rate of that source in that hour)`,
//! where `share` is roughly the baseline share of the affected event types (raised for very
//! rare types such as road blocking, so that a strength of a few makes a visible wave rather
//! than a single call). The rate ramps up over the first fifth of the incident and down over
//! the last quarter, so an incident looks like a wave and not like a step.

use std::fmt;

use serde::{Deserialize, Serialize};
use vigil_model::time::{DAY, HOUR, SECOND};
use vigil_model::{RegionSpec, Ts};

use crate::city::AreaKind;
use crate::r#gen::{Cell, GenError, SolvedQueue};
use crate::mix::{
    Attrs, HourCtx, Mix, PLATFORMS, RawEvent, Src, VISIT, case_severity, case_type_index, channel_weights,
    opinion_with, petition_with, police_of_type, police_type_index, topic_index,
};
use crate::rng::{Rng, fnv1a, stream};
use crate::tree::Tree;

/// The kinds of incident the simulator can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// Unpaid wages at a site or firm: wage-arrears petitions including collective visits,
    /// labour-dispute calls to the police, and angry posts about unpaid wages.
    LabourDisputeWave,
    /// An online storm on one risk topic across several platforms, with high engagement and
    /// a few items that go viral.
    NegativeOpinionBurst,
    /// A run of thefts, burglaries and robberies: police calls and filed cases.
    CrimeSpree,
    /// A crowd gathering, road blocking or sit-in over land or demolition, with collective
    /// petitions and online posts.
    MassGathering,
    /// A telecom-fraud campaign hitting one area: fraud reports and filed fraud cases.
    FraudWave,
    /// A drawn-out demolition or land-acquisition dispute: repeated petitions and visits.
    DemolitionDispute,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 6] = [
        IncidentKind::LabourDisputeWave,
        IncidentKind::NegativeOpinionBurst,
        IncidentKind::CrimeSpree,
        IncidentKind::MassGathering,
        IncidentKind::FraudWave,
        IncidentKind::DemolitionDispute,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::LabourDisputeWave => "labour_dispute_wave",
            IncidentKind::NegativeOpinionBurst => "negative_opinion_burst",
            IncidentKind::CrimeSpree => "crime_spree",
            IncidentKind::MassGathering => "mass_gathering",
            IncidentKind::FraudWave => "fraud_wave",
            IncidentKind::DemolitionDispute => "demolition_dispute",
        }
    }

    /// The affected sources and each one's share of the baseline that the strength multiplies.
    fn components(self) -> &'static [(Src, f64)] {
        match self {
            IncidentKind::LabourDisputeWave => &[(Src::Petition, 0.08), (Src::Police, 0.03), (Src::Opinion, 0.05)],
            IncidentKind::NegativeOpinionBurst => &[(Src::Opinion, 0.30)],
            IncidentKind::CrimeSpree => &[(Src::Police, 0.12), (Src::Case, 0.30)],
            IncidentKind::MassGathering => &[(Src::Police, 0.08), (Src::Petition, 0.15), (Src::Opinion, 0.08)],
            IncidentKind::FraudWave => &[(Src::Police, 0.07), (Src::Case, 0.25)],
            IncidentKind::DemolitionDispute => &[(Src::Petition, 0.08)],
        }
    }

    /// Duration range in hours for the automatic plan: gatherings last hours, bursts a day
    /// or two, waves and sprees one to two weeks, demolition disputes drag on for weeks.
    fn duration_range(self) -> (u64, u64) {
        match self {
            IncidentKind::LabourDisputeWave => (72, 240),
            IncidentKind::NegativeOpinionBurst => (12, 60),
            IncidentKind::CrimeSpree => (120, 336),
            IncidentKind::MassGathering => (6, 36),
            IncidentKind::FraudWave => (168, 336),
            IncidentKind::DemolitionDispute => (120, 480),
        }
    }

    /// Strength range for the automatic plan, chosen so that most incidents are detectable
    /// by a reasonable rule set but few are trivially so.
    fn strength_range(self) -> (f64, f64) {
        match self {
            IncidentKind::LabourDisputeWave => (2.5, 5.0),
            IncidentKind::NegativeOpinionBurst => (4.0, 8.0),
            IncidentKind::CrimeSpree => (1.5, 3.0),
            IncidentKind::MassGathering => (3.0, 6.0),
            IncidentKind::FraudWave => (1.5, 3.0),
            IncidentKind::DemolitionDispute => (3.0, 6.0),
        }
    }

    /// Chance that the automatic plan places the incident on one street rather than on a
    /// whole district: gatherings and disputes are local, fraud campaigns are not.
    fn street_chance(self) -> f64 {
        match self {
            IncidentKind::LabourDisputeWave => 0.7,
            IncidentKind::NegativeOpinionBurst => 0.4,
            IncidentKind::CrimeSpree => 0.6,
            IncidentKind::MassGathering => 0.85,
            IncidentKind::FraudWave => 0.3,
            IncidentKind::DemolitionDispute => 0.9,
        }
    }

    /// Whether the incident typically starts in the working day (people gather and offices
    /// open then), which the automatic plan uses to pick a start hour.
    fn starts_in_office_hours(self) -> bool {
        matches!(self, IncidentKind::LabourDisputeWave | IncidentKind::MassGathering | IncidentKind::DemolitionDispute)
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One injected incident. `start` is written as local RFC 3339 text (`+08:00`) in JSON and
/// read back from that text or from epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Incident {
    pub id: String,
    pub kind: IncidentKind,
    /// A street or district code; the extra events go to grid cells under it.
    pub region: String,
    #[serde(with = "ts_local")]
    pub start: Ts,
    pub duration_hours: u32,
    /// Extra events as a multiple of the region's baseline rate of the affected types.
    pub strength: f64,
}

impl Incident {
    pub fn end(&self) -> Ts {
        self.start + self.duration_hours as i64 * HOUR
    }
}

/// The incidents injected into a run, for scoring detectors (`ground_truth.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub incidents: Vec<Incident>,
}

/// Serde for `Incident::start`: local time text on the way out, text or milliseconds in.
mod ts_local {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use vigil_model::Ts;
    use vigil_model::time::{format_local, parse_rfc3339};

    pub fn serialize<S: Serializer>(ts: &Ts, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_local(*ts, crate::r#gen::LOCAL_OFFSET))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ts, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Ts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 timestamp or epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ts, E> {
                parse_rfc3339(v).map_err(|e| E::custom(format!("bad timestamp `{v}`: {e:?}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ts, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ts, E> {
                i64::try_from(v).map_err(|_| E::custom("timestamp too large"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Days of history before the first incident, so that 28-day baselines exist.
pub const WARM_UP_DAYS: u32 = 28;

/// The automatic incident plan for a run: after the warm-up, one incident per four days or so
/// (6 to 10 for runs of 60 days or more, fewer for short runs, none if there is no room),
/// each in its own time slot, no two overlapping (with two days' margin) in the same
/// district, every kind at least once when there are six or more. The last two days of the
/// run are kept free so that late detections still fall inside it.
pub fn auto_incidents(seed: u64, days: u32, start: Ts, regions: &[RegionSpec]) -> Vec<Incident> {
    let Ok(tree) = Tree::new(regions) else {
        return Vec::new();
    };
    plan(seed, days, start, &tree)
}

pub(crate) fn plan(seed: u64, days: u32, start: Ts, tree: &Tree<'_>) -> Vec<Incident> {
    let mut rng = Rng::new(seed, stream::PLAN);
    let lo = start + WARM_UP_DAYS as i64 * DAY;
    let hi = start + days as i64 * DAY - 2 * DAY;
    if hi - lo < 3 * DAY {
        return Vec::new();
    }
    let usable_days = (hi - lo) / DAY;
    let mut n = (usable_days / 4).clamp(1, 10) as usize;
    if days >= 60 {
        n = n.max(6);
    }
    // Districts that have streets (or at least leaves) under them.
    let mut districts: Vec<usize> = (0..tree.regions.len())
        .filter(|&i| tree.district[i] == i && tree.parent[i].is_some())
        .filter(|&i| !tree.leaves_under[i].is_empty())
        .collect();
    if districts.is_empty() {
        return Vec::new();
    }
    districts.sort_by(|a, b| tree.regions[*a].code.cmp(&tree.regions[*b].code));

    let mut kinds = IncidentKind::ALL.to_vec();
    rng.shuffle(&mut kinds);
    kinds.truncate(n);
    while kinds.len() < n {
        kinds.push(IncidentKind::ALL[rng.below(6) as usize]);
    }

    let slot_hours = ((hi - lo) / HOUR) as u64 / n as u64;
    let mut out: Vec<Incident> = Vec::new();
    let mut busy: Vec<(usize, Ts, Ts)> = Vec::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        let slot_start = lo + (i as u64 * slot_hours) as i64 * HOUR;
        let mut t = slot_start + rng.below((slot_hours / 2).max(1)) as i64 * HOUR;
        if kind.starts_in_office_hours() {
            // Move to 08:00–10:00 local on the same local day.
            let local_day = (t + crate::r#gen::LOCAL_OFFSET.0).div_euclid(DAY);
            t = local_day * DAY - crate::r#gen::LOCAL_OFFSET.0 + rng.range(8, 10) as i64 * HOUR;
            t = t.max(lo);
        }
        let (dmin, dmax) = kind.duration_range();
        let room = ((hi + DAY - t) / HOUR).max(1) as u64;
        let duration = rng.range(dmin, dmax).min(room).max(dmin.min(room));
        let end = t + duration as i64 * HOUR;
        let free: Vec<usize> = districts
            .iter()
            .copied()
            .filter(|d| busy.iter().all(|&(bd, bs, be)| bd != *d || end + 2 * DAY <= bs || be + 2 * DAY <= t))
            .collect();
        if free.is_empty() {
            continue;
        }
        // Prefer the districts that have had the fewest incidents so far, so that the plan
        // spreads over the city instead of returning to one place.
        let fewest = free.iter().map(|d| busy.iter().filter(|b| b.0 == *d).count()).min();
        let free: Vec<usize> =
            free.into_iter().filter(|d| Some(busy.iter().filter(|b| b.0 == *d).count()) == fewest).collect();
        let district = free[rng.below(free.len() as u64) as usize];
        let streets: Vec<usize> = (0..tree.regions.len())
            .filter(|&s| tree.parent[s] == Some(district) && !tree.leaves_under[s].is_empty())
            .collect();
        let on_street = rng.chance(kind.street_chance());
        let region =
            if on_street && !streets.is_empty() { streets[rng.below(streets.len() as u64) as usize] } else { district };
        let (smin, smax) = kind.strength_range();
        // A small township produces so few events that a wave of the usual relative size is a
        // handful of calls; scaling strength up with 1/sqrt(population) keeps small-region
        // incidents about as visible to a count test as large ones.
        let pop = tree.regions[region].population.unwrap_or(0).max(1) as f64;
        let size = (60_000.0 / pop).sqrt().clamp(1.0, 2.5);
        let strength = ((smin + (smax - smin) * rng.uniform()) * size * 10.0).round() / 10.0;
        busy.push((district, t, end));
        out.push(Incident {
            id: format!("inc-{:02}-{}", out.len() + 1, kind.as_str()),
            kind,
            region: tree.regions[region].code.clone(),
            start: t,
            duration_hours: duration as u32,
            strength,
        });
    }
    out
}

/// Checks caller-given incidents against the registry.
pub(crate) fn validate(incidents: &[Incident], tree: &Tree<'_>) -> Result<(), GenError> {
    let mut ids = std::collections::BTreeSet::new();
    for inc in incidents {
        let bad = |reason: &str| GenError::BadIncident { id: inc.id.clone(), reason: reason.into() };
        if inc.id.is_empty() || !ids.insert(inc.id.as_str()) {
            return Err(bad("the id is empty or used twice"));
        }
        let Some(&r) = tree.index.get(inc.region.as_str()) else {
            return Err(bad(&format!("region `{}` is not in the registry", inc.region)));
        };
        if tree.leaves_under[r].is_empty() {
            return Err(bad("the region has no cells under it"));
        }
        if inc.duration_hours == 0 {
            return Err(bad("duration_hours must be at least 1"));
        }
        if !inc.strength.is_finite() || inc.strength < 0.0 {
            return Err(bad("strength must be a finite number >= 0"));
        }
    }
    Ok(())
}

/// An incident while the generator runs: its own random stream (derived from the seed and the
/// incident id, so incidents do not disturb each other or the baseline), the cells it touches
/// and the few cells where it is concentrated.
pub(crate) struct Active {
    inc: Incident,
    rng: Rng,
    /// Leaf positions under the incident region.
    cells: Vec<u32>,
    /// Population weights of `cells`, for the events that spill over the wider region.
    cell_weights: Vec<f64>,
    /// One to three cells where most events happen: a work site, a square, a housing estate.
    focal: Vec<u32>,
    /// The region's baseline events per day, per source.
    base_daily: [f64; 4],
    /// The topic of an opinion burst.
    topic: u8,
    /// The platforms an opinion burst spreads on.
    platforms: Vec<u8>,
}

/// One of a few named values, with probability proportional to its weight.
fn pick_named(rng: &mut Rng, names: &[(&'static str, f64)]) -> &'static str {
    let mut w = [0.0; 8];
    for (slot, (_, weight)) in w.iter_mut().zip(names) {
        *slot = *weight;
    }
    names[rng.pick(&w[..names.len()])].0
}

/// The simulated hour an incident adds events to, with the run's tables.
pub(crate) struct Hour<'a> {
    pub start: Ts,
    pub ctx: HourCtx,
    pub mix: &'a Mix,
    pub cells: &'a [Cell],
}

/// Risk topics an opinion burst can be about (the `risk_topics` taxonomy of the default rules).
const BURST_TOPICS: [&str; 6] =
    ["wage_arrears", "land_acquisition", "demolition", "housing_delivery", "fundraising_loss", "public_safety"];

/// Share of an incident's events that fall in its focal cells.
const FOCAL_SHARE: f64 = 0.7;

impl Active {
    pub fn new(inc: &Incident, seed: u64, tree: &Tree<'_>, cells: &[Cell]) -> Active {
        let mut rng = Rng::new(seed ^ fnv1a(inc.id.as_bytes()), stream::INCIDENT);
        let r = tree.index[inc.region.as_str()];
        let under = tree.leaves_under[r].clone();
        let cell_weights: Vec<f64> = under.iter().map(|&c| cells[c as usize].pop.max(1.0)).collect();
        let mut base_daily = [0.0; 4];
        for &c in &under {
            for (s, b) in base_daily.iter_mut().enumerate() {
                *b += cells[c as usize].base[s];
            }
        }
        let k = under.len().min(1 + rng.below(3) as usize);
        let mut shuffled = under.clone();
        rng.shuffle(&mut shuffled);
        let focal = shuffled[..k].to_vec();
        let topic = topic_index(BURST_TOPICS[rng.below(BURST_TOPICS.len() as u64) as usize]);
        let mut platforms: Vec<u8> = (0..PLATFORMS.len() as u8).collect();
        rng.shuffle(&mut platforms);
        platforms.truncate(3 + rng.below(2) as usize);
        Active { inc: inc.clone(), rng, cells: under, cell_weights, focal, base_daily, topic, platforms }
    }

    /// Adds this incident's events of `src` for the hour starting at `hour_start`.
    pub fn hour_events(&mut self, src: Src, hour: &Hour<'_>, out: &mut Vec<RawEvent>, solved: &mut SolvedQueue) {
        let Hour { start: hour_start, ctx, mix, cells } = *hour;
        let Some(&(_, share)) = self.inc.kind.components().iter().find(|(s, _)| *s == src) else {
            return;
        };
        let from = hour_start.max(self.inc.start);
        let to = (hour_start + HOUR).min(self.inc.end());
        if to <= from {
            return;
        }
        let span = to - from;
        let d = self.inc.duration_hours as f64;
        let t = ((from + to) / 2 - self.inc.start) as f64 / HOUR as f64;
        let up = (0.2 * d).max(1.0);
        let down = (0.25 * d).max(1.0);
        let ramp = (t / up).min((d - t) / down).clamp(0.0, 1.0);
        let mean = self.inc.strength * share * self.base_daily[src as usize] / 24.0
            * mix.time_factor(src, ctx)
            * ramp
            * span as f64
            / HOUR as f64;
        let n = self.rng.poisson(mean);
        for _ in 0..n {
            let cell = if self.rng.chance(FOCAL_SHARE) {
                self.focal[self.rng.below(self.focal.len() as u64) as usize]
            } else {
                self.cells[self.rng.pick(&self.cell_weights)]
            };
            let ts = from + self.rng.below((span / SECOND) as u64) as i64 * SECOND;
            let kind = cells[cell as usize].kind;
            let attrs = self.attrs(src, ctx, kind);
            if let Attrs::Case { ty, severity, .. } = attrs {
                // Incident cases are harder to clear than everyday ones: many at once, often
                // by the same unknown offenders.
                solved.schedule(&mut self.rng, ts, cell, ty, severity, 0.75);
            }
            out.push(RawEvent { ts, cell, attrs });
        }
    }

    fn attrs(&mut self, src: Src, ctx: HourCtx, kind: AreaKind) -> Attrs {
        let rng = &mut self.rng;
        // Visits happen when reception offices are open; otherwise grievances come by phone
        // and online.
        let channel = |rng: &mut Rng, visit_share: f64| -> u8 {
            if ctx.office() && !ctx.weekend() && rng.chance(visit_share) {
                VISIT
            } else {
                rng.pick(channel_weights(ctx)) as u8
            }
        };
        match (self.inc.kind, src) {
            (IncidentKind::LabourDisputeWave, Src::Petition) => {
                let ch = channel(rng, 0.55);
                petition_with(rng, ch, topic_index("wage_arrears"), 0.45, 0.35, (10, 60))
            }
            (IncidentKind::LabourDisputeWave, Src::Police) => {
                let ty =
                    pick_named(rng, &[("labour_dispute", 0.8), ("crowd_gathering", 0.12), ("road_blocking", 0.08)]);
                police_of_type(rng, police_type_index(ty), 0, kind)
            }
            (IncidentKind::LabourDisputeWave, _) => {
                let platform = rng.pick(&[22.0, 20.0, 20.0, 8.0, 10.0, 8.0, 7.0, 5.0]) as u8;
                opinion_with(rng, platform, topic_index("wage_arrears"), -0.55, 0.3, 2.0, 0.01)
            }
            (IncidentKind::NegativeOpinionBurst, _) => {
                let platform = if rng.chance(0.75) {
                    self.platforms[rng.below(self.platforms.len() as u64) as usize]
                } else {
                    rng.below(PLATFORMS.len() as u64) as u8
                };
                opinion_with(rng, platform, self.topic, -0.6, 0.25, 4.0, 0.03)
            }
            (IncidentKind::CrimeSpree, Src::Police) => {
                let ty = pick_named(rng, &[("theft", 0.55), ("burglary", 0.35), ("robbery", 0.10)]);
                police_of_type(rng, police_type_index(ty), 0, kind)
            }
            (IncidentKind::CrimeSpree, _) => {
                let ty = pick_named(rng, &[("theft", 0.5), ("burglary", 0.35), ("robbery", 0.08), ("snatching", 0.07)]);
                let ty = case_type_index(ty);
                Attrs::Case { ty, severity: case_severity(rng, ty), solved: false }
            }
            (IncidentKind::MassGathering, Src::Police) => {
                let ty = pick_named(rng, &[("crowd_gathering", 0.5), ("road_blocking", 0.3), ("sit_in", 0.2)]);
                police_of_type(rng, police_type_index(ty), -1, kind)
            }
            (IncidentKind::MassGathering, Src::Petition) => {
                let topic = pick_named(rng, &[("land_acquisition", 0.5), ("demolition", 0.5)]);
                let ch = channel(rng, 0.8);
                petition_with(rng, ch, topic_index(topic), 0.7, 0.4, (10, 80))
            }
            (IncidentKind::MassGathering, _) => {
                let topic = pick_named(rng, &[("land_acquisition", 0.5), ("demolition", 0.5)]);
                let platform = rng.below(PLATFORMS.len() as u64) as u8;
                opinion_with(rng, platform, topic_index(topic), -0.5, 0.3, 3.0, 0.02)
            }
            (IncidentKind::FraudWave, Src::Police) => police_of_type(rng, police_type_index("fraud"), 0, kind),
            (IncidentKind::FraudWave, _) => {
                let ty = pick_named(rng, &[("telecom_fraud", 0.8), ("fraud", 0.2)]);
                let ty = case_type_index(ty);
                Attrs::Case { ty, severity: case_severity(rng, ty), solved: false }
            }
            (IncidentKind::DemolitionDispute, _) => {
                let topic = pick_named(rng, &[("demolition", 0.6), ("land_acquisition", 0.4)]);
                let ch = channel(rng, 0.6);
                petition_with(rng, ch, topic_index(topic), 0.2, 0.6, (5, 20))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::default_city;
    use crate::r#gen::default_start;

    #[test]
    fn serde_round_trip_and_forms() {
        let inc = Incident {
            id: "x".into(),
            kind: IncidentKind::FraudWave,
            region: "990101".into(),
            start: default_start() + 9 * HOUR,
            duration_hours: 24,
            strength: 2.5,
        };
        let text = serde_json::to_string(&inc).unwrap();
        assert_eq!(
            text,
            r#"{"id":"x","kind":"fraud_wave","region":"990101","start":"2026-01-05T09:00:00+08:00","duration_hours":24,"strength":2.5}"#
        );
        assert_eq!(serde_json::from_str::<Incident>(&text).unwrap(), inc);
        let ms = text.replace("\"2026-01-05T09:00:00+08:00\"", &inc.start.to_string());
        assert_eq!(serde_json::from_str::<Incident>(&ms).unwrap(), inc);
    }

    #[test]
    fn auto_plan_rules() {
        let city = default_city();
        let tree = Tree::new(&city).unwrap();
        let start = default_start();
        for seed in 0..20u64 {
            let plan = auto_incidents(seed, 60, start, &city);
            assert!((6..=10).contains(&plan.len()), "seed {seed}: {} incidents", plan.len());
            for kind in IncidentKind::ALL {
                assert!(plan.iter().any(|i| i.kind == kind), "seed {seed}: no {kind}");
            }
            for (i, a) in plan.iter().enumerate() {
                assert!(a.start >= start + WARM_UP_DAYS as i64 * DAY);
                assert!(a.end() <= start + 60 * DAY, "{a:?}");
                let ra = tree.index[a.region.as_str()];
                let level = &city[ra].level;
                assert!(level == "street" || level == "district", "{level}");
                for b in &plan[i + 1..] {
                    let rb = tree.index[b.region.as_str()];
                    if tree.district[ra] == tree.district[rb] {
                        assert!(a.end() <= b.start || b.end() <= a.start, "{a:?} overlaps {b:?}");
                    }
                }
            }
            assert_eq!(plan, auto_incidents(seed, 60, start, &city));
        }
        assert!(auto_incidents(1, 20, start, &city).is_empty());
        assert!(!auto_incidents(1, 40, start, &city).is_empty());
    }
}
