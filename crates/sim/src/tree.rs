//! The region tree as the simulator needs it: parent links, the leaf cells under every region
//! (where events are placed) and the district each region belongs to (the unit within which
//! auto-planned incidents must not overlap).

use std::collections::HashMap;

use vigil_model::RegionSpec;

use crate::r#gen::GenError;

pub(crate) struct Tree<'a> {
    pub regions: &'a [RegionSpec],
    pub index: HashMap<&'a str, usize>,
    pub parent: Vec<Option<usize>>,
    /// Leaf regions (no children), in registry order. Events are only ever placed on these.
    pub leaves: Vec<usize>,
    /// For every region, the positions in `leaves` of the leaves under it (itself if a leaf).
    pub leaves_under: Vec<Vec<u32>>,
    /// For every region, its district: the ancestor-or-self of level `district`, or failing
    /// that the ancestor just below the root (so that registries with other level names work).
    pub district: Vec<usize>,
}

impl<'a> Tree<'a> {
    pub fn new(regions: &'a [RegionSpec]) -> Result<Tree<'a>, GenError> {
        if regions.is_empty() {
            return Err(GenError::EmptyRegistry);
        }
        let mut index = HashMap::with_capacity(regions.len());
        for (i, r) in regions.iter().enumerate() {
            if index.insert(r.code.as_str(), i).is_some() {
                return Err(GenError::DuplicateRegion(r.code.clone()));
            }
        }
        let mut parent = Vec::with_capacity(regions.len());
        let mut has_child = vec![false; regions.len()];
        for r in regions {
            if r.parent.is_empty() {
                parent.push(None);
                continue;
            }
            let p = *index
                .get(r.parent.as_str())
                .ok_or_else(|| GenError::UnknownParent { code: r.code.clone(), parent: r.parent.clone() })?;
            has_child[p] = true;
            parent.push(Some(p));
        }
        let mut tree = Tree {
            regions,
            index,
            parent,
            leaves: Vec::new(),
            leaves_under: vec![Vec::new(); regions.len()],
            district: vec![0; regions.len()],
        };
        for (i, &inner) in has_child.iter().enumerate() {
            let chain = tree.chain(i)?;
            if !inner {
                let pos = tree.leaves.len() as u32;
                tree.leaves.push(i);
                for &a in &chain {
                    tree.leaves_under[a].push(pos);
                }
            }
            tree.district[i] = chain.iter().copied().find(|&a| regions[a].level == "district").unwrap_or_else(|| {
                // Ancestor just below the root, or the root itself.
                if chain.len() >= 2 { chain[chain.len() - 2] } else { chain[0] }
            });
        }
        Ok(tree)
    }

    /// `i` and its ancestors, nearest first. A cycle is reported as an unknown parent.
    fn chain(&self, i: usize) -> Result<Vec<usize>, GenError> {
        let mut out = vec![i];
        let mut at = i;
        while let Some(p) = self.parent[at] {
            if out.len() > self.regions.len() {
                return Err(GenError::UnknownParent {
                    code: self.regions[i].code.clone(),
                    parent: self.regions[i].parent.clone(),
                });
            }
            out.push(p);
            at = p;
        }
        Ok(out)
    }
}
