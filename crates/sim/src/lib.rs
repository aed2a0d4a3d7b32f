//! vigil-sim: a synthetic city for exercising vigil end to end. It owns the fictional region
//! registry 清河市, the seeded generator of the four event streams (police incidents, cases,
//! petitions, public opinion) with realistic seasonality and over-dispersion, the injected
//! incidents that serve as ground truth, and the scorecard that grades alerts against them.
//!
//! Everything is a pure function of its configuration: the same seed, period and incident plan
//! give byte-identical events, independent of platform threads or dependency versions.

mod city;
mod r#gen;
mod incident;
mod mix;
mod rng;
mod scorecard;
mod tree;

pub use city::{CITY_CODE, CITY_NAME, default_city, write_regions_csv};
pub use r#gen::{
    EventSink, GenConfig, GenError, IncidentPlan, JsonlSink, LOCAL_OFFSET, MemorySink, default_start, generate,
};
pub use incident::{GroundTruth, Incident, IncidentKind, WARM_UP_DAYS, auto_incidents};
pub use mix::SOURCES;
pub use scorecard::{IncidentResult, Scorecard, scorecard};
