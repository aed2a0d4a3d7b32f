//! Evidence alarms inside the pipeline (docs/methodology.md §16): at each evaluation of the
//! scanned count indicators, every (region, indicator) cut is scanned over its own history
//! ring; a region's evidence is its strongest cut once the excess of child regions that alarm
//! on their own is taken out (so a parent whose excess is a child's links to it instead of
//! opening its own episode); its level is the highest whose threshold that evidence reaches.
//! Kept apart from the composite index: one strong signal is never averaged away.

use vigil_model::Level;
use vigil_model::record::{AlertRecord, Evidence};
use vigil_model::time::{DAY, format_utc};
use vigil_rules::{AlarmCut, RuleSet};
use vigil_scan::{Cut, Params};
use vigil_score::history::History;

use crate::explain::{Period, round};
use crate::pipeline::UnitCount;

/// One region's evidence at one evaluation, as drivers see it ([`crate::Output::evidence`]):
/// every scanned region (active, of a level that raises alerts).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegionEvidence {
    pub region: u32,
    /// The statistic the level is set on (after linking).
    pub stat: f64,
    /// The cut named, by indicator index.
    pub indicator: Option<usize>,
}

/// Working space of the scan, reused between evaluations. The cuts' latest evidence and weekday
/// factors are state (`State::cuts`, `State::factors`): an indicator with a daily hop keeps
/// them between the hourly evaluations of others, across a restart too.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Per alarm cut: weekday factors, indexed by local weekday (Monday 0), as of the cut's
    /// last evaluation (a copy of the state's, for the cut being worked on).
    pub factors: Vec<[f64; 7]>,
    xs: Vec<f64>,
    fs: Vec<f64>,
    refs: Vec<f64>,
    /// The share cut's city count per window, for (cut, boundary) `city_of`.
    city: Vec<f64>,
    city_of: Option<(usize, i64)>,
    weekdays: Vec<u8>,
    pub samples: Vec<RegionEvidence>,
    /// Per scored slot, its strongest cut's statistic at the boundary being graded (0 where
    /// not scanned): kept to be reused, not reallocated at every boundary.
    pub raw: Vec<f64>,
    /// Per alarm cut: the float of its indicator's history entries that holds its unit counts
    /// (0, the window value itself, when the unit is the window).
    at: Vec<usize>,
}

impl Scratch {
    pub fn new(rules: &RuleSet, units: &[Option<UnitCount>]) -> Scratch {
        let cuts: &[AlarmCut] = rules.alarm.as_ref().map_or(&[], |a| &a.cuts);
        let at = cuts.iter().map(|c| units[c.indicator].map_or(0, |u| u.at)).collect();
        Scratch { factors: vec![[1.0; 7]; cuts.len()], at, ..Scratch::default() }
    }
}

/// Units of history in ring entries, read once the ring has advanced past the evaluation:
/// block `j` (0 = the unit just closed) sits `j · k + 1` entries back, `k` the indicator's
/// hops per unit, in float `at` of the entry.
fn block(hist: &History, slot: usize, j: usize, k: usize, at: usize) -> f64 {
    let evals = hist.evals.saturating_sub(1) as usize;
    let lag = j * k;
    // A unit that began before the stream did undercounts: unknown, as for every baseline.
    if evals + 1 < lag + k {
        return f64::NAN;
    }
    hist.value_at(slot, lag + 1, at).unwrap_or(f64::NAN)
}

/// The local weekday (Monday 0) of the unit that ends `j` units before boundary `b`.
fn weekday(b: i64, unit: i64, j: usize) -> u8 {
    let start = b - (j as i64 + 1) * unit;
    (start.div_euclid(DAY) + 3).rem_euclid(7) as u8
}

pub(crate) fn params(cut: &AlarmCut, counted: bool) -> Params {
    Params { windows: cut.windows, baseline: cut.baseline, counted }
}

/// Where a cut's units lie in its history ring: the boundary its newest unit ends on, the unit
/// ([`AlarmCut::unit`]) and hops per unit (`k`). Every read comes after the ring has advanced
/// past that boundary.
#[derive(Clone, Copy)]
struct Geo {
    b: i64,
    unit: i64,
    k: usize,
}

