//! Fixed rings of base bins. One `Bins` holds, for one indicator, a ring of `ring` slots per
//! region, each slot `lanes` integers wide and tagged with the absolute bin number it holds.
//! A slot is reset lazily when a newer bin claims it, so advancing time costs nothing per
//! region. All storage is allocated once, up front: updating a bin never allocates.
//!
//! The slots are laid out slot-major: slot `k` of every region side by side. Each hop reads the
//! same slot of every region in turn (the bin entering a sliding window and the one leaving it),
//! so that sweep walks memory in order instead of jumping a ring's width from region to region
//! (a grid of 505 scored regions replayed 12 % faster, benches/results/peers.md); a region's
//! whole window, read less often, is the strided walk instead. Snapshots before format 8 hold
//! the region-major layout, read through [`Bins::from_region_major`].

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Saved")]
pub struct Bins {
    pub lanes: usize,
    pub ring: usize,
    /// Absolute bin number held by each (slot, region), at `slot * regions + region`;
    /// `i64::MIN` when empty.
    tags: Vec<i64>,
    data: Vec<i64>,
    /// Per region, the newest bin an event claimed a slot for (`i64::MIN`: none). Derived from
    /// the tags, so never saved: rebuilt when bins are read back ([`Saved`]).
    #[serde(skip)]
    newest: Vec<i64>,
    /// Regions, the stride between slots. Derived from the tags' length, so never saved:
    /// set when bins are read back ([`Saved`]).
    #[serde(skip)]
    regions: usize,
}

/// What a snapshot holds of [`Bins`]: read back through it, so that bins are never used
/// without the stride and newest bins derived from their tags.
#[derive(Deserialize)]
struct Saved {
    lanes: usize,
    ring: usize,
    tags: Vec<i64>,
    data: Vec<i64>,
}

impl From<Saved> for Bins {
    fn from(s: Saved) -> Bins {
        let mut b = Bins { lanes: s.lanes, ring: s.ring, tags: s.tags, data: s.data, newest: Vec::new(), regions: 0 };
        b.index();
        b
    }
}

/// Why a bin could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinError {
    /// The slot already holds a newer bin: the event is older than the ring remembers.
    Evicted,
}

impl Bins {
    /// True when `other` has the same regions, ring and lanes (a restored state fits).
    pub fn same_shape(&self, other: &Bins) -> bool {
        self.lanes == other.lanes
            && self.ring == other.ring
            && self.tags.len() == other.tags.len()
            && self.data.len() == other.data.len()
    }

    pub fn new(regions: usize, ring: usize, lanes: usize) -> Bins {
        Bins {
            lanes,
            ring,
            tags: vec![i64::MIN; regions * ring],
            data: vec![0; regions * ring * lanes],
            newest: vec![i64::MIN; regions],
            regions,
        }
    }

    /// Rebuilds the newest bin of every region, and the stride, from the tags.
    pub fn index(&mut self) {
        let regions = self.tags.len() / self.ring.max(1);
        self.regions = regions;
        self.newest = (0..regions)
            .map(|r| (0..self.ring).map(|k| self.tags[k * regions + r]).max().unwrap_or(i64::MIN))
            .collect();
    }

    /// The newest bin any event of `region` fell into (`i64::MIN`: none yet; `i64::MAX` when
    /// not known, before [`Bins::index`]). Every bin a window reads lies within a ring of the
    /// bin it ends on: a region whose newest bin is a whole ring older holds no event any
    /// window of it can see.
    #[inline]
    pub fn newest(&self, region: usize) -> i64 {
        self.newest.get(region).copied().unwrap_or(i64::MAX)
    }

    /// The lanes of `bin` for `region`, claiming (and zeroing) the slot if it holds an older
    /// bin.
    #[inline]
    pub fn slot_mut(&mut self, region: usize, bin: i64) -> Result<&mut [i64], BinError> {
        let t = self.at(region, bin.rem_euclid(self.ring as i64) as usize);
        let tag = self.tags[t];
        let start = t * self.lanes;
        if tag != bin {
            if tag > bin {
                return Err(BinError::Evicted);
            }
            self.tags[t] = bin;
            self.data[start..start + self.lanes].fill(0);
            if let Some(n) = self.newest.get_mut(region) {
                *n = (*n).max(bin);
            }
        }
        Ok(&mut self.data[start..start + self.lanes])
    }

    /// The lanes of `bin` for `region`, or `None` when no event fell into it.
    #[inline]
    pub fn slot(&self, region: usize, bin: i64) -> Option<&[i64]> {
        self.slot_at(region, bin, bin.rem_euclid(self.ring as i64) as usize)
    }

