//! Offline weight calibration (docs/methodology.md §8.4): entropy weights computed from a calibration
//! period of archived scores, printed in the rule files' terms and optionally written into a
//! copy of the rule set. Weights stay configuration: the stream never recomputes them.
//!
//! The entropy method on a matrix of m units x n columns (here: region-windows x the scores
//! of one node's children, which already point the same way, higher = riskier): min-max each
//! column to [0, 1]; p_ij = x_ij / sum_i x_ij; e_j = -(1 / ln m) sum_i p_ij ln p_ij (0 ln 0 = 0);
//! d_j = 1 - e_j; w_j = d_j / sum_j d_j. A column that never varies carries no information
//! (e_j = 1). Units where any child is grey are left out. When no child varies at all, the node
//! keeps equal weights and the report says so.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use arrow::array::{Array, Float64Array, StringArray, TimestampMillisecondArray};
use serde::Serialize;
use vigil_rules::RuleSet;

use crate::query::{History, SqlError};

/// Entropy weights of the columns of `rows` (each row one unit). Returns `None` when no column
/// varies (or there are fewer than two rows), i.e. the data cannot tell the columns apart.
pub fn entropy_weights(rows: &[Vec<f64>]) -> Option<Vec<f64>> {
    let m = rows.len();
    let n = rows.first()?.len();
    if m < 2 || n == 0 {
        return None;
    }
    let mut d = vec![0.0; n];
    for (j, dj) in d.iter_mut().enumerate() {
        let (lo, hi) = rows.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| (lo.min(r[j]), hi.max(r[j])));
        if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let x: Vec<f64> = rows.iter().map(|r| (r[j] - lo) / (hi - lo)).collect();
        let total: f64 = x.iter().sum();
        let e = -x.iter().filter(|&&v| v > 0.0).map(|&v| (v / total) * (v / total).ln()).sum::<f64>() / (m as f64).ln();
        *dj = (1.0 - e).max(0.0);
    }
    let sum: f64 = d.iter().sum();
    if sum <= 0.0 {
        return None;
    }
    Some(d.iter().map(|v| v / sum).collect())
}

/// Smallest weight written: the rule files require positive weights, so a child the data
/// cannot tell apart from a constant keeps this token weight instead of zero.
pub const MIN_WEIGHT: f64 = 1e-4;

/// Rounds weights to four decimals, at least [`MIN_WEIGHT`], so that they still sum to exactly 1
/// (the rounding error goes to the largest weight).
pub fn round_weights(w: &[f64]) -> Vec<f64> {
    let mut r: Vec<f64> = w.iter().map(|v| ((v * 1e4).round() / 1e4).max(MIN_WEIGHT)).collect();
    let err = 1.0 - r.iter().sum::<f64>();
    if let Some(i) = (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])) {
        r[i] = ((r[i] + err) * 1e4).round() / 1e4;
    }
    r
}

/// Weights of one node's children.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeWeights {
    /// `composite`, a domain id or a category id.
    pub node: String,
    /// Region-windows where every child had a score.
    pub units: usize,
    /// Child id, current weight, calibrated weight.
    pub children: Vec<(String, f64, f64)>,
    /// True when the data could not tell the children apart and equal weights were kept.
    pub equal_fallback: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    pub method: &'static str,
    pub rules_version: String,
    pub region_level: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Domains in the composite, categories in each domain, indicators in each category.
    pub domains: NodeWeights,
    pub categories: Vec<NodeWeights>,
    pub indicators: Vec<NodeWeights>,
}

pub(crate) fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Scores by (region, window end), then by child id.
type Matrix = BTreeMap<(String, i64), BTreeMap<String, f64>>;

/// Reads `kind` scores (`domain`, `category`, `indicator`) as a map from (region, window end)
/// to child id to score.
fn matrix(h: &History, kind: &str, level: &str, from: Option<&str>, to: Option<&str>) -> Result<Matrix, SqlError> {
    let mut sql = format!(
        "SELECT region, window_end, name, score FROM score_parts WHERE kind = {} AND region_level = {} AND score IS NOT NULL",
        sql_str(kind),
        sql_str(level)
    );
    if let Some(f) = from {
        let _ = write!(sql, " AND window_end >= CAST({} AS TIMESTAMP)", sql_str(f));
    }
    if let Some(t) = to {
        let _ = write!(sql, " AND window_end < CAST({} AS TIMESTAMP)", sql_str(t));
    }
    let mut out = Matrix::new();
    for b in h.query(&sql)? {
        // DataFusion hands strings back as views; plain strings are simpler to read here.
        let utf8 = |i: usize| arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8);
        let (region, name) = (utf8(0)?, utf8(2)?);
        let region = region.as_any().downcast_ref::<StringArray>();
        let end = b.column(1).as_any().downcast_ref::<TimestampMillisecondArray>();
        let name = name.as_any().downcast_ref::<StringArray>();
        let score = b.column(3).as_any().downcast_ref::<Float64Array>();
        let (Some(region), Some(end), Some(name), Some(score)) = (region, end, name, score) else {
            return Err(SqlError::Query(datafusion::error::DataFusionError::Plan(
                "score_parts does not have the expected column types".into(),
            )));
        };
        for i in 0..b.num_rows() {
            if score.is_null(i) {
                continue;
            }
            out.entry((region.value(i).to_string(), end.value(i)))
                .or_default()
                .insert(name.value(i).to_string(), score.value(i));
        }
    }
    Ok(out)
}

