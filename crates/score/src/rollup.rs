//! Roll-up: indicator scores into category, domain and composite scores with the declared
//! weights and aggregation methods (docs/methodology.md §8.2-§8.3). Grey children are left out and the
//! weights renormalised, unless less than `min_available` of the weight is left.

use vigil_rules::{Aggregation, RuleSet};

/// Aggregates `(weight, score)` pairs. `None` scores are grey.
pub fn aggregate(
    method: Aggregation,
    min_available: f64,
    items: impl Iterator<Item = (f64, Option<f64>)>,
) -> Option<f64> {
    let (mut total_w, mut avail_w, mut acc, mut max) = (0.0, 0.0, 0.0, f64::NEG_INFINITY);
    for (w, s) in items {
        total_w += w;
        if let Some(s) = s {
            avail_w += w;
            match method {
                Aggregation::Arithmetic => acc += w * s,
                // Aggregate safety (100 - risk) geometrically so that one alarming child is hard
                // to offset; safety is floored at 1 to keep the logarithm finite.
                Aggregation::GeometricSafety => acc += w * (100.0 - s).clamp(1.0, 100.0).ln(),
                Aggregation::Max => max = max.max(s),
            }
        }
    }
    if total_w <= 0.0 || avail_w <= 0.0 || avail_w / total_w < min_available - 1e-12 {
        return None;
    }
    Some(match method {
        Aggregation::Arithmetic => acc / avail_w,
        Aggregation::GeometricSafety => 100.0 - (acc / avail_w).exp(),
        Aggregation::Max => max,
    })
}

/// Scores of every level of the index for one region.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollup {
    pub categories: Vec<Option<f64>>,
    pub domains: Vec<Option<f64>>,
    pub composite: Option<f64>,
}

impl Rollup {
    /// True when no category, domain or composite score would print above zero (scores are
    /// published to one decimal).
    pub fn is_quiet(&self) -> bool {
        let quiet = |s: &Option<f64>| s.is_none_or(|v| v < 0.05);
        quiet(&self.composite) && self.domains.iter().all(quiet) && self.categories.iter().all(quiet)
    }
}

/// Rolls one region's indicator scores up the index. `out` is reused between calls.
pub fn rollup(rules: &RuleSet, indicator_scores: &[Option<f64>], out: &mut Rollup) {
    out.categories.clear();
    for c in &rules.categories {
        let items = c.indicators.iter().map(|&i| (rules.indicators[i].weight, indicator_scores[i]));
        out.categories.push(aggregate(c.method, rules.min_available, items));
    }
    out.domains.clear();
    for d in &rules.domains {
        let items = d.categories.iter().map(|&c| (rules.categories[c].weight, out.categories[c]));
        out.domains.push(aggregate(d.method, rules.min_available, items));
    }
    let items = rules.domains.iter().zip(&out.domains).map(|(d, s)| (d.weight, *s));
    out.composite = aggregate(rules.index_method, rules.min_available, items);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_renormalises_over_available() {
        let s = aggregate(Aggregation::Arithmetic, 0.5, [(0.5, Some(80.0)), (0.5, None)].into_iter());
        assert_eq!(s, Some(80.0));
        let s = aggregate(Aggregation::Arithmetic, 0.6, [(0.5, Some(80.0)), (0.5, None)].into_iter());
        assert_eq!(s, None);
    }

    #[test]
    fn geometric_on_safety_matches_methodology_example() {
        // docs/methodology.md §8.2: safeties (90, 90, 90, 10) => arithmetic risk 30, geometric 48.0.
        let items = [(0.25, Some(10.0)), (0.25, Some(10.0)), (0.25, Some(10.0)), (0.25, Some(90.0))];
        let a = aggregate(Aggregation::Arithmetic, 0.5, items.into_iter()).unwrap();
        let g = aggregate(Aggregation::GeometricSafety, 0.5, items.into_iter()).unwrap();
        assert!((a - 30.0).abs() < 1e-9);
        assert!((g - 48.0).abs() < 0.05, "{g}");
    }
}
