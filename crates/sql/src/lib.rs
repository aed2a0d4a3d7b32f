//! vigil-sql owns vigil's history: the Arrow/Parquet archive of events, scores and alerts
//! ([`archive`]), replay and backtests over it ([`backtest`]), ad-hoc SQL with DataFusion
//! ([`query`]), offline weight calibration ([`weights`]), records read back for the bulletin
//! ([`read`]) and which runs wrote an archive's files ([`writers`]).
//!
//! This is the only crate that links Arrow, Parquet and DataFusion; the scoring core and the
//! Kafka engine know nothing of them (the engine archives through the small trait in
//! `vigil-core`, which this crate implements).

pub mod archive;
pub mod backtest;
pub mod query;
pub mod read;
pub mod weights;
pub mod writers;

pub use archive::{ArchiveWriter, Mode, Tables};