impl Geo {
    fn of(rules: &RuleSet, cut: &AlarmCut, b: i64) -> Geo {
        let hop = rules.indicators[cut.indicator].hop.0;
        Geo { b, unit: cut.unit, k: cut.hops_per_unit(hop) }
    }
}

/// A region takes its share of the rest of the city only while it is at most a quarter of the
/// city (its own count at most a third of the rest's): the rest's own noise, which widens the
/// predictive by the ratio of the two, would otherwise cost more than city-wide swings do.
const SHARE_AT_MOST: f64 = 1.0 / 3.0;

/// Fills the scratch series with one slot's blocks and exposures for cut `c`, newest first:
/// the rest of the city's count of the share cut plus one (a top region has no rest of the
/// city; a large one is better served by its own history, [`SHARE_AT_MOST`]), else the weekday
/// factors. Returns whether the exposures are counts.
fn gather(hists: &[&History], slot: usize, c: usize, cut: &AlarmCut, g: Geo, tops: &[u32], sc: &mut Scratch) -> bool {
    let span = params(cut, false).span();
    sc.xs.clear();
    sc.fs.clear();
    let (mut own, mut rest) = (0.0, 0.0);
    if let Some(r) = cut.share.filter(|_| !tops.contains(&(slot as u32))) {
        // The city's count of the share cut, window by window, is the same for every slot:
        // summed once per cut and boundary.
        if sc.city_of != Some((c, g.b)) {
            sc.city.clear();
            let at = sc.at[r];
            sc.city
                .extend((0..span).map(|j| tops.iter().map(|&t| block(hists[r], t as usize, j, g.k, at)).sum::<f64>()));
            sc.city_of = Some((c, g.b));
        }
        for j in 0..span {
            let city = sc.city[j];
            let mine = block(hists[r], slot, j, g.k, sc.at[r]);
            if (city - mine).is_finite() {
                own += mine;
                rest += city - mine;
            }
            sc.fs.push(city - mine + 1.0);
        }
    }
    let share = !sc.fs.is_empty() && own <= SHARE_AT_MOST * rest;
    if !share {
        sc.fs.clear();
        sc.fs.extend((0..span).map(|j| match g.unit {
            DAY => sc.factors[c][weekday(g.b, g.unit, j) as usize],
            _ => 1.0,
        }));
    }
    let at = sc.at[c];
    sc.xs.extend((0..span).map(|j| block(hists[c], slot, j, g.k, at)));
    share
}

/// Scans cut `c` for every `scanned` slot (active, of an alerting level) at boundary `b`, once
/// every ring has advanced past it (`hists[c]` is the cut's ring, `hists[r]` that of its share cut). `tops` are the scored
/// slots with no scored ancestor: their sum is the city the shares are taken of, and the
/// reference the weekday factors of the tops themselves come from (reporting artefacts are
/// city-wide; one cut's few events could not show them).
#[allow(clippy::too_many_arguments)]
pub(crate) fn scan_cut(
    rules: &RuleSet,
    c: usize,
    hists: &[&History],
    b: i64,
    tops: &[u32],
    scanned: &[bool],
    sc: &mut Scratch,
    out: &mut [Cut],
) {
    let Some(alarm) = &rules.alarm else { return };
    let cut = &alarm.cuts[c];
    let g = Geo::of(rules, cut, b);
    let (k, at) = (g.k, sc.at[c]);
    let span = params(cut, false).span();
    let hist = hists[c];
    sc.factors[c] = [1.0; 7];
    if cut.unit == DAY {
        sc.refs.clear();
        sc.weekdays.clear();
        for j in 1..=span {
            let v: f64 = tops.iter().map(|&t| block(hist, t as usize, j, k, at)).sum();
            sc.refs.push(v);
            sc.weekdays.push(weekday(b, cut.unit, j));
        }
        sc.factors[c] = vigil_scan::weekday_factors(&sc.refs, &sc.weekdays);
    }
    for (slot, o) in out.iter_mut().enumerate() {
        if !scanned[slot] {
            *o = Cut::default();
            continue;
        }
        // An empty newest window is never in excess (every expectation is above zero): most cuts
        // of a fine region, most of the time, cost one ring read.
        let newest = block(hist, slot, 0, k, at);
        if newest.is_nan() || newest <= 0.0 {
            *o = Cut::default();
            continue;
        }
        // A unit of several hops holds a burst for a whole unit after its last event (a 24-hour
        // count, a day), each hop alarming again on the same events. Such a cut is scanned only
        // where its newest hop brought in more events than left the unit: while the excess
        // grows, not at every hop that reads it again. (Stricter, the newest unit the highest
        // of the unit's hops, cost incidents of several days on the synthetic city:
        // docs/methodology.md §16.5.) With one hop per unit this is the newest-window rule of
        // the scan itself.
        if k > 1 && hist.value_at(slot, 2, at).is_some_and(|before| newest <= before) {
            *o = Cut::default();
            continue;
        }
        let counted = gather(hists, slot, c, cut, g, tops, sc);
        *o = vigil_scan::scan(&sc.xs, &sc.fs, &params(cut, counted));
    }
}