fn node(name: &str, children: &[(String, f64)], data: &BTreeMap<(String, i64), BTreeMap<String, f64>>) -> NodeWeights {
    let rows: Vec<Vec<f64>> = data
        .values()
        .filter_map(|m| children.iter().map(|(c, _)| m.get(c).copied()).collect::<Option<Vec<f64>>>())
        .collect();
    let (w, equal_fallback) = match entropy_weights(&rows) {
        Some(w) => (round_weights(&w), false),
        None => (round_weights(&vec![1.0 / children.len().max(1) as f64; children.len()]), true),
    };
    NodeWeights {
        node: name.to_string(),
        units: rows.len(),
        children: children.iter().zip(w).map(|((c, old), w)| (c.clone(), *old, w)).collect(),
        equal_fallback,
    }
}

/// Computes entropy weights for every node of `rules` from the archived scores of regions of
/// `level` with window ends in `[from, to)`. Indicator scores are archived only by runs with
/// `--scores full`; without them the indicator weights fall back to equal and say so.
pub fn calibrate(
    h: &History,
    rules: &RuleSet,
    level: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Calibration, SqlError> {
    if !h.tables().iter().any(|t| t.name == "score_parts") {
        return Err(SqlError::MissingTable(
            "score_parts",
            "write scores into it with `vigil replay --scores full --archive DIR` (or run the engine with an archive)",
        ));
    }
    let domains = matrix(h, "domain", level, from, to)?;
    let categories = matrix(h, "category", level, from, to)?;
    let indicators = matrix(h, "indicator", level, from, to)?;
    let dom: Vec<(String, f64)> = rules.domains.iter().map(|d| (d.id.clone(), d.weight)).collect();
    let cats = rules
        .domains
        .iter()
        .map(|d| {
            let ch: Vec<(String, f64)> =
                d.categories.iter().map(|&c| (rules.categories[c].id.clone(), rules.categories[c].weight)).collect();
            node(&d.id, &ch, &categories)
        })
        .collect();
    let inds = rules
        .categories
        .iter()
        .map(|c| {
            let ch: Vec<(String, f64)> =
                c.indicators.iter().map(|&i| (rules.indicators[i].id.clone(), rules.indicators[i].weight)).collect();
            node(&c.id, &ch, &indicators)
        })
        .collect();
    Ok(Calibration {
        method: "entropy",
        rules_version: rules.version.clone(),
        region_level: level.to_string(),
        from: from.map(str::to_string),
        to: to.map(str::to_string),
        domains: node("composite", &dom, &domains),
        categories: cats,
        indicators: inds,
    })
}

impl Calibration {
    /// The weights as TOML in the rule files' vocabulary: which file and table each belongs to,
    /// with the current weight beside it.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Entropy weights (docs/methodology.md §8.4) calibrated on {}-level scores, window ends in [{}, {}),\n\
             # rules {}. Each value replaces the `weight` of the named [[domain]] / [[category]] in\n\
             # index.toml or [[indicator]] in indicators/*.toml; `vigil weights --apply DIR` writes a copy.",
            self.region_level,
            self.from.as_deref().unwrap_or("start"),
            self.to.as_deref().unwrap_or("end"),
            self.rules_version
        );
        let section = |s: &mut String, title: &str, n: &NodeWeights| {
            let _ = writeln!(
                s,
                "\n# {title} {}: {} region-windows{}",
                n.node,
                n.units,
                if n.equal_fallback { " (no variation: equal weights kept)" } else { "" }
            );
            for (c, old, new) in &n.children {
                let _ = writeln!(s, "{c} = {new:.4}    # was {old:.4}");
            }
        };
        let _ = writeln!(s, "\n[domain_weights]");
        section(&mut s, "composite", &self.domains);
        let _ = writeln!(s, "\n[category_weights]");
        for n in &self.categories {
            section(&mut s, "domain", n);
        }
        let _ = writeln!(s, "\n[indicator_weights]");
        for n in &self.indicators {
            section(&mut s, "category", n);
        }
        s
    }

    /// Calibrated weights by (table kind, id): ids are unique only within a kind.
    fn lookup(&self) -> BTreeMap<(&'static str, &str), f64> {
        let mut m = BTreeMap::new();
        let kinds = std::iter::once(("domain", &self.domains))
            .chain(self.categories.iter().map(|n| ("category", n)))
            .chain(self.indicators.iter().map(|n| ("indicator", n)));
        for (kind, n) in kinds {
            for (c, _, w) in &n.children {
                m.insert((kind, c.as_str()), *w);
            }
        }
        m
    }
}

