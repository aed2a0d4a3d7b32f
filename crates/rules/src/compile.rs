//! The rule compiler: rule files in, a validated [`RuleSet`] or every problem out.
//!
//! Parsing (TOML shape, via the raw structs) and compiling (meaning: references, windows,
//! weights, filters) both report into one [`Sink`], so that a rule author sees every mistake of
//! an edit at once, each as `file:line:col: message`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use vigil_model::time::{DAY, HOUR};
use vigil_model::{Duration, Level, RegionSpec, Zone};

use crate::diag::{Diagnostics, Sink, SourceText};
use crate::filter::{self, Pred, Taxonomies};
use crate::raw::*;
use crate::types::*;

/// Largest rule file accepted, so that a runaway file is refused rather than parsed.
pub const MAX_RULE_FILE_BYTES: usize = 8 * 1024 * 1024;
/// Most regions a registry may declare.
pub const MAX_REGIONS: usize = 200_000;
/// Most indicators a rule set may declare.
pub const MAX_INDICATORS: usize = 1_000;

/// The text of a rule set's files, by path relative to the rule set directory (with `/`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleFiles {
    pub files: BTreeMap<String, String>,
}

impl RuleFiles {
    /// Reads the rule files of `dir`: the top-level `.toml` and `.csv` files, `indicators/*.toml`
    /// and `tests/*.jsonl`.
    pub fn load_dir(dir: &Path) -> std::io::Result<RuleFiles> {
        let mut files = BTreeMap::new();
        for (sub, exts) in [("", &["toml", "csv"][..]), ("indicators", &["toml"][..]), ("tests", &["jsonl"][..])] {
            let d = if sub.is_empty() { dir.to_path_buf() } else { dir.join(sub) };
            if !d.is_dir() {
                if sub.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{} is not a directory", d.display()),
                    ));
                }
                continue;
            }
            for entry in std::fs::read_dir(&d)? {
                let path = entry?.path();
                let Some(ext) = path.extension().and_then(|e| e.to_str()) else { continue };
                if !exts.contains(&ext) || !path.is_file() {
                    continue;
                }
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                let rel = if sub.is_empty() { name } else { format!("{sub}/{name}") };
                let meta = std::fs::metadata(&path)?;
                if meta.len() as usize > MAX_RULE_FILE_BYTES {
                    files.insert(rel, String::from("\u{0}too large"));
                    continue;
                }
                files.insert(rel, std::fs::read_to_string(&path)?);
            }
        }
        Ok(RuleFiles { files })
    }

    /// A short, stable hash of every file's path and text.
    pub fn version(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, v) in &self.files {
            for b in k.bytes().chain([0u8]).chain(v.bytes()).chain([0u8]) {
                h ^= b as u64;
                h = h.wrapping_mul(0x100_0000_01b3);
            }
        }
        format!("{:012x}", h >> 16)
    }
}

/// Compiles a rule directory.
pub fn load(dir: &Path) -> Result<RuleSet, Diagnostics> {
    match RuleFiles::load_dir(dir) {
        Ok(files) => compile(&files),
        Err(e) => Err(Diagnostics(vec![crate::diag::Diagnostic {
            file: dir.display().to_string(),
            line: 1,
            col: 1,
            message: format!("cannot read rule directory: {e}"),
        }])),
    }
}

/// Compiles rule files into a validated rule set, or returns every problem found.
pub fn compile(files: &RuleFiles) -> Result<RuleSet, Diagnostics> {
    let mut sink = Sink::default();
    let rs = Compiler { files, sink: &mut sink }.run();
    let diags = sink.finish();
    match rs {
        Some(rs) if diags.is_empty() => Ok(rs),
        _ => Err(diags),
    }
}

struct Compiler<'a, 's> {
    files: &'a RuleFiles,
    sink: &'s mut Sink,
}

type Items<'i> = Vec<Spanned<DeValue<'i>>>;

fn span_of<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

fn is_snake_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Attribute names that would carry a personal identifier. Matched on `_`-separated tokens.
const IDENTITY_TOKENS: &[&str] = &[
    "name",
    "names",
    "phone",
    "mobile",
    "tel",
    "telephone",
    "idcard",
    "passport",
    "address",
    "email",
    "user",
    "username",
    "userid",
    "uid",
    "account",
    "handle",
    "device",
    "imei",
    "imsi",
    "mac",
    "ip",
    "person",
    "people",
    "citizen",
    "plate",
    "wechat",
    "qq",
    "openid",
    "surname",
    "birthday",
    "birthdate",
    "ssn",
    "sfz",
];

fn identity_like(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let tokens: Vec<&str> = lower.split('_').collect();
    tokens.iter().any(|t| IDENTITY_TOKENS.contains(t))
        || lower.contains("id_card")
        || lower.contains("id_number")
        || lower.contains("phone")
        || tokens.windows(2).any(|w| w[1] == "id" && w[0] != "case")
}

/// A plain name serves every language; a table with one language serves the other too, so
/// outputs always have something to show.
fn name_of(raw: RawName) -> Name {
    match raw {
        RawName::Plain(s) => Name { zh: s.clone(), en: s },
        RawName::Languages(l) => {
            let zh = l.zh.clone().or_else(|| l.en.clone()).unwrap_or_default();
            let en = l.en.or(l.zh).unwrap_or_default();
            Name { zh, en }
        }
    }
}

