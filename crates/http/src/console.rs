//! The analysts' console: what it serves (the page and its script, built into the binary) and
//! what it remembers. The engine answers "now" (open episodes, a region's last evaluation);
//! the console keeps the recent past beside it, fed from the engine's score tap and alert
//! hook: per scored region a bounded ring of its last evaluations (composite, domains,
//! categories, and indicators where score records carry them), and a bounded feed of the
//! latest alert lifecycle records. Regions and episodes only: nothing here names a person.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use vigil_model::Level;
use vigil_model::record::{AlertRecord, ScoreRecord};
use vigil_rules::{Name, RuleSet};

/// Alert lifecycle records kept for the feed.
pub const FEED_CAPACITY: usize = 2000;
/// At most this many evaluations are kept per region (a week of hours).
pub const MAX_POINTS: usize = 168;
/// The history's memory budget; with many regions or full indicator detail each region keeps
/// fewer points (at least [`MIN_POINTS`]).
pub const HISTORY_BUDGET_BYTES: usize = 64 << 20;
pub const MIN_POINTS: usize = 8;

/// The page, its script and its style, as files of this crate.
pub const INDEX_HTML: &str = include_str!("../console/index.html");
pub const APP_JS: &str = include_str!("../console/app.js");
pub const STYLE_CSS: &str = include_str!("../console/style.css");

/// The console's memory. Cheap to clone; the engine thread writes, the HTTP thread reads.
#[derive(Clone, Default)]
pub struct Console {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// The rule set's names and tree, as JSON (rebuilt on reload).
    catalog: Arc<String>,
    /// Series ids (`d:police`, `c:theft`, `i:jq_count_24h`) to their index in `series`.
    series_index: HashMap<String, u32>,
    series: Vec<String>,
    points_per_region: usize,
    history: HashMap<String, VecDeque<Point>>,
    feed: VecDeque<(u64, AlertRecord)>,
    fed: u64,
    /// Region code -> parent code, and category -> domain: what the feed's filters follow.
    parents: HashMap<String, String>,
    category_domain: HashMap<String, String>,
}

/// One evaluation of one region. `f32::NAN` stands for "no value" (grey).
struct Point {
    window_end: Box<str>,
    composite: f32,
    grade: Option<Level>,
    /// (series, value) for domains and categories.
    scores: Box<[(u32, f32)]>,
    /// (series, value, expected, score) for indicators, where the record carries them.
    indicators: Box<[(u32, f32, f32, f32)]>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic elsewhere while holding the lock leaves plain data behind: keep serving it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn f(v: Option<f64>) -> f32 {
    v.map_or(f32::NAN, |v| v as f32)
}

fn opt(v: f32) -> Option<f32> {
    (!v.is_nan()).then_some(v)
}

impl Console {
    pub fn new(rules: &RuleSet) -> Console {
        let c = Console::default();
        c.set_rules(rules);
        c
    }

    /// New rules: the catalog follows them; history of series the rules no longer have stays
    /// until it ages out.
    pub fn set_rules(&self, rules: &RuleSet) {
        let catalog = Arc::new(serde_json::to_string(&Catalog::of(rules)).unwrap_or_else(|_| "{}".into()));
        let scored = rules.regions.levels.iter().filter(|&&l| rules.evaluate_levels.get(l as usize) == Some(&true));
        let regions = scored.count().max(1);
        // Bytes per point: the scores of domains and categories, and room for indicators.
        let per_point = 64 + 8 * (rules.domains.len() + rules.categories.len()) + 16 * rules.indicators.len();
        let points = (HISTORY_BUDGET_BYTES / (regions * per_point)).clamp(MIN_POINTS, MAX_POINTS);
        let mut inner = lock(&self.inner);
        inner.catalog = catalog;
        inner.points_per_region = points;
        let r = &rules.regions;
        inner.parents =
            (0..r.len()).filter_map(|i| Some((r.codes[i].clone(), r.codes[r.parents[i]? as usize].clone()))).collect();
        inner.category_domain =
            rules.categories.iter().map(|c| (c.id.clone(), rules.domains[c.domain].id.clone())).collect();
        for ring in inner.history.values_mut() {
            while ring.len() > points {
                ring.pop_front();
            }
        }
    }