/// The outcome of one region at one evaluation.
pub(crate) struct Verdict {
    /// The strongest cut's statistic: what the level is set on.
    pub stat: f64,
    /// The cut named and its own statistic (the record's counts, p-value and recurrence are all
    /// this cut's).
    pub cut: Option<usize>,
    pub named_stat: f64,
    /// Sources whose strongest cut reaches p ≤ 0.05, when two or more do (关联预警).
    pub sources: Vec<usize>,
    /// Their combined statistic (Fisher's method), 0 when fewer than two agree.
    pub joint: f64,
    pub level: Option<Level>,
    /// Child slots whose excess was taken out.
    pub linked: Vec<u32>,
}

/// The region's evidence after linking: every cut's statistic recomputed without the excess of
/// the `children` (slot, whether it alarms) that alarm, and, where the cut reaches the lowest
/// threshold, of those whose own excess over the same scan would reach it; then the strongest
/// cut, or the joint evidence of the sources that agree where stronger; the cut named is the
/// strongest or one of its category children within half a decade of it or carrying at least
/// half of its excess.
#[allow(clippy::too_many_arguments)]
pub(crate) fn verdict(
    rules: &RuleSet,
    (slot, slot_regions): (usize, &[u32]),
    children: &[(u32, bool)],
    hists: &[&History],
    cuts: &[Vec<Cut>],
    b: i64,
    tops: &[u32],
    sc: &mut Scratch,
) -> Verdict {
    let alarm = rules.alarm.as_ref().expect("verdict without alarm rules");
    // Each region is judged at its own region level's thresholds (`region_level_thresholds`).
    let level_of = |s: usize| rules.regions.levels[slot_regions[s] as usize];
    let region_level = level_of(slot);
    let lowest = alarm.lowest_threshold(region_level);
    let mut stats: Vec<f64> = Vec::with_capacity(alarm.cuts.len());
    let mut linked = Vec::new();
    let any_alarms = children.iter().any(|c| c.1);
    for (c, cut) in alarm.cuts.iter().enumerate() {
        let own = cuts[c][slot];
        // Children that do not alarm are looked at only where the cut could raise a level.
        let all = own.stat >= lowest;
        if children.is_empty() || own.windows == 0 || (!all && !any_alarms) {
            stats.push(own.stat);
            continue;
        }
        let hop = rules.indicators[cut.indicator].hop.0;
        let w = own.windows as usize;
        // The boundary of the cut's last evaluation (its ring has advanced past it).
        let g = Geo::of(rules, cut, b - b.rem_euclid(hop));
        let mut excess = 0.0;
        for &(ch, alarms) in children {
            if !alarms && !all {
                continue;
            }
            let counted = gather(hists, ch as usize, c, cut, g, tops, sc);
            // A child's excess over the same scan is taken out when the child alarms, or when
            // that excess would itself reach the lowest level: a burst in a child that has
            // ended still explains its parent's excess over a scan that holds it.
            if let Some((obs, exp, stat)) = vigil_scan::tail_at(&sc.xs, &sc.fs, w, &params(cut, counted))
                && obs > exp
                && (alarms || stat >= alarm.lowest_threshold(level_of(ch as usize)))
            {
                excess += obs - exp;
                if !linked.contains(&ch) {
                    linked.push(ch);
                }
            }
        }
        // Never above the cut's own statistic, which may be held down by its series' record.
        stats.push(vigil_scan::tail_stat(own.observed - excess, own.expected, own.phi_eff).min(own.stat));
    }
    // The strongest cut (ties: the first), then one of its category children within half a
    // decade of it, if any: "street assaults" says more than "assaults" at about the same
    // strength.
    let strongest = (0..stats.len()).filter(|&c| stats[c] > 0.0).fold(None, |acc: Option<usize>, c| match acc {
        Some(a) if stats[a] >= stats[c] => Some(a),
        _ => Some(c),
    });
    let best = strongest.map_or(0.0, |c| stats[c]);
    let excess = |c: usize| cuts[c][slot].observed - cuts[c][slot].expected;
    let named = strongest.map(|b| {
        let parent = alarm.cuts[b].indicator;
        // A category child is named when about as strong, or when it carries most of the
        // excess itself (9 street assaults of 10, the street cut's tail being the wider).
        let explains = |c: usize| stats[c] >= best - 0.5 || (stats[c] >= AGREE && excess(c) >= 0.5 * excess(b));
        (0..stats.len())
            .filter(|&c| alarm.cuts[c].parent == Some(parent) && stats[c] > 0.0 && explains(c))
            .fold(None, |acc: Option<usize>, c| match acc {
                Some(a) if stats[a] >= stats[c] => Some(a),
                _ => Some(c),
            })
            .unwrap_or(b)
    });
    // Sources that rise together (关联预警): each source's strongest cut, and where two or more
    // reach p ≤ 0.05, their p-values combined by Fisher's method. The joint statistic competes
    // with the single cuts for the region's level; the calibration sees it like any other.
    let mut by_source = vec![0.0f64; rules.sources.len()];
    for (c, cut) in alarm.cuts.iter().enumerate() {
        let s = rules.indicators[cut.indicator].source as usize;
        by_source[s] = by_source[s].max(stats[c]);
    }
    let sources: Vec<usize> = (0..by_source.len()).filter(|&s| by_source[s] >= AGREE).collect();
    let joint = if sources.len() >= 2 { fisher(sources.iter().map(|&s| by_source[s])) } else { 0.0 };
    let sources = if sources.len() >= 2 { sources } else { Vec::new() };
    linked.sort_unstable();
    let stat = best.max(joint);
    Verdict {
        stat,
        cut: named,
        named_stat: named.map_or(0.0, |c| stats[c]),
        sources,
        joint,
        level: alarm.level_for(region_level, stat),
        linked,
    }
}