impl<'a, 's> Compiler<'a, 's> {
    fn text(&self, path: &str) -> Option<&'a str> {
        self.files.files.get(path).map(|s| s.as_str())
    }

    /// Parses one TOML file into its top-level entries, reporting unknown keys.
    fn parse_toml<'i>(
        &mut self,
        src: &SourceText<'i>,
        allowed: &[&str],
    ) -> Option<Vec<(String, Spanned<DeValue<'i>>)>> {
        if src.text.starts_with('\u{0}') {
            self.sink.at(src, 0..0, format!("file is larger than {MAX_RULE_FILE_BYTES} bytes"));
            return None;
        }
        let table: Spanned<DeTable<'i>> = match DeTable::parse(src.text) {
            Ok(t) => t,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.sink.at(src, span, format!("TOML syntax: {}", e.message().trim()));
                return None;
            }
        };
        let mut out = Vec::new();
        for (k, v) in table.into_inner() {
            let key: &str = k.get_ref().as_ref();
            if allowed.contains(&key) {
                out.push((key.to_string(), v));
            } else {
                self.sink.at(src, k.span(), format!("unknown table `{key}` (expected one of: {})", allowed.join(", ")));
            }
        }
        Some(out)
    }

    /// Deserialises one table. An unknown field would stop serde at the first problem; it is
    /// reported, removed, and the table read again, so that the author also sees the problems
    /// behind it.
    fn de<T: DeserializeOwned>(&mut self, src: &SourceText<'_>, v: Spanned<DeValue<'_>>, what: &str) -> Option<T> {
        let span = v.span();
        let mut v = v;
        for _ in 0..32 {
            match T::deserialize(ValueDeserializer::from(v.clone())) {
                Ok(t) => return Some(t),
                Err(e) => {
                    let at = e.span().unwrap_or(span.clone());
                    let message = e.message().trim().to_string();
                    self.sink.at(src, at, format!("in {what}: {message}"));
                    let unknown = message
                        .strip_prefix("unknown field `")
                        .and_then(|rest| rest.split('`').next())
                        .map(str::to_string);
                    let (Some(field), DeValue::Table(t)) = (unknown, v.get_mut()) else { return None };
                    let before = t.len();
                    let old = std::mem::replace(t, DeTable::new());
                    for (k, val) in old {
                        if k.get_ref().as_ref() != field.as_str() {
                            t.insert(k, val);
                        }
                    }
                    if t.len() == before {
                        return None;
                    }
                }
            }
        }
        None
    }

    fn items<'i>(&mut self, src: &SourceText<'_>, v: Spanned<DeValue<'i>>, key: &str) -> Items<'i> {
        let span = v.span();
        match v.into_inner() {
            DeValue::Array(a) => a.into_iter().collect(),
            _ => {
                self.sink.at(src, span, format!("`{key}` must be an array of tables, written [[{key}]]"));
                Vec::new()
            }
        }
    }

    fn duration(&mut self, src: &SourceText<'_>, s: &S<String>) -> Option<Duration> {
        match Duration::parse(s.get_ref()) {
            Ok(d) if d.0 > 0 => Some(d),
            Ok(_) => {
                self.sink.at(src, span_of(s), "duration must be positive");
                None
            }
            Err(e) => {
                self.sink.at(src, span_of(s), e);
                None
            }
        }
    }

    fn duration_or_zero(&mut self, src: &SourceText<'_>, s: &S<String>) -> Option<Duration> {
        match Duration::parse(s.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.sink.at(src, span_of(s), e);
                None
            }
        }
    }

    fn run(mut self) -> Option<RuleSet> {
        for required in ["ruleset.toml", "sources.toml", "regions.csv", "index.toml", "grading.toml"] {
            if self.text(required).is_none() {
                self.sink.push(crate::diag::Diagnostic {
                    file: required.to_string(),
                    line: 1,
                    col: 1,
                    message: "required rule file is missing".into(),
                });
            }
        }
        let ruleset = self.ruleset();
        let sources = self.sources();
        let level_names = ruleset.as_ref().map(|r| r.levels.clone());
        let regions = self.regions(level_names.as_deref());
        let taxonomies = self.taxonomies();
        let index = self.index();
        let grading = self.grading();
        let (categories, domains, index_method, min_available, overrides) = index?;
        let mut categories = categories;
        let timing = ruleset.as_ref().map(|r| (r.zone.clone(), r.every));
        let indicators = self.indicators(&sources, &regions, &taxonomies, &mut categories, &domains, timing);
        let RulesetHead {
            name,
            zone,
            every: evaluate_every,
            alert: alert_levels,
            evaluate: evaluate_levels,
            max_state_bytes,
            ..
        } = ruleset?;
        let grading = grading?;
        let indicators = indicators?;
        // The alarm scans the regions that alert (every alerting level is scored), so they are
        // the regions its Bonferroni bound counts; scored levels that do not alert add no tests.
        let scanned = (0..regions.len()).filter(|&r| alert_levels[regions.levels[r] as usize]).count();
        let alarm = self.alarm(&indicators, scanned, level_names.as_deref().unwrap_or(&[]), &alert_levels);
        let fixtures = self
            .files
            .files
            .iter()
            .filter(|(k, _)| k.starts_with("tests/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if self.sink.diags.is_empty() {
            Some(RuleSet {
                name,
                version: self.files.version(),
                zone,
                max_state_bytes,
                evaluate_every,
                alert_levels,
                evaluate_levels,
                sources,
                regions,
                indicators,
                categories,
                domains,
                index_method,
                min_available,
                overrides,
                grading,
                alarm,
                fixtures,
            })
        } else {
            None
        }
    }

    /// `alarm.toml`, when present: the scanned count indicators, scan and baseline lengths in
    /// their windows, and each level's threshold (calibrated, or the Bonferroni bound over
    /// `scanned` (alerting) regions × cuts when `thresholds` is absent).
    fn alarm(
        &mut self,
        indicators: &[Indicator],
        scanned: usize,
        region_levels: &[String],
        alert_levels: &[bool],
    ) -> Option<Alarm> {
        let file = "alarm.toml";
        let text = self.text(file)?;
        let src = SourceText::new(file, text);
        let entries = self.parse_toml(&src, &["alarm"])?;
        let Some((_, v)) = entries.into_iter().next() else {
            self.sink.at(&src, 0..0, "missing [alarm] table");
            return None;
        };
        let raw: crate::raw::RawAlarm = self.de(&src, v, "[alarm]")?;
        let scan = self.duration(&src, &raw.scan);
        let baseline = self.duration(&src, &raw.baseline);
        let usable = |i: &Indicator| i.measure == Measure::Count && i.compare.is_none() && i.lag.0 == 0;
        let chosen: Vec<usize> = match &raw.indicators {
            None => indicators.iter().enumerate().filter(|(_, i)| usable(i)).map(|(k, _)| k).collect(),
            Some(list) => {
                let mut v = Vec::new();
                for id in list.get_ref() {
                    match indicators.iter().position(|i| &i.id == id.get_ref()) {
                        Some(k) if usable(&indicators[k]) => v.push(k),
                        Some(_) => self.sink.at(
                            &src,
                            span_of(id),
                            format!("indicator `{}` cannot be scanned: only `count` indicators without `compare` or `lag` can", id.get_ref()),
                        ),
                        None => self.sink.at(&src, span_of(id), format!("unknown indicator `{}`", id.get_ref())),
                    }
                }
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        if chosen.is_empty() {
            self.sink.at(
                &src,
                span_of(&raw.scan),
                "no count indicator to scan: add a `measure = \"count\"` indicator or list some in `indicators`",
            );
        }
        let (scan, baseline) = (scan?, baseline?);
        let mut cuts = Vec::new();
        for &k in &chosen {
            let ind = &indicators[k];
            // A window longer than a day and its hop is scanned in days (or hops): see `scan_unit`.
            let w = scan_unit(ind.window.0, ind.hop.0, ind.bin.0);
            let unit = if w == ind.window.0 {
                format!("window {}", ind.window)
            } else {
                format!("window {}, scanned in {} counts", ind.window, Duration(w))
            };
            let fits = |d: Duration| d.0 > 0 && d.0 % w == 0;
            if !fits(scan) || scan.0 / w > MAX_SCAN_WINDOWS as i64 {
                self.sink.at(
                    &src,
                    span_of(&raw.scan),
                    format!(
                        "scan `{scan}` must be 1 to {} windows of indicator `{}` ({unit})",
                        MAX_SCAN_WINDOWS, ind.id
                    ),
                );
                continue;
            }
            if !fits(baseline) || baseline.0 / w < 7 || baseline.0 > 400 * DAY {
                self.sink.at(
                    &src,
                    span_of(&raw.baseline),
                    format!("baseline `{baseline}` must be at least 7 windows of indicator `{}` ({unit}), a whole number of them, and at most 400d", ind.id),
                );
                continue;
            }
            cuts.push(AlarmCut {
                indicator: k,
                unit: w,
                windows: (scan.0 / w) as usize,
                baseline: (baseline.0 / w) as usize,
                parent: None,
                share: None,
            });
        }
        // A filtered count's parent category: the scanned count of the same source and window
        // without a filter.
        let roots: Vec<(usize, usize)> = cuts
            .iter()
            .filter(|c| indicators[c.indicator].filter == Pred::Const(true))
            .map(|c| (c.indicator, indicators[c.indicator].source as usize))
            .collect();
        for c in &mut cuts {
            let ind = &indicators[c.indicator];
            if ind.filter != Pred::Const(true) {
                c.parent = roots
                    .iter()
                    .find(|(r, s)| *s == ind.source as usize && indicators[*r].window == ind.window)
                    .map(|(r, _)| *r);
            }
        }
        let share = match raw.expectation.as_ref().map(|e| e.get_ref().as_str()) {
            None | Some("share") => true,
            Some("history") => false,
            Some(other) => {
                self.sink.at(
                    &src,
                    span_of(raw.expectation.as_ref().unwrap()),
                    format!("expectation = {other:?}: expected \"share\" or \"history\""),
                );
                false
            }
        };
        if share {
            // The exposure is the unfiltered count of the same source, window and hop: the cut
            // itself, or its parent when the hops agree (their windows then line up).
            let of = |k: usize| cuts.iter().position(|c| c.indicator == k);
            let shares: Vec<Option<usize>> = cuts
                .iter()
                .map(|c| {
                    let ind = &indicators[c.indicator];
                    let r = if ind.filter == Pred::Const(true) { Some(c.indicator) } else { c.parent };
                    r.filter(|&r| indicators[r].hop == ind.hop).and_then(of)
                })
                .collect();
            for (c, s) in cuts.iter_mut().zip(shares) {
                c.share = s;
            }
        }
        let per_region = match raw.per.as_ref().map(|p| p.get_ref().as_str()) {
            None | Some("rule_set") => false,
            Some("region") => true,
            Some(other) => {
                self.sink.at(
                    &src,
                    span_of(raw.per.as_ref().unwrap()),
                    format!("per = {other:?}: expected \"rule_set\" or \"region\""),
                );
                false
            }
        };
        // The Bonferroni bound counts the tests behind one recurrence: every cut of the rule set,
        // or of one region.
        let tests = if per_region { 1 } else { scanned.max(1) };
        let mut levels: [Option<AlarmLevel>; 4] = [None; 4];
        let thresholds = raw.thresholds.as_ref().map(|t| t.get_ref());
        let max_windows = cuts.iter().map(|c| c.windows).max().unwrap_or(1);
        for (name, r) in raw.recurrence.get_ref() {
            let Some(level) = Level::ALL.iter().copied().find(|l| l.as_str() == name) else {
                self.sink.at(
                    &src,
                    span_of(&raw.recurrence),
                    format!("unknown level `{name}` in recurrence: blue, yellow, orange or red"),
                );
                continue;
            };
            let Some(d) = self.duration(&src, r) else { continue };
            if d.0 < DAY || d.0 > 100_000 * DAY {
                self.sink.at(&src, span_of(r), "a recurrence interval is at least \"1d\" and at most \"100000d\"");
                continue;
            }
            let days = d.0 as f64 / DAY as f64;
            let threshold = match thresholds.map(|t| t.get(name)) {
                Some(Some(t)) => match self.threshold(&src, t) {
                    Some(t) => t,
                    None => continue,
                },
                Some(None) => {
                    self.sink.at(
                        &src,
                        span_of(&raw.recurrence),
                        format!("level `{name}` has a recurrence but no threshold: run `vigil calibrate` again"),
                    );
                    continue;
                }
                None => ((tests * cuts.len().max(1) * max_windows) as f64 * days).log10().max(1.3),
            };
            levels[level.rank() as usize - 1] = Some(AlarmLevel { level, recurrence_days: days, threshold });
        }
        if let Some(t) = &raw.thresholds {
            for name in t.get_ref().keys() {
                if !raw.recurrence.get_ref().contains_key(name) {
                    self.sink.at(&src, span_of(t), format!("threshold for `{name}`, which has no recurrence"));
                }
            }
        }
        // The Bonferroni bound's floor (p = 0.05) can tie adjacent levels: keep them apart, so
        // only thresholds a person (or `vigil calibrate`) wrote can be out of order.
        if thresholds.is_none() {
            let mut prev = f64::NEG_INFINITY;
            for l in levels.iter_mut().flatten() {
                l.threshold = l.threshold.max(prev + 0.01);
                prev = l.threshold;
            }
        }
        // Higher levels are rarer: their recurrence and threshold both grow.
        let set: Vec<AlarmLevel> = levels.iter().flatten().copied().collect();
        if set.windows(2).any(|p| p[1].recurrence_days <= p[0].recurrence_days || p[1].threshold <= p[0].threshold) {
            self.sink.at(
                &src,
                span_of(&raw.recurrence),
                "each level's recurrence interval and threshold must exceed the level below's",
            );
        }
        if set.is_empty() {
            self.sink.at(
                &src,
                span_of(&raw.recurrence),
                "give at least one level a recurrence interval, e.g. recurrence = { orange = \"14d\", red = \"100d\" }",
            );
        }
        let own = self.region_level_thresholds(&src, &raw, &levels, region_levels, alert_levels);
        // The alarm is evaluated at every boundary of its shortest hop.
        let cadence = cuts.iter().map(|c| indicators[c.indicator].hop.0).min().unwrap_or(HOUR).max(1);
        let hold = match &raw.hold {
            None => Hold::Day,
            Some(h) if h.get_ref() == "day" => Hold::Day,
            Some(h) => match self.duration(&src, h) {
                Some(d) if d.0 <= 7 * DAY => {
                    Hold::Evaluations(((d.0 + cadence - 1) / cadence).clamp(1, u32::MAX as i64) as u32)
                }
                Some(_) => {
                    self.sink.at(&src, span_of(h), "hold is \"day\" or a duration of at most \"7d\"");
                    Hold::Day
                }
                None => Hold::Day,
            },
        };
        Some(Alarm {
            cuts,
            levels,
            region_levels: own,
            per_region,
            calibrated: thresholds.is_some(),
            calibrated_on: raw.calibrated_on,
            hold,
        })
    }

    /// `region_level_thresholds`: for each region level named, the same raised levels as
    /// `levels` at thresholds of its own. Each must be an alerting region level, give every
    /// raised level a threshold (and no other), in increasing order, and `thresholds` must be
    /// there for the other region levels.
    fn region_level_thresholds(
        &mut self,
        src: &SourceText<'_>,
        raw: &crate::raw::RawAlarm,
        levels: &[Option<AlarmLevel>; 4],
        region_levels: &[String],
        alert_levels: &[bool],
    ) -> Vec<(u8, [Option<AlarmLevel>; 4])> {
        let Some(by_level) = &raw.region_level_thresholds else { return Vec::new() };
        if raw.thresholds.is_none() {
            self.sink.at(
                src,
                span_of(by_level),
                "region_level_thresholds without thresholds: the other region levels need theirs (run `vigil calibrate`)",
            );
            return Vec::new();
        }
        let mut out = Vec::new();
        for (name, map) in by_level.get_ref() {
            let Some(rl) = region_levels.iter().position(|l| l == name) else {
                self.sink.at(
                    src,
                    span_of(map),
                    format!(
                        "unknown region level `{name}` in region_level_thresholds: levels are {}",
                        region_levels.join(", ")
                    ),
                );
                continue;
            };
            if !alert_levels.get(rl).copied().unwrap_or(false) {
                self.sink.at(
                    src,
                    span_of(map),
                    format!(
                        "region level `{name}` raises no alerts (alert_region_levels): its thresholds would do nothing"
                    ),
                );
                continue;
            }
            let mut own = *levels;
            let mut ok = true;
            for l in own.iter_mut().flatten() {
                match map.get_ref().get(l.level.as_str()) {
                    Some(t) => match self.threshold(src, t) {
                        Some(t) => l.threshold = t,
                        None => ok = false,
                    },
                    None => {
                        self.sink.at(
                            src,
                            span_of(map),
                            format!(
                                "region level `{name}` has no threshold for `{}`, which has a recurrence: run `vigil calibrate` again",
                                l.level.as_str()
                            ),
                        );
                        ok = false;
                    }
                }
            }
            for level in map.get_ref().keys() {
                if !own.iter().flatten().any(|l| l.level.as_str() == level) {
                    self.sink.at(src, span_of(map), format!("threshold for `{level}`, which has no recurrence"));
                    ok = false;
                }
            }
            let set: Vec<f64> = own.iter().flatten().map(|l| l.threshold).collect();
            if ok && set.windows(2).any(|p| p[1] <= p[0]) {
                self.sink.at(
                    src,
                    span_of(map),
                    format!("region level `{name}`: each level's threshold must exceed the level below's"),
                );
                ok = false;
            }
            if ok {
                out.push((rl as u8, own));
            }
        }
        out
    }

    /// A threshold on the evidence statistic as written: a number above 0 and below 300.
    fn threshold(&mut self, src: &SourceText<'_>, t: &S<f64>) -> Option<f64> {
        let v = *t.get_ref();
        if v.is_finite() && v > 0.0 && v < 300.0 {
            return Some(v);
        }
        self.sink.at(src, span_of(t), "a threshold is a number above 0 and below 300 (−log10 of a probability)");
        None
    }

    /// A list of level names (`alert_region_levels`, `evaluate_region_levels`) as flags over
    /// the declared levels.
    fn level_flags(
        &mut self,
        src: &SourceText<'_>,
        declared: &[String],
        list: &Option<S<Vec<S<String>>>>,
        default: Vec<bool>,
    ) -> Vec<bool> {
        let Some(list) = list else { return default };
        let mut flags = vec![false; declared.len()];
        for l in list.get_ref() {
            match declared.iter().position(|x| x == l.get_ref()) {
                Some(i) => flags[i] = true,
                None => self.sink.at(
                    src,
                    span_of(l),
                    format!("unknown region level `{}` (declared: {})", l.get_ref(), declared.join(", ")),
                ),
            }
        }
        flags
    }

    /// The declared level names, root first (the default four when `levels` is absent).
    fn level_names(&mut self, src: &SourceText<'_>, list: &Option<S<Vec<S<String>>>>) -> Vec<String> {
        let Some(list) = list else { return DEFAULT_LEVELS.iter().map(|l| l.to_string()).collect() };
        let mut names: Vec<String> = list.get_ref().iter().map(|l| l.get_ref().clone()).collect();
        if names.is_empty() || names.len() > MAX_LEVELS {
            self.sink.at(
                src,
                span_of(list),
                format!("levels must name 1 to {MAX_LEVELS} region levels, root first, e.g. [\"city\", \"district\", \"beat\"]"),
            );
        }
        for (i, l) in list.get_ref().iter().enumerate() {
            if !is_snake_id(l.get_ref()) || l.get_ref().len() > 32 {
                self.sink.at(
                    src,
                    span_of(l),
                    format!("level name `{}` must be snake_case (a-z, 0-9, _), at most 32 characters", l.get_ref()),
                );
            }
            if names[..i].contains(l.get_ref()) {
                self.sink.at(src, span_of(l), format!("level `{}` is declared twice", l.get_ref()));
            }
        }
        names.truncate(MAX_LEVELS);
        names
    }

    fn ruleset(&mut self) -> Option<RulesetHead> {
        let file = "ruleset.toml";
        let text = self.text(file)?;
        let src = SourceText::new(file, text);
        let entries = self.parse_toml(&src, &["ruleset"])?;
        let Some((_, v)) = entries.into_iter().next() else {
            self.sink.at(&src, 0..0, "missing [ruleset] table");
            return None;
        };
        let raw: RawRuleset = self.de(&src, v, "[ruleset]")?;
        let zone = match crate::zone::parse_zone(raw.timezone.get_ref()) {
            Ok(z) => Some(z),
            Err(msg) => {
                self.sink.at(&src, span_of(&raw.timezone), msg);
                None
            }
        };
        let every = self.duration(&src, &raw.evaluate_every);
        if let Some(e) = every
            && (e.0 <= 0 || e.0 % HOUR != 0 || DAY % e.0 != 0)
        {
            self.sink.at(
                &src,
                span_of(&raw.evaluate_every),
                format!(
                    "evaluate_every `{e}` must be a whole number of hours that divides a day: \"1h\", \"2h\", \"3h\", \"4h\", \"6h\", \"8h\", \"12h\" or \"1d\""
                ),
            );
        }
        let levels = self.level_names(&src, &raw.levels);
        // Without declared levels, the four default levels alert all but the grid; declared
        // levels all alert unless the rule set says otherwise.
        let default_alert = if raw.levels.is_none() { vec![true, true, true, false] } else { vec![true; levels.len()] };
        let alert = self.level_flags(&src, &levels, &raw.alert_region_levels, default_alert);
        let evaluate = self.level_flags(&src, &levels, &raw.evaluate_region_levels, vec![true; levels.len()]);
        if alert.iter().zip(&evaluate).any(|(a, e)| *a && !*e) {
            let at = raw.alert_region_levels.as_ref().map_or(0..0, span_of);
            self.sink.at(&src, at, "every level in alert_region_levels must also be in evaluate_region_levels");
        }
        let max_state_mib = match &raw.max_state_mib {
            Some(m) if !(1..=1 << 20).contains(m.get_ref()) => {
                self.sink.at(&src, span_of(m), "max_state_mib must be between 1 and 1048576 (1 TiB)");
                1024
            }
            Some(m) => *m.get_ref(),
            None => 1024,
        };
        Some(RulesetHead {
            name: raw.name.into_inner(),
            zone: zone?,
            every: every?,
            levels,
            alert,
            evaluate,
            max_state_bytes: max_state_mib << 20,
        })
    }

    fn sources(&mut self) -> Vec<Source> {
        let file = "sources.toml";
        let Some(text) = self.text(file) else { return Vec::new() };
        let src = SourceText::new(file, text);
        let Some(entries) = self.parse_toml(&src, &["source"]) else { return Vec::new() };
        let mut out: Vec<Source> = Vec::new();
        for (key, v) in entries {
            for item in self.items(&src, v, &key) {
                let Some(raw) = self.de::<RawSource>(&src, item, "[[source]]") else { continue };
                if let Some(s) = self.source(&src, raw, &out) {
                    out.push(s);
                }
            }
        }
        if out.len() > u8::MAX as usize {
            self.sink.at(&src, 0..0, "too many sources (at most 255)");
        }
        if out.is_empty() {
            self.sink.at(&src, 0..0, "no [[source]] declared");
        }
        out
    }

    fn source(&mut self, src: &SourceText<'_>, raw: RawSource, seen: &[Source]) -> Option<Source> {
        let id = raw.id.get_ref().clone();
        if !is_snake_id(&id) {
            self.sink.at(src, span_of(&raw.id), format!("source id `{id}` must be snake_case"));
        }
        if seen.iter().any(|s| s.id == id) {
            self.sink.at(src, span_of(&raw.id), format!("duplicate source id `{id}`"));
        }
        let delay = self.duration_or_zero(src, &raw.allowed_delay);
        let lateness = self.duration_or_zero(src, &raw.allowed_lateness);
        if let Some(l) = lateness
            && l.0 > 7 * DAY
        {
            self.sink.at(
                src,
                span_of(&raw.allowed_lateness),
                "allowed_lateness longer than 7d would keep bins alive too long",
            );
        }
        let max_ahead = match &raw.max_ahead {
            None => Some(Duration(DAY)),
            Some(m) => {
                let d = self.duration(src, m);
                if let Some(d) = d
                    && !(HOUR..=30 * DAY).contains(&d.0)
                {
                    self.sink.at(src, span_of(m), format!("max_ahead {d} must be between 1h and 30d"));
                }
                d
            }
        };
        let dedup_horizon = match &raw.dedup_horizon {
            None => delay.zip(lateness).map(|(d, l)| Duration(d.0 + l.0)),
            Some(h) => {
                let d = self.duration_or_zero(src, h);
                if let Some(d) = d
                    && d.0 > 7 * DAY
                {
                    self.sink.at(src, span_of(h), format!("dedup_horizon {d} is longer than 7d"));
                }
                d
            }
        };
        let dedup_capacity = match &raw.dedup_capacity {
            None => 1 << 15,
            Some(c) if !(16..=1 << 24).contains(c.get_ref()) => {
                self.sink.at(src, span_of(c), "dedup_capacity must be between 16 and 16777216");
                1 << 15
            }
            Some(c) => *c.get_ref() as usize,
        };
        let mut attrs: Vec<Attr> = Vec::new();
        let mut required_mask = 0u32;
        if raw.attr.len() > vigil_model::MAX_ATTRS {
            self.sink.at(
                src,
                span_of(&raw.id),
                format!("a source declares at most {} attributes", vigil_model::MAX_ATTRS),
            );
        }
        for a in raw.attr.into_iter().take(vigil_model::MAX_ATTRS) {
            let span = a.span();
            let a = a.into_inner();
            let name = a.name.get_ref().clone();
            // `hour` and `dow` are the filters' pseudo-attributes; the others are the archive's
            // own columns (`region`, `ts`) and partition keys (`source`, `date`).
            const RESERVED: [&str; 6] = ["hour", "dow", "region", "ts", "source", "date"];
            if !is_snake_id(&name) || RESERVED.contains(&name.as_str()) {
                self.sink.at(
                    src,
                    span_of(&a.name),
                    format!(
                        "attribute name `{name}` must be snake_case and none of {} (reserved)",
                        RESERVED.map(|r| format!("`{r}`")).join(", ")
                    ),
                );
            }
            if identity_like(&name) {
                self.sink.at(
                    src,
                    span_of(&a.name),
                    format!(
                        "attribute `{name}` looks like a personal identifier; vigil keeps aggregate attributes only"
                    ),
                );
            }
            if attrs.iter().any(|x| x.name == name) {
                self.sink.at(src, span_of(&a.name), format!("duplicate attribute `{name}`"));
            }
            let ty = match a.ty.get_ref().as_str() {
                "enum" => {
                    let values = match &a.values {
                        Some(v) => v.get_ref().iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>(),
                        None => {
                            self.sink.at(src, span.clone(), format!("enum attribute `{name}` needs `values`"));
                            Vec::new()
                        }
                    };
                    if let Some(v) = &a.values {
                        if values.is_empty() || values.len() > 64 {
                            self.sink.at(src, span_of(v), "an enum declares 1 to 64 values");
                        }
                        let mut seen_v = HashSet::new();
                        for s in v.get_ref() {
                            if !seen_v.insert(s.get_ref().as_str()) {
                                self.sink.at(src, span_of(s), format!("duplicate enum value `{}`", s.get_ref()));
                            }
                        }
                    }
                    AttrType::Enum(values)
                }
                "int" => {
                    let min = a.min.as_ref().map(|m| *m.get_ref()).unwrap_or(i64::MIN as f64);
                    let max = a.max.as_ref().map(|m| *m.get_ref()).unwrap_or(i64::MAX as f64);
                    if min > max {
                        self.sink.at(src, span.clone(), "min is greater than max");
                    }
                    AttrType::Int { min: min as i64, max: max as i64 }
                }
                "float" => {
                    let min = a.min.as_ref().map(|m| *m.get_ref()).unwrap_or(-1e12);
                    let max = a.max.as_ref().map(|m| *m.get_ref()).unwrap_or(1e12);
                    let decimals = a.decimals.as_ref().map(|d| *d.get_ref()).unwrap_or(3);
                    if !(0..=6).contains(&decimals) {
                        self.sink.at(src, span.clone(), "decimals must be between 0 and 6");
                    }
                    if min > max {
                        self.sink.at(src, span.clone(), "min is greater than max");
                    }
                    let decimals = decimals.clamp(0, 6) as u32;
                    AttrType::Float { min, max, decimals, scale: 10i64.pow(decimals) }
                }
                "bool" => AttrType::Bool,
                other => {
                    self.sink.at(
                        src,
                        span_of(&a.ty),
                        format!("unknown attribute type `{other}` (enum, int, float, bool)"),
                    );
                    continue;
                }
            };
            if a.values.is_some() && !matches!(ty, AttrType::Enum(_)) {
                self.sink.at(src, span.clone(), "`values` applies to enum attributes only");
            }
            if a.decimals.is_some() && !matches!(ty, AttrType::Float { .. }) {
                self.sink.at(src, span.clone(), "`decimals` applies to float attributes only");
            }
            if a.required {
                required_mask |= 1 << attrs.len();
            }
            attrs.push(Attr { name, ty, required: a.required });
        }
        Some(Source {
            id,
            name: name_of(raw.name),
            topic: raw.topic.into_inner(),
            allowed_delay: delay?,
            allowed_lateness: lateness?,
            max_ahead: max_ahead?,
            dedup_horizon: dedup_horizon?,
            dedup_capacity,
            attrs,
            required_mask,
        })
    }

    fn regions(&mut self, levels: Option<&[String]>) -> Regions {
        let file = "regions.csv";
        let Some(text) = self.text(file) else { return Regions::default() };
        // Without a valid ruleset.toml the levels are unknown: the tree is not checked.
        let Some(levels) = levels else { return Regions::default() };
        let src = SourceText::new(file, text);
        let specs = match parse_regions_csv(text) {
            Ok(s) => s,
            Err(errs) => {
                for (line, col, msg) in errs {
                    self.sink.push(crate::diag::Diagnostic { file: file.into(), line, col, message: msg });
                }
                return Regions::default();
            }
        };
        match build_regions(&specs, levels) {
            Ok(r) => r,
            Err(errs) => {
                for (row, msg) in errs {
                    let (line, _) = src.line_col(0);
                    self.sink.push(crate::diag::Diagnostic {
                        file: file.into(),
                        line: line + row + 1,
                        col: 1,
                        message: msg,
                    });
                }
                Regions::default()
            }
        }
    }

    fn taxonomies(&mut self) -> Taxonomies {
        let file = "taxonomies.toml";
        let Some(text) = self.text(file) else { return Taxonomies::new() };
        let src = SourceText::new(file, text);
        let Some(entries) = self.parse_toml(&src, &["taxonomy"]) else { return Taxonomies::new() };
        let mut out = Taxonomies::new();
        for (_, v) in entries {
            let span = v.span();
            let DeValue::Table(t) = v.into_inner() else {
                self.sink.at(&src, span, "`taxonomy` must hold tables: [taxonomy.<name>]");
                continue;
            };
            for (k, v) in t {
                let key: String = k.get_ref().to_string();
                if !is_snake_id(&key) {
                    self.sink.at(&src, k.span(), format!("taxonomy name `{key}` must be snake_case"));
                }
                let Some(raw) = self.de::<RawTaxonomy>(&src, v, &format!("[taxonomy.{key}]")) else { continue };
                if raw.values.get_ref().is_empty() {
                    self.sink.at(&src, span_of(&raw.values), "a taxonomy lists at least one value");
                }
                out.insert(key, raw.values.into_inner().into_iter().map(|s| s.into_inner()).collect());
            }
        }
        out
    }

    #[allow(clippy::type_complexity)]
    fn index(&mut self) -> Option<(Vec<Category>, Vec<Domain>, Aggregation, f64, Vec<Override>)> {
        let file = "index.toml";
        let text = self.text(file)?;
        let src = SourceText::new(file, text);
        let entries = self.parse_toml(&src, &["index", "domain", "category", "override"])?;
        let mut index_raw: Option<RawIndex> = None;
        let mut domains: Vec<Domain> = Vec::new();
        let mut raw_categories: Vec<RawCategory> = Vec::new();
        let mut overrides = Vec::new();
        for (key, v) in entries {
            match key.as_str() {
                "index" => index_raw = self.de(&src, v, "[index]"),
                "domain" => {
                    for item in self.items(&src, v, &key) {
                        let Some(d) = self.de::<RawDomain>(&src, item, "[[domain]]") else { continue };
                        let id = d.id.get_ref().clone();
                        if !is_snake_id(&id) {
                            self.sink.at(&src, span_of(&d.id), format!("domain id `{id}` must be snake_case"));
                        }
                        if domains.iter().any(|x| x.id == id) {
                            self.sink.at(&src, span_of(&d.id), format!("duplicate domain id `{id}`"));
                        }
                        self.check_weight(&src, &d.weight);
                        let method = self.aggregation(&src, d.method.as_ref());
                        domains.push(Domain {
                            id,
                            name: name_of(d.name),
                            weight: *d.weight.get_ref(),
                            method,
                            categories: Vec::new(),
                        });
                    }
                }
                "category" => {
                    for item in self.items(&src, v, &key) {
                        if let Some(c) = self.de::<RawCategory>(&src, item, "[[category]]") {
                            raw_categories.push(c);
                        }
                    }
                }
                _ => {
                    for item in self.items(&src, v, &key) {
                        let Some(o) = self.de::<RawOverride>(&src, item, "[[override]]") else { continue };
                        let when = match o.when.get_ref().as_str() {
                            "any_domain" => Some(OverrideWhen::AnyDomain),
                            "hard_indicator" => Some(OverrideWhen::HardIndicator),
                            w => {
                                self.sink.at(
                                    &src,
                                    span_of(&o.when),
                                    format!("unknown override trigger `{w}` (any_domain, hard_indicator)"),
                                );
                                None
                            }
                        };
                        let target = match o.then.get_ref().as_str() {
                            "composite" => Some(OverrideTarget::Composite),
                            "domain" => Some(OverrideTarget::Domain),
                            w => {
                                self.sink.at(
                                    &src,
                                    span_of(&o.then),
                                    format!("unknown override target `{w}` (composite, domain)"),
                                );
                                None
                            }
                        };
                        let at_least = self.level(&src, &o.at_least);
                        let floor = self.level(&src, &o.floor);
                        if let (Some(when), Some(target), Some(at_least), Some(floor)) = (when, target, at_least, floor)
                        {
                            if when == OverrideWhen::AnyDomain && target == OverrideTarget::Domain {
                                self.sink.at(&src, span_of(&o.then), "an any_domain override targets the composite");
                            }
                            overrides.push(Override { when, at_least, target, floor });
                        }
                    }
                }
            }
        }
        if domains.is_empty() {
            self.sink.at(&src, 0..0, "no [[domain]] declared");
        }
        let dsum: f64 = domains.iter().map(|d| d.weight).sum();
        if !domains.is_empty() && (dsum - 1.0).abs() > 1e-3 {
            self.sink.at(&src, 0..0, format!("domain weights sum to {dsum:.4}, not 1"));
        }
        let mut categories: Vec<Category> = Vec::new();
        for c in raw_categories {
            let id = c.id.get_ref().clone();
            if !is_snake_id(&id) {
                self.sink.at(&src, span_of(&c.id), format!("category id `{id}` must be snake_case"));
            }
            if categories.iter().any(|x| x.id == id) {
                self.sink.at(&src, span_of(&c.id), format!("duplicate category id `{id}`"));
            }
            let Some(d) = domains.iter().position(|d| &d.id == c.domain.get_ref()) else {
                self.sink.at(&src, span_of(&c.domain), format!("unknown domain `{}`", c.domain.get_ref()));
                continue;
            };
            self.check_weight(&src, &c.weight);
            let method = self.aggregation(&src, c.method.as_ref());
            domains[d].categories.push(categories.len());
            categories.push(Category {
                id,
                name: name_of(c.name),
                domain: d,
                weight: *c.weight.get_ref(),
                method,
                indicators: Vec::new(),
            });
        }
        for d in &domains {
            let sum: f64 = d.categories.iter().map(|&c| categories[c].weight).sum();
            if d.categories.is_empty() {
                self.sink.at(&src, 0..0, format!("domain `{}` has no categories", d.id));
            } else if (sum - 1.0).abs() > 1e-3 {
                self.sink.at(&src, 0..0, format!("category weights of domain `{}` sum to {sum:.4}, not 1", d.id));
            }
        }
        let (method, min_available) = match &index_raw {
            Some(i) => {
                let m = self.aggregation(&src, i.method.as_ref());
                let a = i.min_available.as_ref().map(|a| *a.get_ref()).unwrap_or(0.5);
                if !(0.0..=1.0).contains(&a)
                    && let Some(s) = &i.min_available
                {
                    self.sink.at(&src, span_of(s), "min_available is a share between 0 and 1");
                }
                (m, a)
            }
            None => {
                self.sink.at(&src, 0..0, "missing [index] table");
                (Aggregation::Arithmetic, 0.5)
            }
        };
        Some((categories, domains, method, min_available, overrides))
    }

    fn check_weight(&mut self, src: &SourceText<'_>, w: &S<f64>) {
        let v = *w.get_ref();
        if !(v.is_finite() && v > 0.0 && v <= 1.0) {
            self.sink.at(src, span_of(w), format!("weight {v} must be in (0, 1]"));
        }
    }

    fn aggregation(&mut self, src: &SourceText<'_>, m: Option<&S<String>>) -> Aggregation {
        match m.map(|s| s.get_ref().as_str()) {
            None | Some("arithmetic") => Aggregation::Arithmetic,
            Some("geometric_safety") => Aggregation::GeometricSafety,
            Some("max") => Aggregation::Max,
            Some(other) => {
                if let Some(s) = m {
                    self.sink.at(
                        src,
                        span_of(s),
                        format!("unknown aggregation `{other}` (arithmetic, geometric_safety, max)"),
                    );
                }
                Aggregation::Arithmetic
            }
        }
    }

    fn level(&mut self, src: &SourceText<'_>, s: &S<String>) -> Option<Level> {
        let l = Level::parse(s.get_ref());
        if l.is_none() {
            self.sink.at(src, span_of(s), format!("unknown level `{}` (blue, yellow, orange, red)", s.get_ref()));
        }
        l
    }

    fn grading(&mut self) -> Option<Grading> {
        let file = "grading.toml";
        let text = self.text(file)?;
        let src = SourceText::new(file, text);
        let entries = self.parse_toml(&src, &["grading", "level"])?;
        let mut head: Option<RawGrading> = None;
        let mut levels: Vec<Option<LevelSpec>> = vec![None, None, None, None];
        for (key, v) in entries {
            if key == "grading" {
                head = self.de(&src, v, "[grading]");
                continue;
            }
            for item in self.items(&src, v, &key) {
                let Some(l) = self.de::<RawLevel>(&src, item, "[[level]]") else { continue };
                let Some(level) = self.level(&src, &l.id) else { continue };
                let slot = level.rank() as usize - 1;
                if levels[slot].is_some() {
                    self.sink.at(&src, span_of(&l.id), format!("level `{}` declared twice", level.as_str()));
                }
                let (enter, clear) = (*l.enter.get_ref(), *l.clear.get_ref());
                if !(0.0..=100.0).contains(&enter) {
                    self.sink.at(&src, span_of(&l.enter), "enter must be within 0..100");
                }
                if clear >= enter || clear < 0.0 {
                    self.sink.at(
                        &src,
                        span_of(&l.clear),
                        format!("clear ({clear}) must be below enter ({enter}) and not negative"),
                    );
                }
                for (n, s) in [("for", &l.for_count), ("hold", &l.hold)] {
                    if !(1..=1000).contains(s.get_ref()) {
                        self.sink.at(&src, span_of(s), format!("`{n}` must be between 1 and 1000 evaluations"));
                    }
                }
                let deadline = l.deadline.as_ref().and_then(|d| {
                    let v = self.duration(&src, d)?;
                    if !(HOUR..=365 * DAY).contains(&v.0) {
                        self.sink.at(&src, span_of(d), "a deadline is at least \"1h\" and at most \"365d\"");
                        return None;
                    }
                    Some(v)
                });
                levels[slot] = Some(LevelSpec {
                    level,
                    deadline,
                    label: name_of(l.label),
                    colour: l.colour.into_inner(),
                    rank: l.rank.into_inner(),
                    response: l.response,
                    enter,
                    clear,
                    for_count: (*l.for_count.get_ref()).clamp(1, 1000) as u32,
                    hold: (*l.hold.get_ref()).clamp(1, 1000) as u32,
                });
            }
        }
        let mut out = Vec::new();
        for (i, l) in levels.into_iter().enumerate() {
            match l {
                Some(l) => out.push(l),
                None => self.sink.at(&src, 0..0, format!("level `{}` is not declared", Level::ALL[i].as_str())),
            }
        }
        for w in out.windows(2) {
            if w[1].enter <= w[0].enter {
                self.sink.at(
                    &src,
                    0..0,
                    format!(
                        "enter thresholds must increase: {} ({}) is not above {} ({})",
                        w[1].level.as_str(),
                        w[1].enter,
                        w[0].level.as_str(),
                        w[0].enter
                    ),
                );
            }
        }
        let Some(head) = head else {
            self.sink.at(&src, 0..0, "missing [grading] table");
            return None;
        };
        let b = head.indicator_bands.get_ref();
        let bands = [b.blue, b.yellow, b.orange, b.red];
        if bands.windows(2).any(|w| w[1] <= w[0]) {
            self.sink.at(&src, span_of(&head.indicator_bands), "indicator_bands must increase from blue to red");
        }
        if out.len() != 4 {
            return None;
        }
        Some(Grading { levels: out, fast_path_margin: *head.fast_path_margin.get_ref(), indicator_bands: bands })
    }

    #[allow(clippy::too_many_arguments)]
    fn indicators(
        &mut self,
        sources: &[Source],
        regions: &Regions,
        taxonomies: &Taxonomies,
        categories: &mut [Category],
        domains: &[Domain],
        timing: Option<(Zone, Duration)>,
    ) -> Option<Vec<Indicator>> {
        let (zone, every) = match timing {
            Some((z, e)) => (z, Some(e)),
            None => (Zone::fixed("Z", 0), None),
        };
        let files: Vec<(&'a String, &'a String)> =
            self.files.files.iter().filter(|(k, _)| k.starts_with("indicators/") && k.ends_with(".toml")).collect();
        if files.is_empty() {
            self.sink.push(crate::diag::Diagnostic {
                file: "indicators/".into(),
                line: 1,
                col: 1,
                message: "no indicator files (indicators/*.toml)".into(),
            });
        }
        let mut out: Vec<Indicator> = Vec::new();
        let mut origins: HashMap<String, String> = HashMap::new();
        for (path, text) in files {
            let src = SourceText::new(path, text);
            let Some(entries) = self.parse_toml(&src, &["indicator"]) else { continue };
            for (key, v) in entries {
                for item in self.items(&src, v, &key) {
                    let Some(raw) = self.de::<RawIndicator>(&src, item, "[[indicator]]") else { continue };
                    let id = raw.id.get_ref().clone();
                    let (line, col) = src.line_col(span_of(&raw.id).start);
                    if let Some(prev) = origins.get(&id) {
                        self.sink.at(
                            &src,
                            span_of(&raw.id),
                            format!("duplicate indicator id `{id}` (first declared at {prev})"),
                        );
                    } else {
                        origins.insert(id.clone(), format!("{path}:{line}:{col}"));
                    }
                    let cx = IndicatorCx { sources, regions, taxonomies, categories, zone: &zone, every };
                    if let Some(ind) = self.indicator(&src, raw, &cx) {
                        out.push(ind);
                    }
                }
            }
        }
        if out.len() > MAX_INDICATORS {
            self.sink.push(crate::diag::Diagnostic {
                file: "indicators/".into(),
                line: 1,
                col: 1,
                message: format!("more than {MAX_INDICATORS} indicators"),
            });
        }
        // Weights within each category, and global weights.
        for (i, ind) in out.iter().enumerate() {
            categories[ind.category].indicators.push(i);
        }
        for c in categories.iter() {
            let sum: f64 = c.indicators.iter().map(|&i| out[i].weight).sum();
            if c.indicators.is_empty() {
                self.sink.push(crate::diag::Diagnostic {
                    file: "index.toml".into(),
                    line: 1,
                    col: 1,
                    message: format!("category `{}` has no indicators", c.id),
                });
            } else if (sum - 1.0).abs() > 1e-3 {
                let first = &out[c.indicators[0]];
                let at = origins.get(&first.id).cloned().unwrap_or_default();
                let mut parts = at.rsplitn(3, ':');
                let col = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1);
                let line = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1);
                let file = parts.next().unwrap_or("indicators/").to_string();
                self.sink.push(crate::diag::Diagnostic {
                    file,
                    line,
                    col,
                    message: format!("indicator weights of category `{}` sum to {sum:.4}, not 1", c.id),
                });
            }
        }
        for ind in out.iter_mut() {
            let c = &categories[ind.category];
            ind.global_weight = ind.weight * c.weight * domains[c.domain].weight;
        }
        Some(out)
    }

    fn indicator(&mut self, src: &SourceText<'_>, raw: RawIndicator, cx: &IndicatorCx<'_>) -> Option<Indicator> {
        let id = raw.id.get_ref().clone();
        if !is_snake_id(&id) {
            self.sink.at(src, span_of(&raw.id), format!("indicator id `{id}` must be snake_case (a-z, 0-9, _)"));
        }
        let category = cx.categories.iter().position(|c| &c.id == raw.category.get_ref());
        if category.is_none() {
            self.sink.at(
                src,
                span_of(&raw.category),
                format!("unknown category `{}` (declare it in index.toml)", raw.category.get_ref()),
            );
        }
        let source = cx.sources.iter().position(|s| &s.id == raw.source.get_ref());
        if source.is_none() {
            let known: Vec<&str> = cx.sources.iter().map(|s| s.id.as_str()).collect();
            self.sink.at(
                src,
                span_of(&raw.source),
                format!("unknown source `{}` (declared: {})", raw.source.get_ref(), known.join(", ")),
            );
        }
        let window = self.duration(src, &raw.window);
        let hop = self.duration(src, &raw.hop);
        let lag = match &raw.lag {
            Some(l) => self.duration_or_zero(src, l),
            None => Some(Duration::ZERO),
        };
        let bin = match hop {
            Some(h) if h.0 == HOUR => Some(Duration(HOUR)),
            Some(h) if h.0 == DAY => Some(Duration(DAY)),
            Some(_) => {
                self.sink.at(src, span_of(&raw.hop), "hop must be \"1h\" or \"1d\"");
                None
            }
            None => None,
        };
        if let (Some(h), Some(e)) = (hop, cx.every)
            && bin.is_some()
            && h.0 % e.0 != 0
        {
            self.sink.at(
                src,
                span_of(&raw.hop),
                format!("hop {h} is not a multiple of the rule set's evaluate_every {e}: use hop = \"1d\""),
            );
        }
        if let (Some(w), Some(e)) = (window, cx.every)
            && w.0 < e.0
        {
            self.sink.at(
                src,
                span_of(&raw.window),
                format!("window {w} is shorter than the rule set's evaluate_every {e}: use a window of at least {e}"),
            );
        }
        if let (Some(w), Some(b)) = (window, bin) {
            if w.0 % b.0 != 0 {
                self.sink.at(src, span_of(&raw.window), format!("window {w} is not a whole number of {} bins", b));
            }
            if w.0 > 400 * DAY {
                self.sink.at(src, span_of(&raw.window), "window longer than 400d");
            }
            if b.0 == HOUR && w.0 > 7 * DAY {
                self.sink.at(
                    src,
                    span_of(&raw.window),
                    "hourly indicators (hop 1h) have windows of at most 7d; use hop 1d",
                );
            }
        }
        if let (Some(l), Some(lag_s)) = (lag, raw.lag.as_ref())
            && l.0 > 365 * DAY
        {
            self.sink.at(src, span_of(lag_s), format!("lag {l} is longer than 365d"));
        }
        if let (Some(l), Some(b), Some(lag_s)) = (lag, bin, raw.lag.as_ref())
            && l.0 % b.0 != 0
        {
            self.sink.at(src, span_of(lag_s), format!("lag {l} is not a whole number of {b} bins"));
        }
        let direction = match raw.direction.get_ref().as_str() {
            "up" => Some(Direction::Up),
            "down" => Some(Direction::Down),
            d => {
                self.sink.at(src, span_of(&raw.direction), format!("direction must be \"up\" or \"down\", not `{d}`"));
                None
            }
        };
        let min_support = match &raw.min_support {
            Some(m) if !(0..=1_000_000).contains(m.get_ref()) => {
                self.sink.at(src, span_of(m), "min_support must be between 0 and 1000000");
                0
            }
            Some(m) => *m.get_ref() as u32,
            None => 0,
        };
        self.check_weight(src, &raw.weight);
        let source_def = source.map(|s| &cx.sources[s]);
        let filter = match (&raw.filter, source_def) {
            (Some(f), Some(s)) => self.filter(src, f, s, cx.taxonomies),
            (None, Some(_)) => Some(filter::CompiledFilter { pred: Pred::Const(true), sql: "TRUE".into() }),
            _ => None,
        };
        let measure = source_def.and_then(|s| self.measure(src, &raw.measure, s, cx.taxonomies));
        let compare = match (&raw.compare, &measure) {
            (Some(c), Some(m)) => {
                if !matches!(m, Measure::Overlap { .. } | Measure::Coelevation { .. }) {
                    self.sink.at(src, c.span(), "`compare` applies only to the overlap and coelevation measures");
                }
                let c = c.get_ref();
                match cx.sources.iter().position(|s| &s.id == c.source.get_ref()) {
                    Some(si) => {
                        let f = match &c.filter {
                            Some(f) => self.filter(src, f, &cx.sources[si], cx.taxonomies),
                            None => Some(filter::CompiledFilter { pred: Pred::Const(true), sql: "TRUE".into() }),
                        };
                        if let (Measure::Overlap { key, .. }, Some(s)) = (m, source_def) {
                            let other = &cx.sources[si];
                            let key_name = &s.attrs[*key].name;
                            match other.attr_index(key_name) {
                                Some(k2) if other.attrs[k2].ty == s.attrs[*key].ty => {}
                                _ => self.sink.at(
                                    src,
                                    span_of(&c.source),
                                    format!("overlap compares `{key_name}`, which source `{}` must declare with the same values", other.id),
                                ),
                            }
                        }
                        f.map(|f| Leg { source: si as u8, filter: f.pred, filter_sql: f.sql })
                    }
                    None => {
                        self.sink.at(src, span_of(&c.source), format!("unknown source `{}`", c.source.get_ref()));
                        None
                    }
                }
            }
            (None, Some(Measure::Overlap { .. } | Measure::Coelevation { .. })) => {
                self.sink.at(
                    src,
                    span_of(&raw.measure),
                    "this measure compares two streams: add compare = { source = \"...\" }",
                );
                None
            }
            _ => None,
        };
        // Measure constraints that depend on the bin width.
        if let (Some(m), Some(b), Some(w)) = (&measure, bin, window) {
            match m {
                Measure::MaxBin if b.0 != HOUR => {
                    self.sink.at(src, span_of(&raw.measure), "max_bin needs hourly bins (hop \"1h\")")
                }
                Measure::DistinctDays if b.0 != DAY => {
                    self.sink.at(src, span_of(&raw.measure), "distinct_days needs daily bins (hop \"1d\")")
                }
                Measure::Coelevation { .. } if b.0 != HOUR || w.0 > DAY => {
                    self.sink.at(src, span_of(&raw.measure), "coelevation needs hop \"1h\" and a window of at most 24h")
                }
                Measure::Growth { step, .. } if step.0 % b.0 != 0 => self.sink.at(
                    src,
                    span_of(&raw.measure),
                    format!("growth step {step} is not a whole number of {b} bins"),
                ),
                _ => {}
            }
        }
        let normalise = match (&measure, window, bin, direction) {
            (Some(m), Some(w), Some(b), Some(d)) => self.normalise(src, &raw.normalise, m, w, b, d),
            _ => None,
        };
        let tests = self.tests(src, &raw.test, cx, hop);
        let category = category?;
        Some(Indicator {
            id,
            name: name_of(raw.name),
            category,
            domain: cx.categories[category].domain,
            source: source? as u8,
            filter: filter.as_ref()?.pred.clone(),
            filter_sql: filter?.sql,
            measure: measure?,
            compare: if raw.compare.is_some() { Some(compare?) } else { None },
            window: window?,
            hop: hop?,
            lag: lag?,
            bin: bin?,
            direction: direction?,
            min_support,
            weight: *raw.weight.get_ref(),
            global_weight: 0.0,
            hard: raw.hard,
            normalise: normalise?,
            tests,
        })
    }

    fn filter(
        &mut self,
        src: &SourceText<'_>,
        f: &S<String>,
        source: &Source,
        tax: &Taxonomies,
    ) -> Option<filter::CompiledFilter> {
        match filter::compile_filter(f.get_ref(), source, tax) {
            Ok(c) => Some(c),
            Err(errs) => {
                let base = span_of(f).start;
                let (bl, bc) = src.line_col(base);
                for e in errs {
                    // Positions inside a one-line string map onto the file: +1 for the quote.
                    let (line, col) = if e.line <= 1 {
                        (bl, bc + e.col as usize)
                    } else {
                        (bl + e.line as usize - 1, e.col as usize)
                    };
                    self.sink.push(crate::diag::Diagnostic {
                        file: src.name.to_string(),
                        line,
                        col,
                        message: format!("filter: {}", e.message),
                    });
                }
                None
            }
        }
    }

    fn measure(&mut self, src: &SourceText<'_>, m: &S<String>, source: &Source, tax: &Taxonomies) -> Option<Measure> {
        match parse_measure(m.get_ref(), source, tax) {
            Ok(x) => Some(x),
            Err(e) => {
                self.sink.at(src, span_of(m), format!("measure: {e}"));
                None
            }
        }
    }

    fn normalise(
        &mut self,
        src: &SourceText<'_>,
        n: &S<RawNormalise>,
        m: &Measure,
        window: Duration,
        bin: Duration,
        dir: Direction,
    ) -> Option<Normalise> {
        let r = n.get_ref();
        let at = n.span();
        let method = r.method.get_ref().as_str();
        let given: Vec<(&str, bool)> = vec![
            ("baseline", r.baseline.is_some()),
            ("guard", r.guard.is_some()),
            ("seasonality", r.seasonality.is_some()),
            ("dist", r.dist.is_some()),
            ("min_count", r.min_count.is_some()),
            ("windows", r.windows.is_some()),
            ("sigma_min", r.sigma_min.is_some()),
            ("transform", r.transform.is_some()),
            ("low", r.low.is_some()),
            ("high", r.high.is_some()),
            ("history", r.history.is_some()),
            ("min_history", r.min_history.is_some()),
            ("variant", r.variant.is_some()),
            ("k", r.k.is_some()),
            ("h", r.h.is_some()),
        ];
        let allowed: &[&str] = match method {
            "baseline_pvalue" => &["baseline", "guard", "seasonality", "dist", "min_count"],
            "binomial" => &["windows"],
            "robust_z" => &["windows", "sigma_min", "transform"],
            "goalposts" => &["low", "high"],
            "percentile" => &["history", "min_history"],
            "ears" => &["variant", "sigma_min"],
            "ewma" => &[],
            "cusum" => &["k", "h", "baseline"],
            other => {
                self.sink.at(
                    src,
                    span_of(&r.method),
                    format!("unknown normalise method `{other}` (baseline_pvalue, binomial, robust_z, goalposts, percentile, ears, ewma, cusum)"),
                );
                return None;
            }
        };
        for (name, present) in &given {
            if *present && !allowed.contains(name) {
                self.sink.at(src, at.clone(), format!("`{name}` does not apply to normalise method `{method}`"));
            }
        }
        let dur = |s: &mut Self, v: &Option<S<String>>, default: i64| -> Option<Duration> {
            match v {
                Some(v) => s.duration(src, v),
                None => Some(Duration(default)),
            }
        };
        let count_like = matches!(m, Measure::Count | Measure::Sum { .. });
        let share_like = matches!(m, Measure::Share { .. } | Measure::Ratio { .. });
        if matches!(m, Measure::Growth { .. }) && method != "goalposts" {
            // The history keeps growth's window counts, not its ratios: a baseline over them
            // would compare a ratio with counts.
            self.sink.at(
                src,
                span_of(&r.method),
                "growth is a ratio against its own earlier windows (its baseline): score it with goalposts, e.g. \
                 { method = \"goalposts\", low = 1.0, high = 2.0 }",
            );
        }
        let daily = bin.0 == DAY;
        let out = match method {
            "baseline_pvalue" => {
                if !count_like {
                    self.sink.at(src, span_of(&r.method), "baseline_pvalue models counts: use it with count or sum");
                }
                let baseline = dur(self, &r.baseline, 28 * DAY)?;
                let guard = match &r.guard {
                    Some(g) => self.duration_or_zero(src, g)?,
                    None => Duration(2 * DAY),
                };
                self.bounded(src, at.clone(), "baseline", baseline, bin, 400 * DAY);
                self.bounded(src, at.clone(), "guard", guard, bin, 28 * DAY);
                let seasonality = match r.seasonality.as_ref().map(|s| s.get_ref().as_str()) {
                    None | Some("none") => Seasonality::None,
                    Some("day_of_week") => Seasonality::DayOfWeek,
                    Some("hour_of_week") => Seasonality::HourOfWeek,
                    Some(o) => {
                        self.sink.at(
                            src,
                            at.clone(),
                            format!("unknown seasonality `{o}` (none, day_of_week, hour_of_week)"),
                        );
                        Seasonality::None
                    }
                };
                if seasonality != Seasonality::None {
                    if window.0 + guard.0 > 7 * DAY {
                        self.sink.at(src, at.clone(), "weekly seasonality needs window + guard of at most 7d (same-weekday baselines must not overlap the window)");
                    }
                    if baseline.0 % (7 * DAY) != 0 {
                        self.sink.at(src, at.clone(), "with weekly seasonality the baseline must be whole weeks");
                    }
                    if seasonality == Seasonality::HourOfWeek && daily {
                        self.sink.at(src, at.clone(), "hour_of_week seasonality needs hop \"1h\"");
                    }
                }
                if guard.0 % bin.0 != 0 || baseline.0 % bin.0 != 0 {
                    self.sink.at(src, at.clone(), format!("baseline and guard must be whole {bin} bins"));
                }
                let dist = match r.dist.as_ref().map(|s| s.get_ref().as_str()) {
                    None | Some("negbin") => CountDist::NegBin,
                    Some("poisson") => CountDist::Poisson,
                    Some(o) => {
                        self.sink.at(src, at.clone(), format!("unknown dist `{o}` (poisson, negbin)"));
                        CountDist::NegBin
                    }
                };
                let min_count = r.min_count.as_ref().map(|m| *m.get_ref()).unwrap_or(0).clamp(0, 1_000_000) as u32;
                Normalise::BaselinePvalue { baseline, guard, seasonality, dist, min_count }
            }
            "binomial" => {
                if !share_like {
                    self.sink.at(src, span_of(&r.method), "binomial models shares: use it with share or ratio");
                }
                let windows = r.windows.as_ref().map(|w| *w.get_ref()).unwrap_or(8);
                if !(2..=60).contains(&windows) {
                    self.sink.at(src, at.clone(), "windows must be between 2 and 60");
                }
                Normalise::Binomial { windows: windows.clamp(2, 60) as u32 }
            }
            "robust_z" => {
                let windows = r.windows.as_ref().map(|w| *w.get_ref()).unwrap_or(28);
                if !(5..=400).contains(&windows) {
                    self.sink.at(src, at.clone(), "windows must be between 5 and 400");
                }
                let sigma_min = r.sigma_min.as_ref().map(|w| *w.get_ref()).unwrap_or(0.5);
                if !(sigma_min.is_finite() && sigma_min > 0.0) {
                    self.sink.at(src, at.clone(), "sigma_min must be positive");
                }
                let transform = match r.transform.as_ref().map(|s| s.get_ref().as_str()) {
                    None | Some("none") => Transform::None,
                    Some("log1p") => Transform::Log1p,
                    Some(o) => {
                        self.sink.at(src, at.clone(), format!("unknown transform `{o}` (none, log1p)"));
                        Transform::None
                    }
                };
                Normalise::RobustZ { windows: windows.clamp(5, 400) as u32, sigma_min, transform }
            }
            "goalposts" => {
                let (Some(low), Some(high)) = (&r.low, &r.high) else {
                    self.sink.at(src, at.clone(), "goalposts needs `low` and `high`");
                    return None;
                };
                let (low, high) = (*low.get_ref(), *high.get_ref());
                if !(low.is_finite() && high.is_finite()) || low == high {
                    self.sink.at(src, at.clone(), "goalposts low and high must be distinct numbers");
                }
                match dir {
                    Direction::Up if high < low => self.sink.at(src, at.clone(), "direction \"up\" needs high > low"),
                    Direction::Down if high > low => {
                        self.sink.at(src, at.clone(), "direction \"down\" needs high < low (the risky end is `high`)")
                    }
                    _ => {}
                }
                Normalise::Goalposts { low, high }
            }
            "percentile" => {
                let history = dur(self, &r.history, 365 * DAY)?;
                let min_history = dur(self, &r.min_history, 28 * DAY)?;
                if min_history > history {
                    self.sink.at(src, at.clone(), "min_history is longer than history");
                }
                if history.0 > 400 * DAY || history.0 / bin.0 > 2000 {
                    self.sink.at(src, at.clone(), "percentile history is limited to 400d and 2000 evaluations");
                }
                Normalise::Percentile { history, min_history }
            }
            "ears" => {
                if !daily {
                    self.sink.at(src, at.clone(), "ears works on daily series: use hop \"1d\"");
                }
                let variant = match r.variant.as_ref().map(|s| s.get_ref().as_str()) {
                    Some("c1") => EarsVariant::C1,
                    Some("c2") | None => EarsVariant::C2,
                    Some("c3") => EarsVariant::C3,
                    Some(o) => {
                        self.sink.at(src, at.clone(), format!("unknown ears variant `{o}` (c1, c2, c3)"));
                        EarsVariant::C2
                    }
                };
                let sigma_min = r.sigma_min.as_ref().map(|w| *w.get_ref()).unwrap_or(0.5);
                Normalise::Ears { variant, sigma_min }
            }
            "ewma" => {
                if !daily {
                    self.sink.at(src, at.clone(), "ewma works on daily series: use hop \"1d\"");
                }
                Normalise::Ewma
            }
            _ => {
                if !daily {
                    self.sink.at(src, at.clone(), "cusum works on daily series: use hop \"1d\"");
                }
                let k = r.k.as_ref().map(|w| *w.get_ref()).unwrap_or(0.5);
                let h = r.h.as_ref().map(|w| *w.get_ref()).unwrap_or(4.0);
                if !(k.is_finite() && k >= 0.0 && h.is_finite() && h > 0.0) {
                    self.sink.at(src, at.clone(), "cusum needs k >= 0 and h > 0");
                }
                let baseline = dur(self, &r.baseline, 28 * DAY)?;
                self.bounded(src, at.clone(), "baseline", baseline, bin, 400 * DAY);
                Normalise::Cusum { k, h, baseline }
            }
        };
        Some(out)
    }

    /// Refuses a duration beyond `max`, or of more than 10,000 bins: each sizes a ring kept per
    /// region, so one mistyped value could otherwise claim all memory on a live reload.
    fn bounded(&mut self, src: &SourceText<'_>, at: Range<usize>, what: &str, d: Duration, bin: Duration, max: i64) {
        if d.0 > max || d.0 / bin.0.max(1) > 10_000 {
            self.sink.at(src, at, format!("{what} {d} is too long: at most {} and 10000 bins of {bin}", Duration(max)));
        }
    }

    fn tests(
        &mut self,
        src: &SourceText<'_>,
        raw: &[S<RawTest>],
        cx: &IndicatorCx<'_>,
        hop: Option<Duration>,
    ) -> Vec<IndicatorTest> {
        let mut out = Vec::new();
        for t in raw {
            let span = t.span();
            let t = t.get_ref();
            let events = t.events.get_ref().clone();
            if !self.files.files.contains_key(&events) {
                self.sink.at(
                    src,
                    span_of(&t.events),
                    format!("test fixture `{events}` not found (paths are relative to the rule set)"),
                );
            }
            if cx.regions.lookup(t.region.get_ref()).is_none() && !cx.regions.is_empty() {
                self.sink.at(src, span_of(&t.region), format!("unknown region `{}`", t.region.get_ref()));
            }
            let at = match vigil_model::time::parse_rfc3339(t.at.get_ref()) {
                Ok(ts) => ts,
                Err(_) => {
                    self.sink.at(src, span_of(&t.at), "`at` must be an RFC 3339 time with offset");
                    continue;
                }
            };
            if let Some(h) = hop
                && cx.zone.local(at).rem_euclid(h.0) != 0
            {
                self.sink.at(src, span_of(&t.at), format!("`at` must be on a hop boundary ({h}, local time)"));
            }
            let e = t.expect.get_ref();
            if e.value.is_none() && e.score_min.is_none() && e.score_max.is_none() && e.grey.is_none() {
                self.sink.at(src, span_of(&t.expect), "expect needs at least one of value, score_min, score_max, grey");
            }
            let (line, col) = src.line_col(span.start);
            out.push(IndicatorTest {
                events,
                region: t.region.get_ref().clone(),
                at,
                expect_value: e.value,
                score_min: e.score_min,
                score_max: e.score_max,
                grey: e.grey,
                origin: format!("{}:{line}:{col}", src.name),
            });
        }
        out
    }
}