    /// The rule set's names and tree (`/api/catalog`).
    pub fn catalog(&self) -> Arc<String> {
        Arc::clone(&lock(&self.inner).catalog)
    }

    /// Remembers one evaluation (the engine's score tap).
    pub fn score(&self, r: &ScoreRecord) {
        let mut inner = lock(&self.inner);
        let inner = &mut *inner;
        // Series ids are interned once; a known one is looked up without allocating.
        let mut key = String::new();
        let mut id = |kind: &str, name: &str| -> u32 {
            key.clear();
            key.push_str(kind);
            key.push_str(name);
            if let Some(&i) = inner.series_index.get(key.as_str()) {
                return i;
            }
            let i = inner.series.len() as u32;
            inner.series.push(key.clone());
            inner.series_index.insert(key.clone(), i);
            i
        };
        let mut scores: Vec<(u32, f32)> = Vec::with_capacity(r.domains.len() + r.categories.len());
        for (k, v) in &r.domains {
            scores.push((id("d:", k), f(*v)));
        }
        for (k, v) in &r.categories {
            scores.push((id("c:", k), f(*v)));
        }
        let mut indicators: Vec<(u32, f32, f32, f32)> = Vec::with_capacity(r.indicators.len());
        for s in &r.indicators {
            indicators.push((id("i:", &s.indicator), f(s.value), f(s.expected), f(s.score)));
        }
        let point = Point {
            window_end: r.window_end.as_str().into(),
            composite: f(r.composite),
            grade: r.grade,
            scores: scores.into(),
            indicators: indicators.into(),
        };
        let cap = inner.points_per_region.max(MIN_POINTS);
        let ring = inner.history.entry(r.region.clone()).or_default();
        // A replayed or re-evaluated window replaces its earlier point.
        while ring.back().is_some_and(|p| *p.window_end >= *point.window_end) {
            ring.pop_back();
        }
        ring.push_back(point);
        while ring.len() > cap {
            ring.pop_front();
        }
    }

    /// Remembers one alert lifecycle record (the engine's alert hook).
    pub fn alert(&self, a: &AlertRecord) {
        let mut inner = lock(&self.inner);
        inner.fed += 1;
        let n = inner.fed;
        inner.feed.push_back((n, a.clone()));
        while inner.feed.len() > FEED_CAPACITY {
            inner.feed.pop_front();
        }
    }

    /// Every scored region's latest evaluation (`/api/overview`), in region order.
    pub fn overview(&self) -> Vec<Latest> {
        let inner = lock(&self.inner);
        let mut out: Vec<Latest> = inner
            .history
            .iter()
            .filter_map(|(region, ring)| {
                let p = ring.back()?;
                Some(Latest {
                    region: region.clone(),
                    window_end: p.window_end.to_string(),
                    composite: opt(p.composite),
                    grade: p.grade,
                })
            })
            .collect();
        out.sort_by(|a, b| a.region.cmp(&b.region));
        out
    }

    /// One region's recent evaluations as columns (`/api/regions/{code}/history`).
    pub fn history(&self, region: &str) -> Option<History> {
        let inner = lock(&self.inner);
        let ring = inner.history.get(region)?;
        let n = ring.len();
        let mut h = History {
            region: region.to_string(),
            window_end: ring.iter().map(|p| p.window_end.to_string()).collect(),
            composite: ring.iter().map(|p| opt(p.composite)).collect(),
            grade: ring.iter().map(|p| p.grade).collect(),
            ..History::default()
        };
        for (i, p) in ring.iter().enumerate() {
            for &(s, v) in p.scores.iter() {
                let key = &inner.series[s as usize];
                let (map, id) = match key.split_at(2) {
                    ("d:", id) => (&mut h.domains, id),
                    (_, id) => (&mut h.categories, id),
                };
                map.entry(id.to_string()).or_insert_with(|| vec![None; n])[i] = opt(v);
            }
            for &(s, v, e, sc) in p.indicators.iter() {
                let id = &inner.series[s as usize][2..];
                let col = h.indicators.entry(id.to_string()).or_insert_with(|| IndicatorHistory {
                    value: vec![None; n],
                    expected: vec![None; n],
                    score: vec![None; n],
                });
                col.value[i] = opt(v);
                col.expected[i] = opt(e);
                col.score[i] = opt(sc);
            }
        }
        Some(h)
    }

