//! The scorecard's arithmetic on a case small enough to check by hand (the expected numbers are
//! worked out in the comments), and the refusals of bad truth files.

use vigil_eval::{Evaluation, from_baseline_csv, matched, parse_truth};
use vigil_rules::testing as mini;

fn rules() -> vigil_rules::RuleSet {
    vigil_rules::compile(&mini::files_with(&[])).unwrap()
}

/// Ten days; surge s1 in grid cell G1 (under district D1) on days 4-5, s2 in district D2 on day 8.
const TRUTH: &str = r#"{"stream": "hand", "start": "2026-03-01", "end": "2026-03-10",
 "surges": [
  {"id": "s1", "regions": ["G1"], "category": "volume", "start": "2026-03-04", "days": 2, "shape": "spike", "bucket": "2x", "added": [3, 3]},
  {"id": "s2", "regions": ["D2"], "category": "volume", "start": "2026-03-08", "days": 1, "shape": "spike", "bucket": "3x", "added": [5]}
 ]}"#;

/// Regions G1, D1, D2 signal (30 region-days). G1 on day 5 (5) detects s1 with a delay of one
/// day; D1 (G1's parent) on day 4 (3) is a related alarm inside s1's window; D2 on days 2-3 (4)
/// are two false alarm days; D1 on day 9 (2) is false (s1's window with a grace day ends on day
/// 6); G1 on day 10 (6) is false. Nothing signals s2.
const SIGNALS: &str = "method,region,category,date,stat
m,G1,volume,2026-03-05,5
m,D1,volume,2026-03-04,3
m,D2,mix,2026-03-02,4
m,D2,mix,2026-03-03,4
m,D1,volume,2026-03-09,2
m,G1,volume,2026-03-10,6
other,G1,volume,2026-03-01,99
";

#[test]
fn hand_checked_case() {
    let rules = rules();
    let truth = parse_truth("truth.json", TRUTH, &rules).unwrap();
    let sig = from_baseline_csv("s.csv", SIGNALS, &rules, "m", truth.first_day, truth.last_day).unwrap();
    assert_eq!(sig.regions.len(), 3);
    let ev = Evaluation::new(&rules, &truth, &sig, 1);

    // t = 5: one false onset (G1, day 10) in 30 region-days; s1 found in G1 on day 5.
    let card = ev.card(5.0);
    let p = &card.point;
    assert_eq!((p.false_alerts, p.detected_own, p.detected_related, p.localised, p.localised_own), (1, 1, 1, 1, 1));
    assert!((p.false_per_100_region_days - 100.0 / 30.0).abs() < 1e-9);
    assert_eq!(p.median_delay_days, Some(1.0));
    // Chance: p = 1 false alert over the 22 region-days outside the surge windows (G1 and D1 on
    // days 4-6, D2 on days 8-9 are covered); s1 has 2 region-days, s2 has 1:
    // (1 - (21/22)^2) + (1 - 21/22).
    let q: f64 = 21.0 / 22.0;
    assert!((p.chance - ((1.0 - q * q) + (1.0 - q))).abs() < 1e-12, "{}", p.chance);
    assert_eq!(card.per_surge[0].delay_days, Some(1));
    assert_eq!(card.per_surge[0].first_region.as_deref(), Some("G1"));
    assert!(!card.per_surge[1].detected_related);
    assert_eq!(p.by_bucket["2x"].detected_own, 1);
    assert_eq!(p.by_bucket["3x"].detected_own, 0);

    // t = 3: D2's two days, plus G1 on day 10: 3 false. The first related alarm of s1 is now D1
    // on day 4, the parent, naming the right category: still localised.
    let card = ev.card(3.0);
    assert_eq!(card.point.false_alerts, 3);
    assert_eq!(card.per_surge[0].first_region.as_deref(), Some("D1"));
    assert_eq!(card.per_surge[0].delay_days, Some(1), "own-region delay is still G1's");
    assert!(card.per_surge[0].localised);

    // t = 2: D1 on day 9 is outside s1's window plus one grace day: 4 false.
    assert_eq!(ev.card(2.0).point.false_alerts, 4);
    // Three grace days cover s1's window to day 8, still not day 9; four reach it: 3 false.
    assert_eq!(Evaluation::new(&rules, &truth, &sig, 3).card(2.0).point.false_alerts, 4);
    assert_eq!(Evaluation::new(&rules, &truth, &sig, 4).card(2.0).point.false_alerts, 3);

    // The sweep visits every distinct value; at 5 false per 100 region-days the best point is
    // t = 5 (1 of 2 detected); 1 false per 100 region-days is never reached.
    let curve = ev.curve();
    assert_eq!(curve.points.iter().map(|p| p.threshold).collect::<Vec<_>>(), [6.0, 5.0, 4.0, 3.0, 2.0]);
    let m = matched(&curve, &[1.0, 5.0]);
    assert!(m[0].point.is_none());
    assert_eq!(m[1].point.as_ref().map(|p| (p.threshold, p.detected_own)), Some((5.0, 1)));
}

