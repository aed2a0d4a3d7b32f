//! Resuming from a stored offset yields exactly the rest of the partition, on the embedded
//! cluster and on a real broker (`VIGIL_TEST_BROKERS`), when the offset falls inside a batch the
//! producer wrote. Kafka returns that batch whole and the client trims it; tansu 0.6 skips to the
//! next batch (fetching from offset 1 of a 100-record batch returns offset 100 first), which
//! [`vigil_kafka::RESUME_LOOKBACK`] works around: the consumer starts earlier and drops what
//! lies below the stored offset.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vigil_kafka::{Embedded, KafkaSettings, Message};

/// A one-partition topic on the broker of `VIGIL_TEST_BROKERS`, or on an embedded cluster
/// (returned, to be kept alive) when it is unset.
fn one_partition_topic(topic: &str) -> (KafkaSettings, Option<Embedded>) {
    match std::env::var("VIGIL_TEST_BROKERS") {
        Ok(b) if !b.is_empty() => {
            let s = KafkaSettings::new(b);
            vigil_kafka::ensure_topics(&s, &[(topic.to_string(), 1)]).unwrap();
            (s, None)
        }
        _ => {
            // Under CI=true the real broker must be there (.ci/run starts tansu).
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but VIGIL_TEST_BROKERS is not set: .ci/run starts tansu and sets it"
            );
            let embedded = Embedded::start(1).unwrap();
            embedded.create_topic(topic, 1).unwrap();
            (KafkaSettings::new(embedded.bootstrap_servers()), Some(embedded))
        }
    }
}

#[test]
fn reading_from_an_offset_inside_a_batch_returns_exactly_the_rest() {
    let topic = format!("resume-{}", std::process::id());
    let (settings, _embedded) = one_partition_topic(&topic);
    let producer = vigil_kafka::producer(&settings).unwrap();
    // Five batches of 100.
    for i in 0..500 {
        vigil_kafka::send(&producer, &topic, "k", format!("{i}").as_bytes(), None).unwrap();
        if i % 100 == 99 {
            vigil_kafka::flush(&producer, Duration::from_secs(30)).unwrap();
        }
    }
    for from in [0i64, 100, 1, 37, 250, 499] {
        let start = BTreeMap::from([((topic.clone(), 0), from)]);
        let a = vigil_kafka::assigned_consumer(&settings, "resume-test", std::slice::from_ref(&topic), &start).unwrap();
        let (c, resume_at) = (a.consumer, a.resume_at[0]);
        assert_eq!(resume_at, from);
        let mut got = Vec::new();
        let t = Instant::now();
        while got.len() < (500 - from) as usize && t.elapsed() < Duration::from_secs(20) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100))
                && m.offset() >= resume_at
            {
                got.push((m.offset(), String::from_utf8_lossy(m.payload().unwrap()).to_string()));
            }
        }
        let want: Vec<(i64, String)> = (from..500).map(|i| (i, i.to_string())).collect();
        assert_eq!(got.first(), want.first(), "from {from}");
        assert_eq!(got.len(), want.len(), "from {from}");
        assert!(got == want, "from {from}");
    }
}

/// A partition paused part-way through a batch and resumed with [`vigil_kafka::resume_from`]
/// (what watermark alignment does to a partition that runs ahead) yields exactly the rest of it.
/// A plain resume makes the client fetch again from its position, inside the batch, and tansu
/// 0.6 then skipped the rest of the batch: offsets 38 to 99 were lost.
#[test]
fn a_partition_paused_inside_a_batch_resumes_without_a_gap() {
    use rdkafka::consumer::Consumer;
    let topic = format!("pause-{}", std::process::id());
    let (settings, _embedded) = one_partition_topic(&topic);
    let producer = vigil_kafka::producer(&settings).unwrap();
    for i in 0..300 {
        vigil_kafka::send(&producer, &topic, "k", format!("{i}").as_bytes(), None).unwrap();
        if i % 100 == 99 {
            vigil_kafka::flush(&producer, Duration::from_secs(30)).unwrap();
        }
    }
    let a = vigil_kafka::assigned_consumer(&settings, "pause-test", std::slice::from_ref(&topic), &BTreeMap::new())
        .unwrap();
    let c = a.consumer;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let mut got: Vec<i64> = Vec::new();
    let mut drop_below = 0;
    let t = Instant::now();
    while got.len() < 300 && t.elapsed() < Duration::from_secs(30) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100))
            && m.offset() >= drop_below
        {
            drop_below = m.offset() + 1;
            got.push(m.offset());
            // Paused at offsets 37 and 150, inside the first and second batches.
            if m.offset() == 37 || m.offset() == 150 {
                c.pause(&tpl).unwrap();
                let quiet = Instant::now();
                while quiet.elapsed() < Duration::from_millis(500) {
                    if let Some(Ok(m)) = c.poll(Duration::from_millis(50))
                        && m.offset() >= drop_below
                    {
                        drop_below = m.offset() + 1;
                        got.push(m.offset());
                    }
                }
                vigil_kafka::resume_from(&c, &topic, 0, drop_below).unwrap();
            }
        }
    }
    let want: Vec<i64> = (0..300).collect();
    let first_gap = got.windows(2).find(|w| w[1] != w[0] + 1);
    assert!(got == want, "{} of 300 records, first gap {first_gap:?}", got.len());
}
