//! vigil-engine drives the scoring core from Kafka: it consumes the event topics, decodes each
//! message under the rules' schemas, keeps one watermark per partition, lets the pipeline
//! evaluate as the global watermark passes hour boundaries, and produces scores and alerts to
//! their topics and bad or late events to the dead-letter and late topics. The engine owns wall
//! time (idle partitions) and shutdown; the pipeline it drives stays pure.

pub mod checkpoint;
pub mod engine;
pub mod lock;
pub mod metrics;
pub mod rollup;
pub mod scale;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use engine::{
    ArchiveFactory, Delivery, Engine, EngineConfig, EngineError, EngineHandle, OutputTopics, QueryInbox, RunSummary,
    ScoreTap, Task, Unavailable, describe,
};
pub use lock::StateLock;
pub use metrics::Metrics;
pub use store::StateLocation;
