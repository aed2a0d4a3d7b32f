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
    // The count windows other engines compute (benches/peers/run.py): every count indicator
    // without a second stream, and each region with itself and its scored ancestors (every level is scored).
    let out = vigil().args(["rules", "windows"]).arg(root().join("rules")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Read by a reader that stops early (`| head`): the pipe is closed before vigil prints
    // (it has to load the rule set first), so its print meets a broken pipe, which ends it
    // quietly with success rather than with a panic and a backtrace.
    let mut child = vigil()
        .args(["rules", "windows"])
        .arg(root().join("rules"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let closed = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&closed.stderr);
    assert!(closed.status.success() && !stderr.contains("panicked"), "{:?}: {stderr}", closed.status);
    let rules = vigil_rules::load(&root().join("rules")).unwrap();
    let counts = rules
        .indicators
        .iter()
        .filter(|i| matches!(i.measure, vigil_rules::Measure::Count) && i.compare.is_none())
        .count();
    assert_eq!(v["indicators"].as_array().unwrap().len(), counts);
    let chains = v["chains"].as_array().unwrap();
    let grid = rules.regions.codes[rules.regions.levels.iter().position(|&l| l == 3).unwrap()].as_str();
    assert_eq!(
        chains.iter().filter(|c| c[0] == grid).count(),
        4,
        "a grid counts for itself, its street, district and city"
    );
    assert!(chains.iter().any(|c| c == &serde_json::json!([grid, grid])), "grids are scored");
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

fn run_ok(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// The history tour of the README: `gen --archive`, `replay --archive`, the red-alert query of
/// issue 6, a backtest of one changed threshold with its scorecard, and entropy weights applied
/// to a copy of the rules, which then passes `rules check`.
#[test]
fn archive_sql_backtest_and_weights_from_the_command_line() {
    let dir = tmp("history-cli");
    let archive = dir.join("archive");
    let rules = root().join("rules");
    run_ok(vigil().args(["gen", "--days", "60", "--seed", "7", "--archive"]).arg(&archive).arg("--rules").arg(&rules));
    let (_, err) = run_ok(
        vigil()
            .args(["replay", "--scores", "full", "--score-levels", "district", "--rules"])
            .arg(&rules)
            .arg("--events")
            .arg(&archive)
            .arg("--archive")
            .arg(&archive)
            .arg("--out")
            .arg(dir.join("run")),
    );
    assert!(err.contains("\"accepted\""), "{err}");

    let q = "SELECT region, count(*) FROM alerts WHERE level = 'red' GROUP BY region ORDER BY 2 DESC";
    let (table, _) = run_ok(vigil().args(["sql", q, "--archive"]).arg(&archive));
    // The same count from the JSON lines the replay wrote next to the archive.
    let alerts = std::fs::read_to_string(dir.join("run/alerts.jsonl")).unwrap();
    let red = alerts.lines().filter(|l| l.contains("\"level\":\"red\"")).count();
    assert!(red > 0, "the 60-day city raises red alerts");
    let (csv, _) = run_ok(vigil().args(["sql", q, "--format", "csv", "--archive"]).arg(&archive));
    let total: usize = csv.lines().skip(1).map(|l| l.rsplit(',').next().unwrap().parse::<usize>().unwrap()).sum();
    assert_eq!(total, red, "{csv}");
    assert!(table.contains("region") && table.contains(&format!("({} row", csv.lines().count() - 1)), "{table}");
    let (bad, _) = {
        let out = vigil().args(["sql", "SELECT nope FROM alerts", "--archive"]).arg(&archive).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        (String::from_utf8_lossy(&out.stderr).into_owned(), ())
    };
    assert!(bad.contains("nope"), "{bad}");

    let edited = dir.join("rules-edited");
    copy_tree(&rules, &edited);
    let grading = edited.join("grading.toml");
    let text = std::fs::read_to_string(&grading).unwrap().replacen("enter = 42.0", "enter = 38.0", 1);
    std::fs::write(&grading, text).unwrap();
    let (report, err) = run_ok(
        vigil().arg("backtest").arg("--rules").arg(&edited).arg("--baseline").arg(&rules).arg("--events").arg(&archive),
    );
    assert!(report.contains("level") && report.contains("yellow") && report.contains("differences"), "{report}");
    assert!(report.contains("detection scorecard") && report.contains("detection rate"), "{report}");
    assert!(err.contains("events/s"), "{err}");
    let (json, _) = run_ok(
        vigil()
            .args(["backtest", "--json", "--rules"])
            .arg(&edited)
            .arg("--baseline")
            .arg(&rules)
            .arg("--events")
            .arg(&archive),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(!v["report"]["changes"].as_array().unwrap().is_empty());
    assert!(v["scorecard"]["new"]["detection_rate"].is_number());

    // The weekly bulletin: deterministic for the archive, every district rated and named, the
    // period's red episodes listed with their explanations; a month in English; a bad date is
    // the person's error.
    let report = |out: &Path, extra: &[&str]| {
        run_ok(
            vigil()
                .arg("report")
                .arg("--archive")
                .arg(&archive)
                .arg("--rules")
                .arg(&rules)
                .args(extra)
                .arg("--out")
                .arg(out),
        )
    };
    let (_, said) = report(&dir.join("week.html"), &[]);
    assert!(said.contains("8 of 8 districts rated"), "{said}");
    report(&dir.join("week-again.html"), &[]);
    let week = std::fs::read_to_string(dir.join("week.html")).unwrap();
    assert_eq!(week, std::fs::read_to_string(dir.join("week-again.html")).unwrap(), "byte-identical rebuild");
    let loaded = vigil_rules::load(&rules).unwrap();
    for r in (0..loaded.regions.len()).filter(|&r| loaded.regions.levels[r] == 1) {
        assert!(week.contains(&format!("data-region=\"{}\"", loaded.regions.codes[r])), "{}", loaded.regions.codes[r]);
    }
    assert!(week.contains("★") && week.contains("社会治安风险星级发布"));
    let (_, said) = report(&dir.join("month.html"), &["--period", "month", "--date", "2026-02-10", "--lang", "en"]);
    assert!(said.contains("month 2026-02"), "{said}");
    let month = std::fs::read_to_string(dir.join("month.html")).unwrap();
    assert!(month.contains("Risk star ratings") && month.contains("Red warning"), "the month had red episodes");
    let out = vigil()
        .args(["report", "--date", "2026-13-01", "--archive"])
        .arg(&archive)
        .arg("--rules")
        .arg(&rules)
        .arg("--out")
        .arg(dir.join("bad.html"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a date"));

    let weighted = dir.join("rules-weighted");
    let (toml, err) = run_ok(
        vigil()
            .args(["weights", "--method", "entropy", "--level", "district", "--scores"])
            .arg(&archive)
            .arg("--rules")
            .arg(&rules)
            .arg("--apply")
            .arg(&weighted),
    );
    assert!(toml.contains("[indicator_weights]") && toml.contains("# was 0.5000"), "{toml}");
    assert!(err.contains("rules ok"), "{err}");
    run_ok(vigil().args(["rules", "check"]).arg(&weighted));
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `vigil run` refuses rules that every user could have edited, and a world-writable
/// checkpoint directory, before it connects anywhere; the message names the path.
#[test]
fn run_refuses_world_writable_rules_and_state_directories() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp("perms");
    let rules = dir.join("rules");
    copy_tree(&root().join("rules"), &rules);
    let grading = rules.join("grading.toml");
    std::fs::set_permissions(&grading, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = vigil().args(["run", "--brokers", "127.0.0.1:1", "--rules"]).arg(&rules).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("grading.toml") && err.contains("writable by every user"), "{err}");

    std::fs::set_permissions(&grading, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cp = dir.join("checkpoints");
    std::fs::create_dir_all(&cp).unwrap();
    std::fs::set_permissions(&cp, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = vigil()
        .args(["run", "--brokers", "127.0.0.1:1", "--rules"])
        .arg(&rules)
        .arg("--checkpoint-dir")
        .arg(&cp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checkpoint directory") && err.contains("chmod o-w"), "{err}");
}

/// Checkpoints go to one place: a file naming both a directory and a state topic is refused
/// before vigil connects anywhere, and so are both flags at once.
#[test]
fn run_refuses_two_checkpoint_stores() {
    let dir = tmp("two-stores");
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"127.0.0.1:1\"\n[engine]\nrules = \"{}\"\ncheckpoint_dir = \"{}\"\nstate_topic = \"vigil.state\"\n",
            root().join("rules").display(),
            dir.join("cp").display()
        ),
    )
    .unwrap();
    let out = vigil().args(["run", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("both checkpoint_dir and state_topic"), "{err}");
    let out = vigil()
        .args(["run", "--brokers", "127.0.0.1:1", "--checkpoint-dir", "x", "--state-topic", "vigil.state"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
