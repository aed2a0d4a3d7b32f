//! Fuzzing on the stable toolchain: mutation fuzzers for the three places where untrusted text
//! enters vigil — the event decoder (every Kafka message), the rule compiler (every rule file)
//! and the filter expression compiler. Each runs for a time budget (`VIGIL_FUZZ_SECS` per
//! target, default 3; `.ci/run` sets 60) from a seed corpus of valid inputs, applying random
//! byte and token mutations, and requires: no panic, an answer (Ok, or an error that says what
//! is wrong), and no input beyond the declared limits accepted.
//!
//! A failing input is printed (escaped) with the seed; add it to `REGRESSIONS` below so that it
//! is replayed by every run from then on. `VIGIL_FUZZ_SEED` repeats a run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use vigil_rules::decode::{Decoder, SourceHint};
use vigil_rules::testing as mini;
use vigil_rules::{RuleFiles, compile};

/// Inputs that once broke a target, replayed first by every run (target, input).
const REGRESSIONS: &[(&str, &str)] = &[
    ("decode", r#"{"region":"G1","ts":"2026-03-02T10:00:00+08:00","attrs":{"response_minutes":1e999}}"#),
    ("decode", r#"{"region":"G1","ts":-9223372036854775808,"attrs":{}}"#),
    (
        "filter",
        "incident_type IN (((((((((((((((((((((((((((((((((((((((((((((((((((('theft'))))))))))))))))))))))))))))))))))))))))))))))))))))",
    ),
];

/// Tokens spliced into inputs: the syntax of JSON, TOML and SQL, and awkward values.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "'",
    "=",
    "\n",
    "[[indicator]]",
    "[[source]]",
    "null",
    "true",
    "-1",
    "1e308",
    "1e999",
    "-0",
    "NaN",
    "\u{0}",
    "\\u0000",
    "\u{feff}",
    "é",
    "区",
    " AND ",
    " OR ",
    " NOT ",
    "(",
    ")",
    " IN ",
    " BETWEEN ",
    " IS NULL",
    "<=",
    "<>",
    "9223372036854775807",
    "\"attrs\":",
    "\"ts\":",
    "\"region\":",
    "window = \"",
    "measure = ",
    "filter = \"",
    "\"\"\"",
    "#",
    "..",
    // The limits that size state, and their neighbours (the pipeline is built from what passes).
    "lag = \"364d\"\n",
    "baseline = \"400d\"",
    "guard = \"28d\"",
    "max_state_mib = 1\n",
    "dedup_capacity = 16777216\n",
    "dedup_horizon = \"7d\"\n",
    "max_ahead = \"30d\"\n",
    "levels = [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\"]\n",
    "timezone = \"America/Chicago\"\n",
    "evaluate_every = \"1d\"\n",
    "9999999d",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to eight random mutations of `input`.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.insert(at, rng.next() as u8),
            2 if at < v.len() => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                v.drain(at..end);
            }
            3 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            4 if at < v.len() => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                let chunk = v[at..end].to_vec();
                v.splice(at..at, chunk);
            }
            5 => v.truncate(at),
            _ => {
                // Repeat a token many times: nesting and length limits.
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                for _ in 0..rng.below(200) {
                    v.splice(at..at, t.iter().copied());
                }
            }
        }
    }
    v
}

