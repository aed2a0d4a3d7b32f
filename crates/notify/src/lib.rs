//! Pushes alert episodes to Alertmanager (API v2, `POST /api/v2/alerts`), so that routing,
//! grouping, silences and receivers work as operators expect. This crate owns the mapping of an
//! alert record to an Alertmanager alert and the background thread that sends them: an episode
//! fires while open (re-sent every `resend`, since Alertmanager resolves an alert it stops
//! hearing about), and is resolved when it ends. It talks to the network and reads the wall
//! clock; the pipeline never does, so it stays at the edge, fed with the records the engine
//! has already published.
//!
//! Labels are the region, level, scope and rule version: a level change is a new alert for
//! Alertmanager, so the old one is resolved at that moment. No person data: only the region.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use vigil_model::record::{AlertEvent, AlertRecord};

/// One alert as Alertmanager's API v2 takes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AmAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
}

/// The Alertmanager alert of an open episode's record (`None` for a resolved one). `console`
/// is where a person looks the region up (vigil's HTTP address), if known.
pub fn alert_of(r: &AlertRecord, console: Option<&str>) -> Option<AmAlert> {
    let level = r.level?;
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), "VigilRiskAlert".to_string());
    labels.insert("region".to_string(), r.region.clone());
    labels.insert("level".to_string(), level.as_str().to_string());
    labels.insert("scope".to_string(), r.scope.clone());
    labels.insert("rules_version".to_string(), r.rules_version.clone());
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".to_string(), summary(r));
    annotations.insert("region_name".to_string(), r.region_name.clone());
    annotations.insert("alert_id".to_string(), r.alert_id.clone());
    if let Some(x) = &r.response {
        annotations.insert("response".to_string(), x.clone());
    }
    if let Some(x) = &r.deadline {
        annotations.insert("deadline".to_string(), x.clone());
    }
    Some(AmAlert {
        labels,
        annotations,
        starts_at: r.window_end.clone(),
        ends_at: None,
        generator_url: console
            .map(|c| format!("{}/console/#/region/{}", c.trim_end_matches('/'), r.region))
            .unwrap_or_default(),
    })
}

/// One sentence: the evidence alarm's own, or the score and the leading indicators.
fn summary(r: &AlertRecord) -> String {
    if let Some(e) = &r.evidence {
        return e.summary.clone();
    }
    let level = r.level.map_or("clear", |l| l.as_str());
    let mut s = format!("{} ({}): {} {} at {:.1}", r.region_name, r.region, r.scope, level, r.score.unwrap_or(0.0));
    if let Some(f) = &r.floor {
        s.push_str(&format!("; {}", f.describe(&f.trigger)));
    }
    let top: Vec<String> = r
        .top_contributors
        .iter()
        .take(3)
        .map(|c| c.name.as_ref().map_or(c.indicator.clone(), |n| n.en.clone()))
        .collect();
    if !top.is_empty() {
        s.push_str(&format!("; leading: {}", top.join(", ")));
    }
    s
}

/// What the sending thread has done, for metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub posts: AtomicU64,
    pub failures: AtomicU64,
    /// The last failure's reason, for the operator.
    pub last_error: Mutex<Option<String>>,
}

enum Msg {
    Record(Box<AlertRecord>),
    Stop,
}

/// The background sender. Dropping it (or [`Alertmanager::stop`]) stops the thread; open
/// alerts are not resolved then (a restarted vigil carries its episodes on), they expire in
/// Alertmanager after `4 × resend` unless re-sent.
pub struct Alertmanager {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl std::fmt::Debug for Alertmanager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alertmanager").finish_non_exhaustive()
    }
}

impl Alertmanager {
    /// Starts sending to the Alertmanager at `url` (`http://host:9093`). `on_post` hears the
    /// outcome of every post (true: accepted), for the operator's metrics.
    pub fn start(
        url: &str,
        console: Option<String>,
        resend: Duration,
        on_post: Option<Box<dyn Fn(bool) + Send>>,
    ) -> Result<Alertmanager, String> {
        if !url.starts_with("http://") {
            return Err(format!("alertmanager URL `{url}`: expected http://host:port"));
        }
        let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("alertmanager client: {e}"))?;
        let (tx, rx) = channel();
        let stats = Arc::new(Stats::default());
        let st = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("alertmanager".into())
            .spawn(move || {
                Worker {
                    client,
                    endpoint,
                    console,
                    resend,
                    stats: st,
                    on_post,
                    open: BTreeMap::new(),
                    ended: Vec::new(),
                }
                .run(rx)
            })
            .map_err(|e| format!("alertmanager thread: {e}"))?;
        Ok(Alertmanager { tx, thread: Some(thread), stats })
    }

    /// Hands over one published alert record.
    pub fn send(&self, r: &AlertRecord) {
        let _ = self.tx.send(Msg::Record(Box::new(r.clone())));
    }

    /// Sends what is pending and stops.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    client: reqwest::blocking::Client,
    endpoint: String,
    console: Option<String>,
    resend: Duration,
    stats: Arc<Stats>,
    on_post: Option<Box<dyn Fn(bool) + Send>>,
    /// Open episodes by (region, scope): the alert Alertmanager knows them by.
    open: BTreeMap<(String, String), AmAlert>,
    /// Ended alerts not yet delivered (kept until a post succeeds: nothing is lost silently).
    ended: Vec<AmAlert>,
}

