//! What every long-running command sets up: a stop flag raised by SIGINT/SIGTERM (the run then
//! stops gracefully: outputs flushed, final checkpoint, exit code 0), the metrics, the HTTP
//! server (health, readiness, metrics, JSON API) talking to the engine through its query
//! channel, and rule hot reload: on `POST /-/reload`, on SIGHUP, and when the files of the
//! rules directory change (polled, so that it also sees Kubernetes' ConfigMap swaps).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use vigil_engine::metrics::ResultLabel;
use vigil_engine::{EngineHandle, Metrics, QueryInbox};
use vigil_http::console::Console;
use vigil_http::{Api, ReloadHook};

/// How often the rules directory is looked at; a change is applied once it has been stable for
/// one interval (editors and `kubectl` write several files).
const WATCH_EVERY: Duration = Duration::from_secs(2);

pub struct Service {
    pub stop: Arc<AtomicBool>,
    pub metrics: Metrics,
    /// The engine's end of the API's query channel: attach it to the engine.
    pub inbox: QueryInbox,
    pub addr: std::net::SocketAddr,
    /// The console's memory: feed it score records ([`Service::score_tap`]) and alerts.
    pub console: Console,
}

impl Service {
    /// The engine's score tap that keeps the console's recent history.
    pub fn score_tap(&self) -> vigil_engine::ScoreTap {
        let console = self.console.clone();
        vigil_engine::ScoreTap(Arc::new(move |r| console.score(r)))
    }
}

/// A flag raised by SIGINT or SIGTERM.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("install the signal handlers")?;
    }
    Ok(stop)
}

/// Installs the signal handlers and serves HTTP on `addr` (the console labelled from `rules`).
/// `token` protects the API (never health, readiness or metrics). With `rules_dir`, rules are
/// reloaded on request, on SIGHUP and when the directory changes.
pub fn start(
    addr: &str,
    token: Option<String>,
    rules_dir: Option<PathBuf>,
    rules: &vigil_rules::RuleSet,
) -> Result<Service> {
    let stop = stop_on_signals()?;
    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let (handle, inbox) = EngineHandle::new();
    let console = Console::new(rules);
    let reload: Option<ReloadHook> = match rules_dir {
        Some(dir) => {
            let reloader =
                Arc::new(Reloader { dir, handle: handle.clone(), metrics: metrics.clone(), console: console.clone() });
            watch(Arc::clone(&reloader), Arc::clone(&stop))?;
            Some(Arc::new(move || reloader.reload()))
        }
        None => None,
    };
    let api = Api {
        registry: Arc::new(registry),
        engine: Some(handle),
        token: token.filter(|t| !t.is_empty()),
        reload,
        console: Some(console.clone()),
    };
    let addr = vigil_http::serve(addr, api)?;
    Ok(Service { stop, metrics, inbox, addr, console })
}

/// Compiles the rules directory and hands the result to the engine; every outcome is logged
/// and counted.
struct Reloader {
    dir: PathBuf,
    handle: EngineHandle,
    metrics: Metrics,
    console: Console,
}

impl Reloader {
    fn reload(&self) -> Result<String, String> {
        let outcome = match vigil_core::load_rules(&self.dir) {
            Err(diags) => Err(diags.0.iter().map(|d| crate::prefix(&self.dir, d)).collect::<Vec<_>>().join("\n")),
            Ok(rules) => {
                let version = rules.version.clone();
                let rules = Arc::new(rules);
                match self.handle.reload(Arc::clone(&rules), Duration::from_secs(30)) {
                    Ok(Ok(carried)) => {
                        self.console.set_rules(&rules);
                        eprintln!("vigil: rules reloaded, version {version}: {}", vigil_engine::describe(&carried));
                        Ok(version)
                    }
                    Ok(Err(why)) => Err(why),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        let result = if outcome.is_ok() { "ok" } else { "rejected" };
        self.metrics.rule_reloads.get_or_create(&ResultLabel { result: result.into() }).inc();
        if let Err(errors) = &outcome {
            eprintln!("vigil: rule reload rejected; the running rules stay in force:");
            for line in errors.lines() {
                eprintln!("  {line}");
            }
        }
        outcome
    }
}

/// A fingerprint of the rule files' contents (what `rules check` reads).
fn fingerprint(dir: &std::path::Path) -> Option<u64> {
    let files = vigil_rules::RuleFiles::load_dir(dir).ok()?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, text) in &files.files {
        for b in name.bytes().chain([0]).chain(text.bytes()).chain([0]) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    Some(h)
}

/// Reloads on SIGHUP at once, and when the directory's contents changed and then stayed the
/// same for one interval. A rejected edit is not retried until the files change again.
fn watch(reloader: Arc<Reloader>, stop: Arc<AtomicBool>) -> Result<()> {
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGHUP, Arc::clone(&hup)).context("install the SIGHUP handler")?;
    let mut applied = fingerprint(&reloader.dir);
    std::thread::Builder::new().name("vigil-rules-watch".into()).spawn(move || {
        let tick = Duration::from_millis(200);
        let mut seen = applied;
        let mut waited = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            if hup.swap(false, Ordering::Relaxed) {
                eprintln!("vigil: SIGHUP: reloading rules from {}", reloader.dir.display());
                let _ = reloader.reload();
                applied = fingerprint(&reloader.dir);
                seen = applied;
                continue;
            }
            waited += tick;
            if waited < WATCH_EVERY {
                continue;
            }
            waited = Duration::ZERO;
            let now = fingerprint(&reloader.dir);
            if now != applied && now == seen && now.is_some() && reloader.handle.ready() {
                eprintln!("vigil: rules in {} changed: reloading", reloader.dir.display());
                // A reload the engine could not take (it was restarting or busy) is tried again
                // at the next look; a rejected edit waits until the files change again.
                let outcome = reloader.reload();
                if outcome.is_ok() || reloader.handle.ready() {
                    applied = now;
                }
            }
            seen = now;
        }
    })?;
    Ok(())
}
