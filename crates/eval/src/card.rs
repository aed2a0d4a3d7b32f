//! The scorecard: detection and false alerts of one detector's signals against a truth, at one
//! threshold (a [`LevelCard`], e.g. vigil's orange and above) or over a sweep of thresholds (a
//! [`Curve`]), and the detection each curve reaches at matched false-alert rates.

use std::collections::BTreeMap;

use serde::Serialize;
use vigil_rules::RuleSet;

use crate::signals::Signals;
use crate::truth::{Surge, Truth};

/// Counts of one strength bucket at one threshold.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Bucket {
    pub surges: usize,
    pub detected_own: usize,
    pub detected_related: usize,
    /// Expected detections by random alarms at the same false-alert rate (own region).
    pub chance: f64,
}

/// Detection and false alerts at one threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub threshold: f64,
    pub false_alerts: u64,
    pub false_per_100_region_days: f64,
    pub surges: usize,
    /// Detected in a region of the surge or inside one (a sub-region holds part of its excess).
    pub detected_own: usize,
    /// Detected in a region of the surge, inside one, or in an ancestor.
    pub detected_related: usize,
    /// Of the related detections: the first alarm named the surge's region (or a region inside
    /// it, or its parent) and the surge's category.
    pub localised: usize,
    /// Of the own-region detections, those localised: the share the targets speak of ("in 80 %
    /// of detections the first alert names..."), where a parent's chance alarm during a surge
    /// its own region never raised counts neither way.
    pub localised_own: usize,
    /// Expected own-region detections of random alarms at this false-alert rate.
    pub chance: f64,
    pub median_delay_days: Option<f64>,
    pub p90_delay_days: Option<f64>,
    pub by_bucket: BTreeMap<String, Bucket>,
}

/// One surge's outcome at one threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SurgeResult {
    pub id: String,
    pub bucket: String,
    pub detected_own: bool,
    pub detected_related: bool,
    pub delay_days: Option<i64>,
    /// The region and category of the first related alarm.
    pub first_region: Option<String>,
    pub first_category: Option<String>,
    pub localised: bool,
}

/// A single-threshold scorecard with every surge's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LevelCard {
    pub method: String,
    pub stream: String,
    pub regions: usize,
    pub region_days: u64,
    pub grace_days: i64,
    pub point: Point,
    pub per_surge: Vec<SurgeResult>,
}

/// Detection against false alerts over a sweep of thresholds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Curve {
    pub method: String,
    pub stream: String,
    pub regions: usize,
    pub region_days: u64,
    pub grace_days: i64,
    pub points: Vec<Point>,
}

/// The best detection a curve reaches at or below a false-alert rate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    pub false_per_100_region_days: f64,
    pub point: Option<Point>,
}

/// What is precomputed once per (truth, signals) and shared by every threshold.
pub struct Evaluation<'a> {
    rules: &'a RuleSet,
    truth: &'a Truth,
    sig: &'a Signals,
    grace_days: i64,
    /// Per slot and day: inside some surge's window (its regions, their ancestors and their
    /// descendants, from its
    /// first day to `grace_days` after its last).
    covered: Vec<bool>,
    /// Per surge of the truth: its regions, then the regions inside them (its own regions for
    /// detection: a district-wide surge's events fall in some of its streets, and an alarm
    /// there has found it, more precisely).
    inside: Vec<Vec<u32>>,
}

