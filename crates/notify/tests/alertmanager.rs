//! The Alertmanager round trip against a real Alertmanager (Debian's `prometheus-alertmanager`,
//! installed by .ci/run) running deploy/alertmanager/alertmanager.yml with its two webhook
//! receivers pointed at this test: an orange episode reaches the urgent receiver firing, with
//! vigil's labels and annotations, and resolved when it ends; a yellow one reaches the routine
//! receiver. Skipped where no Alertmanager is installed, except under CI=true, where that fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_model::Level;
use vigil_model::record::{AlertEvent, AlertRecord};
use vigil_notify::Alertmanager;

fn binary() -> Option<String> {
    for b in ["prometheus-alertmanager", "alertmanager"] {
        if Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return Some(b.to_string());
        }
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A webhook receiver: every POST's path and JSON body, as Alertmanager delivers them.
fn receiver() -> (u16, Receiver<(String, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Some(got) = read_post(stream) {
                let _ = tx.send(got);
            }
        }
    });
    (port, rx)
}

fn read_post(mut stream: TcpStream) -> Option<(String, Value)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").ok()?;
    Some((path, serde_json::from_slice(&body).ok()?))
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn record(region: &str, event: AlertEvent, level: Option<Level>, previous: Option<Level>) -> AlertRecord {
    serde_json::from_value(serde_json::json!({
        "alert_id": format!("{region}:composite:2026-03-01T10:00:00Z"), "seq": 0, "event": event,
        "level": level, "previous_level": previous, "region": region, "region_name": "East",
        "region_level": "district", "scope": "composite", "score": 66.0,
        "window_start": "2026-03-01T09:00:00Z", "window_end": "2026-03-01T10:00:00Z",
        "rules_version": "abc123", "reason": "score", "domains": {}, "top_contributors": [],
        "response": "Urgent: verify on site within 6 h.", "deadline": "2026-03-01T16:00:00Z"
    }))
    .unwrap()
}

/// Every delivery so far, kept: one awaited may have come before another.
struct Deliveries {
    rx: Receiver<(String, Value)>,
    seen: Vec<(String, Value)>,
}

impl Deliveries {
    /// The first delivery to `path` with `status` about `region`, waiting up to a minute.
    fn wait_for(&mut self, path: &str, status: &str, region: &str) -> Value {
        let matches = |(p, body): &(String, Value)| {
            p == path
                && body["status"] == status
                && body["alerts"].as_array().is_some_and(|a| a.iter().any(|x| x["labels"]["region"] == region))
        };
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(i) = self.seen.iter().position(matches) {
                return self.seen.remove(i).1;
            }
            assert!(Instant::now() < until, "no {status} delivery to {path} for {region}; got {:#?}", self.seen);
            if let Ok(got) = self.rx.recv_timeout(Duration::from_millis(500)) {
                self.seen.push(got);
            }
        }
    }
}

#[test]
fn alerts_reach_alertmanager_receivers_and_resolve() {
    let Some(bin) = binary() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true needs Alertmanager (.ci/run installs it)");
        eprintln!("skipped: no prometheus-alertmanager installed");
        return;
    };
    let (hook, rx) = receiver();
    let mut got = Deliveries { rx, seen: Vec::new() };
    let dir = std::env::temp_dir().join(format!("vigil-am-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The shipped routing, with its receivers pointed here and its waits shortened.
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/alertmanager/alertmanager.yml"))
            .unwrap()
            .replace("http://urgent-receiver.example/vigil", &format!("http://127.0.0.1:{hook}/urgent"))
            .replace("http://routine-receiver.example/vigil", &format!("http://127.0.0.1:{hook}/routine"))
            .replace("group_wait: 10s", "group_wait: 1s")
            .replace("group_interval: 1m", "group_interval: 1s");
    std::fs::write(dir.join("am.yml"), config).unwrap();
    let port = free_port();
    let _am = Running(
        Command::new(&bin)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let until = Instant::now() + Duration::from_secs(30);
    let ready = || reqwest::blocking::get(format!("{url}/-/ready")).is_ok_and(|r| r.status().is_success());
    while !ready() {
        assert!(Instant::now() < until, "Alertmanager did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }

    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (o, f) = (Arc::clone(&ok), Arc::clone(&failed));
    let on_post = Box::new(move |accepted: bool| {
        if accepted { &o } else { &f }.fetch_add(1, Ordering::Relaxed);
    });
    let am = Alertmanager::start(&url, Some("http://vigil.example:9464".into()), Duration::from_secs(1), Some(on_post))
        .unwrap();
    am.send(&record("990101", AlertEvent::Opened, Some(Level::Orange), None));
    am.send(&record("990102", AlertEvent::Opened, Some(Level::Yellow), None));
    let firing = got.wait_for("/urgent", "firing", "990101");
    let a = &firing["alerts"][0];
    assert_eq!(a["labels"]["level"], "orange");
    assert_eq!(a["labels"]["scope"], "composite");
    assert_eq!(a["labels"]["rules_version"], "abc123");
    assert_eq!(a["annotations"]["response"], "Urgent: verify on site within 6 h.");
    assert_eq!(a["annotations"]["deadline"], "2026-03-01T16:00:00Z");
    assert_eq!(a["generatorURL"], "http://vigil.example:9464/console/#/region/990101");
    let routine = got.wait_for("/routine", "firing", "990102");
    assert_eq!(routine["alerts"][0]["labels"]["level"], "yellow");

    // Re-sent while open: still firing after several resend periods (Alertmanager would resolve
    // an alert it stopped hearing about once its endsAt passed).
    std::thread::sleep(Duration::from_secs(5));
    let alerts: Value = reqwest::blocking::get(format!("{url}/api/v2/alerts?active=true")).unwrap().json().unwrap();
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["labels"]["region"] == "990101" && x["status"]["state"] == "active"),
        "{alerts:#}"
    );

    am.send(&record("990101", AlertEvent::Resolved, None, Some(Level::Orange)));
    let resolved = got.wait_for("/urgent", "resolved", "990101");
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_eq!(am.stats.failures.load(Ordering::Relaxed), 0);
    am.stop();
    // Every post was heard, and accepted.
    assert!(ok.load(Ordering::Relaxed) >= 3, "{ok:?}");
    assert_eq!(failed.load(Ordering::Relaxed), 0);

    // An Alertmanager that is not there: the post fails and is heard as failed.
    let gone = format!("http://127.0.0.1:{}", free_port());
    let (f2, heard) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (a, b) = (Arc::clone(&f2), Arc::clone(&heard));
    let on_post = Box::new(move |accepted: bool| {
        b.fetch_add(1, Ordering::Relaxed);
        if !accepted {
            a.fetch_add(1, Ordering::Relaxed);
        }
    });
    let am = Alertmanager::start(&gone, None, Duration::from_secs(1), Some(on_post)).unwrap();
    am.send(&record("990103", AlertEvent::Opened, Some(Level::Red), None));
    am.stop();
    assert!(heard.load(Ordering::Relaxed) >= 1, "the post was heard");
    assert_eq!(f2.load(Ordering::Relaxed), heard.load(Ordering::Relaxed), "and it failed");
    let _ = std::fs::remove_dir_all(&dir);
}
