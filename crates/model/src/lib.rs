//! vigil-model owns the vocabulary every other crate speaks: event time and durations, the
//! fixed-size decoded event, alert levels, and the JSON records vigil writes (scores, alerts,
//! rejections). It does no I/O and reads no clock.

pub mod event;
pub mod level;
pub mod record;
pub mod region;
pub mod time;
pub mod zone;

pub use event::{AttrVal, Event, MAX_ATTRS, RegionIdx, SourceIdx};
pub use level::Level;
pub use region::RegionSpec;
pub use time::{Duration, Ts};
pub use zone::Zone;
