//! The decoded event: a fixed-size, `Copy` value with no heap parts, so that decoding into a
//! reused `Event` and running it through filters and bins allocates nothing.
//!
//! Attribute values are all held as `i64`: enum attributes as the index of the value in the
//! declared list, booleans as 0/1, integers as themselves and floats as fixed-point integers with
//! the source's declared number of decimals. Integer state makes every aggregate independent of
//! the order events arrive in, which is what lets a Kafka run and a file replay agree to the byte.

use crate::time::Ts;

/// Most attributes one source may declare (the width of the presence mask).
pub const MAX_ATTRS: usize = 32;

/// Index of a source in the rule set.
pub type SourceIdx = u8;
/// Index of a region in the rule set's region table.
pub type RegionIdx = u32;

/// One attribute value in its integer encoding (see the module docs).
pub type AttrVal = i64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub source: SourceIdx,
    pub region: RegionIdx,
    pub ts: Ts,
    /// FNV-1a hash of the producer's event id (0 when absent), for de-duplication.
    pub id_hash: u64,
    /// Bit i set when attribute i is present.
    pub present: u32,
    pub attrs: [AttrVal; MAX_ATTRS],
}

impl Default for Event {
    fn default() -> Self {
        Event { source: 0, region: 0, ts: 0, id_hash: 0, present: 0, attrs: [0; MAX_ATTRS] }
    }
}

impl Event {
    /// The value of attribute `i`, or `None` when the event does not carry it.
    #[inline]
    pub fn get(&self, i: usize) -> Option<AttrVal> {
        if self.present & (1 << i) != 0 { Some(self.attrs[i]) } else { None }
    }

    #[inline]
    pub fn set(&mut self, i: usize, v: AttrVal) {
        self.present |= 1 << i;
        self.attrs[i] = v;
    }

    pub fn clear(&mut self) {
        self.present = 0;
    }
}
