//! Scoring a detector against the ground truth: which injected incidents raised an alert in a
//! related region in time, how long it took, and how many alerts fired outside any incident.
//!
//! Matching rule. An alert record matches an incident when its region is the incident's
//! region, an ancestor of it (a district or city alert covers a street incident) or a
//! descendant of it (a street alert inside a district incident), and its `window_end` lies in
//! `[start, start + duration + grace]`. The grace period credits detectors whose windows close
//! after the incident has ended, which every windowed detector does. An incident is
//! *detected* when an `opened` or `escalated` record of level yellow or above matches it;
//! blue is an advisory level and does not count as a detection.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;
use vigil_model::record::{AlertEvent, AlertRecord};
use vigil_model::time::{HOUR, parse_rfc3339};
use vigil_model::{Level, RegionSpec, Ts};

use crate::incident::{Incident, IncidentKind};

/// The outcome for one incident.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentResult {
    pub id: String,
    pub kind: IncidentKind,
    pub region: String,
    pub detected: bool,
    /// Hours from the incident start to the first detecting alert.
    pub delay_hours: Option<f64>,
    /// The highest level among all matching `opened`/`escalated` records (blue included).
    pub max_level: Option<String>,
}

/// Detection summary of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scorecard {
    pub incidents: usize,
    pub detected: usize,
    /// `detected / incidents`, 0 when there are no incidents.
    pub detection_rate: f64,
    pub median_delay_hours: Option<f64>,
    /// Alert records with event `opened`.
    pub alerts_opened: usize,
    /// `opened` records that match no incident (region related and time in the window).
    pub alerts_outside_incidents: usize,
    /// Alert records that reached yellow or above (opened or escalated) outside every incident:
    /// the false alarms an analyst would have to act on.
    pub yellow_plus_outside_incidents: usize,
    /// `opened` plus `escalated` records by level.
    pub by_level: BTreeMap<String, usize>,
    pub per_incident: Vec<IncidentResult>,
}

/// Ancestor lookup over the registry. Alert regions missing from the registry are related
/// only to themselves.
struct Ancestry<'a> {
    parent: HashMap<&'a str, &'a str>,
}

impl<'a> Ancestry<'a> {
    fn new(regions: &'a [RegionSpec]) -> Self {
        let parent =
            regions.iter().filter(|r| !r.parent.is_empty()).map(|r| (r.code.as_str(), r.parent.as_str())).collect();
        Ancestry { parent }
    }

    fn is_ancestor(&self, ancestor: &str, of: &str) -> bool {
        let mut at = of;
        // The step bound protects against a cyclic registry.
        for _ in 0..=self.parent.len() {
            match self.parent.get(at) {
                Some(p) if *p == ancestor => return true,
                Some(p) => at = p,
                None => return false,
            }
        }
        false
    }

    fn related(&self, a: &str, b: &str) -> bool {
        a == b || self.is_ancestor(a, b) || self.is_ancestor(b, a)
    }
}

