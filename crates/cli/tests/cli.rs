//! The `vigil` binary end to end: rule checking with exit codes, and gen + replay giving
//! byte-identical outputs run after run.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn rules_check_summarises_the_default_rules() {
    let out = vigil().args(["rules", "check"]).arg(root().join("rules")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("4 sources")
            && text.contains("60 indicators")
            && text.contains("30 categories")
            && text.contains("4 domains"),
        "{text}"
    );
}

#[test]
fn rules_check_reports_every_mistake_and_exits_1() {
    let dir = tmp("broken-rules");
    let src = root().join("rules");
    for sub in ["", "indicators", "tests"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, dir.join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    let police = dir.join("indicators/police.toml");
    let text = std::fs::read_to_string(&police)
        .unwrap()
        .replacen("category = \"police_volume\"", "category = \"police_volumes\"", 1)
        .replacen("window = \"7d\"", "window = \"7days\"", 1)
        .replacen("filter = \"incident_type IN (criminal_types)\"", "filter = \"incident_kind IN (criminal_types)\"", 1)
        .replacen("direction = \"up\"", "direction = \"upwards\"", 1)
        .replacen("min_support = 5", "min_support = 5\nthreshold = 3", 1);
    std::fs::write(&police, text).unwrap();
    let out = vigil().args(["rules", "check"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    for msg in [
        "unknown category `police_volumes`",
        "bad duration `7days`",
        "`incident_kind` is not a declared attribute",
        "direction must be \"up\" or \"down\"",
        "unknown field `threshold`",
    ] {
        assert!(err.lines().any(|l| l.contains("police.toml:") && l.contains(msg)), "missing `{msg}` in:\n{err}");
    }
}

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn gen_and_replay_are_byte_identical_run_after_run() {
    let rules = root().join("rules");
    let mut runs = Vec::new();
    for i in 0..2 {
        let city = tmp(&format!("city{i}"));
        let out = tmp(&format!("run{i}"));
        let st = vigil()
            .args(["gen", "--days", "35", "--seed", "11", "--volume", "0.3", "--out"])
            .arg(&city)
            .arg("--rules")
            .arg(&rules)
            .status()
            .unwrap();
        assert!(st.success());
        let events: Vec<PathBuf> =
            ["police", "case", "petition", "opinion"].iter().map(|s| city.join(format!("{s}.jsonl"))).collect();
        let st = vigil()
            .arg("replay")
            .arg("--rules")
            .arg(&rules)
            .arg("--events")
            .args(&events)
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        runs.push((read_all(&city), read_all(&out)));
    }
    assert_eq!(runs[0].0, runs[1].0, "generated events differ");
    assert_eq!(runs[0].1, runs[1].1, "replay outputs differ");
    let alerts = &runs[0].1.iter().find(|(n, _)| n == "alerts.jsonl").unwrap().1;
    let scores = &runs[0].1.iter().find(|(n, _)| n == "scores.jsonl").unwrap().1;
    assert!(!scores.is_empty());
    assert!(!alerts.is_empty(), "incidents after the warm-up raise alerts");
}
