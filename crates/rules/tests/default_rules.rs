//! The default rule set under `rules/` compiles and has the catalogue's shape.

use std::path::Path;

#[test]
fn default_rule_set_compiles_with_the_catalogue_shape() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    let rs = vigil_rules::load(&dir).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(rs.sources.len(), 4);
    assert_eq!(rs.indicators.len(), 60);
    assert_eq!(rs.categories.len(), 30);
    assert_eq!(rs.domains.len(), 4);
    assert!(rs.regions.len() > 400, "a few hundred grid cells");
    for c in &rs.categories {
        assert_eq!(c.indicators.len(), 2, "category {}", c.id);
    }
    let total: f64 = rs.indicators.iter().map(|i| i.global_weight).sum();
    assert!((total - 1.0).abs() < 2e-3, "global weights sum to {total}");
}
