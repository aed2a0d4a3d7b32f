//! Alert levels. The four levels and their order are fixed (they mirror the statutory
//! 一级..四级 scheme); labels, colours, thresholds and meaning are configuration in
//! `rules/grading.toml`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Blue = 1,
    Yellow = 2,
    Orange = 3,
    Red = 4,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Blue, Level::Yellow, Level::Orange, Level::Red];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Blue => "blue",
            Level::Yellow => "yellow",
            Level::Orange => "orange",
            Level::Red => "red",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn rank(self) -> u8 {
        self as u8
    }

    pub fn from_rank(r: u8) -> Option<Level> {
        Level::ALL.get((r as usize).checked_sub(1)?).copied()
    }

    /// One level down, or `None` below blue.
    pub fn lower(self) -> Option<Level> {
        Level::from_rank(self.rank() - 1)
    }
}