#[test]
fn bad_truth_is_refused_with_the_line() {
    let rules = rules();
    let bad = TRUTH.replace("\"regions\": [\"D2\"]", "\"regions\": [\"D9\"]").replace(
        "\"category\": \"volume\", \"start\": \"2026-03-04\"",
        "\"category\": \"volumes\", \"start\": \"2026-03-04\"",
    );
    let errs = parse_truth("truth.json", &bad, &rules).unwrap_err();
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter().any(|e| e.starts_with("truth.json:3:") && e.contains("unknown category `volumes`")),
        "{text:?}"
    );
    assert!(text.iter().any(|e| e.starts_with("truth.json:4:") && e.contains("unknown region `D9`")), "{text:?}");
    // Overlapping surges in the same region and category.
    let overlap = TRUTH.replace(
        "\"regions\": [\"D2\"], \"category\": \"volume\", \"start\": \"2026-03-08\"",
        "\"regions\": [\"G1\"], \"category\": \"volume\", \"start\": \"2026-03-05\"",
    );
    let errs = parse_truth("truth.json", &overlap, &rules).unwrap_err();
    assert!(errs.iter().any(|e| e.to_string().contains("surge `s2` overlaps surge `s1`")), "{errs:?}");
    // Alerts of another rule set.
    let alert = r#"{"alert_id":"D1:composite:x","seq":0,"event":"opened","level":"orange","previous_level":null,"region":"D1","region_name":"East","region_level":"district","scope":"composite","score":60.0,"window_end":"2026-03-05T16:00:00Z","rules_version":"other","reason":"score","domains":{},"top_contributors":[]}"#;
    let truth = parse_truth("truth.json", TRUTH, &rules).unwrap();
    let err =
        vigil_eval::from_alerts("alerts.jsonl", alert, &rules, truth.first_day, truth.last_day, None).unwrap_err();
    assert!(err.to_string().starts_with("alerts.jsonl:1: alert from rules other"), "{err}");
}

/// A district-wide surge's events fall in its grid cells: an alarm in one of them during the
/// surge has found it, more precisely than the district's own (the most specific region that
/// explains the excess): not a false alert, an own-region detection, localised.
#[test]
fn alarms_inside_a_surge_region_are_not_false() {
    let rules = rules();
    let truth = r#"{"stream": "hand", "start": "2026-03-01", "end": "2026-03-10",
 "surges": [
  {"id": "s1", "regions": ["D1"], "category": "volume", "start": "2026-03-04", "days": 2, "shape": "spike", "bucket": "2x", "added": [3, 3]}
 ]}"#;
    let truth = parse_truth("truth.json", truth, &rules).unwrap();
    // G1 (in D1) alarms on day 5, inside the surge; D2 on day 5 is false.
    let signals = "method,region,category,date,stat\nm,G1,volume,2026-03-05,5\nm,D2,volume,2026-03-05,5\nm,D1,volume,2026-03-09,1\n";
    let sig = from_baseline_csv("s.csv", signals, &rules, "m", truth.first_day, truth.last_day).unwrap();
    let ev = Evaluation::new(&rules, &truth, &sig, 1);
    let card = ev.card(5.0);
    assert_eq!(card.point.false_alerts, 1, "{:?}", card.point);
    assert_eq!((card.point.detected_own, card.point.localised), (1, 1), "{:?}", card.point);
    assert_eq!(card.per_surge[0].first_region.as_deref(), Some("G1"));
    assert_eq!(card.per_surge[0].delay_days, Some(1));
    // Chance: random alarms in G1 find the surge as well as D1's: p = 1 false over the 24
    // region-days outside the window (D1 and G1 on days 4-6 covered), over 2 days x 2 regions.
    let q: f64 = 23.0 / 24.0;
    assert!((card.point.chance - (1.0 - q.powi(4))).abs() < 1e-12, "{}", card.point.chance);
    // An alarm in the surge's parent is related, not own.
    let signals = "method,region,category,date,stat\nm,C,volume,2026-03-05,5\nm,G1,volume,2026-03-01,1\nm,D2,volume,2026-03-01,1\n";
    let sig = from_baseline_csv("s.csv", signals, &rules, "m", truth.first_day, truth.last_day).unwrap();
    let p = Evaluation::new(&rules, &truth, &sig, 1).card(5.0).point;
    assert_eq!((p.detected_own, p.detected_related), (0, 1), "{p:?}");
}

