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

#[test]
fn small_benchmark_with_ears_on_a_real_stream() {
    let src = root().join("testdata/chicago-daily");
    let dir = tempdir("detection");
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

fn vigil_day(date: &str) -> i64 {
    let (y, m, d) = (date[..4].parse().unwrap(), date[5..7].parse().unwrap(), date[8..].parse().unwrap());
    vigil_model::time::days_from_civil(y, m, d)
}

fn format_day(day: i64) -> String {
    let (y, m, d) = vigil_model::time::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-{name}-{}", std::process::id()));
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
