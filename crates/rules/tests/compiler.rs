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
    let grading = mini::GRADING.replace("enter = 75.0\nclear = 70.0", "enter = 50.0\nclear = 60.0").replacen(
        "enter = 30.0",
        "deadline = \"30m\"\nenter = 30.0",
        1,
    );
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
        "a deadline is at least \"1h\" and at most \"365d\"",
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
    // Growth carries its own baseline; another one over its history would mix ratios and counts.
    let bad = mini::INDICATORS.replacen("measure = \"count\"", "measure = \"growth(1d, 7)\"", 1);
    let err = compile(&mini::files_with(&[("indicators/police.toml", &bad)])).unwrap_err();
    assert!(err.to_string().contains("score it with goalposts"), "{err}");
}

#[test]
fn syntax_errors_point_at_the_file() {
    let err = compile(&mini::files_with(&[("index.toml", "[index\nmethod = 1")])).unwrap_err();
    assert!(
        err.0.iter().any(|d| d.file == "index.toml" && d.line == 1 && d.message.starts_with("TOML syntax")),
        "{err}"
    );
}

/// A rule set of its own city: declared levels, a named zone, a daily cadence, names in one
/// language and no populations compile, and the levels carry through to the region tree.
#[test]
fn declared_levels_named_zone_daily_cadence_and_optional_parts() {
    let ruleset = "[ruleset]\nname = \"beats\"\ntimezone = \"America/Chicago\"\nevaluate_every = \"1d\"\nlevels = [\"city\", \"district\", \"beat\"]\nalert_region_levels = [\"district\", \"beat\"]\n";
    let regions = "code,parent,level,name,population\nC,,city,Chicago,\nD1,C,district,District 1,\nD2,C,district,District 2,\nG1,D1,beat,Beat 111,\n";
    let indicators = mini::INDICATORS
        .replace("window = \"24h\"\nhop = \"1h\"", "window = \"1d\"\nhop = \"1d\"")
        .replace("2026-03-08T00:00:00+08:00", "2026-03-08T00:00:00-06:00");
    let sources = mini::SOURCES.replace("name = { zh = \"警情\", en = \"Police\" }", "name = \"Police\"");
    let rs = compile(&mini::files_with(&[
        ("ruleset.toml", ruleset),
        ("regions.csv", regions),
        ("indicators/police.toml", &indicators),
        ("sources.toml", &sources),
    ]))
    .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(rs.regions.level_names, ["city", "district", "beat"]);
    assert_eq!(rs.regions.level_name(rs.regions.lookup("G1").unwrap()), "beat");
    assert_eq!(rs.alert_levels, [false, true, true]);
    assert_eq!(rs.evaluate_levels, [true, true, true]);
    assert_eq!(rs.evaluate_every.0, vigil_model::time::DAY);
    assert_eq!(rs.zone.name(), "America/Chicago");
    assert!(rs.regions.populations.iter().all(Option::is_none));
    // A plain name serves both languages.
    assert_eq!(rs.sources[0].name.get("zh"), "Police");
    assert_eq!(rs.sources[0].name.get("en"), "Police");
}

/// Each new way to get the tree, the zone or the cadence wrong is refused with file:line and
/// what to write instead, all at once.
#[test]
fn levels_zones_and_cadence_errors_say_what_to_write() {
    let ruleset = "[ruleset]\nname = \"x\"\ntimezone = \"America/Chicgo\"\nevaluate_every = \"5h\"\nlevels = [\"city\", \"district\", \"beat\"]\nalert_region_levels = [\"street\"]\n";
    let regions = "code,parent,level,name,population\nC,,city,C,\nD1,C,district,D1,\nB1,C,beat,Skips a level,\nB2,D1,sector,Unknown level,\nX1,X2,beat,Cycle,\nX2,X1,beat,Cycle,\n";
    let err = compile(&mini::files_with(&[("ruleset.toml", ruleset), ("regions.csv", regions)])).unwrap_err();
    let text = err.to_string();
    for (file, msg) in [
        ("ruleset.toml:3:", "unknown time zone `America/Chicgo` (did you mean \"America/Chicago\"?)"),
        ("ruleset.toml:4:", "must be a whole number of hours that divides a day"),
        ("ruleset.toml:6:", "unknown region level `street` (declared: city, district, beat)"),
    ] {
        assert!(text.lines().any(|l| l.starts_with(file) && l.contains(msg)), "missing `{file} {msg}` in:\n{text}");
    }
    // The tree is checked against the declared levels (regions.csv cannot be judged without a
    // valid ruleset.toml, so it is checked with a good one).
    let good =
        ruleset.replace("America/Chicgo", "America/Chicago").replace("5h", "1h").replace("\"street\"", "\"beat\"");
    let err = compile(&mini::files_with(&[("ruleset.toml", &good), ("regions.csv", regions)])).unwrap_err();
    let text = err.to_string();
    for (line, msg) in [
        (4, "region `B1` is a beat but its parent `C` is a city: a city's children must be a district"),
        (5, "unknown level `sector` (declared: city, district, beat)"),
        (6, "region `X1` is part of a cycle"),
    ] {
        let at = format!("regions.csv:{line}:");
        assert!(text.lines().any(|l| l.starts_with(&at) && l.contains(msg)), "missing `{at} {msg}` in:\n{text}");
    }
    // A cadence longer than an indicator's hop, and a window shorter than the cadence.
    let daily = good.replace("\"1h\"", "\"1d\"");
    let regions = "code,parent,level,name,population\nC,,city,C,\nD1,C,district,D1,\n";
    let short = mini::INDICATORS.replace("window = \"24h\"", "window = \"1h\"");
    let err = compile(&mini::files_with(&[
        ("ruleset.toml", &daily),
        ("regions.csv", regions),
        ("indicators/police.toml", &short),
    ]))
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("hop 1h is not a multiple of the rule set's evaluate_every 1d: use hop = \"1d\""), "{text}");
    assert!(text.contains("window 1h is shorter than the rule set's evaluate_every 1d"), "{text}");
    // Offsets of any minute are fine; malformed ones are not.
    for (tz, ok) in [("+05:30", true), ("-03:30", true), ("+5:30", false), ("+15:00", false)] {
        let rs = mini::RULESET.replace("timezone = \"+08:00\"", &format!("timezone = \"{tz}\""));
        // The inline test's `at` must stay on a local hop boundary.
        let ind = mini::INDICATORS.replace("2026-03-08T00:00:00+08:00", &format!("2026-03-08T00:00:00{tz}"));
        let files = mini::files_with(&[("ruleset.toml", &rs), ("indicators/police.toml", &ind)]);
        assert_eq!(compile(&files).is_ok(), ok, "{tz}");
    }
}