    /// The latest alert records that match `q`, newest first.
    pub fn feed(&self, q: &FeedQuery) -> Feed {
        let inner = lock(&self.inner);
        let in_region = |a: &AlertRecord, code: &str| {
            let mut r = Some(a.region.as_str());
            // Bounded by the tree's depth; the guard only stops a malformed cycle.
            for _ in 0..64 {
                match r {
                    Some(x) if x == code => return true,
                    Some(x) => r = inner.parents.get(x).map(String::as_str),
                    None => return false,
                }
            }
            false
        };
        let domain_of = |a: &AlertRecord| -> Option<String> {
            match &a.evidence {
                Some(e) => inner.category_domain.get(&e.category).cloned(),
                None => Some(a.scope.clone()),
            }
        };
        let keep = |a: &AlertRecord| {
            q.min_level.is_none_or(|m| a.level.or(a.previous_level).is_some_and(|l| l >= m))
                && q.domain.as_deref().is_none_or(|d| domain_of(a).as_deref() == Some(d))
                && q.region.as_deref().is_none_or(|c| in_region(a, c))
        };
        let records = inner
            .feed
            .iter()
            .rev()
            .take_while(|(n, _)| *n > q.after)
            .filter(|(_, a)| keep(a))
            .take(q.limit)
            .map(|(n, a)| FeedItem { n: *n, record: a.clone() })
            .collect();
        Feed { last: inner.fed, records }
    }
}

/// What `/api/feed` asks for.
#[derive(Debug, Default)]
pub struct FeedQuery {
    /// Only records after this feed number (0: from the oldest kept).
    pub after: u64,
    pub limit: usize,
    /// The lowest level listed (a resolved record counts at the level it ended from).
    pub min_level: Option<Level>,
    /// A domain id: domain alerts of it, and evidence alarms on its categories.
    pub domain: Option<String>,
    /// A region code: its alerts and those of every region below it.
    pub region: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Latest {
    pub region: String,
    pub window_end: String,
    pub composite: Option<f32>,
    pub grade: Option<Level>,
}

#[derive(Debug, Default, Serialize)]
pub struct History {
    pub region: String,
    pub window_end: Vec<String>,
    pub composite: Vec<Option<f32>>,
    pub grade: Vec<Option<Level>>,
    pub domains: std::collections::BTreeMap<String, Vec<Option<f32>>>,
    pub categories: std::collections::BTreeMap<String, Vec<Option<f32>>>,
    pub indicators: std::collections::BTreeMap<String, IndicatorHistory>,
}

#[derive(Debug, Serialize)]
pub struct IndicatorHistory {
    pub value: Vec<Option<f32>>,
    pub expected: Vec<Option<f32>>,
    pub score: Vec<Option<f32>>,
}

#[derive(Debug, Serialize)]
pub struct Feed {
    /// The newest feed number: ask with `after` set to it for what comes next.
    pub last: u64,
    pub records: Vec<FeedItem>,
}

#[derive(Debug, Serialize)]
pub struct FeedItem {
    pub n: u64,
    #[serde(flatten)]
    pub record: AlertRecord,
}

/// The names and shape of the rule set, for the page to label what the API returns.
#[derive(Serialize)]
struct Catalog<'a> {
    name: &'a str,
    version: &'a str,
    levels: &'a [String],
    alerted_levels: Vec<&'a str>,
    regions: Vec<RegionEntry<'a>>,
    domains: Vec<Named<'a>>,
    categories: Vec<Named<'a>>,
    indicators: Vec<Named<'a>>,
    grades: Vec<GradeEntry<'a>>,
}

#[derive(Serialize)]
struct RegionEntry<'a> {
    code: &'a str,
    name: &'a str,
    level: &'a str,
    parent: Option<&'a str>,
    scored: bool,
}

