//! Snapshots of the pipeline's state: everything needed to continue exactly where it stopped,
//! tied to the rules version it was computed with.

use std::sync::Arc;

use vigil_rules::RuleSet;

use crate::pipeline::{Carried, Options, Pipeline, State};

/// Format version of snapshots; bumped whenever the layout of the state changes.
pub const SNAPSHOT_VERSION: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not readable: {0}")]
    Corrupt(String),
    #[error("snapshot format {found} is not the supported format {SNAPSHOT_VERSION}")]
    Version { found: u32 },
    #[error("snapshot was taken with rules {found}, but rules {expected} are loaded")]
    RulesMismatch { found: String, expected: String },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    version: u32,
    state: State,
}

impl Pipeline {
    /// Serialises the whole scoring state.
    pub fn snapshot(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Borrowed<'a> {
            version: u32,
            state: &'a State,
        }
        postcard::to_allocvec(&Borrowed { version: SNAPSHOT_VERSION, state: &self.state }).unwrap_or_default()
    }

    /// Rebuilds a pipeline from a snapshot taken with the same rules.
    pub fn restore(rules: Arc<RuleSet>, options: Options, bytes: &[u8]) -> Result<Pipeline, SnapshotError> {
        let env: Envelope = postcard::from_bytes(bytes).map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
        if env.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version { found: env.version });
        }
        if env.state.rules_version != rules.version {
            return Err(SnapshotError::RulesMismatch {
                found: env.state.rules_version,
                expected: rules.version.clone(),
            });
        }
        Ok(Pipeline::from_state(rules, options, env.state))
    }

    /// Rebuilds a pipeline from a snapshot taken with the same rules or with others; with
    /// others, what can be is carried over as on a rule reload, and the report says what.
    pub fn restore_adopting(
        rules: Arc<RuleSet>,
        options: Options,
        bytes: &[u8],
    ) -> Result<(Pipeline, Option<Carried>), SnapshotError> {
        let env: Envelope = postcard::from_bytes(bytes).map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
        if env.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version { found: env.version });
        }
        if env.state.rules_version == rules.version {
            return Ok((Pipeline::from_state(rules, options, env.state), None));
        }
        let (p, carried) = Pipeline::adopt(rules, options, env.state);
        Ok((p, Some(carried)))
    }
}