struct IndicatorCx<'c> {
    sources: &'c [Source],
    regions: &'c Regions,
    taxonomies: &'c Taxonomies,
    categories: &'c [Category],
    zone: &'c Zone,
    /// The rule set's cadence, when ruleset.toml compiled.
    every: Option<Duration>,
}

/// What `[ruleset]` compiles to.
struct RulesetHead {
    name: String,
    zone: Zone,
    every: Duration,
    levels: Vec<String>,
    alert: Vec<bool>,
    evaluate: Vec<bool>,
    max_state_bytes: u64,
}

/// Splits `a, b(c, d), 'e,f'` at top-level commas.
fn split_args(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, false, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quote = !quote,
            '(' if !quote => depth += 1,
            ')' if !quote => depth -= 1,
            ',' if !quote && depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = s[start..].trim();
    if !last.is_empty() || !out.is_empty() {
        out.push(last);
    }
    out
}

/// Parses a measure such as `share(repeat_flag = TRUE)` against a source.
pub fn parse_measure(text: &str, source: &Source, tax: &Taxonomies) -> Result<Measure, String> {
    let text = text.trim();
    let (name, args) = match text.find('(') {
        Some(i) if text.ends_with(')') => (text[..i].trim(), split_args(&text[i + 1..text.len() - 1])),
        Some(_) => return Err(format!("`{text}`: missing closing parenthesis")),
        None => (text, Vec::new()),
    };
    let want = |n: usize| -> Result<(), String> {
        if args.len() == n { Ok(()) } else { Err(format!("`{name}` takes {n} argument(s), got {}", args.len())) }
    };
    let attr = |a: &str, numeric: bool| -> Result<usize, String> {
        let i = source
            .attr_index(a)
            .ok_or_else(|| format!("`{a}` is not a declared attribute of source `{}`", source.id))?;
        let ty = &source.attrs[i].ty;
        if numeric && !matches!(ty, AttrType::Int { .. } | AttrType::Float { .. }) {
            return Err(format!("`{a}` is not numeric"));
        }
        if !numeric && !matches!(ty, AttrType::Enum(_)) {
            return Err(format!("`{a}` is not an enum attribute"));
        }
        Ok(i)
    };
    let pred = |p: &str| -> Result<Pred, String> {
        filter::compile_filter(p, source, tax)
            .map(|c| c.pred)
            .map_err(|e| e.into_iter().map(|e| e.message).collect::<Vec<_>>().join("; "))
    };
    let int = |s: &str, lo: i64, hi: i64| -> Result<u32, String> {
        match s.parse::<i64>() {
            Ok(v) if (lo..=hi).contains(&v) => Ok(v as u32),
            _ => Err(format!("`{s}` must be an integer between {lo} and {hi}")),
        }
    };
    Ok(match name {
        "count" => {
            want(0)?;
            Measure::Count
        }
        "sum" => {
            want(1)?;
            Measure::Sum { attr: attr(args[0], true)? }
        }
        "mean" => {
            want(1)?;
            Measure::Mean { attr: attr(args[0], true)? }
        }
        "quantile" => {
            want(2)?;
            let q: f64 = args[1].parse().map_err(|_| format!("quantile level `{}` is not a number", args[1]))?;
            if !(q > 0.0 && q < 1.0) {
                return Err("quantile level must be strictly between 0 and 1".into());
            }
            let a = attr(args[0], true)?;
            if let AttrType::Int { min, .. } = source.attrs[a].ty
                && min < 0
            {
                return Err("quantile needs a non-negative attribute".into());
            }
            if let AttrType::Float { min, .. } = source.attrs[a].ty
                && min < 0.0
            {
                return Err("quantile needs a non-negative attribute".into());
            }
            Measure::Quantile { attr: a, q }
        }
        "share" => {
            want(1)?;
            Measure::Share { num: pred(args[0])? }
        }
        "ratio" => {
            want(2)?;
            Measure::Ratio { num: pred(args[0])?, den: pred(args[1])? }
        }
        "weighted_share" => {
            want(2)?;
            Measure::WeightedShare { attr: attr(args[0], true)?, num: pred(args[1])? }
        }
        "max_bin" => {
            want(0)?;
            Measure::MaxBin
        }
        "distinct_days" => {
            want(0)?;
            Measure::DistinctDays
        }
        "keys_at_least" => {
            want(2)?;
            Measure::KeysAtLeast { key: attr(args[0], false)?, n: int(args[1], 1, 1_000_000)? }
        }
        "keys_spread" => {
            want(3)?;
            Measure::KeysSpread { key: attr(args[0], false)?, by: attr(args[1], false)?, n: int(args[2], 1, 64)? }
        }
        "growth" => {
            want(2)?;
            let step = Duration::parse(args[0])?;
            if step.0 <= 0 {
                return Err("growth step must be positive".into());
            }
            Measure::Growth { step, n: int(args[1], 1, 52)? }
        }
        "overlap" => {
            want(2)?;
            Measure::Overlap { key: attr(args[0], false)?, top: int(args[1], 1, 64)? }
        }
        "coelevation" => {
            want(1)?;
            let alpha: f64 = args[0].parse().map_err(|_| format!("alpha `{}` is not a number", args[0]))?;
            if !(alpha > 0.0 && alpha < 0.5) {
                return Err("coelevation alpha must be between 0 and 0.5".into());
            }
            Measure::Coelevation { alpha }
        }
        other => {
            return Err(format!(
                "unknown measure `{other}` (count, sum, mean, quantile, share, ratio, weighted_share, max_bin, distinct_days, keys_at_least, keys_spread, growth, overlap, coelevation)"
            ));
        }
    })
}

