//! Every metric vigil exports, defined in one place. Names follow `vigil_<noun>_<unit>[_total]`;
//! label values are bounded (sources, reason codes, levels, lifecycle events), never regions
//! below the district level and never anything from an event's payload.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub source: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub level: String,
    pub event: String,
}

/// The engine's metrics. Cloning shares the underlying series.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub events_consumed: Family<SourceLabel, Counter>,
    pub events_rejected: Family<RejectLabels, Counter>,
    pub events_late: Family<SourceLabel, Counter>,
    pub alerts: Family<AlertLabels, Counter>,
    pub evaluations: Counter,
    /// Event time of the global watermark, seconds since the epoch.
    pub watermark: Gauge,
}

impl Metrics {
    /// Registers every metric; the registry adds the `_total` suffix to counters.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("vigil_events_consumed", "Events consumed, by source", self.events_consumed.clone());
        registry.register(
            "vigil_events_rejected",
            "Events rejected at decode (sent to the dead-letter topic), by source and reason",
            self.events_rejected.clone(),
        );
        registry.register(
            "vigil_events_late",
            "Events later than the allowed lateness (sent to the late topic), by source",
            self.events_late.clone(),
        );
        registry.register("vigil_alerts", "Alert lifecycle events emitted, by level and event", self.alerts.clone());
        registry.register(
            "vigil_indicator_evaluations",
            "Indicator evaluations (one per region and indicator at each hop)",
            self.evaluations.clone(),
        );
        registry.register(
            "vigil_watermark_timestamp_seconds",
            "Event time of the global watermark, seconds since the epoch",
            self.watermark.clone(),
        );
    }
}
