//! A small, valid rule set kept in memory: the shared fixture of the tests of this and the
//! downstream crates (compiler errors are tested as edits of it). Not used at run time.

use crate::RuleFiles;

pub const RULESET: &str = r#"
[ruleset]
name = "mini"
timezone = "+08:00"
evaluate_every = "1h"
levels = ["city", "district", "grid"]
alert_region_levels = ["city", "district"]
"#;

pub const SOURCES: &str = r#"
[[source]]
id = "police"
name = { zh = "警情", en = "Police" }
topic = "t.police"
allowed_delay = "5m"
allowed_lateness = "2h"

  [[source.attr]]
  name = "incident_type"
  type = "enum"
  required = true
  values = ["theft", "fight", "dispute", "other"]

  [[source.attr]]
  name = "priority"
  type = "int"
  min = 1
  max = 4

  [[source.attr]]
  name = "response_minutes"
  type = "float"
  min = 0
  max = 1440
  decimals = 1

  [[source.attr]]
  name = "urgent"
  type = "bool"
"#;

pub const REGIONS: &str = "code,parent,level,name,population
C,,city,City,30000
D1,C,district,East,20000
D2,C,district,West,10000
G1,D1,grid,ignored,1
";

pub const TAXONOMIES: &str = r#"
[taxonomy.crime]
name = { zh = "刑事", en = "Crime" }
values = ["theft", "fight"]
"#;

pub const INDEX: &str = r#"
[index]
method = "arithmetic"
min_available = 0.5

[[domain]]
id = "police"
name = { zh = "警情", en = "Police" }
weight = 1.0

[[category]]
id = "volume"
domain = "police"
name = { zh = "总量", en = "Volume" }
weight = 1.0

[[override]]
when = "any_domain"
at_least = "red"
then = "composite"
floor = "orange"
"#;

pub const GRADING: &str = r##"
[grading]
fast_path_margin = 8.0
indicator_bands = { blue = 41.0, yellow = 58.0, orange = 77.0, red = 93.0 }

[[level]]
id = "blue"
label = { zh = "蓝色预警", en = "Blue" }
colour = "#1f6feb"
rank = "IV"
enter = 30.0
clear = 25.0
for = 1
hold = 2

[[level]]
id = "yellow"
label = { zh = "黄色预警", en = "Yellow" }
colour = "#d4a72c"
rank = "III"
enter = 45.0
clear = 40.0
for = 1
hold = 2

[[level]]
id = "orange"
label = { zh = "橙色预警", en = "Orange" }
colour = "#e16f24"
rank = "II"
enter = 60.0
clear = 55.0
for = 2
hold = 2

[[level]]
id = "red"
label = { zh = "红色预警", en = "Red" }
colour = "#cf222e"
rank = "I"
enter = 75.0
clear = 70.0
for = 2
hold = 2
"##;

pub const INDICATORS: &str = r#"
[[indicator]]
id = "crime_count_24h"
name = { zh = "刑事警情", en = "Crime calls" }
category = "volume"
source = "police"
filter = "incident_type IN (crime)"
measure = "count"
window = "24h"
hop = "1h"
direction = "up"
min_support = 0
weight = 0.5
normalise = { method = "baseline_pvalue", baseline = "7d", guard = "0d", seasonality = "none", dist = "poisson" }

[[indicator]]
id = "slow_share_7d"
name = { zh = "慢响应占比", en = "Slow responses" }
category = "volume"
source = "police"
measure = "share(response_minutes > 15)"
window = "7d"
hop = "1d"
direction = "up"
min_support = 2
weight = 0.5
normalise = { method = "goalposts", low = 0.1, high = 0.5 }

  [[indicator.test]]
  events = "tests/slow.jsonl"
  region = "D1"
  at = "2026-03-08T00:00:00+08:00"
  expect = { value = 0.5, score_min = 99.0 }
"#;

pub const SLOW_FIXTURE: &str = r#"{"region":"G1","ts":"2026-03-02T10:00:00+08:00","attrs":{"incident_type":"theft","response_minutes":20}}
{"region":"G1","ts":"2026-03-03T10:00:00+08:00","attrs":{"incident_type":"fight","response_minutes":5.5}}
{"region":"G1","ts":"2026-03-04T10:00:00+08:00","attrs":{"incident_type":"other","response_minutes":15.1}}
{"region":"G1","ts":"2026-03-05T10:00:00+08:00","attrs":{"incident_type":"dispute","response_minutes":15}}
{"region":"D2","ts":"2026-03-05T11:00:00+08:00","attrs":{"incident_type":"dispute","response_minutes":99}}
"#;

/// The mini rule set's files, with `edit` applied to (path, text) pairs.
pub fn files_with(edits: &[(&str, &str)]) -> RuleFiles {
    let mut f = RuleFiles::default();
    for (k, v) in [
        ("ruleset.toml", RULESET),
        ("sources.toml", SOURCES),
        ("regions.csv", REGIONS),
        ("taxonomies.toml", TAXONOMIES),
        ("index.toml", INDEX),
        ("grading.toml", GRADING),
        ("indicators/police.toml", INDICATORS),
        ("tests/slow.jsonl", SLOW_FIXTURE),
    ] {
        f.files.insert(k.to_string(), v.to_string());
    }
    for (k, v) in edits {
        f.files.insert(k.to_string(), v.to_string());
    }
    f
}