/// Scores `alerts` against the injected incidents. Records whose `window_end` cannot be
/// parsed are ignored for matching (they still count in `alerts_opened` and `by_level`).
pub fn scorecard(truth: &[Incident], alerts: &[AlertRecord], regions: &[RegionSpec], grace_hours: u32) -> Scorecard {
    let tree = Ancestry::new(regions);
    let grace = grace_hours as i64 * HOUR;
    let ends: Vec<Option<Ts>> = alerts.iter().map(|a| parse_rfc3339(&a.window_end).ok()).collect();
    let matches = |inc: &Incident, a: &AlertRecord, end: Option<Ts>| -> bool {
        let Some(t) = end else { return false };
        t >= inc.start && t <= inc.end() + grace && tree.related(&inc.region, &a.region)
    };
    let raising = |a: &AlertRecord| matches!(a.event, AlertEvent::Opened | AlertEvent::Escalated);

    let mut per_incident = Vec::with_capacity(truth.len());
    for inc in truth {
        let mut first: Option<Ts> = None;
        let mut max_level: Option<Level> = None;
        for (a, end) in alerts.iter().zip(&ends) {
            if !raising(a) || !matches(inc, a, *end) {
                continue;
            }
            let Some(level) = a.level else { continue };
            max_level = max_level.max(Some(level));
            if level >= Level::Yellow {
                let t = end.expect("matched records have a time");
                first = Some(first.map_or(t, |f| f.min(t)));
            }
        }
        per_incident.push(IncidentResult {
            id: inc.id.clone(),
            kind: inc.kind,
            region: inc.region.clone(),
            detected: first.is_some(),
            delay_hours: first.map(|t| (t - inc.start) as f64 / HOUR as f64),
            max_level: max_level.map(|l| l.as_str().to_string()),
        });
    }

    let mut by_level = BTreeMap::new();
    let mut alerts_opened = 0;
    let mut alerts_outside_incidents = 0;
    let mut yellow_plus_outside_incidents = 0;
    for (a, end) in alerts.iter().zip(&ends) {
        if raising(a) && a.level >= Some(Level::Yellow) && !truth.iter().any(|inc| matches(inc, a, *end)) {
            yellow_plus_outside_incidents += 1;
        }
        if raising(a)
            && let Some(level) = a.level
        {
            *by_level.entry(level.as_str().to_string()).or_insert(0) += 1;
        }
        if a.event == AlertEvent::Opened {
            alerts_opened += 1;
            if !truth.iter().any(|inc| matches(inc, a, *end)) {
                alerts_outside_incidents += 1;
            }
        }
    }

    let detected = per_incident.iter().filter(|r| r.detected).count();
    let mut delays: Vec<f64> = per_incident.iter().filter_map(|r| r.delay_hours).collect();
    delays.sort_by(f64::total_cmp);
    let median_delay_hours = match delays.len() {
        0 => None,
        n if n % 2 == 1 => Some(delays[n / 2]),
        n => Some((delays[n / 2 - 1] + delays[n / 2]) / 2.0),
    };
    Scorecard {
        incidents: truth.len(),
        detected,
        detection_rate: if truth.is_empty() { 0.0 } else { detected as f64 / truth.len() as f64 },
        median_delay_hours,
        alerts_opened,
        alerts_outside_incidents,
        yellow_plus_outside_incidents,
        by_level,
        per_incident,
    }
}

