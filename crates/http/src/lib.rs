//! vigil-http is vigil's HTTP edge: `/healthz`, `/readyz`, `/metrics` (Prometheus text
//! format) and the JSON API (`/api/regions/{code}`, `/api/alerts`, `POST /-/reload`, and the
//! OpenAPI document at `/api/openapi.json`), and the analysts' console (`/console/`, see
//! [`console`]). It owns no scoring state: questions go to the running engine through its
//! query channel and are answered between polling rounds; the console's recent history is fed
//! to it. An optional bearer token protects everything but health, readiness, metrics and the
//! console's static files (which hold no data).

pub mod console;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use vigil_core::ActiveAlert;
use vigil_engine::EngineHandle;
use vigil_model::Level;
use vigil_model::record::IndicatorScore;

/// How long a request waits for the engine (it answers between rounds of at most ~50 ms).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a rule reload returns: the new rules version, or every error as `file:line:col` lines.
pub type ReloadHook = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Everything the API serves from.
#[derive(Clone)]
pub struct Api {
    pub registry: Arc<Registry>,
    pub engine: Option<EngineHandle>,
    /// Bearer token required on the API (not on health, readiness or metrics).
    pub token: Option<String>,
    pub reload: Option<ReloadHook>,
    /// The console's memory; without it `/console/` and its API answer 404.
    pub console: Option<console::Console>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("http runtime: {0}")]
    Runtime(std::io::Error),
}

/// Binds `addr` now (so a taken port is reported at start) and serves on a thread of its own
/// until the process exits. Returns the bound address.
pub fn serve(addr: &str, api: Api) -> Result<SocketAddr, HttpError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr: addr.to_string(), source })?;
    listener.set_nonblocking(true).map_err(HttpError::Runtime)?;
    let local = listener.local_addr().map_err(HttpError::Runtime)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(HttpError::Runtime)?;
    std::thread::Builder::new()
        .name("vigil-http".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, router(api)).await {
                            tracing::error!("http server stopped: {e}");
                        }
                    }
                    Err(e) => tracing::error!("http server: {e}"),
                }
            })
        })
        .map_err(HttpError::Runtime)?;
    Ok(local)
}

/// The routes.
pub fn router(api: Api) -> Router {
    let mut protected = Router::new()
        .route("/api/regions/{code}", get(region))
        .route("/api/alerts", get(alerts))
        .route("/api/openapi.json", get(openapi))
        .route("/api/catalog", get(catalog))
        .route("/api/overview", get(overview))
        .route("/api/regions/{code}/history", get(history))
        .route("/api/feed", get(feed));
    if api.reload.is_some() {
        protected = protected.route("/-/reload", post(reload));
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(api.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(|| async { axum::response::Redirect::to("/console/") }))
        .route("/console", get(|| async { axum::response::Redirect::to("/console/") }))
        .route("/console/", get(|| asset("text/html; charset=utf-8", console::INDEX_HTML)))
        .route("/console/app.js", get(|| asset("text/javascript; charset=utf-8", console::APP_JS)))
        .route("/console/style.css", get(|| asset("text/css; charset=utf-8", console::STYLE_CSS)))
        .merge(protected)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(api)
}

fn error(status: StatusCode, message: &str) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
    }
    (status, axum::Json(Body { error: message })).into_response()
}

/// Compares in time independent of where the inputs differ (the length still shows).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(api): State<Api>, headers: HeaderMap, request: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(request).await
}

async fn readyz(State(api): State<Api>) -> Response {
    match &api.engine {
        Some(e) if e.ready() => (StatusCode::OK, "ready\n").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "not ready: partitions not assigned or state not restored\n")
            .into_response(),
    }
}

/// OpenMetrics for clients that ask for it (Prometheus does), the classic text format
/// otherwise (`curl | promtool check metrics`), as Prometheus' own client libraries negotiate.
async fn metrics(State(api): State<Api>, headers: HeaderMap) -> Response {
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &api.registry).is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed");
    }
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], to_prometheus_text(&body))
            .into_response()
    }
}