/// Parses `regions.csv` into rows. The `population` column is optional, and so is its value on
/// any row. Errors carry (line, col, message).
pub fn parse_regions_csv(text: &str) -> Result<Vec<RegionSpec>, Vec<(usize, usize, String)>> {
    let mut errs = Vec::new();
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    let width = match lines.next().map(|(_, h)| h.trim().trim_start_matches('\u{feff}')) {
        Some("code,parent,level,name,population") => 5,
        Some("code,parent,level,name") => 4,
        _ => {
            errs.push((
                1,
                1,
                "first line must be the header `code,parent,level,name,population` (population may be left out)"
                    .to_string(),
            ));
            5
        }
    };
    for (i, line) in lines {
        let ln = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(|f| f.trim()).collect();
        if fields.len() != width {
            errs.push((ln, 1, format!("expected {width} fields, found {}", fields.len())));
            continue;
        }
        let population = match fields.get(4).copied().unwrap_or("") {
            "" => None,
            p => match p.parse::<u64>() {
                Ok(p) => Some(p),
                Err(_) => {
                    let col = line.rfind(',').map_or(1, |c| c + 2);
                    errs.push((ln, col, format!("population `{p}` is not a whole number (leave it blank if unknown)")));
                    continue;
                }
            },
        };
        if out.len() >= MAX_REGIONS {
            errs.push((ln, 1, format!("more than {MAX_REGIONS} regions")));
            break;
        }
        out.push(RegionSpec {
            code: fields[0].to_string(),
            parent: fields[1].to_string(),
            level: fields[2].to_string(),
            name: fields[3].to_string(),
            population,
        });
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

/// Checks the region rows form one tree whose root is of the first declared level and whose
/// every other region sits exactly one level below its parent, and builds the index. Errors
/// carry (row index, message).
pub fn build_regions(specs: &[RegionSpec], level_names: &[String]) -> Result<Regions, Vec<(usize, String)>> {
    let mut errs = Vec::new();
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by(|&a, &b| specs[a].code.cmp(&specs[b].code));
    let mut by_code: HashMap<String, u32> = HashMap::new();
    let mut row_of = Vec::with_capacity(specs.len());
    for (idx, &row) in order.iter().enumerate() {
        let s = &specs[row];
        if s.code.is_empty()
            || s.code.len() > 32
            || !s.code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            errs.push((row, format!("region code `{}` must be 1-32 letters, digits, - or _", s.code)));
        }
        if by_code.insert(s.code.clone(), idx as u32).is_some() {
            errs.push((row, format!("duplicate region code `{}`", s.code)));
        }
        row_of.push(row);
    }
    let n = order.len();
    let mut levels = vec![None; n];
    let mut parents = vec![None; n];
    let mut roots = 0;
    let declared = level_names.join(", ");
    for (idx, &row) in row_of.iter().enumerate() {
        let s = &specs[row];
        match level_names.iter().position(|l| *l == s.level) {
            Some(l) => levels[idx] = Some(l as u8),
            None => errs.push((
                row,
                format!(
                    "unknown level `{}` (declared: {declared}); write one of them, or declare the levels in ruleset.toml, e.g. levels = [\"city\", \"district\", \"{}\"]",
                    s.level, s.level
                ),
            )),
        }
        if s.parent.is_empty() {
            roots += 1;
        } else {
            match by_code.get(&s.parent) {
                Some(&p) => parents[idx] = Some(p),
                None => errs.push((row, format!("parent `{}` of `{}` is not a declared region", s.parent, s.code))),
            }
        }
    }
    if n == 0 {
        errs.push((0, "regions.csv declares no region: add at least the root (a row with an empty parent)".into()));
    } else if roots != 1 {
        errs.push((0, format!("the region tree needs exactly one root (a row with an empty parent), found {roots}")));
    }
    let mut chains = Vec::with_capacity(n);
    for idx in 0..n {
        let mut chain = vec![idx as u32];
        let mut cur = idx;
        let mut cycle = false;
        while let Some(p) = parents[cur] {
            if chain.contains(&p) || chain.len() > MAX_LEVELS {
                cycle = true;
                break;
            }
            chain.push(p);
            cur = p as usize;
        }
        let code = &specs[row_of[idx]].code;
        if cycle {
            errs.push((row_of[idx], format!("region `{code}` is part of a cycle in the parent links")));
        } else if let Some(l) = levels[idx] {
            // Levels are only judged where the region's own level is known, so that one bad
            // level name does not bring a second, misleading message about its children.
            let name = &level_names[l as usize];
            match parents[idx] {
                None if l != 0 => errs.push((
                    row_of[idx],
                    format!("region `{code}` has no parent, but only the root level `{}` may lack one", level_names[0]),
                )),
                Some(p) => {
                    if let Some(pl) = levels[p as usize]
                        && pl as usize + 1 != l as usize
                    {
                        let pcode = &specs[row_of[p as usize]].code;
                        let want = level_names
                            .get(pl as usize + 1)
                            .map_or("nothing (it is the finest level)".to_string(), |w| format!("a {w}"));
                        errs.push((
                            row_of[idx],
                            format!(
                                "region `{code}` is a {name} but its parent `{pcode}` is a {}: a {}'s children must be {want} (levels: {declared})",
                                level_names[pl as usize], level_names[pl as usize]
                            ),
                        ));
                    }
                }
                None => {}
            }
        }
        chains.push(chain);
    }
    if !errs.is_empty() {
        errs.sort();
        return Err(errs);
    }
    Ok(Regions {
        level_names: level_names.to_vec(),
        codes: row_of.iter().map(|&r| specs[r].code.clone()).collect(),
        names: row_of.iter().map(|&r| specs[r].name.clone()).collect(),
        levels: levels.into_iter().map(|l| l.unwrap_or(0)).collect(),
        parents,
        populations: row_of.iter().map(|&r| specs[r].population).collect(),
        chains,
        by_code,
    })
}
