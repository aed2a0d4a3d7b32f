//! `vigil tail alerts`: a small consumer of the alert topic for analysts, printing one readable
//! line per alert (or the JSON), optionally only from a level up.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vigil_kafka::{KafkaSettings, Message};
use vigil_model::Level;
use vigil_model::record::AlertRecord;

#[derive(clap::Args)]
pub struct TailArgs {
    /// What to follow: `alerts`.
    what: String,
    /// Kafka brokers (the demo prints the address of its embedded cluster).
    #[arg(long)]
    brokers: String,
    /// Topic of the alerts.
    #[arg(long, default_value = "vigil.alerts")]
    topic: String,
    /// Only alerts at this level or above (blue, yellow, orange, red).
    #[arg(long)]
    level: Option<String>,
    /// Print the alert JSON instead of a line.
    #[arg(long)]
    json: bool,
    /// Rule set (for the local time zone of the lines).
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    /// Stop after this many alerts.
    #[arg(long)]
    limit: Option<u64>,
}

pub fn run(args: TailArgs) -> Result<ExitCode> {
    if args.what != "alerts" {
        bail!("`vigil tail` follows `alerts`");
    }
    let min = match args.level.as_deref() {
        None => None,
        Some(l) => Some(Level::parse(l).with_context(|| format!("unknown level `{l}` (blue, yellow, orange, red)"))?),
    };
    let rules = crate::load_rules(&args.rules)?;
    let settings = KafkaSettings::new(args.brokers.clone());
    let consumer = vigil_kafka::assigned_consumer(
        &settings,
        "vigil-tail",
        std::slice::from_ref(&args.topic),
        &Default::default(),
    )?
    .consumer;
    let stop = crate::service::stop_on_signals()?;
    let mut printed = 0u64;
    while !stop.load(Ordering::Relaxed) && args.limit.is_none_or(|l| printed < l) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else { continue };
        let Some(payload) = m.payload() else { continue };
        let Ok(alert) = serde_json::from_slice::<AlertRecord>(payload) else {
            eprintln!("vigil tail: skipped a message that is not an alert (offset {})", m.offset());
            continue;
        };
        // A resolved alert has no level; it passes when the level it leaves does.
        let level = alert.level.or(alert.previous_level);
        if min.is_some_and(|min| level < Some(min)) {
            continue;
        }
        if args.json {
            println!("{}", String::from_utf8_lossy(payload));
        } else {
            println!("{}", crate::demo::alert_line(&alert, &rules));
        }
        printed += 1;
    }
    Ok(ExitCode::SUCCESS)
}