/// A source agrees when its strongest cut reaches p ≤ 0.05.
const AGREE: f64 = 1.301_029_995_663_981_2;

/// Fisher's combination of independent p-values given as −log10 p: −log10 P(χ²₂ₖ ≥ −2 Σ ln pᵢ),
/// with P(χ²₂ₖ ≥ x) = Q(k, x/2).
pub(crate) fn fisher(stats: impl Iterator<Item = f64>) -> f64 {
    let (mut k, mut half) = (0usize, 0.0);
    for s in stats {
        k += 1;
        half += s * std::f64::consts::LN_10;
    }
    if k == 0 {
        return 0.0;
    }
    let q = vigil_score::stats::reg_inc_gamma_q(k as f64, half);
    if q.is_finite() { -q.max(1e-300).log10() } else { 0.0 }
}

/// The alert record of an evidence transition; `b` is the local boundary evaluated.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    rules: &RuleSet,
    (r, slot): (usize, usize),
    b: i64,
    p: &Period,
    v: &Verdict,
    tr: vigil_alert::Transition,
    cuts: &[Vec<Cut>],
    slot_regions: &[u32],
) -> AlertRecord {
    let alarm = rules.alarm.as_ref().expect("record without alarm rules");
    let region_level = rules.regions.levels[r];
    let points = alarm.recurrence_points(region_level);
    let evidence = v.cut.map(|c| {
        let cut = cuts[c][slot];
        let unit = alarm.cuts[c].unit;
        let ind = &rules.indicators[alarm.cuts[c].indicator];
        let recurrence = vigil_scan::recurrence::interpolate(&points, v.named_stat);
        // The cut's scan ends at its own last evaluation (a daily cut read at a later hour).
        let last = b - b.rem_euclid(ind.hop.0);
        let since = rules.zone.utc(last - cut.windows as i64 * unit);
        let p_value = 10f64.powf(-v.named_stat);
        let linked: Vec<String> =
            v.linked.iter().map(|&s| rules.regions.codes[slot_regions[s as usize] as usize].clone()).collect();
        let span = span_words(cut.windows as i64 * unit);
        let mut summary = format!(
            "{} in {}: {} in {} against {:.1} expected; an excess like this happens by chance {} {}",
            ind.name.en,
            rules.regions.names[r],
            cut.observed,
            span,
            cut.expected,
            every(round_days(recurrence)),
            if alarm.per_region { "in one region" } else { "across the rule set" },
        );
        if !linked.is_empty() {
            summary.push_str(&format!(" (excess of {} taken out)", linked.join(", ")));
        }
        let sources: Vec<String> = v.sources.iter().map(|&s| rules.sources[s].id.clone()).collect();
        if !sources.is_empty() {
            let together = vigil_scan::recurrence::interpolate(&points, v.joint);
            summary.push_str(&format!(
                "; {} rise together here, which by chance happens {}",
                sources.join(", "),
                every(round_days(together))
            ));
        }
        if let Some(l) = v.level.and_then(|l| alarm.levels_at(region_level)[l.rank() as usize - 1]) {
            summary.push_str(&format!(
                "; {} is once in {:.0} days or rarer",
                l.level.as_str(),
                round_days(l.recurrence_days)
            ));
        }
        Evidence {
            indicator: ind.id.clone(),
            indicator_name: ind.name.en.clone(),
            category: rules.categories[ind.category].id.clone(),
            windows: cut.windows as u32,
            window: vigil_model::Duration(unit).to_string(),
            since: format_utc(since),
            observed: cut.observed,
            expected: round(cut.expected, 2),
            p_value,
            statistic: round(v.named_stat, 2),
            recurrence_days: round_days(recurrence),
            linked,
            sources,
            summary,
        }
    });
    let top = v
        .cut
        .map(|c| {
            let cut = cuts[c][slot];
            let ind = &rules.indicators[alarm.cuts[c].indicator];
            vec![vigil_model::record::IndicatorScore {
                indicator: ind.id.clone(),
                name: Some(vigil_model::record::Names { zh: ind.name.zh.clone(), en: ind.name.en.clone() }),
                value: Some(cut.observed),
                expected: Some(round(cut.expected, 2)),
                score: Some(round(v.named_stat, 2)),
            }]
        })
        .unwrap_or_default();
    AlertRecord {
        top_contributors: top,
        evidence,
        ..crate::explain::alert_head(rules, r, p, "evidence", Some(round(v.stat, 2)), &tr)
    }
}