impl fmt::Display for Scorecard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let median = self.median_delay_hours.map_or("-".to_string(), |d| format!("{d:.1} h"));
        writeln!(
            f,
            "incidents detected: {}/{} ({:.0} %), median delay {}",
            self.detected,
            self.incidents,
            100.0 * self.detection_rate,
            median
        )?;
        writeln!(
            f,
            "alerts opened: {}, outside incidents: {} (raised to yellow or above outside incidents: {})",
            self.alerts_opened, self.alerts_outside_incidents, self.yellow_plus_outside_incidents
        )?;
        let levels: Vec<String> = Level::ALL
            .iter()
            .map(|l| format!("{} {}", l.as_str(), self.by_level.get(l.as_str()).copied().unwrap_or(0)))
            .collect();
        writeln!(f, "opened+escalated by level: {}", levels.join(", "))?;
        if self.per_incident.is_empty() {
            return Ok(());
        }
        let idw = self.per_incident.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
        let regw = self.per_incident.iter().map(|r| r.region.len()).max().unwrap_or(6).max(6);
        writeln!(
            f,
            "{:<idw$}  {:<22}  {:<regw$}  {:<8}  {:>8}  max_level",
            "id", "kind", "region", "detected", "delay_h"
        )?;
        for r in &self.per_incident {
            let delay = r.delay_hours.map_or("-".to_string(), |d| format!("{d:.1}"));
            writeln!(
                f,
                "{:<idw$}  {:<22}  {:<regw$}  {:<8}  {:>8}  {}",
                r.id,
                r.kind.as_str(),
                r.region,
                if r.detected { "yes" } else { "no" },
                delay,
                r.max_level.as_deref().unwrap_or("-")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::default_city;
    use crate::r#gen::default_start;
    use vigil_model::time::format_utc;

    fn alert(event: AlertEvent, level: Level, region: &str, window_end: Ts) -> AlertRecord {
        AlertRecord {
            alert_id: format!("{region}:composite:{}", format_utc(window_end)),
            seq: 0,
            event,
            level: Some(level),
            previous_level: None,
            region: region.into(),
            region_name: String::new(),
            region_level: String::new(),
            scope: "composite".into(),
            score: Some(60.0),
            window_start: format_utc(window_end - vigil_model::time::HOUR),
            window_end: format_utc(window_end),
            date: None,
            rules_version: "test".into(),
            reason: "score".into(),
            domains: BTreeMap::new(),
            top_contributors: Vec::new(),
            top_regions: Vec::new(),
            evidence: None,
            response: None,
            deadline: None,
            floor: None,
        }
    }

    fn incident(id: &str, region: &str, start: Ts, hours: u32) -> Incident {
        Incident {
            id: id.into(),
            kind: IncidentKind::LabourDisputeWave,
            region: region.into(),
            start,
            duration_hours: hours,
            strength: 3.0,
        }
    }

    #[test]
    fn detection_delay_and_outside_alerts() {
        let city = default_city();
        let t0 = default_start() + 30 * 24 * HOUR;
        let truth = vec![
            incident("a", "990101001", t0, 48),
            incident("b", "990199", t0, 24), // not in the registry: only exact matches
            incident("c", "990103005", t0 + 100 * HOUR, 72),
        ];
        let alerts = vec![
            // Blue on the district above "a": matches but does not detect.
            alert(AlertEvent::Opened, Level::Blue, "990101", t0 + 2 * HOUR),
            // Yellow escalation on the city: detects "a" (ancestor) 10 h in.
            alert(AlertEvent::Escalated, Level::Yellow, "990100", t0 + 10 * HOUR),
            // Orange on a grid cell under "a", later: raises max_level.
            alert(AlertEvent::Opened, Level::Orange, "990101001002", t0 + 30 * HOUR),
            // Red on a sibling street: unrelated to "a", and outside every incident.
            alert(AlertEvent::Opened, Level::Red, "990101002", t0 + 5 * HOUR),
            // Yellow on "c"'s district, too early: before the start.
            alert(AlertEvent::Opened, Level::Yellow, "990103", t0 + 99 * HOUR),
            // Yellow opened on "c"'s district inside the grace period after its end.
            alert(AlertEvent::Opened, Level::Yellow, "990103", t0 + 100 * HOUR + 72 * HOUR + 20 * HOUR),
            // Resolved records never detect and are not counted.
            alert(AlertEvent::Resolved, Level::Red, "990101001", t0 + HOUR),
        ];
        let card = scorecard(&truth, &alerts, &city, 24);
        assert_eq!(card.incidents, 3);
        assert_eq!(card.detected, 2);
        assert!((card.detection_rate - 2.0 / 3.0).abs() < 1e-12);
        let a = &card.per_incident[0];
        assert!(a.detected);
        assert_eq!(a.delay_hours, Some(10.0));
        assert_eq!(a.max_level.as_deref(), Some("orange"));
        let b = &card.per_incident[1];
        assert!(!b.detected && b.delay_hours.is_none() && b.max_level.is_none());
        let c = &card.per_incident[2];
        assert_eq!(c.delay_hours, Some(92.0));
        assert_eq!(card.median_delay_hours, Some(51.0));
        assert_eq!(card.alerts_opened, 5);
        // The red sibling-street alert and the too-early yellow match nothing.
        assert_eq!(card.alerts_outside_incidents, 2);
        // Both are yellow or above; the blue one matched "a" anyway.
        assert_eq!(card.yellow_plus_outside_incidents, 2);
        assert_eq!(card.by_level.get("yellow"), Some(&3));
        assert_eq!(card.by_level.get("red"), Some(&1));
        assert_eq!(card.by_level.get("blue"), Some(&1));
        assert_eq!(card.by_level.get("orange"), Some(&1));

        // With no grace the late "c" alert no longer counts.
        let strict = scorecard(&truth, &alerts, &city, 0);
        assert!(!strict.per_incident[2].detected);
        assert_eq!(strict.alerts_outside_incidents, 3);
        assert_eq!(strict.yellow_plus_outside_incidents, 3);

        let text = card.to_string();
        assert!(text.contains("2/3"), "{text}");
        assert!(text.contains("labour_dispute_wave"), "{text}");
    }

    #[test]
    fn empty_inputs() {
        let card = scorecard(&[], &[], &default_city(), 24);
        assert_eq!(card.incidents, 0);
        assert_eq!(card.detection_rate, 0.0);
        assert!(card.median_delay_hours.is_none());
        assert!(!card.to_string().is_empty());
        serde_json::to_string(&card).unwrap();
    }
}