fn budget() -> Duration {
    let secs = std::env::var("VIGIL_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Runs `target` on mutations of `corpus` until the budget is spent; a panic is reported with
/// the input that caused it. Returns the number of inputs tried.
fn fuzz(name: &str, corpus: &[Vec<u8>], mut target: impl FnMut(&[u8])) -> u64 {
    let seed = std::env::var("VIGIL_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let mut rng = Rng(seed | 1);
    let mut run = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            panic!(
                "fuzz target {name} panicked (VIGIL_FUZZ_SEED={seed}) on input:\n{:?}",
                String::from_utf8_lossy(input)
            );
        }
    };
    for (t, input) in REGRESSIONS {
        if *t == name {
            run(input.as_bytes());
        }
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < budget() {
        let base = &corpus[rng.below(corpus.len())];
        run(&mutate(&mut rng, base));
        n += 1;
    }
    eprintln!("fuzz {name}: {n} inputs in {:.1}s, seed {seed}", started.elapsed().as_secs_f64());
    n
}

#[test]
fn fuzz_event_decoder() {
    let rules = compile(&mini::files_with(&[])).unwrap();
    let decoder = Decoder::new(&rules);
    let mut corpus: Vec<Vec<u8>> = mini::SLOW_FIXTURE.lines().map(|l| l.as_bytes().to_vec()).collect();
    // The envelope's other shapes: an id, undeclared fields, the source named before and after
    // `attrs`, escapes, `attrs` null.
    corpus.extend(
        [
            r#"{"id":"x","source":"police","region":"G1","name":"n","ts":1772416800000,"attrs":{"incident_type":"fight","phone":"1","priority":2}}"#,
            r#"{"attrs":{"incident_type":"theft","urgent":true},"region":"G\u0031","extra":[1,{"a":null}],"ts":"2026-03-02T10:00:00+08:00","source":"police"}"#,
            r#"{"region":"G1","ts":"2026-03-02T10:00:00+08:00","attrs":null}"#,
        ]
        .map(|l| l.as_bytes().to_vec()),
    );
    let n = fuzz("decode", &corpus, |input| {
        let mut ev = vigil_model::Event::default();
        let mut reference = vigil_model::Event::default();
        for hint in [SourceHint::Fixed(0), SourceHint::Default(0), SourceHint::None] {
            let got = decoder.decode(hint, input, &mut ev);
            // The one-pass decoder gives the three-pass reference's answer: the same event, or
            // the same rejection.
            let want = decoder.decode_reference(hint, input, &mut reference);
            assert_eq!(got, want, "decode and decode_reference disagree on {:?}", String::from_utf8_lossy(input));
            if got.is_ok() {
                let attrs = |e: &vigil_model::Event| (0..32).map(|i| e.get(i)).collect::<Vec<_>>();
                assert_eq!(
                    (ev.source, ev.region, ev.ts, ev.id_hash, attrs(&ev)),
                    (reference.source, reference.region, reference.ts, reference.id_hash, attrs(&reference)),
                    "decode and decode_reference read {:?} differently",
                    String::from_utf8_lossy(input)
                );
            }
            match got {
                Ok(_) => {
                    assert!((ev.region as usize) < rules.regions.len());
                    assert!(
                        input.len() <= vigil_rules::decode::DEFAULT_MAX_EVENT_BYTES,
                        "an oversize message was accepted"
                    );
                }
                Err(r) => assert!(!r.detail.is_empty(), "a rejection without a reason"),
            }
        }
    });
    assert!(n > 0);
}

#[test]
fn fuzz_rule_compiler() {
    let base = mini::files_with(&[]);
    let names: Vec<String> = base.files.keys().cloned().collect();
    let corpus: Vec<Vec<u8>> = (0..names.len()).map(|i| vec![i as u8]).collect();
    let mut rng = Rng(0x5eed);
    let n = fuzz("compile", &corpus, |pick| {
        // Mutate one file of the mini rule set (picked by the corpus entry), keep the others.
        let name = &names[pick.first().copied().unwrap_or(0) as usize % names.len()];
        let text = mutate(&mut rng, base.files[name].as_bytes());
        let mut files = RuleFiles { files: base.files.clone() };
        files.files.insert(name.clone(), String::from_utf8_lossy(&text).into_owned());
        match compile(&files) {
            Err(diags) => {
                assert!(!diags.0.is_empty(), "rejected without a diagnostic");
                for d in &diags.0 {
                    assert!(!d.message.is_empty() && d.line >= 1, "diagnostic without a place: {d}");
                }
            }
            // What compiles must run: its state is within its budget or refused by the budget
            // check, and a pipeline builds from it and takes an event and an evaluation.
            Ok(rules) => {
                let need = vigil_core::state_bytes(&rules);
                if vigil_core::check_state(&rules).is_ok() && need < 64 << 20 {
                    let rules = std::sync::Arc::new(rules);
                    let mut p =
                        vigil_core::Pipeline::new(std::sync::Arc::clone(&rules), vigil_core::Options::default());
                    // An event the decoder could have produced: a declared region and source.
                    let ev = vigil_model::Event { ts: vigil_model::time::MIN_TS + 86_400_000, ..Default::default() };
                    assert!(!rules.regions.is_empty() && !rules.sources.is_empty());
                    p.ingest(&ev);
                    p.advance(ev.ts + 2 * 86_400_000, &mut vigil_core::VecOutput::default());
                }
            }
        }
    });
    assert!(n > 0);
}

#[test]
fn fuzz_filter_compiler() {
    let rules = compile(&mini::files_with(&[])).unwrap();
    let source = &rules.sources[0];
    let corpus: Vec<Vec<u8>> = [
        "incident_type IN ('theft', 'fight')",
        "response_minutes > 10 AND NOT (incident_type = 'other')",
        "response_minutes BETWEEN 1 AND 2 OR response_minutes IS NULL",
        "hour >= 22 OR hour < 6",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let n = fuzz("filter", &corpus, |input| {
        let text = String::from_utf8_lossy(input);
        if let Err(errors) = vigil_rules::filter::compile_filter(&text, source, &Default::default()) {
            assert!(errors.iter().all(|e| !e.message.is_empty()));
        }
    });
    assert!(n > 0);
}