/// A region file with only its header declares nothing to score: refused (the rule fuzzer found
/// that it compiled and then could not run).
#[test]
fn a_rule_set_without_regions_is_refused() {
    let err = compile(&mini::files_with(&[("regions.csv", "code,parent,level,name,population\n")])).unwrap_err();
    assert!(err.to_string().contains("regions.csv declares no region"), "{err}");
}

const ALARM: &str = r#"[alarm]
scan = "3d"
baseline = "14d"
recurrence = { orange = "14d", red = "100d" }
"#;

#[test]
fn an_alarm_scans_count_indicators_with_bonferroni_thresholds_until_calibrated() {
    let rs = compile(&mini::files_with(&[("alarm.toml", ALARM)])).unwrap_or_else(|d| panic!("{d}"));
    let a = rs.alarm.as_ref().expect("alarm");
    // Only the count indicator is scanned; 3 and 14 of its 24-hour windows.
    assert_eq!(a.cuts.len(), 1);
    assert_eq!((a.cuts[0].windows, a.cuts[0].baseline, a.cuts[0].parent), (3, 14, None));
    // A filtered count with no unfiltered count of its window has no rest of the city to
    // take a share of: its own history.
    assert_eq!(a.cuts[0].share, None);
    // By default a level is held to the end of its day.
    assert_eq!(a.hold, vigil_rules::Hold::Day);
    assert!(!a.calibrated && !a.per_region);
    assert!(a.levels[0].is_none() && a.levels[1].is_none());
    // 3 scanned regions (the city and its districts; the grid cell is scored but does not
    // alert, so it adds no tests) x 1 cut x 3 windows x 14 days.
    let orange = a.levels[2].unwrap();
    assert!((orange.threshold - (3.0f64 * 3.0 * 14.0).log10()).abs() < 1e-9, "{orange:?}");
    assert_eq!(a.level_for(0, orange.threshold), Some(vigil_model::Level::Orange));
    assert_eq!(a.level_for(0, orange.threshold - 0.01), None);

    let calibrated = ALARM.replace(
        "recurrence = { orange = \"14d\", red = \"100d\" }",
        "per = \"region\"\nhold = \"2d\"\nrecurrence = { orange = \"14d\", red = \"100d\" }\nthresholds = { orange = 4.5, red = 6.25 }",
    );
    let rs = compile(&mini::files_with(&[("alarm.toml", &calibrated)])).unwrap_or_else(|d| panic!("{d}"));
    let a = rs.alarm.unwrap();
    assert!(a.calibrated && a.per_region);
    // A duration is counted in evaluations of the hourly count.
    assert_eq!(a.hold, vigil_rules::Hold::Evaluations(48));
    assert_eq!(a.levels[3].unwrap().threshold, 6.25);
    assert!(a.region_levels.is_empty());

    // A region level with thresholds of its own (the city: 0); the districts (1) take the
    // rule set's.
    let own = calibrated.replace(
        "thresholds = { orange = 4.5, red = 6.25 }",
        "thresholds = { orange = 4.5, red = 6.25 }\nregion_level_thresholds = { city = { orange = 7.0, red = 11.5 } }",
    );
    let rs = compile(&mini::files_with(&[("alarm.toml", &own)])).unwrap_or_else(|d| panic!("{d}"));
    let a = rs.alarm.unwrap();
    assert_eq!((a.lowest_threshold(0), a.lowest_threshold(1)), (7.0, 4.5));
    assert_eq!(a.level_for(0, 6.5), None);
    assert_eq!(a.level_for(1, 6.5), Some(vigil_model::Level::Red));
    assert_eq!(a.level_for(0, 11.5), Some(vigil_model::Level::Red));
    assert_eq!(a.recurrence_points(0), vec![(7.0, 14.0), (11.5, 100.0)]);
    assert_eq!(a.recurrence_points(1), vec![(4.5, 14.0), (6.25, 100.0)]);

    // With the unfiltered count of the same window and hop, the filtered one takes its share
    // of the rest of the city's calls, the unfiltered one of its own.
    let calls = r#"
[[indicator]]
id = "calls_count_24h"
name = "Calls"
category = "volume"
source = "police"
measure = "count"
window = "24h"
hop = "1h"
direction = "up"
weight = 0.2
normalise = { method = "baseline_pvalue", baseline = "7d", guard = "0d", seasonality = "none", dist = "poisson" }
"#;
    let indicators = format!("{}{calls}", mini::INDICATORS.replace("weight = 0.5", "weight = 0.4"));
    let rs = compile(&mini::files_with(&[("alarm.toml", ALARM), ("indicators/police.toml", &indicators)]))
        .unwrap_or_else(|d| panic!("{d}"));
    let a = rs.alarm.unwrap();
    let id = |c: usize| rs.indicators[a.cuts[c].indicator].id.as_str();
    assert_eq!((id(0), id(1)), ("crime_count_24h", "calls_count_24h"));
    assert_eq!((a.cuts[0].share, a.cuts[1].share), (Some(1), Some(1)));
    let history = ALARM.replace("baseline = \"14d\"", "baseline = \"14d\"\nexpectation = \"history\"");
    let rs = compile(&mini::files_with(&[("alarm.toml", &history), ("indicators/police.toml", &indicators)]))
        .unwrap_or_else(|d| panic!("{d}"));
    assert!(rs.alarm.unwrap().cuts.iter().all(|c| c.share.is_none()));
}

