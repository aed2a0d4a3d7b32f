//! De-duplication of resent events by the producer's id: a fixed-capacity open-addressed table of
//! (id hash, event time) per source, allocated once, so the per-event step never allocates.
//! Entries older than the horizon behind the watermark no longer count and are dropped when the
//! table is compacted (into a second buffer of the same size, also allocated once). Only the
//! live entries are saved in a snapshot.

use serde::{Deserialize, Serialize};
use vigil_model::Ts;

/// The ids of one source's recent events.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "Saved", into = "Saved")]
pub(crate) struct Seen {
    horizon: i64,
    /// (id hash, event time); id 0 marks an empty slot (events without an id are never
    /// de-duplicated).
    slots: Vec<(u64, Ts)>,
    spare: Vec<(u64, Ts)>,
    used: usize,
    /// The cutoff of the last compaction: compacting again before the cutoff moves past it
    /// would free nothing and cost a pass over the table.
    compacted: Ts,
}

/// What a snapshot keeps: the live entries.
#[derive(Serialize, Deserialize)]
struct Saved {
    horizon: i64,
    capacity: usize,
    entries: Vec<(u64, Ts)>,
}

impl From<Seen> for Saved {
    fn from(s: Seen) -> Saved {
        Saved {
            horizon: s.horizon,
            capacity: s.slots.len(),
            entries: s.slots.into_iter().filter(|e| e.0 != 0).collect(),
        }
    }
}

impl From<Saved> for Seen {
    fn from(s: Saved) -> Seen {
        let mut seen = Seen::new(s.capacity, s.horizon);
        for (id, ts) in s.entries.into_iter().take(seen.limit()) {
            seen.insert(id, ts, None);
        }
        seen
    }
}

impl Seen {
    /// A table of at least `capacity` slots (rounded up to a power of two).
    pub(crate) fn new(capacity: usize, horizon: i64) -> Seen {
        let n = capacity.clamp(16, 1 << 24).next_power_of_two();
        Seen { horizon, slots: vec![(0, 0); n], spare: vec![(0, 0); n], used: 0, compacted: Ts::MIN }
    }

    /// Whether `other` was made with the same horizon and capacity.
    pub(crate) fn same_settings(&self, other: &Seen) -> bool {
        self.horizon == other.horizon && self.slots.len() == other.slots.len()
    }

    /// Live entries may fill three quarters of the table.
    fn limit(&self) -> usize {
        self.slots.len() / 4 * 3
    }

    fn cutoff(&self, watermark: Option<Ts>) -> Ts {
        watermark.map_or(Ts::MIN, |w| w.saturating_sub(self.horizon))
    }

    /// Whether an event with this id and time is a resend of one seen within the horizon.
    pub(crate) fn contains(&self, id: u64, watermark: Option<Ts>) -> bool {
        if id == 0 {
            return false;
        }
        let cutoff = self.cutoff(watermark);
        let mask = self.slots.len() - 1;
        let mut i = id as usize & mask;
        loop {
            match self.slots[i] {
                (0, _) => return false,
                (x, t) if x == id => return t >= cutoff,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Records an accepted event's id. Returns false when the table is full of live entries
    /// (the event is then not remembered: counted by the caller, never an error).
    pub(crate) fn insert(&mut self, id: u64, ts: Ts, watermark: Option<Ts>) -> bool {
        if id == 0 {
            return true;
        }
        if self.used >= self.limit() {
            let cutoff = self.cutoff(watermark);
            if cutoff > self.compacted {
                self.compact(cutoff);
                self.compacted = cutoff;
            }
            if self.used >= self.limit() {
                return false;
            }
        }
        let mask = self.slots.len() - 1;
        let mut i = id as usize & mask;
        loop {
            match self.slots[i] {
                (0, _) => {
                    self.slots[i] = (id, ts);
                    self.used += 1;
                    return true;
                }
                (x, t) if x == id => {
                    self.slots[i].1 = t.max(ts);
                    return true;
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Keeps only the entries at or after `cutoff`, re-placed into the spare buffer.
    fn compact(&mut self, cutoff: Ts) {
        std::mem::swap(&mut self.slots, &mut self.spare);
        self.slots.fill((0, 0));
        self.used = 0;
        let mask = self.slots.len() - 1;
        for k in 0..self.spare.len() {
            let (id, ts) = self.spare[k];
            if id == 0 || ts < cutoff {
                continue;
            }
            let mut i = id as usize & mask;
            while self.slots[i].0 != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (id, ts);
            self.used += 1;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resends_within_the_horizon_are_found_and_old_ones_expire() {
        let mut s = Seen::new(16, 100);
        assert!(s.insert(7, 1_000, Some(1_000)));
        assert!(s.contains(7, Some(1_050)));
        assert!(!s.contains(7, Some(1_101)), "older than the horizon behind the watermark");
        assert!(!s.contains(8, Some(1_050)));
        assert!(!s.contains(0, Some(1_050)), "events without an id are never duplicates");
        // Filling the table compacts away what expired; live entries survive.
        for id in 100..111 {
            assert!(s.insert(id, 2_000, Some(2_000)));
        }
        assert!(s.insert(111, 2_000, Some(2_000)));
        assert!(s.contains(105, Some(2_000)));
        assert!(!s.contains(7, Some(2_000)));
        // Full of live entries: not remembered, reported.
        let mut n = 0;
        for id in 200..230 {
            n += usize::from(!s.insert(id, 2_000, Some(2_000)));
        }
        assert!(n > 0 && s.len() <= 12);
        // A snapshot keeps the live entries.
        let bytes = postcard::to_allocvec(&s).unwrap();
        let back: Seen = postcard::from_bytes(&bytes).unwrap();
        assert!(back.contains(105, Some(2_000)));
        assert_eq!(back.len(), s.len());
    }
}
