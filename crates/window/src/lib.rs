//! vigil-window owns event time: base bins per (indicator, region) kept in fixed rings,
//! the per-measure lane layout that events update and windows read, and the watermarks that
//! decide when a window is complete. It never reads a clock: time arrives as event time.

pub mod bins;
pub mod measure;
pub mod running;
pub mod watermark;

pub use bins::Bins;
pub use measure::{Layout, Leg, WindowValue};
pub use running::Running;
pub use watermark::Watermarks;
