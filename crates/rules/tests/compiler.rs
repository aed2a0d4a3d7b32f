//! The rule compiler: a valid rule set compiles; broken ones report every mistake with
//! file:line:col.

use vigil_rules::testing as mini;

use vigil_rules::{Measure, compile};

#[test]
fn mini_rule_set_compiles() {
    let rs = compile(&mini::files_with(&[])).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(rs.sources.len(), 1);
    assert_eq!(rs.regions.len(), 4);
    assert_eq!(rs.indicators.len(), 2);
    assert_eq!(rs.indicators[0].filter_sql, "incident_type IN ('theft', 'fight')");
    assert!(matches!(rs.indicators[1].measure, Measure::Share { .. }));
    assert!((rs.indicators[0].global_weight - 0.5).abs() < 1e-12);
    // Regions are indexed by sorted code, and each chain runs up to the root.
    let g1 = rs.regions.lookup("G1").unwrap();
    let chain: Vec<&str> =
        rs.regions.chains[g1 as usize].iter().map(|&r| rs.regions.codes[r as usize].as_str()).collect();
    assert_eq!(chain, ["G1", "D1", "C"]);
}

#[test]
fn five_distinct_mistakes_are_all_reported_with_positions() {
    let broken = mini::INDICATORS
        .replace(
            "category = \"volume\"\nsource = \"police\"\nfilter",
            "category = \"volumes\"\nsource = \"police\"\nfilter",
        )
        .replace("filter = \"incident_type IN (crime)\"", "filter = \"incident_kind = 'theft'\"")
        .replace("window = \"7d\"", "window = \"7x\"")
        .replace(
            "weight = 0.5\nnormalise = { method = \"goalposts\"",
            "weight = 0.5\ncolour = \"red\"\nnormalise = { method = \"goalposts\"",
        );
    let sources = mini::SOURCES.replace("name = \"urgent\"", "name = \"caller_phone\"");
    let err =
        compile(&mini::files_with(&[("indicators/police.toml", &broken), ("sources.toml", &sources)])).unwrap_err();
    let text = err.to_string();
    let expect = [
        ("sources.toml:", "looks like a personal identifier"),
        ("indicators/police.toml:", "unknown category `volumes`"),
        ("indicators/police.toml:", "`incident_kind` is not a declared attribute"),
        ("indicators/police.toml:", "unknown unit `x`"),
        ("indicators/police.toml:", "unknown field `colour`"),
    ];
    for (file, msg) in expect {
        assert!(text.lines().any(|l| l.starts_with(file) && l.contains(msg)), "missing `{msg}` in:\n{text}");
    }
    // Every line carries file:line:col.
    for l in text.lines() {
        let parts: Vec<&str> = l.splitn(4, ':').collect();
        assert!(parts.len() == 4 && parts[1].parse::<usize>().is_ok() && parts[2].parse::<usize>().is_ok(), "{l}");
    }
    // The filter error points at the attribute inside the filter string.
    let line = text.lines().find(|l| l.contains("incident_kind")).unwrap();
    let src_line = broken.lines().position(|l| l.contains("incident_kind")).unwrap() + 1;
    assert!(line.starts_with(&format!("indicators/police.toml:{src_line}:11:")), "{line}");
}

#[test]
fn weights_regions_and_grading_are_checked() {
    let index = mini::INDEX.replace("weight = 1.0\n\n[[category]]", "weight = 0.9\n\n[[category]]");
    let regions = "code,parent,level,name,population\nC,,city,City,1\nD1,C,district,East,1\nD1,C,district,Again,1\nX,Q,grid,Orphan,1\nS,D1,district,Twin,1\n";
    let grading = mini::GRADING.replace("enter = 75.0\nclear = 70.0", "enter = 50.0\nclear = 60.0");
    let err =
        compile(&mini::files_with(&[("index.toml", &index), ("regions.csv", regions), ("grading.toml", &grading)]))
            .unwrap_err();
    let text = err.to_string();
    for msg in [
        "domain weights sum to 0.9000, not 1",
        "duplicate region code `D1`",
        "parent `Q` of `X` is not a declared region",
        "region `S` is a district but its parent `D1` is a district",
        "clear (60) must be below enter (50)",
        "enter thresholds must increase",
    ] {
        assert!(text.contains(msg), "missing `{msg}` in:\n{text}");
    }
}

#[test]
fn duplicate_ids_and_bad_measures() {
    let dup = format!("{}\n{}", mini::INDICATORS, mini::INDICATORS.replace("slow_share_7d", "other_share"));
    let err = compile(&mini::files_with(&[("indicators/police.toml", &dup)])).unwrap_err();
    assert!(err.to_string().contains("duplicate indicator id `crime_count_24h`"), "{err}");
    let bad = mini::INDICATORS.replace("measure = \"count\"", "measure = \"median(priority)\"");
    let err = compile(&mini::files_with(&[("indicators/police.toml", &bad)])).unwrap_err();
    assert!(err.to_string().contains("unknown measure `median`"), "{err}");
    let bad = mini::INDICATORS.replace("measure = \"count\"", "measure = \"sum(incident_type)\"");
    let err = compile(&mini::files_with(&[("indicators/police.toml", &bad)])).unwrap_err();
    assert!(err.to_string().contains("`incident_type` is not numeric"), "{err}");
}

#[test]
fn syntax_errors_point_at_the_file() {
    let err = compile(&mini::files_with(&[("index.toml", "[index\nmethod = 1")])).unwrap_err();
    assert!(
        err.0.iter().any(|d| d.file == "index.toml" && d.line == 1 && d.message.starts_with("TOML syntax")),
        "{err}"
    );
}
