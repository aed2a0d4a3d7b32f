//! Operating a running `vigil run` (a separate process, on the embedded cluster): health and
//! readiness, the JSON API with its bearer token, the metrics a Prometheus server scrapes, and
//! the deploy files (dashboard and alert rules) using only metrics vigil really exports.
//!
//! With `VIGIL_TEST_PROMETHEUS=1` (set by `.ci/run`, which installs Debian's prometheus
//! package) the test also requires the real tools: `promtool check metrics` on a scrape,
//! `promtool check config/rules` and `promtool test rules` on `deploy/`, and a Prometheus server
//! on 127.0.0.1 that scrapes vigil and answers a query for one of its metrics.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_engine::testkit::{self, Broker, RunTopics};

mod net;
use net::{Vigil, free_addr, http, json};

const TOKEN: &str = "s3cret-token";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Names a scrape declares (`# TYPE` lines), with the series suffixes of each type.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in scrape.lines() {
        let mut f = l.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) = (f.next(), f.next(), f.next(), f.next()) {
            match kind {
                "counter" if name.ends_with("_total") => names.insert(name.to_string()),
                "counter" => names.insert(format!("{name}_total")),
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{s}"));
                    }
                    true
                }
                _ => names.insert(name.to_string()),
            };
        }
    }
    names
}

