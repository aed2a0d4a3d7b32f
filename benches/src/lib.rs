//! Shared fixtures of vigil's benchmarks: the default rule set, a generated stream of the
//! synthetic city merged in event-time order, and a few measurements of the process.

use std::path::Path;
use std::sync::Arc;

use vigil_model::Event;
use vigil_rules::RuleSet;
use vigil_rules::decode::{Decoder, SourceHint};
use vigil_sim::{GenConfig, IncidentPlan, MemorySink};

/// The default rule set of the repository.
pub fn default_rules() -> Arc<RuleSet> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    Arc::new(vigil_rules::load(&dir).unwrap_or_else(|d| panic!("{d}")))
}

/// `days` of the synthetic city as (source index, JSON line), merged in event-time order.
pub fn city_lines(rules: &RuleSet, days: u32, seed: u64, volume: f64) -> Vec<(u8, String)> {
    let regions = rules.regions.specs();
    let cfg = GenConfig { seed, days, volume, incidents: IncidentPlan::Auto, ..GenConfig::default() };
    let mut sink = MemorySink::default();
    vigil_sim::generate(&cfg, &regions, &mut sink).expect("generate");
    let decoder = Decoder::new(rules);
    let mut all: Vec<(i64, u8, String)> = Vec::new();
    for (source, lines) in sink.lines {
        let s = rules.source_index(&source).expect("source");
        for line in lines {
            let mut ev = Event::default();
            decoder.decode(SourceHint::Fixed(s), line.as_bytes(), &mut ev).expect("generated events decode");
            all.push((ev.ts, s, line));
        }
    }
    all.sort_by_key(|a| (a.0, a.1));
    all.into_iter().map(|(_, s, l)| (s, l)).collect()
}

/// Decodes lines into events.
pub fn decode_all(rules: &RuleSet, lines: &[(u8, String)]) -> Vec<Event> {
    let decoder = Decoder::new(rules);
    lines
        .iter()
        .map(|(s, l)| {
            let mut ev = Event::default();
            decoder.decode(SourceHint::Fixed(*s), l.as_bytes(), &mut ev).expect("decode");
            ev
        })
        .collect()
}

/// Peak resident memory of this process in KiB (Linux), if known.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// A line describing the machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores available")
}

/// For each region, the regions an event of it counts for under the rules' scored levels.
pub fn scored_chains(rules: &RuleSet) -> Vec<Vec<u32>> {
    rules.regions.chains.iter().map(|c| c.iter().copied().filter(|&x| rules.is_scored(x as usize)).collect()).collect()
}

/// The baseline of the routing benchmark: the same filter and routing as the pipeline, counted
/// into a `HashMap<(indicator, region, bin), count>`. Returns the number of keys.
pub fn hashmap_routing(rules: &RuleSet, chains: &[Vec<u32>], events: &[Event]) -> usize {
    use std::collections::HashMap;
    let mut map: HashMap<(u16, u32, i64), u64> = HashMap::new();
    for ev in events {
        let cx = vigil_rules::filter::EvalCtx::new(ev, &rules.zone);
        for (i, ind) in rules.indicators.iter().enumerate() {
            if ind.source != ev.source || !ind.filter.matches(&cx) {
                continue;
            }
            let bin = rules.zone.local(ev.ts).div_euclid(ind.bin.0);
            for &r in &chains[ev.region as usize] {
                *map.entry((i as u16, r, bin)).or_default() += 1;
            }
        }
    }
    map.len()
}

/// CPU seconds this process has used (user + system), from /proc/self/stat (100 ticks per second
/// on Linux).
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