    /// The lanes of `bin` for `region` when the caller already knows its ring slot
    /// (`bin.rem_euclid(ring)`, kept by stepping rather than dividing), or `None` when no event
    /// fell into it.
    #[inline]
    pub fn slot_at(&self, region: usize, bin: i64, slot: usize) -> Option<&[i64]> {
        debug_assert_eq!(slot as i64, bin.rem_euclid(self.ring as i64));
        let t = self.at(region, slot);
        if self.tags[t] == bin {
            let start = t * self.lanes;
            Some(&self.data[start..start + self.lanes])
        } else {
            None
        }
    }

    /// Calls `f` with the lanes of every bin of `first..=last` that holds events for `region`,
    /// oldest first: what [`Bins::slot`] gives bin by bin, with one division for the whole range
    /// instead of one per bin (windows read hundreds of bins, every region, every hop).
    #[inline]
    pub fn each_in(&self, region: usize, first: i64, last: i64, f: impl FnMut(&[i64])) {
        if last < first {
            return;
        }
        self.each_in_from(region, first, last, self.slot_of(first), f);
    }

    /// Sets bit `r` of `out` (one bit per region) for every region `r` with events in a bin of
    /// `first..=last`: one pass along each bin's slot, where every region's tag lies side by
    /// side. A range of a ring or more marks every region.
    pub fn mark_held(&self, first: i64, last: i64, out: &mut [u64]) {
        if last < first {
            return;
        }
        if last - first >= self.ring as i64 {
            out.fill(u64::MAX);
            return;
        }
        let mut slot = self.slot_of(first);
        for bin in first..=last {
            let tags = &self.tags[slot * self.regions..(slot + 1) * self.regions];
            for (r, &t) in tags.iter().enumerate() {
                out[r / 64] |= u64::from(t == bin) << (r % 64);
            }
            slot += 1;
            if slot == self.ring {
                slot = 0;
            }
        }
    }

    /// The ring slot of `bin`: the same for every region.
    #[inline]
    pub fn slot_of(&self, bin: i64) -> usize {
        bin.rem_euclid(self.ring as i64) as usize
    }

    /// [`Bins::each_in`] with the ring slot of `first` known ([`Bins::slot_of`]): a caller that
    /// reads the same bins of every region divides once, not once per region.
    #[inline]
    pub fn each_in_from(&self, region: usize, first: i64, last: i64, first_slot: usize, mut f: impl FnMut(&[i64])) {
        debug_assert!(last < first || first_slot == self.slot_of(first));
        // No bin after the region's newest holds an event (only an event claims a bin): a
        // quiet cell's window, or the hour just entering it, is passed over without reading
        // its tags, which lie a cache line apart for every region.
        let last = last.min(self.newest(region));
        let mut slot = first_slot;
        for bin in first..=last {
            let t = self.at(region, slot);
            if self.tags[t] == bin {
                let start = t * self.lanes;
                f(&self.data[start..start + self.lanes]);
            }
            slot += 1;
            if slot == self.ring {
                slot = 0;
            }
        }
    }

    /// Where (region, slot) lies in `tags` (and, times `lanes`, in `data`).
    #[inline]
    fn at(&self, region: usize, slot: usize) -> usize {
        slot * self.regions + region
    }

    /// The same bins from a snapshot of the region-major layout (formats before 8: a region's
    /// `ring` slots side by side).
    pub fn from_region_major(self) -> Bins {
        let ring = self.ring;
        let mut out = self.moved(|r, k, _| r * ring + k, |r, k, regions| k * regions + r);
        out.index();
        out
    }

    /// The region-major layout of these bins, as snapshots before format 8 hold them (for
    /// tests of reading those snapshots).
    #[doc(hidden)]
    pub fn to_region_major(&self) -> Bins {
        let ring = self.ring;
        self.moved(|r, k, regions| k * regions + r, |r, k, _| r * ring + k)
    }

    /// These bins with the entry of (region `r`, slot `k`) moved from index `from(r, k, regions)`
    /// to `to(r, k, regions)`.
    fn moved(&self, from: impl Fn(usize, usize, usize) -> usize, to: impl Fn(usize, usize, usize) -> usize) -> Bins {
        let regions = self.tags.len() / self.ring.max(1);
        let mut out = Bins::new(regions, self.ring, self.lanes);
        let n = self.lanes;
        for r in 0..regions {
            for k in 0..self.ring {
                let (a, b) = (from(r, k, regions), to(r, k, regions));
                out.tags[b] = self.tags[a];
                out.data[b * n..(b + 1) * n].copy_from_slice(&self.data[a * n..(a + 1) * n]);
            }
        }
        out
    }

    /// Heap bytes held per region.
    /// The bins of the regions `from` names, in that order (`None`: a region with no events
    /// yet): a scale-out task keeps only the regions it owns.
    pub fn select(&self, from: &[Option<usize>]) -> Bins {
        let mut out = Bins::new(from.len(), self.ring, self.lanes);
        for (to, src) in from.iter().enumerate() {
            if let Some(r) = *src {
                for k in 0..self.ring {
                    let (a, b) = (k * self.regions + r, k * from.len() + to);
                    out.tags[b] = self.tags[a];
                    let n = self.lanes;
                    out.data[b * n..(b + 1) * n].copy_from_slice(&self.data[a * n..(a + 1) * n]);
                }
            }
        }
        out.index();
        out
    }