/// Copies the rule set in `rules_dir` to `out_dir` with every `weight = ...` line of a
/// `[[domain]]`, `[[category]]` or `[[indicator]]` table replaced by its calibrated value. Only
/// those lines change, so comments and layout survive.
pub fn apply(cal: &Calibration, rules_dir: &Path, out_dir: &Path) -> io::Result<usize> {
    // Never over the rule set itself (a file copied onto itself is truncated), inside it, or
    // over files already there. Paths are compared once resolved (`..`, symbolic links).
    let src = fs::canonicalize(rules_dir)?;
    let existed = out_dir.exists();
    if existed && fs::read_dir(out_dir)?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} must be a new or empty directory", out_dir.display()),
        ));
    }
    fs::create_dir_all(out_dir)?;
    if fs::canonicalize(out_dir)?.starts_with(&src) {
        if !existed {
            let _ = fs::remove_dir(out_dir);
        }
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} must be outside the rule set {}", out_dir.display(), rules_dir.display()),
        ));
    }
    let weights = cal.lookup();
    copy_dir(rules_dir, out_dir)?;
    let mut changed = 0;
    let mut files = vec![out_dir.join("index.toml")];
    if let Ok(rd) = fs::read_dir(out_dir.join("indicators")) {
        let mut more: Vec<_> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else { continue };
        let mut out = String::with_capacity(text.len());
        let mut id: Option<String> = None;
        let mut kind: Option<&'static str> = None;
        for line in text.split_inclusive('\n') {
            let t = line.trim_start();
            if t.starts_with('[') {
                // `[[indicator.test]]` and other sub-tables end the weighted table.
                kind = ["domain", "category", "indicator"].into_iter().find(|k| t.starts_with(&format!("[[{k}]]")));
                id = None;
            }
            let in_table = kind.is_some();
            if in_table && let Some(v) = t.strip_prefix("id").map(str::trim_start).and_then(|r| r.strip_prefix('=')) {
                id = v.trim().split('"').nth(1).map(str::to_string);
            }
            if in_table
                && t.strip_prefix("weight").is_some_and(|r| r.trim_start().starts_with('='))
                && let (Some(k), Some(i)) = (kind, id.as_deref())
                && let Some(w) = weights.get(&(k, i))
            {
                let indent = &line[..line.len() - t.len()];
                let comment = t.find('#').map(|i| format!("  {}", t[i..].trim_end())).unwrap_or_default();
                let _ = writeln!(out, "{indent}weight = {w:.4}{comment}");
                changed += 1;
                continue;
            }
            out.push_str(line);
        }
        fs::write(&f, out)?;
    }
    Ok(changed)
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entropy weighting (docs/methodology.md §8.4): a column that varies more gets more weight, a constant
    /// column none, and the weights sum to 1.
    #[test]
    fn entropy_rewards_dispersion() {
        let rows = vec![vec![10.0, 50.0, 3.0], vec![90.0, 52.0, 3.0], vec![20.0, 48.0, 3.0], vec![85.0, 51.0, 3.0]];
        let w = entropy_weights(&rows).unwrap();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(w[2], 0.0);
        assert!(w[0] > 0.0 && w[1] > 0.0);
        // Entropy is scale-free after min-max: scaling a column changes nothing.
        let scaled: Vec<Vec<f64>> = rows.iter().map(|r| vec![r[0] * 7.0, r[1], r[2]]).collect();
        let w2 = entropy_weights(&scaled).unwrap();
        for (a, b) in w.iter().zip(&w2) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn entropy_cannot_tell_constant_columns_apart() {
        assert_eq!(entropy_weights(&[vec![1.0, 2.0], vec![1.0, 2.0]]), None);
        assert_eq!(entropy_weights(&[vec![1.0, 2.0]]), None);
    }

    #[test]
    fn rounded_weights_sum_to_one() {
        let r = round_weights(&[1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
        assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{r:?}");
        let r = round_weights(&[1.0 / 7.0; 7]);
        assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{r:?}");
        let r = round_weights(&[0.0, 0.25, 0.75]);
        assert_eq!(r[0], MIN_WEIGHT, "never zero");
        assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{r:?}");
    }
}
