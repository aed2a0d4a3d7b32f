//! The alert record's documented schema (docs/methodology.md §11) and the records agree: every
//! field a record can carry is in the table, and the table names no field records lack. A field
//! added to `AlertRecord` without its line in the table fails here.

use std::collections::BTreeSet;

use vigil_model::record::AlertRecord;

/// A record with every optional field set.
fn full_record() -> AlertRecord {
    serde_json::from_value(serde_json::json!({
        "alert_id": "990101:composite:2026-03-01T10:00:00Z", "seq": 1, "event": "escalated",
        "level": "orange", "previous_level": "yellow", "region": "990101", "region_name": "r",
        "region_level": "district", "scope": "composite", "score": 61.5,
        "window_start": "2026-03-01T09:00:00Z", "window_end": "2026-03-01T10:00:00Z", "date": "2026-03-01",
        "rules_version": "v", "reason": "override", "domains": {"police": 70.0},
        "top_contributors": [{"indicator": "i", "name": {"zh": "z", "en": "e"}, "value": 1.0, "expected": 0.5, "score": 40.0}],
        "top_regions": [{"region": "990101001", "region_name": "s", "score": 50.0, "weight": 0.5}],
        "evidence": {"indicator": "i", "indicator_name": "e", "category": "c", "windows": 2, "window": "1d",
            "since": "2026-02-28T10:00:00Z", "observed": 9.0, "expected": 2.0, "p_value": 0.001, "statistic": 3.0,
            "recurrence_days": 10.0, "linked": ["990101001"], "sources": ["police", "petition"], "summary": "s"},
        "response": "r", "deadline": "2026-03-01T16:00:00Z",
        "floor": {"rule": "any_domain", "trigger": "police", "trigger_level": "red", "level": "orange"}
    }))
    .unwrap()
}

/// The backticked names in the first column of the §11 field table.
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/methodology.md")).unwrap();
    let section = doc.split("## §11 ").nth(1).unwrap().split("\n## ").next().unwrap();
    let table = section.split("| field | meaning |").nth(1).unwrap();
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first.split('`').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_alert_record_field_is_documented_and_every_documented_field_exists() {
    let record = serde_json::to_value(full_record()).unwrap();
    let fields: BTreeSet<String> = record.as_object().unwrap().keys().cloned().collect();
    let documented = documented();
    let undocumented: Vec<_> = fields.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&fields).collect();
    assert!(undocumented.is_empty(), "fields missing from docs/methodology.md §11: {undocumented:?}");
    assert!(phantom.is_empty(), "docs/methodology.md §11 documents fields records lack: {phantom:?}");
    // The record round-trips through its own JSON.
    let back: AlertRecord = serde_json::from_value(record).unwrap();
    assert_eq!(back, full_record());
}
