//! End to end against a real Kafka-protocol broker: `.ci/run` starts tansu on 127.0.0.1 and
//! names it in `VIGIL_TEST_BROKERS`; the generated city is produced to fresh topics, the
//! engine consumes them, and the alert topic — read both by vigil's reader and by kcat, a
//! client that shares no code with vigil — equals `vigil replay` over the same events.
//!
//! Without `VIGIL_TEST_BROKERS` the same test runs on the embedded cluster, so a plain
//! `cargo test` stays self-contained and the test never silently passes by doing nothing.

mod common;

use std::process::Command;
use std::time::Duration;

use vigil_engine::testkit::{self, Broker, RunTopics, assert_same};

#[test]
fn engine_on_a_real_broker_matches_replay() {
    let rules = testkit::default_rules();
    let broker = Broker::from_env();
    let settings = broker.settings();
    eprintln!(
        "broker: {} ({})",
        settings.brokers,
        if broker.is_external() { "external" } else { "embedded; set VIGIL_TEST_BROKERS for a real one" }
    );
    let topics = RunTopics::new(&rules, "e2e");
    broker.create_topics(&topics.all(2));
    let lines = testkit::city(&rules, 5, 33);
    let total = testkit::produce(&settings, &topics.events, &lines);
    let (summary, evaluated) = common::run_engine(&rules, &settings, &topics, total, None, Duration::from_secs(600));
    assert_eq!(summary.consumed, total, "{summary:?}");
    assert_eq!((summary.rejected, summary.late), (0, 0));

    let from_replay = testkit::replay_alerts(&rules, &lines, Some(evaluated));
    assert!(!from_replay.is_empty(), "the incident raises alerts");
    let from_kafka = testkit::read_topic(&settings, &topics.outputs.alerts, Duration::from_secs(5));
    assert_same("alerts read by vigil", &from_kafka, &from_replay);

    if broker.is_external() {
        // kcat: -C consume, -e exit at the end of the partition, -q quiet, one payload per line.
        let out = Command::new("kcat")
            .args(["-b", &settings.brokers, "-C", "-t", &topics.outputs.alerts, "-o", "beginning", "-e", "-q"])
            .args(["-f", "%s\\n"])
            .output()
            .expect("kcat must be installed to check a real broker (.ci/run installs it)");
        assert!(out.status.success(), "kcat failed: {}", String::from_utf8_lossy(&out.stderr));
        let from_kcat: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
        assert_same("alerts read by kcat", &from_kcat, &from_replay);
    }
}

/// Watermark alignment pauses a partition that runs ahead of the others and resumes it once
/// they catch up. With a hold of 1,000 events that happens many times over the stream, mostly
/// inside a batch the producer wrote; on tansu a plain resume lost the rest of such a batch, so
/// the engine resumes from before it (vigil_kafka::resume_from). Every event must be processed
/// once and the alerts must equal a replay's.
#[test]
fn partitions_paused_and_resumed_by_alignment_lose_nothing() {
    let rules = testkit::default_rules();
    let broker = Broker::from_env();
    let settings = broker.settings();
    let topics = RunTopics::new(&rules, "pause");
    broker.create_topics(&topics.all(2));
    let lines = testkit::city(&rules, 5, 33);
    let total = testkit::produce(&settings, &topics.events, &lines);
    let metrics = std::time::Instant::now();
    let (summary, evaluated) =
        common::run_engine_holding(&rules, &settings, &topics, total, None, Duration::from_secs(180), 1000);
    eprintln!("{summary:?} in {:?}", metrics.elapsed());
    assert_eq!((summary.consumed, summary.processed, summary.rejected, summary.late), (total, total, 0, 0));
    assert!(summary.pauses > 0, "no partition was paused");
    let from_replay = testkit::replay_alerts(&rules, &lines, Some(evaluated));
    let from_kafka = testkit::read_topic(&settings, &topics.outputs.alerts, Duration::from_secs(5));
    assert_same("alerts with pauses", &from_kafka, &from_replay);
}

