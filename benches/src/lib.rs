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
    let r = &rules.regions;
    let regions: Vec<vigil_model::RegionSpec> = (0..r.len())
        .map(|i| vigil_model::RegionSpec {
            code: r.codes[i].clone(),
            parent: r.parents[i].map(|p| r.codes[p as usize].clone()).unwrap_or_default(),
            level: r.level_name(i as u32).to_string(),
            name: r.names[i].clone(),
            population: r.populations[i],
        })
        .collect();
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
    let r = &rules.regions;
    r.chains
        .iter()
        .map(|c| c.iter().copied().filter(|&x| rules.evaluate_levels[r.levels[x as usize] as usize]).collect())
        .collect()
}
