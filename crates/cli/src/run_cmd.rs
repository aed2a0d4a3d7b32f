//! `vigil run`: the engine against any Kafka cluster, configured by a TOML file, `VIGIL_*`
//! environment variables and flags (flags win over the environment, which wins over the file).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use vigil_core::{Options, ScoreDetail};
use vigil_engine::{Delivery, Engine, EngineConfig, OutputTopics, StateLocation};
use vigil_kafka::KafkaSettings;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Configuration file (TOML; see README).
    #[arg(long, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "VIGIL_BROKERS")]
    brokers: Option<String>,
    /// Consumer group id.
    #[arg(long, env = "VIGIL_GROUP")]
    group: Option<String>,
    /// Rule set directory.
    #[arg(long, env = "VIGIL_RULES")]
    rules: Option<PathBuf>,
    /// Checkpoint directory (state and offsets); without it state is lost on exit.
    #[arg(long, env = "VIGIL_CHECKPOINT_DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Checkpoints on this Kafka topic (compacted) instead of a directory: instances then need
    /// no disk of their own, and a scaled-out task's state moves with it through the brokers.
    #[arg(long, env = "VIGIL_STATE_TOPIC", conflicts_with = "checkpoint_dir")]
    state_topic: Option<String>,
    /// Archive directory: decoded events, scores and alerts as Parquet for `vigil sql` and
    /// `vigil backtest`, committed with each checkpoint.
    #[arg(long, env = "VIGIL_ARCHIVE_DIR")]
    archive_dir: Option<PathBuf>,
    /// Address of the metrics endpoint.
    #[arg(long, env = "VIGIL_HTTP_ADDR")]
    http_addr: Option<String>,
    /// Bearer token required by the HTTP API (not by /healthz, /readyz or /metrics).
    #[arg(long, env = "VIGIL_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Print each alert as a line on standard output.
    #[arg(long, env = "VIGIL_PRINT_ALERTS")]
    print_alerts: bool,
    /// Stop by itself once every partition has been silent this long (a batch catch-up run),
    /// e.g. `30s`.
    #[arg(long, env = "VIGIL_EXIT_WHEN_IDLE")]
    exit_when_idle: Option<String>,
    /// Delivery guarantee of the outputs: `at-least-once` (default, any broker) or
    /// `exactly-once` (Kafka transactions; needs a checkpoint directory or state topic).
    #[arg(long, env = "VIGIL_DELIVERY")]
    delivery: Option<String>,
    /// Share the event partitions with the other instances of the consumer group (events keyed
    /// by district code; see README, "Scale-out").
    #[arg(long, env = "VIGIL_SCALE_OUT")]
    scale_out: bool,
    /// The producers' partitioner in scale-out mode: `crc32` (librdkafka's default) or
    /// `murmur2` (the Java client's).
    #[arg(long, env = "VIGIL_PARTITIONER")]
    partitioner: Option<String>,
    /// The region level events are keyed by in scale-out mode (a level name of the rules;
    /// default the second level, districts): a finer level, e.g. `street`, allows more tasks.
    #[arg(long, env = "VIGIL_PARTITION_LEVEL")]
    partition_level: Option<String>,
    /// Push alert episodes to this Alertmanager (API v2, `http://host:9093`): firing while
    /// open, re-sent every minute, resolved when they end (deploy/alertmanager/).
    #[arg(long, env = "VIGIL_ALERTMANAGER")]
    alertmanager: Option<String>,
}