fn vigil_tokens(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find("vigil_") {
        let start = i + p;
        let boundary = start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_lowercase() || b[end] == b'_' || b[end].is_ascii_digit()) {
            end += 1;
        }
        if boundary {
            out.insert(text[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    out
}

#[test]
fn a_running_engine_serves_health_api_and_metrics() {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let topics = RunTopics::new(&rules, "ops");
    broker.create_topics(&topics.all(2));
    let lines = testkit::city(&rules, 3, 33);
    let total = testkit::produce(&broker.settings(), &topics.events, &lines);

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A copy of the rules, edited below while vigil runs.
    let rules_dir = dir.join("rules");
    copy_dir(&root().join("rules"), &rules_dir);
    let addr = free_addr();
    let events: Vec<String> = topics.events.iter().map(|(s, t)| format!("{s} = \"{t}\"")).collect();
    let o = &topics.outputs;
    let config = format!(
        "[kafka]\nbrokers = \"{}\"\n[topics]\nscores = \"{}\"\nalerts = \"{}\"\ndlq = \"{}\"\nlate = \"{}\"\nevents = {{ {} }}\n\
         [engine]\nrules = \"{}\"\nhttp_addr = \"{addr}\"\nidle_timeout = \"1s\"\n",
        broker.settings().brokers,
        o.scores,
        o.alerts,
        o.dlq,
        o.late,
        events.join(", "),
        rules_dir.display()
    );
    std::fs::write(dir.join("vigil.toml"), config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "--config"])
        .arg(dir.join("vigil.toml"))
        .env("VIGIL_API_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("vigil.log")).unwrap())
        .spawn()
        .unwrap();
    let mut vigil = Vigil(child);

    // Health first, readiness once the engine runs, then every message consumed.
    let t = Instant::now();
    while http(&addr, "GET", "/readyz", None).is_none_or(|(s, _)| s != 200) {
        assert!(t.elapsed() < Duration::from_secs(60), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http(&addr, "GET", "/healthz", None).unwrap().0, 200);
    let consumed = |scrape: &str| -> u64 {
        scrape
            .lines()
            .filter(|l| l.starts_with("vigil_events_consumed_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let mut scrape = String::new();
    while consumed(&scrape) < total {
        assert!(t.elapsed() < Duration::from_secs(120), "consumed {} of {total}", consumed(&scrape));
        std::thread::sleep(Duration::from_millis(100));
        scrape = http(&addr, "GET", "/metrics", None).unwrap().1;
    }
    std::thread::sleep(Duration::from_secs(3)); // idle partitions let time reach the end
    scrape = http(&addr, "GET", "/metrics", None).unwrap().1;

    // The API needs the token; health, readiness and metrics do not.
    let district = &rules.regions.codes[rules.regions.levels.iter().position(|&l| l == 1).unwrap()];
    let path = format!("/api/regions/{district}");
    assert_eq!(http(&addr, "GET", &path, None).unwrap().0, 401);
    assert_eq!(http(&addr, "GET", &path, Some("wrong-token!")).unwrap().0, 401);
    let (status, body) = http(&addr, "GET", &path, Some(TOKEN)).unwrap();
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["region"], district.as_str());
    assert_eq!(v["region_level"], "district");
    assert_eq!(v["indicators"].as_array().unwrap().len(), rules.indicators.len());
    assert_eq!(v["categories"].as_object().unwrap().len(), rules.categories.len());
    assert_eq!(v["domains"].as_object().unwrap().len(), rules.domains.len());
    // The composite, each domain, and the evidence alarm of rules/alarm.toml.
    assert_eq!(v["grades"].as_object().unwrap().len(), rules.domains.len() + 2);
    assert!(v["grades"].as_object().unwrap().contains_key("evidence"), "{body}");
    assert!(v["composite"].is_number(), "after 33 days the district has a composite: {body}");
    // Grid cells are scored (for their view and history) though they do not alert: their
    // scores, computed only when read, come with the view.
    let grid = &rules.regions.codes[rules.regions.levels.iter().position(|&l| l == 3).unwrap()];
    let (status, body) = http(&addr, "GET", &format!("/api/regions/{grid}"), Some(TOKEN)).unwrap();
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["region_level"], "grid");
    assert_eq!(v["alerted"], false, "{body}");
    assert_eq!(v["indicators"].as_array().unwrap().len(), rules.indicators.len());
    assert_eq!(http(&addr, "GET", "/api/regions/nowhere", Some(TOKEN)).unwrap().0, 404);

    // Active alerts: the incident's district is open at some level; the filter is "at least".
    let all = json(&http(&addr, "GET", "/api/alerts", Some(TOKEN)).unwrap().1);
    let all = all.as_array().unwrap();
    assert!(!all.is_empty(), "the incident leaves alerts open");
    let rank = |l: &serde_json::Value| ["blue", "yellow", "orange", "red"].iter().position(|x| l == x).unwrap();
    let orange = json(&http(&addr, "GET", "/api/alerts?level=orange", Some(TOKEN)).unwrap().1);
    let want = all.iter().filter(|a| rank(&a["level"]) >= 2).count();
    assert_eq!(orange.as_array().unwrap().len(), want);
    assert_eq!(http(&addr, "GET", "/api/alerts?level=purple", Some(TOKEN)).unwrap().0, 400);
    let doc = json(&http(&addr, "GET", "/api/openapi.json", Some(TOKEN)).unwrap().1);
    assert_eq!(doc["openapi"], "3.1.0");

    // The console: its page needs no token (it holds no data), its API does. The catalog names
    // every region; the feed holds the alert records the engine produced, newest first, and
    // `after` returns only newer ones; a district has a recent history of its index.
    let (status, page) = http(&addr, "GET", "/console/", None).unwrap();
    assert!(status == 200 && page.contains("/console/app.js"), "{status}");
    assert_eq!(http(&addr, "GET", "/api/catalog", None).unwrap().0, 401);
    let catalog = json(&http(&addr, "GET", "/api/catalog", Some(TOKEN)).unwrap().1);
    assert_eq!(catalog["regions"].as_array().unwrap().len(), rules.regions.len());
    assert_eq!(catalog["version"], rules.version.as_str());
    let feed = json(&http(&addr, "GET", "/api/feed?limit=2000", Some(TOKEN)).unwrap().1);
    let records = feed["records"].as_array().unwrap();
    assert!(!records.is_empty(), "the feed holds the run's alert records");
    let numbers: Vec<u64> = records.iter().map(|r| r["n"].as_u64().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(feed["last"].as_u64(), numbers.first().copied());
    let emitted: u64 = http(&addr, "GET", "/metrics", None)
        .unwrap()
        .1
        .lines()
        .filter(|l| l.starts_with("vigil_alerts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(feed["last"].as_u64(), Some(emitted), "every alert record emitted reached the feed");
    assert_eq!(records.len() as u64, emitted.min(2000));
    let newer = json(&http(&addr, "GET", &format!("/api/feed?after={}", numbers[0]), Some(TOKEN)).unwrap().1);
    assert!(newer["records"].as_array().unwrap().is_empty());
    let in_district = json(&http(&addr, "GET", &format!("/api/feed?region={district}"), Some(TOKEN)).unwrap().1);
    for r in in_district["records"].as_array().unwrap() {
        let code = r["region"].as_str().unwrap();
        let idx = rules.regions.lookup(code).unwrap();
        assert!(
            rules.regions.chains[idx as usize].iter().any(|&c| rules.regions.codes[c as usize] == *district),
            "{code} is not within {district}"
        );
    }
    assert_eq!(http(&addr, "GET", "/api/feed?level=purple", Some(TOKEN)).unwrap().0, 400);
    let history = json(&http(&addr, "GET", &format!("/api/regions/{district}/history"), Some(TOKEN)).unwrap().1);
    let ends = history["window_end"].as_array().unwrap();
    assert!(ends.len() >= 2 && ends.windows(2).all(|w| w[0].as_str() < w[1].as_str()), "{history}");
    assert_eq!(history["composite"].as_array().unwrap().len(), ends.len());
    assert_eq!(ends.last().unwrap(), &v["window_end"], "the history ends at the last evaluation");

    // Metrics: the active-alert gauges agree with the API; the index covers city and districts
    // only (bounded cardinality).
    for (i, level) in ["blue", "yellow", "orange", "red"].iter().enumerate() {
        let n = all.iter().filter(|a| rank(&a["level"]) == i).count();
        assert!(scrape.contains(&format!("vigil_alerts_active{{level=\"{level}\"}} {n}\n")), "{level}: {n}\n{scrape}");
        let late = all.iter().filter(|a| rank(&a["level"]) == i && a["overdue"] == true).count();
        assert!(
            scrape.contains(&format!("vigil_alerts_overdue{{level=\"{level}\"}} {late}\n")),
            "{level}: {late}\n{scrape}"
        );
    }
    // Every open episode has its level's deadline (the default grading sets one per level);
    // `overdue=true` lists exactly those past it.
    assert!(all.iter().all(|a| a["deadline"].is_string() && a["since"].is_string()), "{all:?}");
    let overdue = json(&http(&addr, "GET", "/api/alerts?overdue=true", Some(TOKEN)).unwrap().1);
    let overdue = overdue.as_array().unwrap();
    assert_eq!(overdue.len(), all.iter().filter(|a| a["overdue"] == true).count());
    assert!(overdue.iter().all(|a| a["overdue"] == true));
    let index_regions: BTreeSet<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("vigil_risk_index_score{"))
        .filter_map(|l| l.split("region=\"").nth(1)?.split('"').next())
        .collect();
    let city_and_districts = rules.regions.levels.iter().filter(|&&l| l <= 1).count();
    assert!(!index_regions.is_empty() && index_regions.len() <= city_and_districts, "{index_regions:?}");
    for line in [
        "vigil_build_info{",
        "vigil_rules_info{",
        "vigil_consumer_lag_messages{",
        "vigil_watermark_delay_seconds{",
        "vigil_evaluation_duration_seconds_count ",
        "vigil_indicator_evaluations_kept_total ",
        "vigil_indicator_evaluations_asleep_total ",
        "vigil_indicator_scores_unread_skipped_total ",
    ] {
        assert!(scrape.contains(line), "missing {line}");
    }

    // The dashboard and the alert rules use only what vigil exports.
    let exported = exported_names(&scrape);
    for file in ["deploy/grafana/dashboards/vigil.json", "deploy/prometheus/vigil-alerts.yml"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let used = vigil_tokens(&text);
        assert!(!used.is_empty(), "{file} uses no vigil metric");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "{file} uses metrics vigil does not export: {unknown:?}");
    }

    if std::env::var_os("VIGIL_TEST_PROMETHEUS").is_some() {
        with_prometheus(&addr, &scrape, &dir);
    } else {
        vigil_engine::testkit::require_in_ci("VIGIL_TEST_PROMETHEUS");
        eprintln!("VIGIL_TEST_PROMETHEUS unset: promtool and the Prometheus server are not exercised");
    }

    // Hot reload. A broken edit is rejected with file:line errors and the running rules stay.
    let police = rules_dir.join("indicators/police.toml");
    let original = std::fs::read_to_string(&police).unwrap();
    std::fs::write(&police, original.replacen("weight = 0.5", "weight = 0.5\nwieght = 2", 1)).unwrap();
    let (status, body) = http(&addr, "POST", "/-/reload", None).unwrap();
    assert_eq!(status, 401, "reload needs the token");
    let (status, body2) = http(&addr, "POST", "/-/reload", Some(TOKEN)).unwrap();
    assert_eq!(status, 422, "{body} {body2}");
    let v = json(&body2);
    assert_eq!(v["result"], "rejected");
    let errors = v["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e.as_str().unwrap().contains("indicators/police.toml:22:")), "{v}");
    let version_of = |addr: &str| json(&http(addr, "GET", &path, Some(TOKEN)).unwrap().1)["rules_version"].clone();
    assert_eq!(version_of(&addr), rules.version.as_str(), "the running rules stay in force");
    assert_eq!(http(&addr, "GET", "/readyz", None).unwrap().0, 200);

    // A good edit (the blue threshold) is picked up by the directory watch, without a request.
    std::fs::write(&police, &original).unwrap();
    let grading = rules_dir.join("grading.toml");
    let text = std::fs::read_to_string(&grading).unwrap();
    assert!(text.contains("enter = 30.0"));
    std::fs::write(&grading, text.replacen("enter = 30.0", "enter = 29.0", 1)).unwrap();
    let t = Instant::now();
    while version_of(&addr) == rules.version.as_str() {
        assert!(t.elapsed() < Duration::from_secs(30), "the edit was never applied");
        std::thread::sleep(Duration::from_millis(200));
    }
    let new_version = version_of(&addr).as_str().unwrap().to_string();
    let scrape2 = http(&addr, "GET", "/metrics", None).unwrap().1;
    assert!(scrape2.contains(&format!("version=\"{new_version}\"}} 1")), "rules info names the new version");
    assert!(scrape2.contains("vigil_rule_reloads_total{result=\"ok\"} 1"), "{scrape2}");
    let rejected: u64 = scrape2
        .lines()
        .find_map(|l| l.strip_prefix("vigil_rule_reloads_total{result=\"rejected\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(rejected >= 1, "the broken edit was counted");
    // State was carried over: the district still has its composite and the open alerts are
    // the same episodes (a reload that started everything afresh would leave both empty).
    let region_after = json(&http(&addr, "GET", &path, Some(TOKEN)).unwrap().1);
    assert!(region_after["composite"].is_number(), "{region_after}");
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect()
    };
    let alerts_after = json(&http(&addr, "GET", "/api/alerts", Some(TOKEN)).unwrap().1);
    assert_eq!(ids(&alerts_after), all.iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect::<Vec<_>>());
    let log = std::fs::read_to_string(dir.join("vigil.log")).unwrap();
    assert!(
        log.contains(&format!("version {new_version}: 60 indicators keep their state; open alerts continue")),
        "{log}"
    );

    // The next evaluations use the new rules: one more day of events, and the score records of
    // its hours name the new version.
    let later = testkit::city(&rules, 3, 35);
    let last_ts = lines.lines.values().flatten().map(|l| ts_of(l)).max().unwrap();
    let mut more = vigil_sim::MemorySink::default();
    for (source, ls) in &later.lines {
        more.lines.insert(source.clone(), ls.iter().filter(|l| ts_of(l) > last_ts).cloned().collect());
    }
    testkit::produce(&broker.settings(), &topics.events, &more);
    let t = Instant::now();
    loop {
        let scores = testkit::read_topic(&broker.settings(), &topics.outputs.scores, Duration::from_secs(1));
        if scores.iter().any(|s| s.contains(&format!("\"rules_version\":\"{new_version}\""))) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no score under the new rules");
    }

    // SIGTERM: a graceful stop with exit code 0.
    let pid = vigil.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = vigil.0.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no graceful stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn ts_of(line: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    vigil_model::time::parse_rfc3339(v["ts"].as_str().unwrap()).unwrap()
}

fn run_ok(cmd: &mut Command, input: Option<&str>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (VIGIL_TEST_PROMETHEUS needs Debian's prometheus package)"));
    if let Some(i) = input {
        child.stdin.take().unwrap().write_all(i.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// promtool on a scrape and on `deploy/`, then a real Prometheus scraping vigil.
fn with_prometheus(vigil: &str, scrape: &str, dir: &Path) {
    run_ok(Command::new("promtool").args(["check", "metrics"]), Some(scrape));
    let deploy = root().join("deploy/prometheus");
    run_ok(Command::new("promtool").args(["check", "config"]).arg(deploy.join("prometheus.yml")), None);
    run_ok(Command::new("promtool").args(["check", "rules"]).arg(deploy.join("vigil-alerts.yml")), None);
    run_ok(Command::new("promtool").args(["test", "rules"]).arg(deploy.join("vigil-alerts.test.yml")), None);

    let prom = free_addr();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: vigil\n    static_configs:\n      - targets: ['{vigil}']\n"),
    )
    .unwrap();
    let server = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address={prom}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus must be installed when VIGIL_TEST_PROMETHEUS is set");
    let _server = Vigil(server);
    let t = Instant::now();
    loop {
        let answer = http(&prom, "GET", "/api/v1/query?query=vigil_events_consumed_total", None);
        if let Some((200, body)) = &answer {
            let v = json(body);
            if v["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
                assert_eq!(v["status"], "success");
                break;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(60), "Prometheus never returned vigil's metric: {answer:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}
