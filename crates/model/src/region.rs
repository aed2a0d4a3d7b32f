//! A region as declared in `regions.csv`: the plain row, before the rule compiler checks the tree.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionSpec {
    pub code: String,
    /// Empty for the root.
    pub parent: String,
    /// One of the rule set's declared levels (by default `city`, `district`, `street`, `grid`).
    pub level: String,
    pub name: String,
    /// Blank in `regions.csv` when unknown.
    pub population: Option<u64>,
}
