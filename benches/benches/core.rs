//! Criterion benchmarks of the scoring core, per event: decoding, routing into bins (filter +
//! bin update for every indicator of the source, region and ancestors), and the whole core
//! with hourly evaluation of all 60 indicators. The naive hash-map aggregation of the same
//! routing is measured in the same run as the baseline.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_core::{Options, Pipeline, ScoreDetail, VecOutput};
use vigil_model::Event;
use vigil_rules::decode::{Decoder, SourceHint};

fn bench(c: &mut Criterion) {
    let rules = vigil_benches::default_rules();
    let lines = vigil_benches::city_lines(&rules, 7, 7, 1.0);
    let chains = vigil_benches::scored_chains(&rules);
    let events = vigil_benches::decode_all(&rules, &lines);
    let n = events.len() as u64;
    let opts = Options {
        scores: ScoreDetail::None,
        score_levels: vigil_core::ScoreLevels::NONE,
        score_filter: vigil_core::ScoreFilter::All,
        score_every: None,
    };

    let mut g = c.benchmark_group("core");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("decode", |b| {
        let decoder = Decoder::new(&rules);
        let mut ev = Event::default();
        b.iter(|| {
            for (s, l) in &lines {
                black_box(decoder.decode(SourceHint::Fixed(*s), l.as_bytes(), &mut ev).ok());
            }
        })
    });
    g.bench_function("ingest (filter + bin update)", |b| {
        b.iter_batched_ref(
            || Pipeline::new(rules.clone(), opts),
            |p| {
                for ev in &events {
                    black_box(p.ingest(ev));
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("ingest + hourly evaluation", |b| {
        b.iter_batched_ref(
            || Pipeline::new(rules.clone(), opts),
            |p| {
                let mut out = VecOutput::default();
                for ev in &events {
                    p.advance(ev.ts, &mut out);
                    p.ingest(ev);
                }
                black_box(out.alerts.len())
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("baseline: hash-map routing", |b| {
        b.iter(|| {
            let n = vigil_benches::hashmap_routing(&rules, &chains, &events);
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
