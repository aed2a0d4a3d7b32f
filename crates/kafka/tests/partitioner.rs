//! The partitioners vigil computes agree with the ones librdkafka producers use: keys are
//! produced through a real producer (default settings, then murmur2) to the embedded cluster and
//! read back, and every key must sit on the partition vigil says it does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vigil_kafka::{Embedded, KafkaSettings, Message, Partitioner};

fn landed(settings: &KafkaSettings, topic: &str, n: usize) -> BTreeMap<String, i32> {
    let c = vigil_kafka::assigned_consumer(settings, "partitioner-test", &[topic.to_string()], &BTreeMap::new())
        .unwrap()
        .consumer;
    let mut out = BTreeMap::new();
    let started = Instant::now();
    while out.len() < n && started.elapsed() < Duration::from_secs(30) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            out.insert(key, m.partition());
        }
    }
    out
}

#[test]
fn producers_put_every_key_where_vigil_expects_it() {
    let cluster = Embedded::start(1).unwrap();
    let keys: Vec<String> =
        (0..60).map(|i| format!("9901{:02}", i)).chain(["", "x", "abc", "320102"].map(String::from)).collect();
    for (partitioner, setting, partitions) in
        [(Partitioner::Crc32, None, 7), (Partitioner::Murmur2, Some("murmur2_random"), 5)]
    {
        let topic = format!("keys-{}", partitioner.as_str());
        cluster.create_topic(&topic, partitions).unwrap();
        let mut settings = KafkaSettings::new(cluster.bootstrap_servers());
        let producer_settings = {
            let mut s = settings.clone();
            if let Some(p) = setting {
                s.client.insert("partitioner".into(), p.into());
            }
            s
        };
        let producer = vigil_kafka::producer(&producer_settings).unwrap();
        // Empty keys are hashed too (librdkafka only picks at random for a missing key).
        for k in keys.iter().filter(|k| !k.is_empty()) {
            vigil_kafka::send(&producer, &topic, k, b"{}", None).unwrap();
        }
        vigil_kafka::flush(&producer, Duration::from_secs(10)).unwrap();
        settings.client.clear();
        let got = landed(&settings, &topic, keys.len() - 1);
        assert_eq!(got.len(), keys.len() - 1);
        let mut used = std::collections::BTreeSet::new();
        for (k, p) in &got {
            assert_eq!(*p, partitioner.partition(k.as_bytes(), partitions), "{partitioner:?} key {k:?}");
            used.insert(*p);
        }
        assert!(used.len() > 2, "keys spread over partitions: {used:?}");
    }
}