/// A parent's alarm naming the surge's category during a surge its own region never raised is a
/// related detection and localised, but no own-region detection: it counts among the related
/// detections' localisation, not the own-region detections'.
#[test]
fn a_parent_only_alarm_is_localised_among_related_detections_only() {
    let rules = rules();
    let truth = parse_truth("truth.json", TRUTH, &rules).unwrap();
    let signals = "method,region,category,date,stat\nm,D1,volume,2026-03-04,3\nm,G1,volume,2026-03-10,1\n";
    let sig = from_baseline_csv("s.csv", signals, &rules, "m", truth.first_day, truth.last_day).unwrap();
    let p = Evaluation::new(&rules, &truth, &sig, 1).card(3.0).point;
    assert_eq!((p.detected_own, p.detected_related, p.localised, p.localised_own), (0, 1, 1, 0), "{p:?}");
}

/// A synthetic incident's events count in several categories; its truth lists the others as
/// `also`, and a first alarm naming one of them is localised, one naming none is not.
#[test]
fn an_alarm_naming_a_category_the_surge_also_counts_in_is_localised() {
    // A second category, "mix", holding the share indicator; weights still sum to one.
    let index = format!(
        "{}\n[[category]]\nid = \"mix\"\ndomain = \"police\"\nname = {{ zh = \"构成\", en = \"Mix\" }}\nweight = 0.5\n",
        mini::INDEX.replacen("weight = 1.0\n\n[[override]]", "weight = 0.5\n\n[[override]]", 1)
    );
    let indicators = mini::INDICATORS
        .replacen(
            "category = \"volume\"\nsource = \"police\"\nmeasure",
            "category = \"mix\"\nsource = \"police\"\nmeasure",
            1,
        )
        .replace("weight = 0.5", "weight = 1.0");
    let files = mini::files_with(&[("index.toml", &index), ("indicators/police.toml", &indicators)]);
    let rules = vigil_rules::compile(&files).unwrap();
    // s1 is a "mix" surge; its first alarm (G1, day 5) names "volume".
    let mixed = TRUTH.replacen("\"category\": \"volume\"", "\"category\": \"mix\"", 1);
    let also = mixed.replacen("\"category\": \"mix\"", "\"category\": \"mix\", \"also\": [\"volume\"]", 1);
    for (truth, localised) in [(&mixed, false), (&also, true)] {
        let truth = parse_truth("truth.json", truth, &rules).unwrap();
        let sig = from_baseline_csv("s.csv", SIGNALS, &rules, "m", truth.first_day, truth.last_day).unwrap();
        let card = Evaluation::new(&rules, &truth, &sig, 1).card(5.0);
        assert!(card.per_surge[0].detected_own);
        assert_eq!(card.per_surge[0].first_category.as_deref(), Some("volume"));
        assert_eq!(card.per_surge[0].localised, localised, "{truth:?}");
    }
    // An `also` category the rule set does not have is refused, with the surge's line.
    let bad = mixed.replacen("\"category\": \"mix\"", "\"category\": \"mix\", \"also\": [\"volumes\"]", 1);
    let errs = parse_truth("truth.json", &bad, &rules).unwrap_err();
    assert!(errs.iter().any(|e| e.to_string().contains("unknown category `volumes`")), "{errs:?}");
}