/// TLS. With `VIGIL_TEST_TLS_BROKERS` and `VIGIL_TEST_TLS_CA` (set by `.ci/run`: a tansu broker
/// behind socat's TLS listener, with a CA and server certificate made for the run), the engine
/// runs end to end over SSL and its alerts equal a replay's, while a client that does not trust
/// that CA is refused. Either way, an SSL client pointed at a plaintext broker (the embedded
/// cluster) fails rather than falling back to plaintext.
#[test]
fn tls_connections_are_verified_and_work_end_to_end() {
    let ssl = |brokers: &str, ca: &str| {
        let mut s = vigil_kafka::KafkaSettings::new(brokers);
        s.client.insert("security.protocol".into(), "SSL".into());
        s.client.insert("ssl.ca.location".into(), ca.into());
        s
    };
    // A self-signed CA that signed nothing: trusting only it, no broker certificate verifies.
    let stranger = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stranger-ca.crt");
    let plain = Broker::embedded();
    // The failure must be the connection's (a metadata request that never got an answer), not
    // a client that could not even be configured (a missing CA file, say).
    let refused = |r: vigil_kafka::Result<usize>| {
        matches!(r, Err(vigil_kafka::KafkaEdgeError::Kafka(rdkafka::error::KafkaError::MetadataFetch(_))))
    };
    assert!(std::path::Path::new(stranger).exists());
    let err = vigil_kafka::check_connection(&ssl(&plain.settings().brokers, stranger), Duration::from_secs(3));
    assert!(refused(err), "an SSL client pointed at a plaintext broker did not fail to connect");

    let (Ok(brokers), Ok(ca)) = (std::env::var("VIGIL_TEST_TLS_BROKERS"), std::env::var("VIGIL_TEST_TLS_CA")) else {
        vigil_engine::testkit::require_in_ci("VIGIL_TEST_TLS_BROKERS and VIGIL_TEST_TLS_CA");
        eprintln!("no VIGIL_TEST_TLS_BROKERS/VIGIL_TEST_TLS_CA: checked the plaintext refusal only");
        return;
    };
    let untrusted = vigil_kafka::check_connection(&ssl(&brokers, stranger), Duration::from_secs(3));
    assert!(refused(untrusted), "a broker certificate from an untrusted CA was accepted");
    let settings = ssl(&brokers, &ca);
    assert_eq!(vigil_kafka::check_connection(&settings, Duration::from_secs(10)).unwrap(), 1);
    engine_matches_replay(&settings, "tls", 5);
}

/// Runs the engine over a generated city on the broker of `settings` (topics created through
/// it) and checks that its alerts, read back from the broker, equal a replay's.
fn engine_matches_replay(settings: &vigil_kafka::KafkaSettings, tag: &str, seed: u64) {
    let rules = testkit::default_rules();
    let topics = RunTopics::new(&rules, tag);
    vigil_kafka::ensure_topics(settings, &topics.all(2)).unwrap();
    let lines = testkit::city(&rules, seed, 33);
    let total = testkit::produce(settings, &topics.events, &lines);
    let (summary, evaluated) = common::run_engine(&rules, settings, &topics, total, None, Duration::from_secs(600));
    assert_eq!((summary.consumed, summary.rejected, summary.late), (total, 0, 0), "{summary:?}");
    let from_replay = testkit::replay_alerts(&rules, &lines, Some(evaluated));
    assert!(!from_replay.is_empty());
    let from_kafka = testkit::read_topic(settings, &topics.outputs.alerts, Duration::from_secs(5));
    assert_same(&format!("alerts over {tag}"), &from_kafka, &from_replay);
}

/// With a broker that requires SASL (`.ci/run` starts tansu with `--authentication` and a SCRAM
/// user it created, and sets `VIGIL_TEST_SASL_BROKERS`, `VIGIL_TEST_SASL_USER` and
/// `VIGIL_TEST_SASL_PASSWORD`), a client with the right password connects and the engine runs end
/// to end, while a wrong password and a client without SASL are refused.
#[test]
fn sasl_scram_connections_are_authenticated_and_work_end_to_end() {
    let (Ok(brokers), Ok(user), Ok(password)) = (
        std::env::var("VIGIL_TEST_SASL_BROKERS"),
        std::env::var("VIGIL_TEST_SASL_USER"),
        std::env::var("VIGIL_TEST_SASL_PASSWORD"),
    ) else {
        vigil_engine::testkit::require_in_ci("VIGIL_TEST_SASL_BROKERS, _USER and _PASSWORD");
        eprintln!("no VIGIL_TEST_SASL_BROKERS/_USER/_PASSWORD: no SASL broker to test against");
        return;
    };
    let sasl = |password: &str| {
        let mut s = vigil_kafka::KafkaSettings::new(brokers.clone());
        s.client.insert("security.protocol".into(), "SASL_PLAINTEXT".into());
        s.client.insert("sasl.mechanism".into(), "SCRAM-SHA-512".into());
        s.client.insert("sasl.username".into(), user.clone());
        s.client.insert("sasl.password".into(), password.into());
        s
    };
    let refused = |r: vigil_kafka::Result<usize>| {
        matches!(r, Err(vigil_kafka::KafkaEdgeError::Kafka(rdkafka::error::KafkaError::MetadataFetch(_))))
    };
    let wrong = vigil_kafka::check_connection(&sasl("not-the-password"), Duration::from_secs(5));
    assert!(refused(wrong), "a wrong password was accepted");
    let anonymous =
        vigil_kafka::check_connection(&vigil_kafka::KafkaSettings::new(brokers.clone()), Duration::from_secs(5));
    assert!(refused(anonymous), "a client without SASL was accepted");
    let settings = sasl(&password);
    assert_eq!(vigil_kafka::check_connection(&settings, Duration::from_secs(10)).unwrap(), 1);
    engine_matches_replay(&settings, "sasl", 6);
}
