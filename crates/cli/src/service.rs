//! What every long-running command sets up: a stop flag raised by SIGINT/SIGTERM (the run then
//! stops gracefully: outputs flushed, final checkpoint, exit code 0), the metrics, and the HTTP
//! server (health, readiness, metrics, JSON API) talking to the engine through its query channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use vigil_engine::{EngineHandle, Metrics, QueryInbox};
use vigil_http::{Api, ReloadHook};

pub struct Service {
    pub stop: Arc<AtomicBool>,
    pub metrics: Metrics,
    /// The engine's end of the API's query channel: attach it to the engine.
    pub inbox: QueryInbox,
    pub addr: std::net::SocketAddr,
}

/// Installs the signal handler and serves HTTP on `addr`. `token` protects the API (never
/// health, readiness or metrics).
pub fn start(addr: &str, token: Option<String>, reload: Option<ReloadHook>) -> Result<Service> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed)).context("install the signal handler")?;
    }
    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let (handle, inbox) = EngineHandle::new();
    let api =
        Api { registry: Arc::new(registry), engine: Some(handle), token: token.filter(|t| !t.is_empty()), reload };
    let addr = vigil_http::serve(addr, api)?;
    Ok(Service { stop, metrics, inbox, addr })
}
