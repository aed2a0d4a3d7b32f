//! A region as declared in `regions.csv`: the plain row, before the rule compiler checks the tree.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionSpec {
    pub code: String,
    /// Empty for the root.
    pub parent: String,
    /// `city`, `district`, `street` or `grid`.
    pub level: String,
    pub name: String,
    pub population: u64,
}