#[derive(Serialize)]
struct Named<'a> {
    id: &'a str,
    name: &'a Name,
    /// The domain of a category or indicator, the category of an indicator.
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
}

#[derive(Serialize)]
struct GradeEntry<'a> {
    level: Level,
    label: &'a Name,
    colour: &'a str,
    response: &'a str,
}

impl<'a> Catalog<'a> {
    fn of(rules: &'a RuleSet) -> Catalog<'a> {
        let r = &rules.regions;
        let named = |id: &'a str, name: &'a Name| Named { id, name, domain: None, category: None };
        Catalog {
            name: &rules.name,
            version: &rules.version,
            levels: &r.level_names,
            alerted_levels: r
                .level_names
                .iter()
                .enumerate()
                .filter(|(i, _)| rules.alert_levels.get(*i) == Some(&true))
                .map(|(_, l)| l.as_str())
                .collect(),
            regions: (0..r.len())
                .map(|i| RegionEntry {
                    code: &r.codes[i],
                    name: &r.names[i],
                    level: &r.level_names[r.levels[i] as usize],
                    parent: r.parents[i].map(|p| r.codes[p as usize].as_str()),
                    scored: rules.evaluate_levels.get(r.levels[i] as usize) == Some(&true),
                })
                .collect(),
            domains: rules.domains.iter().map(|d| named(&d.id, &d.name)).collect(),
            categories: rules
                .categories
                .iter()
                .map(|c| Named { domain: Some(&rules.domains[c.domain].id), ..named(&c.id, &c.name) })
                .collect(),
            indicators: rules
                .indicators
                .iter()
                .map(|i| Named {
                    domain: Some(&rules.domains[i.domain].id),
                    category: Some(&rules.categories[i.category].id),
                    ..named(&i.id, &i.name)
                })
                .collect(),
            grades: rules
                .grading
                .levels
                .iter()
                .map(|l| GradeEntry { level: l.level, label: &l.label, colour: &l.colour, response: &l.response })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RuleSet {
        vigil_rules::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")).unwrap()
    }

    fn score(region: &str, hour: u32, composite: f64) -> ScoreRecord {
        serde_json::from_value(serde_json::json!({
            "region": region, "level": "district", "window_start": "", "rules_version": "v",
            "window_end": format!("2026-03-{:02}T{:02}:00:00Z", 1 + hour / 24, hour % 24),
            "composite": composite, "grade": null,
            "domains": {"police": composite / 2.0, "petition": null},
            "categories": {"police_overall": 10.0},
            "indicators": [{"indicator": "jq_count_24h", "value": 12.0, "expected": 9.5, "score": 40.0}]
        }))
        .unwrap()
    }

    fn alert(region: &str, level: Option<&str>, previous: Option<&str>, scope: &str, category: &str) -> AlertRecord {
        let evidence = (scope == "evidence").then(|| {
            serde_json::json!({"indicator": "x", "indicator_name": "x", "category": category, "windows": 1,
                "window": "1d", "since": "", "observed": 9.0, "expected": 2.0, "p_value": 0.001,
                "statistic": 3.0, "recurrence_days": 10.0, "summary": "s"})
        });
        serde_json::from_value(serde_json::json!({
            "alert_id": format!("{region}:{scope}"), "seq": 0,
            "event": if level.is_some() { "opened" } else { "resolved" },
            "level": level, "previous_level": previous, "region": region, "region_name": "r",
            "region_level": "street", "scope": scope, "score": 1.0, "window_end": "2026-03-01T00:00:00Z",
            "rules_version": "v", "reason": "score", "domains": {}, "top_contributors": [],
            "evidence": evidence
        }))
        .unwrap()
    }

    #[test]
    fn history_keeps_the_latest_points_in_order_and_replaces_a_re_evaluated_window() {
        let c = Console::new(&rules());
        let cap = lock(&c.inner).points_per_region;
        assert!((MIN_POINTS..=MAX_POINTS).contains(&cap));
        for h in 0..cap as u32 + 10 {
            c.score(&score("990101", h, h as f64));
        }
        // The last window again, with another value (a replay after a restart): replaced.
        c.score(&score("990101", cap as u32 + 9, -1.0));
        let h = c.history("990101").unwrap();
        assert_eq!(h.window_end.len(), cap);
        assert!(h.window_end.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(h.composite[0], Some(10.0), "the oldest points aged out");
        assert_eq!(*h.composite.last().unwrap(), Some(-1.0));
        assert_eq!(h.domains["police"][0], Some(5.0));
        assert_eq!(h.domains["petition"][0], None, "grey stays grey");
        assert_eq!(h.categories["police_overall"].len(), cap);
        assert_eq!(h.indicators["jq_count_24h"].expected[3], Some(9.5));
        assert!(c.history("990102").is_none());
        let o = c.overview();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].composite, Some(-1.0));
    }

    #[test]
    fn the_feed_filters_by_level_domain_and_subtree_and_pages_with_after() {
        let rules = rules();
        let c = Console::new(&rules);
        let street = "990101001";
        let category = &rules.categories.iter().find(|x| rules.domains[x.domain].id == "police").unwrap().id;
        c.alert(&alert(street, Some("blue"), None, "police", ""));
        c.alert(&alert(street, Some("orange"), None, "evidence", category));
        c.alert(&alert(street, None, Some("orange"), "evidence", category));
        c.alert(&alert("990102001", Some("red"), None, "petition", ""));
        let q = |f: FeedQuery| c.feed(&FeedQuery { limit: 100, ..f });
        let all = q(FeedQuery::default());
        assert_eq!(all.last, 4);
        assert_eq!(all.records.iter().map(|r| r.n).collect::<Vec<_>>(), [4, 3, 2, 1]);
        let ns = |f: Feed| f.records.iter().map(|r| r.n).collect::<Vec<_>>();
        // A resolved record counts at the level it ended from.
        assert_eq!(ns(q(FeedQuery { min_level: Some(Level::Orange), ..Default::default() })), [4, 3, 2]);
        // Evidence on a police category is police's.
        assert_eq!(ns(q(FeedQuery { domain: Some("police".into()), ..Default::default() })), [3, 2, 1]);
        // The district holds its street's records, not another district's.
        assert_eq!(ns(q(FeedQuery { region: Some("990101".into()), ..Default::default() })), [3, 2, 1]);
        assert_eq!(ns(q(FeedQuery { region: Some("990100".into()), ..Default::default() })), [4, 3, 2, 1]);
        assert_eq!(ns(q(FeedQuery { after: 2, ..Default::default() })), [4, 3]);
        assert_eq!(ns(q(FeedQuery { after: 4, ..Default::default() })), Vec::<u64>::new());
        for _ in 0..FEED_CAPACITY {
            c.alert(&alert(street, Some("blue"), None, "police", ""));
        }
        let full = c.feed(&FeedQuery { limit: usize::MAX, ..Default::default() });
        assert_eq!(full.records.len(), FEED_CAPACITY, "the feed is bounded");
        assert_eq!(full.last, 4 + FEED_CAPACITY as u64);
    }

    #[test]
    fn the_catalog_names_every_region_and_indicator_in_both_languages() {
        let rules = rules();
        let c: serde_json::Value = serde_json::from_str(&Console::new(&rules).catalog()).unwrap();
        assert_eq!(c["regions"].as_array().unwrap().len(), rules.regions.len());
        assert_eq!(c["indicators"].as_array().unwrap().len(), rules.indicators.len());
        assert!(
            c["indicators"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["name"]["zh"].is_string() && i["name"]["en"].is_string())
        );
        assert_eq!(c["regions"][0]["parent"], serde_json::Value::Null);
        assert_eq!(c["grades"].as_array().unwrap().len(), 4);
    }
}