/// The Alertmanager sender of `--alertmanager`, its alerts linking to the region pages of the
/// HTTP server at `http`, its posts counted in `vigil_alertmanager_posts_total{result}`.
pub(crate) fn alertmanager(
    url: Option<&str>,
    http: &str,
    metrics: &vigil_engine::metrics::Metrics,
) -> Result<Option<vigil_notify::Alertmanager>> {
    let Some(url) = url else { return Ok(None) };
    let posts = metrics.alertmanager_posts.clone();
    let on_post = Box::new(move |ok: bool| {
        let result = if ok { "ok" } else { "failed" };
        posts.get_or_create(&vigil_engine::metrics::ResultLabel { result: result.into() }).inc();
    });
    let am =
        vigil_notify::Alertmanager::start(url, Some(format!("http://{http}")), Duration::from_secs(60), Some(on_post))
            .map_err(anyhow::Error::msg)?;
    eprintln!("vigil: pushing alerts to Alertmanager at {url}");
    Ok(Some(am))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    kafka: KafkaSection,
    #[serde(default)]
    topics: TopicsSection,
    #[serde(default)]
    engine: EngineSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KafkaSection {
    brokers: Option<String>,
    group: Option<String>,
    /// Passed to librdkafka unchanged (security.protocol, sasl.*, ssl.*, ...).
    #[serde(default)]
    client: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicsSection {
    scores: Option<String>,
    alerts: Option<String>,
    dlq: Option<String>,
    late: Option<String>,
    /// Exactly-once mode's record of committed transactions (compacted, keyed by group).
    commits: Option<String>,
    /// Event topic per source id, where it differs from the rules' `topic`.
    #[serde(default)]
    events: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineSection {
    rules: Option<PathBuf>,
    checkpoint_dir: Option<PathBuf>,
    /// Checkpoints on this (compacted) Kafka topic instead of `checkpoint_dir`.
    state_topic: Option<String>,
    archive_dir: Option<PathBuf>,
    checkpoint_every: Option<String>,
    idle_timeout: Option<String>,
    http_addr: Option<String>,
    exit_when_idle: Option<String>,
    /// Score records published: "none", "summary" (composite, domains, categories) or "full"
    /// (also every indicator).
    scores: Option<String>,
    /// Region levels whose scores are published (default: every level but the finest).
    score_levels: Option<Vec<String>>,
    /// "all" (default), "nonzero" (only records with a score above zero or an open alert),
    /// "graded" (only regions with an open alert episode) or "changed" (only records that
    /// differ from the region's previous one).
    score_records: Option<String>,
    /// Score records only at evaluations ending on a multiple of this much local time ("1d"),
    /// a multiple of the cadence that divides a day (default: every evaluation).
    score_every: Option<String>,
    /// When every partition is idle, event time follows the wall clock (see README).
    #[serde(default)]
    wall_clock_advance: bool,
    /// "at-least-once" (default) or "exactly-once" (Kafka transactions; see README).
    delivery: Option<String>,
    /// Share the event partitions with the group's other instances (see README, "Scale-out").
    #[serde(default)]
    scale_out: bool,
    /// The producers' partitioner: "crc32" (default) or "murmur2".
    partitioner: Option<String>,
    /// Scale-out: the level name events are keyed by (default the second level, districts).
    partition_level: Option<String>,
}

/// The scoring output options of the `[engine]` section.
fn score_options(e: &EngineSection, rules: &vigil_rules::RuleSet) -> Result<Options> {
    let scores = match e.scores.as_deref() {
        None | Some("summary") => ScoreDetail::Summary,
        Some("none") => ScoreDetail::None,
        Some("full") => ScoreDetail::Full,
        Some(other) => anyhow::bail!("[engine] scores = {other:?}: expected \"none\", \"summary\" or \"full\""),
    };
    let score_levels = vigil_core::ScoreLevels::from_names(rules, e.score_levels.as_deref())
        .map_err(|m| anyhow::anyhow!("[engine] score_levels: {m}"))?;
    let score_filter = vigil_core::ScoreFilter::parse(e.score_records.as_deref().unwrap_or("all"))
        .map_err(|m| anyhow::anyhow!("[engine] score_records: {m}"))?;
    let score_every = e
        .score_every
        .as_deref()
        .map(|t| vigil_core::parse_score_every(rules, t))
        .transpose()
        .map_err(|m| anyhow::anyhow!("[engine] score_every: {m}"))?;
    Ok(Options { scores, score_levels, score_filter, score_every })
}

fn duration(text: Option<&str>, default: Duration) -> Result<Duration> {
    match text {
        None => Ok(default),
        Some(t) => vigil_model::Duration::parse(t)
            .map(|d| Duration::from_millis(d.0.max(0) as u64))
            .map_err(anyhow::Error::msg),
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let file: FileConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let brokers = args.brokers.or(file.kafka.brokers).unwrap_or_else(|| "localhost:9092".into());
    let rules_dir = args.rules.or(file.engine.rules.clone()).unwrap_or_else(|| "rules".into());
    // Whoever can write these directories can change what vigil alerts on or resumes from.
    crate::perms::check_rules(&rules_dir)?;
    // The command line's choice of store replaces the file's, whichever kind each names.
    let (checkpoint_dir, state_topic) = match (args.checkpoint_dir, args.state_topic) {
        (None, None) => (file.engine.checkpoint_dir.clone(), file.engine.state_topic.clone()),
        given => given,
    };
    let state = match (checkpoint_dir, state_topic) {
        (Some(_), Some(_)) => anyhow::bail!(
            "[engine] sets both checkpoint_dir and state_topic: checkpoints go to one place (a directory, or a \
             topic that instances share without a shared disk)"
        ),
        (Some(d), None) => Some(StateLocation::Dir(d)),
        (None, Some(t)) => Some(StateLocation::Topic(t)),
        (None, None) => None,
    };
    let archive_dir = args.archive_dir.or(file.engine.archive_dir.clone());
    if let Some(StateLocation::Dir(d)) = &state {
        crate::perms::check_state_dir(d, "checkpoint")?;
    }
    if let Some(d) = &archive_dir {
        crate::perms::check_state_dir(d, "archive")?;
    }
    let rules = crate::load_rules(&rules_dir)?;
    let options = score_options(&file.engine, &rules)?;
    if let Some(unknown) = file.topics.events.keys().find(|id| rules.source_index(id).is_none()) {
        anyhow::bail!("[topics.events] names source {unknown:?}, which the rules do not define");
    }
    let defaults = OutputTopics::default();
    let outputs = OutputTopics {
        scores: file.topics.scores.unwrap_or(defaults.scores),
        alerts: file.topics.alerts.unwrap_or(defaults.alerts),
        dlq: file.topics.dlq.unwrap_or(defaults.dlq),
        late: file.topics.late.unwrap_or(defaults.late),
        commits: file.topics.commits.unwrap_or(defaults.commits),
    };
    let delivery = match args.delivery.or(file.engine.delivery) {
        None => Delivery::AtLeastOnce,
        Some(d) => Delivery::parse(&d)
            .with_context(|| format!("delivery {d:?}: expected \"at-least-once\" or \"exactly-once\""))?,
    };
    let scale_out = (args.scale_out || file.engine.scale_out)
        .then(|| match args.partitioner.or(file.engine.partitioner) {
            None => Ok(vigil_kafka::Partitioner::default()),
            Some(p) => vigil_kafka::Partitioner::parse(&p)
                .with_context(|| format!("partitioner {p:?}: expected \"crc32\" or \"murmur2\"")),
        })
        .transpose()?;
    let names = &rules.regions.level_names;
    let partition_level = match args.partition_level.or(file.engine.partition_level) {
        None => 1,
        Some(name) => match names.iter().position(|l| *l == name) {
            Some(l) if l >= 1 => l as u8,
            _ => anyhow::bail!(
                "partition_level {name:?}: expected a level of the rules below the root ({})",
                names.get(1..).unwrap_or_default().join(", ")
            ),
        },
    };
    if scale_out.is_some()
        && (!options.score_levels.contains(partition_level as usize)
            || options.scores == ScoreDetail::None
            || options.score_filter != vigil_core::ScoreFilter::All
            || options.score_every.is_some())
    {
        let level = names.get(partition_level as usize).map_or("second", String::as_str);
        anyhow::bail!(
            "scale-out needs every {level} score record: the roll-up of the levels above is made from them (keep \
             {level:?} in [engine] score_levels, scores other than \"none\", score_records = \"all\" and no score_every)"
        );
    }
    let mut settings = KafkaSettings::new(brokers);
    settings.client = file.kafka.client;
    let http = args.http_addr.or(file.engine.http_addr).unwrap_or_else(|| "127.0.0.1:9464".into());
    let service = crate::service::start(&http, args.api_token.clone(), Some(rules_dir.clone()), &rules)?;
    let (stop, metrics) = (Arc::clone(&service.stop), service.metrics.clone());
    let cfg = EngineConfig {
        group: args.group.or(file.kafka.group).unwrap_or_else(|| "vigil".into()),
        outputs,
        idle_timeout: duration(file.engine.idle_timeout.as_deref(), Duration::from_secs(30))?,
        options,
        progress: None,
        state,
        checkpoint_every: duration(file.engine.checkpoint_every.as_deref(), Duration::from_secs(10))?,
        event_topics: file.topics.events,
        wall_clock_advance: file.engine.wall_clock_advance,
        delivery,
        scale_out,
        partition_level,
        exit_when_idle: args
            .exit_when_idle
            .or(file.engine.exit_when_idle)
            .map(|t| duration(Some(&t), Duration::ZERO))
            .transpose()?,
        score_tap: Some(service.score_tap()),
        ..EngineConfig::new(settings.clone())
    };
    eprintln!(
        "vigil run: brokers {}, group {}, rules {} ({}), metrics at http://{}/metrics, checkpoints {}",
        settings.brokers,
        cfg.group,
        rules.name,
        rules.version,
        service.addr,
        cfg.state.as_ref().map_or("off".to_string(), StateLocation::describe)
    );
    let print = args.print_alerts;
    let am = alertmanager(args.alertmanager.as_deref(), &service.addr.to_string(), &metrics)?;
    if cfg.scale_out.is_some() {
        // Each task and the roll-up archive into the one directory, in files of their own.
        let archive = archive_dir.map(|dir| {
            eprintln!("vigil run: archiving events, scores and alerts to {}", dir.display());
            let open: vigil_engine::ArchiveFactory = Arc::new(move |group: &str, rules: &Arc<vigil_rules::RuleSet>| {
                crate::history::engine_archive(&dir, rules, group).map_err(|e| std::io::Error::other(format!("{e:#}")))
            });
            open
        });
        let summary = vigil_engine::scale::run(
            Arc::clone(&rules),
            cfg,
            metrics,
            &stop,
            Some(service.inbox),
            archive,
            &mut |a| {
                service.console.alert(a);
                if let Some(am) = &am {
                    am.send(a);
                }
                if print {
                    println!("{}", crate::demo::alert_line(a, &rules));
                }
            },
        )?;
        eprintln!(
            "vigil run: stopped after {} events ({} rejected, {} late), {} alert events (scale-out)",
            summary.consumed, summary.rejected, summary.late, summary.alerts
        );
        return Ok(ExitCode::SUCCESS);
    }
    let group = cfg.group.clone();
    // On a state topic one instance of the group runs at a time; another stands by until it
    // stops (a checkpoint directory is locked by Engine::new instead). Before it stands by,
    // whatever a killed run left on this instance's archive that no checkpoint covers goes: the
    // run that holds the lock now may have archived it again on its own disk.
    if let (Some(dir), Some(state @ StateLocation::Topic(_))) = (&archive_dir, &cfg.state) {
        let mut archive = crate::history::engine_archive(dir, &rules, &group)?;
        vigil_engine::scale::sweep_ended_runs(archive.as_mut(), &cfg, state, &group)?;
    }
    let lock = vigil_engine::StateLock::acquire(&cfg, &stop)?;
    if lock.is_none() && matches!(cfg.state, Some(StateLocation::Topic(_))) {
        eprintln!("vigil run: stopped while standing by");
        return Ok(ExitCode::SUCCESS);
    }
    let mut engine = Engine::new(Arc::clone(&rules), cfg, metrics)?;
    if let Some(lock) = lock {
        engine.hold(lock);
    }
    let console = service.console.clone();
    engine.attach(service.inbox);
    if let Some(dir) = archive_dir {
        engine.set_archive(crate::history::engine_archive(&dir, &rules, &group)?)?;
        eprintln!("vigil run: archiving events, scores and alerts to {}", dir.display());
    }
    let summary = engine.run(&stop, &mut |a| {
        console.alert(a);
        if let Some(am) = &am {
            am.send(a);
        }
        if print {
            println!("{}", crate::demo::alert_line(a, &rules));
        }
    })?;
    eprintln!(
        "vigil run: stopped after {} events ({} rejected, {} late), {} alert events, evaluated through {}",
        summary.consumed,
        summary.rejected,
        summary.late,
        summary.alerts,
        engine.last_evaluated().map_or("-".into(), vigil_model::time::format_utc)
    );
    Ok(ExitCode::SUCCESS)
}
