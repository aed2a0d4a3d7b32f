//! The detection yardstick in small, as CI runs it: a real day-stamped stream (Chicago 2019,
//! testdata/chicago-daily) with six surges injected here, scored by EARS C2 (vigil's own, which
//! crates/score checks against R's `surveillance::earsC`) per category, through `vigil replay` and
//! `vigil scorecard --truth`. The full benchmark with R's baselines is benches/detection/run.py.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn vigil(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).output().unwrap()
}

const INDEX: &str = r#"[index]
method = "max"
min_available = 0.5

[[domain]]
id = "police"
name = "Assaults"
weight = 1.0

[[category]]
id = "all"
domain = "police"
name = "All assaults"
weight = 0.5

[[category]]
id = "street"
domain = "police"
name = "On the street"
weight = 0.5
"#;

const INDICATORS: &str = r#"[[indicator]]
id = "count_all_1d"
name = "Assaults, one day"
category = "all"
source = "police"
measure = "count"
window = "1d"
hop = "1d"
direction = "up"
weight = 1.0
normalise = { method = "ears", variant = "c2" }

[[indicator]]
id = "count_street_1d"
name = "Assaults on the street, one day"
category = "street"
source = "police"
filter = "loc_cat = 'street'"
measure = "count"
window = "1d"
hop = "1d"
direction = "up"
weight = 1.0
normalise = { method = "ears", variant = "c2" }
"#;

/// (id, beat, first day, days, events added per day, bucket)
const SURGES: [(&str, &str, &str, u32, u32, &str); 6] = [
    ("s1", "D11-NE", "2019-04-10", 2, 8, "big"),
    ("s2", "D06-SW", "2019-06-18", 1, 10, "big"),
    ("s3", "D04-NW", "2019-09-03", 3, 7, "big"),
    ("s4", "D08-SE", "2019-05-07", 2, 1, "+1/day"),
    ("s5", "D15-NE", "2019-08-13", 2, 1, "+1/day"),
    ("s6", "D25-SW", "2019-10-22", 1, 2, "+2/day"),
];

/// The stream of the small benchmark in `dir`: the Chicago 2019 rules with the two count
/// indicators (rules/), the events with the surges injected (police.jsonl), and their truth
/// (truth.json).
fn build(dir: &Path) -> String {
    let src = root().join("testdata/chicago-daily");
    let rules = dir.join("rules");
    copy_dir(&src.join("rules"), &rules);
    std::fs::remove_dir_all(rules.join("indicators")).unwrap();
    std::fs::create_dir(rules.join("indicators")).unwrap();
    std::fs::write(rules.join("indicators/counts.toml"), INDICATORS).unwrap();
    std::fs::write(rules.join("index.toml"), INDEX).unwrap();

    // Inject: extra street assaults at midday local time on each surge day.
    let mut events = std::fs::read_to_string(src.join("police.jsonl")).unwrap();
    let mut truth = String::from(
        "{\"stream\": \"chicago-2019\", \"start\": \"2019-01-01\", \"end\": \"2019-12-31\",\n \"surges\": [\n",
    );
    for (k, (id, beat, start, days, per_day, bucket)) in SURGES.iter().enumerate() {
        let first = vigil_day(start);
        for d in 0..*days {
            let date = format_day(first + d as i64);
            for n in 0..*per_day {
                events.push_str(&format!(
                    "{{\"id\":\"inj-{id}-{d}-{n}\",\"region\":\"{beat}\",\"ts\":\"{date}T12:00:00-05:00\",\"attrs\":{{\"loc_cat\":\"street\"}}}}\n"
                ));
            }
        }
        let sep = if k + 1 < SURGES.len() { "," } else { "" };
        truth.push_str(&format!(
            "  {{\"id\": \"{id}\", \"regions\": [\"{beat}\"], \"category\": \"street\", \"start\": \"{start}\", \"days\": {days}, \"bucket\": \"{bucket}\"}}{sep}\n"
        ));
    }
    truth.push_str(" ]}\n");
    // In time order, as a stream arrives (an injected event at the end would be late); the file
    // name names the source.
    let ts = |l: &str| {
        let at = l.find("\"ts\":\"").unwrap() + 6;
        vigil_model::time::parse_rfc3339(&l[at..at + l[at..].find('"').unwrap()]).unwrap()
    };
    let mut lines: Vec<&str> = events.lines().collect();
    lines.sort_by_key(|l| ts(l));
    let events = lines.join("\n") + "\n";
    std::fs::write(dir.join("police.jsonl"), &events).unwrap();
    std::fs::write(dir.join("truth.json"), &truth).unwrap();
    truth
}