/// "the last day", "the last 3 days", "the last 6 hours".
fn span_words(ms: i64) -> String {
    let hours = ms / vigil_model::time::HOUR;
    match (hours % 24, hours / 24) {
        (0, 1) => "the last day".to_string(),
        (0, d) => format!("the last {d} days"),
        _ if hours == 1 => "the last hour".to_string(),
        _ => format!("the last {hours} hours"),
    }
}

/// Days to two significant figures, at least 1 and at most a million (beyond, the tail
/// extrapolation means nothing more than "never by chance").
fn round_days(d: f64) -> f64 {
    if d.is_nan() || d >= 1e6 {
        return 1e6;
    }
    if d < 10.0 {
        return d.round().max(1.0);
    }
    let m = 10f64.powi(d.log10().floor() as i32 - 1);
    (d / m).round() * m
}

/// "once every N days", or the floor of the scale.
fn every(d: f64) -> String {
    if d >= 1e6 { "less than once in a million days".to_string() } else { format!("about once every {d:.0} days") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_agrees_with_scipy() {
        // scipy.stats.combine_pvalues(ps, method="fisher")
        let cases: [(&[f64], f64); 3] = [
            (&[0.01, 0.02], 0.0019034386382832487),
            (&[0.04, 0.03, 0.05], 0.0034783020092477492),
            (&[1e-5, 0.05], 7.754328869262112e-06),
        ];
        for (ps, want) in cases {
            let got = fisher(ps.iter().map(|p| -p.log10()));
            assert!((got - -want.log10()).abs() < 1e-9, "{ps:?}: {got} vs {}", -want.log10());
        }
        assert_eq!(fisher(std::iter::empty()), 0.0);
    }
}