    pub fn bytes_per_region(&self) -> usize {
        self.ring * (8 + 8 * self.lanes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The regions marked are those a bin of the range holds events for, whatever the other
    /// bins sharing their slots hold; a range of a whole ring marks every region.
    #[test]
    fn the_regions_holding_events_in_a_range_are_marked() {
        let mut b = Bins::new(70, 4, 1);
        b.slot_mut(0, 10).unwrap()[0] += 1;
        b.slot_mut(3, 11).unwrap()[0] += 1;
        b.slot_mut(65, 12).unwrap()[0] += 1;
        // Bin 9 shares slot 1 with bin 13: region 5's event is in a bin outside the range.
        b.slot_mut(5, 13).unwrap()[0] += 1;
        let marked = |first, last| {
            let mut out = vec![0u64; 2];
            b.mark_held(first, last, &mut out);
            (0..70).filter(|&r| out[r / 64] >> (r % 64) & 1 == 1).collect::<Vec<_>>()
        };
        assert_eq!(marked(10, 12), vec![0, 3, 65]);
        assert_eq!(marked(11, 11), vec![3]);
        assert_eq!(marked(9, 9), Vec::<usize>::new());
        assert_eq!(marked(12, 13), vec![5, 65]);
        assert_eq!(marked(13, 12), Vec::<usize>::new());
        assert_eq!(marked(9, 13).len(), 70);
    }

    #[test]
    fn lazily_resets_and_refuses_evicted() {
        let mut b = Bins::new(2, 4, 2);
        b.slot_mut(0, 10).unwrap()[0] += 3;
        assert_eq!(b.slot(0, 10), Some(&[3, 0][..]));
        assert_eq!(b.slot(1, 10), None);
        // Bin 14 shares slot 2 with bin 10 and replaces it.
        b.slot_mut(0, 14).unwrap()[1] += 1;
        assert_eq!(b.slot(0, 10), None);
        assert_eq!(b.slot(0, 14), Some(&[0, 1][..]));
        assert_eq!(b.slot_mut(0, 10), Err(BinError::Evicted));
    }

    #[test]
    fn a_selection_keeps_each_chosen_regions_bins() {
        let mut b = Bins::new(3, 4, 2);
        for (r, bin) in [(0, 1), (0, 3), (1, 2), (2, 5), (2, 6)] {
            b.slot_mut(r, bin).unwrap()[1] += bin + 10 * r as i64;
        }
        let s = b.select(&[Some(2), None, Some(0)]);
        for bin in 0..8 {
            assert_eq!(s.slot(0, bin), b.slot(2, bin), "bin {bin}");
            assert_eq!(s.slot(1, bin), None, "bin {bin}");
            assert_eq!(s.slot(2, bin), b.slot(0, bin), "bin {bin}");
        }
        assert_eq!((s.newest(0), s.newest(1), s.newest(2)), (6, i64::MIN, 3));
    }

    #[test]
    fn a_region_major_layout_reads_back_as_the_same_bins() {
        let mut b = Bins::new(3, 4, 2);
        for (r, bin) in [(0, 1), (0, 3), (1, 2), (2, 5), (2, 6), (1, 7)] {
            b.slot_mut(r, bin).unwrap()[bin as usize % 2] += bin + 10 * r as i64;
        }
        let old = b.to_region_major();
        // The region-major layout is another arrangement of the same numbers...
        assert_ne!(old.tags, b.tags);
        // ...which reads back as the same bins.
        let back = old.from_region_major();
        assert_eq!(back, b);
        for r in 0..3 {
            for bin in 0..8 {
                assert_eq!(back.slot(r, bin), b.slot(r, bin), "region {r} bin {bin}");
            }
        }
    }

    #[test]
    fn each_in_visits_what_slot_finds() {
        let mut b = Bins::new(3, 5, 1);
        for (r, bin) in [(1, -3), (1, -1), (1, 0), (1, 2), (0, 1), (1, 4), (2, 2), (1, 6)] {
            b.slot_mut(r, bin).unwrap()[0] += bin + 10;
        }
        for r in 0..3 {
            for first in -6..8 {
                for last in first - 1..first + 7 {
                    let mut seen = Vec::new();
                    b.each_in(r, first, last, |s| seen.push(s[0]));
                    let want: Vec<i64> = (first..=last).filter_map(|x| b.slot(r, x).map(|s| s[0])).collect();
                    assert_eq!(seen, want, "region {r}, {first}..={last}");
                    let mut from = Vec::new();
                    b.each_in_from(r, first, last, b.slot_of(first), |s| from.push(s[0]));
                    assert_eq!(from, want, "region {r}, {first}..={last}, slot given");
                }
            }
        }
    }
}
