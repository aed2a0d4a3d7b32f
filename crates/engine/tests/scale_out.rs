//! Scale-out on the embedded cluster, in process: an event keyed by anything but its district
//! arrives on a partition whose task does not score that district, and must go to the
//! dead-letter topic with its reason rather than be counted or lost; the rest is scored.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use vigil_core::Options;
use vigil_engine::testkit::{self, Broker, RunTopics};
use vigil_engine::{EngineConfig, Metrics};
use vigil_kafka::Partitioner;

#[test]
fn events_on_another_tasks_partition_go_to_the_dead_letter_topic() {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let settings = broker.settings();
    let topics = RunTopics::new(&rules, "misrouted");
    broker.create_topics(&topics.all(2));
    let lines = testkit::city(&rules, 9, 10);
    // Keyed by the event's own region (a grid cell or street), as a producer that ignores the
    // scale-out contract would.
    let total = testkit::produce(&settings, &topics.events, &lines);
    let mut misrouted = 0u64;
    for ls in lines.lines.values() {
        for l in ls {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let region = v["region"].as_str().unwrap();
            let district = testkit::district_key(&rules, region);
            if Partitioner::Crc32.partition(region.as_bytes(), 2)
                != Partitioner::Crc32.partition(district.as_bytes(), 2)
            {
                misrouted += 1;
            }
        }
    }
    assert!(misrouted > 0 && misrouted < total, "{misrouted} of {total}");

    let mut cfg = EngineConfig::new(settings.clone());
    cfg.group = format!("misrouted-{}", std::process::id());
    cfg.outputs = topics.outputs.clone();
    cfg.event_topics = topics.events.clone();
    cfg.idle_timeout = Duration::from_secs(1);
    cfg.exit_when_idle = Some(Duration::from_secs(2));
    cfg.scale_out = Some(Partitioner::Crc32);
    cfg.options = Options { score_levels: vigil_core::ScoreLevels(0b0011), ..Options::default() };
    let stop = AtomicBool::new(false);
    let summary =
        vigil_engine::scale::run(rules.clone(), cfg, Metrics::default(), &stop, None, None, &mut |_| {}).unwrap();
    assert_eq!(summary.consumed, total);
    assert_eq!(summary.rejected, misrouted, "{summary:?}");

    let dlq = testkit::read_topic(&settings, &topics.outputs.dlq, Duration::from_secs(3));
    assert_eq!(dlq.len() as u64, misrouted);
    for l in &dlq {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["reason"], "wrong_partition", "{l}");
        assert!(v["detail"].as_str().unwrap().contains("key events by district"), "{l}");
    }
    // The tasks scored their districts and the roll-up the city.
    let scores = testkit::read_topic(&settings, &topics.outputs.scores, Duration::from_secs(3));
    assert!(scores.iter().any(|l| l.contains("\"level\":\"city\"")));
    assert!(scores.iter().any(|l| l.contains("\"level\":\"district\"")));
}
