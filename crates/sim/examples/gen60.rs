//! Generates the default 60-day run for 清河市 and prints the volume per source, the injected
//! incidents and the wall time: a quick check of the generator's scale and speed.
//!
//! `cargo run --release -p vigil-sim --example gen60 [seed] [out-dir]`; with an output
//! directory it also writes `<source>.jsonl` and `ground_truth.json` there.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use vigil_sim::{EventSink, GenConfig, JsonlSink, SOURCES, default_city, generate};

/// Counts events and bytes per source, and writes them when given files.
#[derive(Default)]
struct Count {
    counts: BTreeMap<String, (u64, u64)>,
    files: Option<JsonlSink<BufWriter<File>>>,
}

impl EventSink for Count {
    fn emit(&mut self, source: &str, line: &str) -> io::Result<()> {
        let e = self.counts.entry(source.to_string()).or_default();
        e.0 += 1;
        e.1 += line.len() as u64 + 1;
        match &mut self.files {
            Some(f) => f.emit(source, line),
            None => Ok(()),
        }
    }
}

fn main() {
    let seed = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let cfg = GenConfig { seed, ..GenConfig::default() };
    let city = default_city();
    let out_dir = std::env::args().nth(2).map(PathBuf::from);
    let mut sink = Count::default();
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir).expect("create output directory");
        let open = |s: &str| BufWriter::new(File::create(dir.join(format!("{s}.jsonl"))).unwrap());
        let [p, c, s, o] = SOURCES.map(open);
        sink.files = Some(JsonlSink::new(p, c, s, o));
    }
    let t = Instant::now();
    let truth = generate(&cfg, &city, &mut sink).expect("generation failed");
    if let Some(files) = sink.files.take() {
        for mut w in files.into_inner() {
            w.flush().expect("flush");
        }
    }
    let elapsed = t.elapsed();
    let mut total = 0;
    for (source, (n, bytes)) in &sink.counts {
        total += n;
        println!(
            "{source:<9} {n:>9} events  {:>7.0}/day  {:>6.1} MB",
            *n as f64 / cfg.days as f64,
            *bytes as f64 / 1e6
        );
    }
    println!("total     {total:>9} events in {:.2} s", elapsed.as_secs_f64());
    let truth = serde_json::to_string_pretty(&truth).unwrap();
    println!("{truth}");
    if let Some(dir) = &out_dir {
        std::fs::write(dir.join("ground_truth.json"), truth + "\n").expect("write ground truth");
    }
}
