//! Shared by the command-line tests that check an engine's Parquet archive with `vigil sql`.

use std::path::Path;
use std::process::Command;

/// Counts of an archive's events, alert records, distinct alert keys, score records and
/// distinct score keys: a run that archived everything once has equal pairs.
pub const ARCHIVE_COUNTS: &str = "SELECT (SELECT count(*) FROM events) AS events, \
    (SELECT count(*) FROM alerts) AS alerts, \
    (SELECT count(DISTINCT alert_id || '#' || CAST(seq AS VARCHAR)) FROM alerts) AS distinct_alerts, \
    (SELECT count(*) FROM scores) AS scores, \
    (SELECT count(DISTINCT region || '@' || CAST(window_end AS VARCHAR)) FROM scores) AS distinct_scores";

/// The rows `vigil sql --format csv` prints for `query` over `archive`, without the header.
pub fn archive_sql(archive: &Path, query: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["sql", "--format", "csv", "--archive"])
        .arg(archive)
        .arg(query)
        .output()
        .unwrap();
    assert!(out.status.success(), "vigil sql {query}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().skip(1).map(str::to_string).collect()
}