#[test]
fn alarm_mistakes_are_reported_with_positions() {
    let broken = r#"[alarm]
scan = "30d"
baseline = "2d"
indicators = ["slow_share_7d", "nope"]
per = "district"
expectation = "median"
recurrence = { orange = "14d", red = "7d", purple = "1d" }
thresholds = { orange = 4.0 }
hold = "8d"
"#;
    let err = compile(&mini::files_with(&[("alarm.toml", broken)])).unwrap_err();
    let text = err.to_string();
    for want in [
        "alarm.toml:4:15: indicator `slow_share_7d` cannot be scanned",
        "alarm.toml:4:32: unknown indicator `nope`",
        "alarm.toml:5:7: per = \"district\"",
        "alarm.toml:6:15: expectation = \"median\": expected \"share\" or \"history\"",
        "alarm.toml:9:8: hold is \"day\" or a duration of at most \"7d\"",
        "unknown level `purple`",
        "level `red` has a recurrence but no threshold",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The scan and baseline lengths are checked against the scanned indicator's window.
    let lengths = ALARM.replace("scan = \"3d\"", "scan = \"30d\"").replace("baseline = \"14d\"", "baseline = \"2d\"");
    let text = compile(&mini::files_with(&[("alarm.toml", &lengths)])).unwrap_err().to_string();
    assert!(text.contains("alarm.toml:2:8: scan `30d` must be 1 to 14 windows"), "{text}");
    let order = ALARM.replace("red = \"100d\"", "red = \"7d\"");
    let text = compile(&mini::files_with(&[("alarm.toml", &order)])).unwrap_err().to_string();
    assert!(text.contains("must exceed the level below's"), "{text}");

    // Thresholds of a region level: every mistake at once, with its position.
    let own = format!(
        "{ALARM}thresholds = {{ orange = 4.5, red = 6.25 }}\nregion_level_thresholds = {{ {} }}\n",
        [
            "town = { orange = 5.0, red = 6.0 }",
            "grid = { orange = 5.0, red = 6.0 }",
            "city = { orange = 5.0, blue = 1.0 }",
            "district = { orange = 7.0, red = 6.0 }",
        ]
        .join(", ")
    );
    let text = compile(&mini::files_with(&[("alarm.toml", &own)])).unwrap_err().to_string();
    for want in [
        "alarm.toml:6:36: unknown region level `town` in region_level_thresholds: levels are city, district, grid",
        "region level `grid` raises no alerts (alert_region_levels)",
        "region level `city` has no threshold for `red`, which has a recurrence",
        "threshold for `blue`, which has no recurrence",
        "region level `district`: each level's threshold must exceed the level below's",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let alone = format!("{ALARM}region_level_thresholds = {{ city = {{ orange = 5.0, red = 6.0 }} }}\n");
    let text = compile(&mini::files_with(&[("alarm.toml", &alone)])).unwrap_err().to_string();
    assert!(text.contains("region_level_thresholds without thresholds"), "{text}");
}