/// OpenMetrics text to the classic Prometheus text format (0.0.4): counter families are named
/// with their `_total` suffix in HELP and TYPE, and the `# UNIT` and `# EOF` lines go (the
/// encoder writes no exemplars or `_created` series for vigil's metrics).
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) { format!("{name}_total") } else { name.to_string() };
                let tail = if tail == "unknown" { "untyped" } else { tail };
                out.push_str(&format!("{prefix}{name} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// A region's standing, as `/api/regions/{code}` returns it.
#[derive(Debug, Serialize, Deserialize)]
pub struct RegionResponse {
    pub region: String,
    pub region_name: String,
    pub region_level: String,
    /// Whether alerts are raised at this level.
    pub alerted: bool,
    pub window_end: String,
    pub rules_version: String,
    pub composite: Option<f64>,
    /// Current grade per scope ("composite" and each domain); null is below blue.
    pub grades: BTreeMap<String, Option<Level>>,
    pub domains: BTreeMap<String, Option<f64>>,
    pub categories: BTreeMap<String, Option<f64>>,
    pub indicators: Vec<IndicatorScore>,
}

/// Runs a blocking engine query off the async runtime.
async fn ask<T: Send + 'static>(
    engine: Option<EngineHandle>,
    f: impl FnOnce(&EngineHandle) -> Result<T, vigil_engine::Unavailable> + Send + 'static,
) -> Result<T, Response> {
    let unavailable = || error(StatusCode::SERVICE_UNAVAILABLE, "the engine is not running");
    let engine = engine.ok_or_else(unavailable)?;
    match tokio::task::spawn_blocking(move || f(&engine)).await {
        Ok(Ok(v)) => Ok(v),
        _ => Err(unavailable()),
    }
}

async fn region(State(api): State<Api>, Path(code): Path<String>) -> Response {
    let view = match ask(api.engine.clone(), move |e| e.region(&code, ENGINE_TIMEOUT)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(v) = view else {
        return error(StatusCode::NOT_FOUND, "unknown region, a level that is not scored, or no evaluation yet");
    };
    let s = v.score;
    axum::Json(RegionResponse {
        region: s.region,
        region_name: v.region_name,
        region_level: s.level,
        alerted: v.alerted,
        window_end: s.window_end,
        rules_version: s.rules_version,
        composite: s.composite,
        grades: v.grades,
        domains: s.domains,
        categories: s.categories,
        indicators: s.indicators,
    })
    .into_response()
}

#[derive(Deserialize)]
struct AlertsQuery {
    /// The lowest level listed (default: every level).
    level: Option<String>,
    /// `true`: only episodes past their deadline.
    overdue: Option<bool>,
}

async fn alerts(State(api): State<Api>, Query(q): Query<AlertsQuery>) -> Response {
    let min = match q.level.as_deref() {
        None => None,
        Some(l) => match Level::parse(l) {
            Some(level) => Some(level),
            None => return error(StatusCode::BAD_REQUEST, "level must be blue, yellow, orange or red"),
        },
    };
    match ask(api.engine.clone(), |e| e.alerts(ENGINE_TIMEOUT)).await {
        Ok(all) => {
            let list: Vec<ActiveAlert> = all
                .into_iter()
                .filter(|a| min.is_none_or(|m| a.level >= m) && (q.overdue != Some(true) || a.overdue))
                .collect();
            axum::Json(list).into_response()
        }
        Err(r) => r,
    }
}

async fn reload(State(api): State<Api>) -> Response {
    #[derive(Serialize)]
    struct Ok {
        result: &'static str,
        rules_version: String,
    }
    #[derive(Serialize)]
    struct Rejected {
        result: &'static str,
        errors: Vec<String>,
    }
    let Some(hook) = api.reload.clone() else { return error(StatusCode::NOT_FOUND, "reload is not enabled") };
    match tokio::task::spawn_blocking(move || hook()).await {
        Ok(Result::Ok(version)) => axum::Json(Ok { result: "ok", rules_version: version }).into_response(),
        Ok(Err(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(Rejected { result: "rejected", errors: errors.lines().map(str::to_string).collect() }),
        )
            .into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "reload failed unexpectedly (a bug)"),
    }
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn no_console() -> Response {
    error(StatusCode::NOT_FOUND, "the console is not enabled in this process")
}

async fn catalog(State(api): State<Api>) -> Response {
    match &api.console {
        Some(c) => ([(header::CONTENT_TYPE, "application/json")], c.catalog().as_str().to_string()).into_response(),
        None => no_console(),
    }
}

async fn overview(State(api): State<Api>) -> Response {
    match &api.console {
        Some(c) => axum::Json(c.overview()).into_response(),
        None => no_console(),
    }
}

async fn history(State(api): State<Api>, Path(code): Path<String>) -> Response {
    match api.console.as_ref().map(|c| c.history(&code)) {
        Some(Some(h)) => axum::Json(h).into_response(),
        Some(None) => error(StatusCode::NOT_FOUND, "no evaluation of this region kept (unknown, unscored or not yet)"),
        None => no_console(),
    }
}

#[derive(Deserialize)]
struct FeedParams {
    after: Option<u64>,
    limit: Option<usize>,
    level: Option<String>,
    domain: Option<String>,
    region: Option<String>,
}

async fn feed(State(api): State<Api>, Query(p): Query<FeedParams>) -> Response {
    let Some(c) = &api.console else { return no_console() };
    let min_level = match p.level.as_deref().filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => match Level::parse(l) {
            Some(level) => Some(level),
            None => return error(StatusCode::BAD_REQUEST, "level must be blue, yellow, orange or red"),
        },
    };
    let q = console::FeedQuery {
        after: p.after.unwrap_or(0),
        limit: p.limit.unwrap_or(200).min(console::FEED_CAPACITY),
        min_level,
        domain: p.domain.filter(|d| !d.is_empty()),
        region: p.region.filter(|r| !r.is_empty()),
    };
    axum::Json(c.feed(&q)).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_counters_become_classic_text() {
        let om = "# HELP vigil_alerts Alerts.\n# TYPE vigil_alerts counter\nvigil_alerts_total{level=\"red\"} 2\n\
                  # HELP vigil_lag Lag.\n# TYPE vigil_lag gauge\nvigil_lag 3\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP vigil_alerts_total Alerts.\n# TYPE vigil_alerts_total counter\nvigil_alerts_total{level=\"red\"} 2\n\
             # HELP vigil_lag Lag.\n# TYPE vigil_lag gauge\nvigil_lag 3\n"
        );
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn the_openapi_document_is_json_and_names_every_route() {
        let doc: serde_json::Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/regions/{code}",
            "/api/alerts",
            "/-/reload",
            "/api/catalog",
            "/api/overview",
            "/api/regions/{code}/history",
            "/api/feed",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing from openapi.json");
        }
    }
}