#[test]
fn small_benchmark_with_ears_on_a_real_stream() {
    let dir = tempdir("detection");
    let truth = build(&dir);
    let d = |p: &str| dir.join(p).display().to_string();
    let out = vigil(&[
        "replay",
        "--rules",
        &d("rules"),
        "--events",
        &d("police.jsonl"),
        "--out",
        &d("out"),
        "--scores",
        "full",
        "--score-levels",
        "city,district,beat",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = String::from_utf8_lossy(&out.stderr);
    let injected: u32 = SURGES.iter().map(|s| s.3 * s.4).sum();
    assert!(summary.contains(&format!("\"accepted\": {}", 15_328 + injected)), "{summary}");

    // EARS C2 on every indicator, swept: the big surges stand out of a beat's daily counts.
    let out = vigil(&[
        "scorecard",
        "--truth",
        &d("truth.json"),
        "--rules",
        &d("rules"),
        "--scores",
        &d("out/scores.jsonl"),
        "--curve",
        &d("curve.json"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let targets: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let at5 = &targets[3];
    assert_eq!(at5["false_per_100_region_days"], 5.0);
    let p = &at5["point"];
    assert_eq!(p["surges"], 6);
    assert_eq!(p["by_bucket"]["big"]["detected_own"], 3, "{p}");
    assert!(p["false_per_100_region_days"].as_f64().unwrap() <= 5.0);
    assert!(p["threshold"].as_f64().unwrap() > 0.0, "a threshold at the floor alarms every day: {p}");
    // Detection above what random alarms at the same rate would reach.
    assert!(p["detected_own"].as_f64().unwrap() > p["chance"].as_f64().unwrap() + 1.0, "{p}");
    // The curve is monotone: a lower threshold never detects less or alarms less.
    let curve: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("curve.json")).unwrap()).unwrap();
    let pts = curve["points"].as_array().unwrap();
    assert!(pts.len() > 10);
    for w in pts.windows(2) {
        assert!(w[0]["threshold"].as_f64() > w[1]["threshold"].as_f64());
        assert!(w[0]["detected_own"].as_u64() <= w[1]["detected_own"].as_u64());
    }

    // The same surges through vigil's alerts at one level: a card with every surge.
    let out = vigil(&[
        "scorecard",
        "--truth",
        &d("truth.json"),
        "--rules",
        &d("rules"),
        "--alerts",
        &d("out/alerts.jsonl"),
        "--min-level",
        "yellow",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let card: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(card["per_surge"].as_array().unwrap().len(), 6);
    assert_eq!(card["regions"], 111, "every region alerts in this rule set");

    // A truth naming an unknown region is refused with its line.
    std::fs::write(dir.join("bad.json"), truth.replace("D06-SW", "D99-SW")).unwrap();
    let out =
        vigil(&["scorecard", "--truth", &d("bad.json"), "--rules", &d("rules"), "--alerts", &d("out/alerts.jsonl")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json:4: surge `s2`: unknown region `D99-SW`"), "{err}");
}

const ALARM: &str = r#"[alarm]
scan = "7d"
baseline = "56d"
per = "region"
recurrence = { yellow = "20d", orange = "100d", red = "1000d" }
"#;

/// The evidence alarm on the same stream: calibrated on the first half of 2019, measured on the
/// second, and every alarm explained in the indicator's own units.
#[test]
fn evidence_alarms_calibrated_on_one_half_hold_their_rate_on_the_other() {
    let dir = tempdir("evidence");
    build(&dir);
    std::fs::write(dir.join("rules/alarm.toml"), ALARM).unwrap();
    let d = |p: &str| dir.join(p).display().to_string();
    let out = vigil(&[
        "calibrate",
        "--rules",
        &d("rules"),
        "--events",
        &d("police.jsonl"),
        "--to",
        "2019-06-30",
        "--write",
        "--signals",
        &d("evidence.csv"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("recurrence per region"), "{table}");
    let alarm = std::fs::read_to_string(dir.join("rules/alarm.toml")).unwrap();
    assert!(alarm.contains("thresholds = { yellow = ") && alarm.contains("calibrated_on = \"2019-"), "{alarm}");
    // Each alerting region level on its own region-days: the beats, most of them, in
    // `thresholds`, the city and the districts in thresholds of their own, the city's the
    // highest (its counts are the largest, and its statistic's tail the heaviest).
    assert!(table.contains("\nbeat (") && table.contains("\ndistrict (") && table.contains("\ncity ("), "{table}");
    let own = alarm.lines().find(|l| l.starts_with("region_level_thresholds = ")).expect("region_level_thresholds");
    assert!(own.contains("city = { yellow = ") && own.contains("district = { yellow = "), "{own}");
    let written = vigil_rules::load(&dir.join("rules")).unwrap();
    let a = written.alarm.as_ref().unwrap();
    let level = |name: &str| written.regions.level_names.iter().position(|l| l == name).unwrap() as u8;
    assert!(a.lowest_threshold(level("city")) > a.lowest_threshold(level("beat")), "{own}");
    // Linking depends on the lowest threshold: calibrate replayed at what it fitted (the file
    // had none, so the first pass linked at the Bonferroni bound) until it settled, so the
    // written rules calibrate to themselves in one pass.
    assert!(table.contains(" passes: children linked at the fitted thresholds)"), "{table}");
    let again = vigil(&["calibrate", "--rules", &d("rules"), "--events", &d("police.jsonl"), "--to", "2019-06-30"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let again = String::from_utf8_lossy(&again.stdout);
    let thresholds = |s: &str| s.lines().find(|l| l.starts_with("thresholds = ")).map(str::to_string);
    assert_eq!(thresholds(&again), thresholds(&alarm), "{again}");
    assert!(!again.contains("passes"), "{again}");
    // In sample, each level reaches close to its budget of region-days (ties aside).
    for (level, budget) in [("yellow", 5.0), ("orange", 1.0)] {
        let line = table.lines().find(|l| l.starts_with(level)).unwrap();
        let rate: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
        assert!(rate <= budget && rate >= budget / 1.5, "{level}: {rate} ({table})");
    }

    let replay = |out_dir: &str| {
        let out = vigil(&[
            "replay",
            "--rules",
            &d("rules"),
            "--events",
            &d("police.jsonl"),
            "--out",
            &d(out_dir),
            "--scores",
            "none",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(dir.join(out_dir).join("alerts.jsonl")).unwrap()
    };
    let alerts = replay("out");
    assert_eq!(alerts, replay("again"), "same events and rules give byte-identical alerts");
    let evidence: Vec<serde_json::Value> = alerts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["scope"] == "evidence")
        .collect();
    assert!(!evidence.is_empty());
    for a in evidence.iter().filter(|a| a["event"] == "opened") {
        let e = &a["evidence"];
        assert!(e["observed"].as_f64().unwrap() > e["expected"].as_f64().unwrap(), "{a}");
        assert!(e["summary"].as_str().unwrap().contains("happens by chance"), "{a}");
        assert_eq!(a["top_contributors"][0]["indicator"], e["indicator"]);
    }
    // The big surge of 2019-09-03 (7 a day for 3 days in beat D04-NW): the beat's own alarm,
    // naming the street count.
    let s3 = evidence
        .iter()
        .find(|a| a["region"] == "D04-NW" && a["event"] == "opened" && a["date"].as_str().unwrap_or("") >= "2019-09-03")
        .expect("an alarm in D04-NW");
    assert_eq!(s3["date"], "2019-09-03", "{s3}");
    assert_eq!(s3["evidence"]["indicator"], "count_street_1d", "{s3}");
    // Its district and the city do not open episodes of their own for the beat's excess.
    assert!(
        !evidence.iter().any(|a| (a["region"] == "D04" || a["region"] == "CHI")
            && a["date"] == "2019-09-03"
            && a["event"] == "opened"),
        "the parents link to the beat"
    );

    // Out of sample (the second half): within 1.5x of each level's budget.
    let std::process::Output { stdout, status, stderr } = vigil(&[
        "scorecard",
        "--truth",
        &d("truth.json"),
        "--rules",
        &d("rules"),
        "--alerts",
        &d("out/alerts.jsonl"),
        "--min-level",
        "orange",
        "--scope",
        "evidence",
        "--from",
        "2019-07-01",
        "--json",
    ]);
    assert!(status.success(), "{}", String::from_utf8_lossy(&stderr));
    let card: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let p = &card["point"];
    assert_eq!(p["surges"], 3, "s3, s5 and s6 lie in the second half: {p}");
    assert!(p["false_per_100_region_days"].as_f64().unwrap() <= 1.5, "{p}");
    assert!(p["detected_own"].as_u64().unwrap() >= 1, "{p}");

    // The statistic swept against the truth, as the benchmark compares it with the baselines.
    let out = vigil(&[
        "scorecard",
        "--truth",
        &d("truth.json"),
        "--rules",
        &d("rules"),
        "--signals",
        &d("evidence.csv"),
        "--method",
        "vigil-evidence",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let targets: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let at1 = &targets[2]["point"];
    assert_eq!(at1["by_bucket"]["big"]["detected_own"], 3, "{at1}");
}

fn vigil_day(date: &str) -> i64 {
    let (y, m, d) = (date[..4].parse().unwrap(), date[5..7].parse().unwrap(), date[8..].parse().unwrap());
    vigil_model::time::days_from_civil(y, m, d)
}

fn format_day(day: i64) -> String {
    let (y, m, d) = vigil_model::time::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A fresh directory under the target's scratch space: one per test, replaced by the next run
/// (not one per process in the system's temporary directory, which no one removed), and kept
/// after a failure for a look.
fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("detection-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Where the history is too short to calibrate on (10 days with a full baseline), Monte Carlo
/// replicates of it, every day a recorded day of the same weekday, make it possible: the
/// same seed gives the same thresholds, and the rest of the year holds them within twice
/// each level's budget (replicates lose the order of days, so real runs of busy days pass their
/// thresholds more often than promised: methodology §16.3).
#[test]
fn a_short_history_is_calibrated_on_replicates_of_it() {
    let dir = tempdir("replicates");
    build(&dir);
    std::fs::write(dir.join("rules/alarm.toml"), ALARM).unwrap();
    let d = |p: &str| dir.join(p).display().to_string();
    let (rules, events) = (d("rules"), d("police.jsonl"));
    let calibrate = |extra: &[&str]| {
        let mut args = vec!["calibrate", "--rules", &rules, "--events", &events, "--to", "2019-03-15"];
        args.extend_from_slice(extra);
        vigil(&args)
    };
    let short = calibrate(&[]);
    assert!(!short.status.success());
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(err.contains("calibration needs at least 28") && err.contains("--replicates"), "{err}");

    let out = calibrate(&["--replicates", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(table.contains("and 4 replicates of 2019-01-01..2019-03-15 ("), "{table}");
    let again = calibrate(&["--replicates", "4"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), table, "the same seed, the same replicates");
    let other = calibrate(&["--replicates", "4", "--seed", "2"]);
    assert!(other.status.success());
    assert_ne!(String::from_utf8_lossy(&other.stdout), table, "another seed, other draws");

    let written = calibrate(&["--replicates", "4", "--write"]);
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    let alarm = std::fs::read_to_string(dir.join("rules/alarm.toml")).unwrap();
    assert!(alarm.contains("calibrated_on = \"2019-03-06..2019-03-15 and 4 replicates of"), "{alarm}");
    let out = vigil(&["replay", "--rules", &rules, "--events", &events, "--out", &d("out"), "--scores", "none"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (level, budget) in [("yellow", 5.0), ("orange", 1.0)] {
        let out = vigil(&[
            "scorecard",
            "--truth",
            &d("truth.json"),
            "--rules",
            &rules,
            "--alerts",
            &d("out/alerts.jsonl"),
            "--min-level",
            level,
            "--scope",
            "evidence",
            "--from",
            "2019-04-01",
            "--json",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let card: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let p = &card["point"];
        assert!(p["false_per_100_region_days"].as_f64().unwrap() <= 2.0 * budget, "{level}: {p}");
    }
}