impl<'a> Evaluation<'a> {
    pub fn new(rules: &'a RuleSet, truth: &'a Truth, sig: &'a Signals, grace_days: i64) -> Evaluation<'a> {
        let mut covered = vec![false; sig.regions.len() * sig.days];
        // A surge covers its regions, their ancestors (a parent's alarm over the same excess)
        // and their descendants (a region-wide surge's events fall in some of its sub-regions,
        // and an alarm there has found it, more precisely): none of those alarms is false.
        for s in truth.surges.iter().chain(&truth.context) {
            for (slot, &r) in sig.regions.iter().enumerate() {
                let related = s.regions.iter().any(|&x| {
                    rules.regions.chains[x as usize].contains(&r) || rules.regions.chains[r as usize].contains(&x)
                });
                if !related {
                    continue;
                }
                for day in s.first..=s.last + grace_days {
                    let d = day - sig.first_day;
                    if (0..sig.days as i64).contains(&d) {
                        covered[slot * sig.days + d as usize] = true;
                    }
                }
            }
        }
        let inside = truth
            .surges
            .iter()
            .map(|s| {
                let mut own = s.regions.clone();
                for r in 0..rules.regions.len() as u32 {
                    if !own.contains(&r) && s.regions.iter().any(|&x| rules.regions.is_ancestor_or_self(x, r)) {
                        own.push(r);
                    }
                }
                own
            })
            .collect();
        Evaluation { rules, truth, sig, grace_days, covered, inside }
    }

    fn region_days(&self) -> u64 {
        (self.sig.regions.len() * self.sig.days) as u64
    }

    /// Alarm region-days outside every surge window at threshold `t`. Every day counts, not
    /// only onsets: a detector that stays on would otherwise look free of false alerts.
    fn false_alerts(&self, t: f64) -> u64 {
        let mut n = 0;
        for slot in 0..self.sig.regions.len() {
            for d in 0..self.sig.days {
                if self.sig.at(slot, d) >= t && !self.covered[slot * self.sig.days + d] {
                    n += 1;
                }
            }
        }
        n
    }

    /// The first alarm on a surge's days among `regions`, as (day index, slot).
    fn first_alarm(&self, s: &Surge, regions: &[u32], t: f64) -> Option<(i64, usize)> {
        for day in s.first..=s.last {
            let d = day - self.sig.first_day;
            if !(0..self.sig.days as i64).contains(&d) {
                continue;
            }
            for &r in regions {
                if let Some(slot) = self.sig.slot(r)
                    && self.sig.at(slot, d as usize) >= t
                {
                    return Some((day, slot));
                }
            }
        }
        None
    }

    fn surge(&self, s: &Surge, inside: &[u32], t: f64) -> SurgeResult {
        let own = self.first_alarm(s, inside, t);
        // Own regions first (the surge's, then those inside them), then their ancestors from the
        // nearest up, so a same-day alarm in the surge's own region is the one reported.
        let mut related: Vec<u32> = inside.to_vec();
        for depth in 1..vigil_rules::MAX_LEVELS {
            for &r in &s.regions {
                if let Some(&a) = self.rules.regions.chains[r as usize].get(depth)
                    && !related.contains(&a)
                {
                    related.push(a);
                }
            }
        }
        let first = self.first_alarm(s, &related, t);
        let (first_region, first_category, localised) = match first {
            Some((day, slot)) => {
                let r = self.sig.regions[slot];
                let parent_of_surge = s.regions.iter().any(|&x| self.rules.regions.parents[x as usize] == Some(r));
                let cat = self.sig.category_at(slot, (day - self.sig.first_day) as usize);
                let localised = (inside.contains(&r) || parent_of_surge) && cat.is_some_and(|c| s.names(c));
                (Some(self.rules.regions.codes[r as usize].clone()), cat.map(str::to_string), localised)
            }
            None => (None, None, false),
        };
        SurgeResult {
            id: s.id.clone(),
            bucket: s.bucket.clone(),
            detected_own: own.is_some(),
            detected_related: first.is_some(),
            delay_days: own.map(|(day, _)| day - s.first),
            first_region,
            first_category,
            localised,
        }
    }

    /// The scorecard at threshold `t`.
    pub fn at(&self, t: f64) -> (Point, Vec<SurgeResult>) {
        let false_alerts = self.false_alerts(t);
        let rd = self.region_days().max(1) as f64;
        // The chance level: false alerts can only fall on region-days outside the surge windows.
        let uncovered = self.covered.iter().filter(|c| !**c).count().max(1) as f64;
        let p = false_alerts as f64 / uncovered;
        let results: Vec<SurgeResult> =
            self.truth.surges.iter().zip(&self.inside).map(|(s, inside)| self.surge(s, inside, t)).collect();
        let mut by_bucket: BTreeMap<String, Bucket> = BTreeMap::new();
        let mut chance = 0.0;
        let mut delays: Vec<i64> = Vec::new();
        for ((s, r), inside) in self.truth.surges.iter().zip(&results).zip(&self.inside) {
            let own_slots = inside.iter().filter(|&&x| self.sig.slot(x).is_some()).count();
            let c = 1.0 - (1.0 - p).powi((s.last - s.first + 1) as i32 * own_slots as i32);
            chance += c;
            let b = by_bucket.entry(s.bucket.clone()).or_default();
            b.surges += 1;
            b.chance += c;
            b.detected_own += r.detected_own as usize;
            b.detected_related += r.detected_related as usize;
            delays.extend(r.delay_days);
        }
        delays.sort_unstable();
        let q = |f: f64| -> Option<f64> {
            (!delays.is_empty()).then(|| delays[((delays.len() - 1) as f64 * f).round() as usize] as f64)
        };
        let point = Point {
            threshold: t,
            false_alerts,
            false_per_100_region_days: 100.0 * false_alerts as f64 / rd,
            surges: results.len(),
            detected_own: results.iter().filter(|r| r.detected_own).count(),
            detected_related: results.iter().filter(|r| r.detected_related).count(),
            localised: results.iter().filter(|r| r.localised).count(),
            localised_own: results.iter().filter(|r| r.detected_own && r.localised).count(),
            chance,
            median_delay_days: q(0.5),
            p90_delay_days: q(0.9),
            by_bucket,
        };
        (point, results)
    }

    /// A single-threshold scorecard.
    pub fn card(&self, t: f64) -> LevelCard {
        let (point, per_surge) = self.at(t);
        LevelCard {
            method: self.sig.method.clone(),
            stream: self.truth.stream.clone(),
            regions: self.sig.regions.len(),
            region_days: self.region_days(),
            grace_days: self.grace_days,
            point,
            per_surge,
        }
    }

    /// The sweep: thresholds at every distinct signal value when there are few, otherwise at
    /// log-spaced ranks of the top fifth of values (the region of false-alert rates that
    /// matter), always from most to least strict.
    pub fn curve(&self) -> Curve {
        let mut values: Vec<f64> = self.sig.values().collect();
        values.sort_by(|a, b| b.total_cmp(a));
        values.dedup();
        let thresholds: Vec<f64> = if values.len() <= 600 {
            values
        } else {
            let top = (values.len() / 5).max(600);
            let mut picked: Vec<f64> = (0..400)
                .map(|k| {
                    let rank = ((top as f64).ln() * k as f64 / 399.0).exp().round() as usize;
                    values[(rank - 1).min(values.len() - 1)]
                })
                .collect();
            picked.dedup();
            picked
        };
        let points = thresholds.into_iter().map(|t| self.at(t).0).collect();
        Curve {
            method: self.sig.method.clone(),
            stream: self.truth.stream.clone(),
            regions: self.sig.regions.len(),
            region_days: self.region_days(),
            grace_days: self.grace_days,
            points,
        }
    }
}

/// Shorthand: the curve of `sig` against `truth`.
pub fn evaluate(rules: &RuleSet, truth: &Truth, sig: &Signals, grace_days: i64) -> Curve {
    Evaluation::new(rules, truth, sig, grace_days).curve()
}

/// The best own-region detection a curve reaches at or below each false-alert rate.
pub fn matched(curve: &Curve, rates: &[f64]) -> Vec<Target> {
    rates
        .iter()
        .map(|&rate| Target {
            false_per_100_region_days: rate,
            point: curve
                .points
                .iter()
                .filter(|p| p.false_per_100_region_days <= rate + 1e-12)
                .max_by(|a, b| a.detected_own.cmp(&b.detected_own).then(b.false_alerts.cmp(&a.false_alerts)))
                .cloned(),
        })
        .collect()
}

/// One line per target rate: `rate  detected/surges (pct)  chance  threshold`.
pub fn summarise(curve: &Curve, rates: &[f64]) -> String {
    let mut out = String::new();
    for t in matched(curve, rates) {
        match t.point {
            Some(p) => out.push_str(&format!(
                "{:>6} false/100 region-days: {:>3}/{} detected in own region ({:.0} %), chance {:.1}, threshold {}\n",
                t.false_per_100_region_days,
                p.detected_own,
                p.surges,
                100.0 * p.detected_own as f64 / p.surges.max(1) as f64,
                p.chance,
                p.threshold
            )),
            None => out.push_str(&format!("{:>6} false/100 region-days: not reached\n", t.false_per_100_region_days)),
        }
    }
    out
}