fn now() -> String {
    let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    vigil_model::time::format_utc(ms)
}

fn later(d: Duration) -> String {
    let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    vigil_model::time::format_utc(ms + d.as_millis() as i64)
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            match rx.recv_timeout(self.resend) {
                Ok(Msg::Record(r)) => {
                    self.record(&r);
                    // Whatever else is queued goes in the same post.
                    let mut stop = false;
                    while let Ok(m) = rx.try_recv() {
                        match m {
                            Msg::Record(r) => self.record(&r),
                            Msg::Stop => stop = true,
                        }
                    }
                    self.post();
                    if stop {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.post(),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.post();
                    return;
                }
            }
        }
    }

    fn record(&mut self, r: &AlertRecord) {
        let key = (r.region.clone(), r.scope.clone());
        let next = alert_of(r, self.console.as_deref());
        // A resolution, or a level change (another label set): the alert Alertmanager knew
        // ends now.
        if let Some(mut old) = self.open.remove(&key) {
            let same = next.as_ref().is_some_and(|n| n.labels == old.labels);
            if same {
                // Same labels (a new record of the same level): keep its start.
                let mut n = next.expect("checked");
                n.starts_at = old.starts_at;
                self.open.insert(key, n);
                return;
            }
            old.ends_at = Some(now());
            self.ended.push(old);
        }
        if r.event != AlertEvent::Resolved
            && let Some(n) = next
        {
            self.open.insert(key, n);
        }
    }

    /// Posts every open alert (firing until `4 × resend` from now) and every ended one.
    fn post(&mut self) {
        if self.open.is_empty() && self.ended.is_empty() {
            return;
        }
        let until = later(self.resend * 4);
        let mut batch: Vec<AmAlert> = self.ended.clone();
        batch.extend(self.open.values().map(|a| AmAlert { ends_at: Some(until.clone()), ..a.clone() }));
        self.stats.posts.fetch_add(1, Ordering::Relaxed);
        let result = self.client.post(&self.endpoint).json(&batch).send().and_then(|r| r.error_for_status());
        if let Some(f) = &self.on_post {
            f(result.is_ok());
        }
        match result {
            Ok(_) => self.ended.clear(),
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                let why = format!("alertmanager {}: {e}", self.endpoint);
                tracing::warn!("{why} (retried every {} s)", self.resend.as_secs());
                *self.stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::Level;

    fn record(event: AlertEvent, level: Option<Level>) -> AlertRecord {
        serde_json::from_value(serde_json::json!({
            "alert_id": "990101:composite:2026-03-01T10:00:00Z", "seq": 0, "event": event,
            "level": level, "previous_level": null, "region": "990101", "region_name": "East",
            "region_level": "district", "scope": "composite", "score": 61.5,
            "window_start": "2026-03-01T09:00:00Z", "window_end": "2026-03-01T10:00:00Z",
            "rules_version": "abc", "reason": "score", "domains": {}, "top_contributors": [],
            "response": "Verify on site within 6 h.", "deadline": "2026-03-01T16:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn an_open_record_becomes_a_labelled_alert_and_a_resolved_one_none() {
        let a = alert_of(&record(AlertEvent::Opened, Some(Level::Orange)), Some("http://vigil:9464/")).unwrap();
        assert_eq!(a.labels["region"], "990101");
        assert_eq!(a.labels["level"], "orange");
        assert_eq!(a.labels["scope"], "composite");
        assert_eq!(a.labels["rules_version"], "abc");
        assert_eq!(a.annotations["response"], "Verify on site within 6 h.");
        assert_eq!(a.annotations["deadline"], "2026-03-01T16:00:00Z");
        assert!(a.annotations["summary"].starts_with("East (990101): composite orange at 61.5"));
        assert_eq!(a.generator_url, "http://vigil:9464/console/#/region/990101");
        assert_eq!(a.starts_at, "2026-03-01T10:00:00Z");
        let json = serde_json::to_value(&a).unwrap();
        assert!(json.get("startsAt").is_some() && json.get("generatorURL").is_some());
        assert!(alert_of(&record(AlertEvent::Resolved, None), None).is_none());
    }
}
