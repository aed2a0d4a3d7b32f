//! Records read back out of the archive: the composite index of score records and whole alert
//! records, for the bulletin (`vigil report`). Archives written before the alert table had its
//! `evidence`, `response`, `deadline` and `floor` columns read with those empty.

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::DataType;
use vigil_model::Ts;
use vigil_model::record::{AlertEvent, AlertRecord};
use vigil_model::time::format_utc;

use crate::query::{History, SqlError};
use crate::weights::sql_str;

fn bad(what: &str) -> SqlError {
    SqlError::Query(datafusion::error::DataFusionError::Plan(format!("{what} does not have the expected column types")))
}

/// Column `i` as plain strings (DataFusion hands strings back as views).
fn strings(b: &RecordBatch, i: usize) -> Result<StringArray, SqlError> {
    let c = arrow::compute::cast(b.column(i), &DataType::Utf8)?;
    c.as_any().downcast_ref::<StringArray>().cloned().ok_or_else(|| bad("alerts"))
}

fn opt(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

/// The composite index of every score record of regions at `level`: (region, window end,
/// composite), in no particular order.
pub fn composite(h: &History, level: &str) -> Result<Vec<(String, Ts, f64)>, SqlError> {
    if !h.tables().iter().any(|t| t.name == "scores") {
        return Err(SqlError::MissingTable("scores", "write score records into it with `vigil replay --archive DIR`"));
    }
    let sql = format!(
        "SELECT region, window_end, composite FROM scores WHERE region_level = {} AND composite IS NOT NULL",
        sql_str(level)
    );
    let mut out = Vec::new();
    for b in h.query(&sql)? {
        let region = strings(&b, 0)?;
        let end = b.column(1).as_any().downcast_ref::<TimestampMillisecondArray>().ok_or_else(|| bad("scores"))?;
        let v = b.column(2).as_any().downcast_ref::<Float64Array>().ok_or_else(|| bad("scores"))?;
        for i in 0..b.num_rows() {
            if !v.is_null(i) {
                out.push((region.value(i).to_string(), end.value(i), v.value(i)));
            }
        }
    }
    Ok(out)
}

/// Every alert record of the archive, in no particular order.
pub fn alerts(h: &History) -> Result<Vec<AlertRecord>, SqlError> {
    let Some(table) = h.tables().iter().find(|t| t.name == "alerts") else { return Ok(Vec::new()) };
    let has = |c: &str| table.columns.iter().any(|(n, _)| n == c);
    let optional = |c: &str| if has(c) { c.to_string() } else { format!("CAST(NULL AS VARCHAR) AS {c}") };
    let sql = format!(
        "SELECT alert_id, seq, event, level, previous_level, region, region_name, region_level, scope, score, \
         window_end, rules_version, reason, domains, top_contributors, {}, {}, {}, {} FROM alerts",
        optional("evidence"),
        optional("response"),
        optional("deadline"),
        optional("floor")
    );
    let mut out = Vec::new();
    for b in h.query(&sql)? {
        let s: Vec<StringArray> = [0, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16, 17, 18]
            .iter()
            .map(|&i| strings(&b, i))
            .collect::<Result<_, _>>()?;
        let [
            id,
            event,
            level,
            previous,
            region,
            name,
            rlevel,
            scope,
            version,
            reason,
            domains,
            top,
            evidence,
            response,
            deadline,
            floor,
        ] = &s[..]
        else {
            return Err(bad("alerts"));
        };
        let seq = b.column(1).as_any().downcast_ref::<Int64Array>().ok_or_else(|| bad("alerts"))?;
        let score = b.column(9).as_any().downcast_ref::<Float64Array>().ok_or_else(|| bad("alerts"))?;
        let end = b.column(10).as_any().downcast_ref::<TimestampMillisecondArray>().ok_or_else(|| bad("alerts"))?;
        for i in 0..b.num_rows() {
            let event = match event.value(i) {
                "opened" => AlertEvent::Opened,
                "escalated" => AlertEvent::Escalated,
                "deescalated" => AlertEvent::Deescalated,
                _ => AlertEvent::Resolved,
            };
            out.push(AlertRecord {
                alert_id: id.value(i).to_string(),
                seq: seq.value(i).clamp(0, u32::MAX as i64) as u32,
                event,
                level: opt(level, i).and_then(|l| vigil_model::Level::parse(&l)),
                previous_level: opt(previous, i).and_then(|l| vigil_model::Level::parse(&l)),
                region: region.value(i).to_string(),
                region_name: name.value(i).to_string(),
                region_level: rlevel.value(i).to_string(),
                scope: scope.value(i).to_string(),
                score: (!score.is_null(i)).then(|| score.value(i)),
                window_start: String::new(),
                window_end: format_utc(end.value(i)),
                date: None,
                rules_version: version.value(i).to_string(),
                reason: reason.value(i).to_string(),
                domains: serde_json::from_str(domains.value(i)).unwrap_or_default(),
                top_contributors: serde_json::from_str(top.value(i)).unwrap_or_default(),
                top_regions: Vec::new(),
                evidence: opt(evidence, i).and_then(|e| serde_json::from_str(&e).ok()),
                response: opt(response, i),
                deadline: opt(deadline, i),
                floor: opt(floor, i).and_then(|f| serde_json::from_str(&f).ok()),
            });
        }
    }
    Ok(out)
}
