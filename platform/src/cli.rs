//! The command line of the `antidote` binary: one subcommand per role or tool.
//!
//! Settings come from flags with matching environment variables (DESIGN §11); a missing or
//! unreachable dependency is a one-line error naming what and where.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::bus;
use crate::curriculum::{self, model};
use antidote_telemetry::clickhouse_client::{self, CLICKHOUSE_URL_ENV, DEFAULT_CLICKHOUSE_URL};
use antidote_telemetry::schema;

/// Antidote: hands-on network-automation lessons in the browser, observable end to end.
#[derive(Debug, Parser)]
#[command(name = "antidote", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a curriculum directory and report every problem as `file:line: message`.
    ///
    /// Exits 1 when anything is wrong. Ends with a one-line summary.
    Validate {
        /// The curriculum directory (holds curriculum.meta.yaml, lessons/, images/, ...).
        dir: PathBuf,
    },
    /// Print the JSON Schema of a curriculum file (for editors and lesson repositories' CI).
    Schema {
        /// Which file's schema.
        #[arg(value_enum, default_value_t = SchemaKind::Lesson)]
        kind: SchemaKind,
    },
    /// Run the scheduler role: provision, configure, stage changes and garbage collection.
    Scheduler {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        local: LocalArgs,
        #[command(flatten)]
        scheduler: SchedulerArgs,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    /// Run the api role: the JSON API, the web UI and the terminals.
    Api {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        local: LocalArgs,
        #[command(flatten)]
        api: ApiArgs,
        /// ClickHouse HTTP URL (the maintainers' session views read from it).
        #[arg(long, env = CLICKHOUSE_URL_ENV, default_value = DEFAULT_CLICKHOUSE_URL)]
        clickhouse_url: String,
        /// Database holding the contract tables.
        #[arg(long, env = "ANTIDOTE_CLICKHOUSE_DATABASE", default_value = clickhouse_client::DATABASE)]
        database: String,
    },
    /// Run everything on this machine in one process: NATS and ClickHouse (the project's
    /// own, started with deploy/local/services.sh unless URLs are given), the schema, and the
    /// api, scheduler and ingest roles with the local backend. Prints the URL.
    Up {
        /// NATS server URL (default: start the project's own NATS).
        #[arg(long, env = "ANTIDOTE_NATS_URL")]
        nats_url: Option<String>,
        /// ClickHouse HTTP URL (default: start the project's own ClickHouse).
        #[arg(long, env = CLICKHOUSE_URL_ENV)]
        clickhouse_url: Option<String>,
        /// Subject prefix (and so stream and bucket names) of this installation.
        #[arg(long, env = "ANTIDOTE_NATS_PREFIX", default_value = bus::DEFAULT_PREFIX)]
        prefix: String,
        /// The curriculum directory.
        #[arg(long, env = "ANTIDOTE_CURRICULUM", default_value = "curriculum")]
        curriculum: PathBuf,
        /// The project's services script (used when a URL is missing).
        #[arg(
            long,
            env = "ANTIDOTE_SERVICES_SCRIPT",
            default_value = "deploy/local/services.sh"
        )]
        services_script: PathBuf,
        #[command(flatten)]
        local: LocalArgs,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        scheduler: SchedulerArgs,
    },
    /// Run the ingest role: drain events from NATS into ClickHouse.
    Ingest {
        /// NATS server URL.
        #[arg(
            long,
            env = "ANTIDOTE_NATS_URL",
            default_value = "nats://127.0.0.1:4222"
        )]
        nats_url: String,
        /// Subject prefix of this installation.
        #[arg(long, env = "ANTIDOTE_NATS_PREFIX", default_value = bus::DEFAULT_PREFIX)]
        prefix: String,
        /// ClickHouse HTTP URL.
        #[arg(long, env = CLICKHOUSE_URL_ENV, default_value = DEFAULT_CLICKHOUSE_URL)]
        clickhouse_url: String,
        /// Database holding the tables (`antidote migrate` creates them).
        #[arg(long, env = "ANTIDOTE_CLICKHOUSE_DATABASE", default_value = clickhouse_client::DATABASE)]
        database: String,
        /// Flush a batch at this many events.
        #[arg(long, env = "ANTIDOTE_INGEST_BATCH_SIZE", default_value_t = 5000)]
        batch_size: usize,
        /// Flush waiting events at least this often.
        #[arg(long, env = "ANTIDOTE_INGEST_FLUSH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
        flush_interval: Duration,
        /// Drop events, spans and logs older than this many days (0: keep everything).
        #[arg(long, env = "ANTIDOTE_RETENTION_DAYS", default_value_t = 30)]
        retention_days: u32,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    /// Start, list and stop livelessons (for operators; learners use the web UI).
    Lesson {
        #[command(subcommand)]
        command: LessonCommand,
    },
    /// Everything that happened to one session: its events in order, its spans as trees
    /// with durations, and each endpoint instance with its last event (from ClickHouse).
    Session {
        /// The session ID (10 characters a-z, 0-9).
        id: String,
        /// ClickHouse HTTP URL.
        #[arg(long, env = CLICKHOUSE_URL_ENV, default_value = DEFAULT_CLICKHOUSE_URL)]
        clickhouse_url: String,
        /// Database holding the contract tables.
        #[arg(long, env = "ANTIDOTE_CLICKHOUSE_DATABASE", default_value = clickhouse_client::DATABASE)]
        database: String,
    },
    /// Create or upgrade the ClickHouse database and tables (idempotent).
    Migrate {
        /// ClickHouse HTTP URL.
        #[arg(long, env = CLICKHOUSE_URL_ENV, default_value = DEFAULT_CLICKHOUSE_URL)]
        clickhouse_url: String,
        /// Database to migrate.
        #[arg(long, env = "ANTIDOTE_CLICKHOUSE_DATABASE", default_value = clickhouse_client::DATABASE)]
        database: String,
    },
}

/// Settings every NATS-connected command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// NATS server URL.
    #[arg(
        long,
        env = "ANTIDOTE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// Subject prefix (and so stream and bucket names) of this installation.
    #[arg(long, env = "ANTIDOTE_NATS_PREFIX", default_value = bus::DEFAULT_PREFIX)]
    pub prefix: String,
    /// The curriculum directory.
    #[arg(long, env = "ANTIDOTE_CURRICULUM", default_value = "curriculum")]
    pub curriculum: PathBuf,
}

/// Settings of the local backend.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Where endpoint instances keep their files (and the installation ID).
    #[arg(
        long,
        env = "ANTIDOTE_LOCAL_STATE_DIR",
        default_value = ".antidote/local"
    )]
    pub local_state_dir: PathBuf,
}

/// Settings of the scheduler role.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerArgs {
    /// Stable identity of this scheduler (defaults to the host name); a scheduler that
    /// restarts with the same ID cleanly fails what it had in flight.
    #[arg(long, env = "ANTIDOTE_SCHEDULER_ID")]
    pub scheduler_id: Option<String>,
    /// Delete livelessons idle this long (keepalives refresh them), e.g. 30m, 90s.
    #[arg(long, env = "ANTIDOTE_IDLE_TTL", default_value = "30m", value_parser = parse_duration)]
    pub idle_ttl: Duration,
    /// How often garbage collection runs.
    #[arg(long, env = "ANTIDOTE_GC_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub gc_interval: Duration,
    /// How long an endpoint may take to become reachable.
    #[arg(long, env = "ANTIDOTE_REACHABILITY_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub reachability_timeout: Duration,
    /// How long one configuration run may take.
    #[arg(long, env = "ANTIDOTE_CONFIGURE_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub configure_timeout: Duration,
}

impl SchedulerArgs {
    pub fn config(&self) -> crate::scheduler::SchedulerConfig {
        let id = self.scheduler_id.clone().unwrap_or_else(host_name);
        let mut config = crate::scheduler::SchedulerConfig::new(id);
        config.idle_ttl = self.idle_ttl;
        config.gc_interval = self.gc_interval;
        config.reachability_timeout = self.reachability_timeout;
        config.configure_timeout = self.configure_timeout;
        config
    }
}

/// Where a role without the api serves its Prometheus metrics.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Serve `/metrics` (and `/healthz`) on this address, e.g. 0.0.0.0:9100 (default: not
    /// served; the api role always serves `/metrics`).
    #[arg(long, env = "ANTIDOTE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
}

/// Settings of the api role.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "ANTIDOTE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Tokens that open the maintainer routes (comma-separated; none: those routes answer
    /// 401).
    #[arg(
        long,
        env = "ANTIDOTE_MAINTAINER_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub maintainer_tokens: Vec<String>,
    /// Where npm installed the front-end packages (xterm.js): `web/node_modules`.
    #[arg(long, env = "ANTIDOTE_WEB_MODULES", default_value = "web/node_modules")]
    pub web_modules: PathBuf,
}

/// `antidote lesson ...`
#[derive(Debug, Subcommand)]
pub enum LessonCommand {
    /// Start a lesson and show its progress until READY (or FAILED).
    Start {
        #[command(flatten)]
        common: Common,
        /// The lesson's slug.
        slug: String,
        /// Stage to start at.
        #[arg(long, default_value_t = 0)]
        stage: usize,
        /// Session to start it in (a new operator session by default).
        #[arg(long)]
        session: Option<String>,
        /// Give up waiting after this long (the livelesson keeps going).
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// List the curriculum's lessons and whether this machine can run them (and why not).
    Catalog {
        /// The curriculum directory.
        #[arg(long, env = "ANTIDOTE_CURRICULUM", default_value = "curriculum")]
        curriculum: PathBuf,
    },
    /// List livelessons with their state.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Show one livelesson: state, error, and each endpoint with its last configuration run.
    Show {
        #[command(flatten)]
        common: Common,
        /// The livelesson's ID.
        id: String,
    },
    /// Delete a livelesson and wait until it is gone.
    Stop {
        #[command(flatten)]
        common: Common,
        /// The livelesson's ID.
        id: String,
        /// Give up waiting after this long.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// Parses `90s`, `30m`, `2h` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 30m or 2h"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    Ok(Duration::from_secs(secs))
}

/// Curriculum files that have a schema.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    /// lessons/<lesson>/lesson.meta.yaml
    Lesson,
    /// images/<image>/image.meta.yaml
    Image,
    /// collections/<collection>/collection.meta.yaml
    Collection,
    /// curriculum.meta.yaml
    Curriculum,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { dir } => validate(&dir),
        Command::Schema { kind } => {
            let schema = match kind {
                SchemaKind::Lesson => model::schema_of::<model::Lesson>(),
                SchemaKind::Image => model::schema_of::<model::Image>(),
                SchemaKind::Collection => model::schema_of::<model::Collection>(),
                SchemaKind::Curriculum => model::schema_of::<model::CurriculumMeta>(),
            };
            writeln!(
                std::io::stdout(),
                "{}",
                serde_json::to_string_pretty(&schema)?
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate {
            clickhouse_url,
            database,
        } => migrate(&clickhouse_url, &database),
        Command::Session {
            id,
            clickhouse_url,
            database,
        } => runtime()?.block_on(crate::operator::session(&id, &clickhouse_url, &database)),
        Command::Scheduler {
            common,
            local,
            scheduler,
            metrics,
        } => runtime()?.block_on(crate::operator::run_scheduler(
            common,
            local,
            scheduler.config(),
            metrics,
        )),
        Command::Api {
            common,
            local,
            api,
            clickhouse_url,
            database,
        } => runtime()?.block_on(crate::operator::run_api(
            common,
            local,
            api,
            antidote_telemetry::clickhouse_client::client(&clickhouse_url).with_database(database),
        )),
        Command::Up {
            nats_url,
            clickhouse_url,
            prefix,
            curriculum,
            services_script,
            local,
            api,
            scheduler,
        } => runtime()?.block_on(crate::operator::run_up(crate::operator::UpSettings {
            nats_url,
            clickhouse_url,
            prefix,
            curriculum,
            services_script,
            local,
            api,
            scheduler: scheduler.config(),
        })),
        Command::Lesson { command } => runtime()?.block_on(crate::operator::lesson(command)),
        Command::Ingest {
            nats_url,
            prefix,
            clickhouse_url,
            database,
            batch_size,
            flush_interval,
            retention_days,
            metrics,
        } => {
            if batch_size == 0 {
                anyhow::bail!("--batch-size must be at least 1");
            }
            let config = crate::ingest::IngestConfig {
                batch_size,
                flush_interval,
                database,
                retention_days,
            };
            runtime()?.block_on(crate::operator::run_ingest(
                &nats_url,
                &prefix,
                &clickhouse_url,
                config,
                metrics,
            ))
        }
    }
}

fn validate(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let loaded = curriculum::load(dir)?;
    // Problem paths are relative to the curriculum; print them relative to where the user
    // stands so editors and terminals can jump to them.
    let mut out = std::io::stdout().lock();
    for problem in &loaded.problems {
        let located = curriculum::Problem {
            file: dir.join(&problem.file),
            ..problem.clone()
        };
        writeln!(out, "{located}")?;
    }
    writeln!(out, "{}: {}", dir.display(), loaded.summary())?;
    Ok(if loaded.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

fn migrate(url: &str, database: &str) -> anyhow::Result<ExitCode> {
    if database.is_empty()
        || !database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || database.starts_with(|c: char| c.is_ascii_digit())
    {
        anyhow::bail!(
            "database name `{database}` must be letters, digits and underscores, not starting with a digit"
        );
    }
    let runtime = runtime()?;
    let client = clickhouse_client::client(url);
    let report = runtime.block_on(schema::migrate(&client, url, database))?;
    let list = |v: &[u32]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ClickHouse {} at {url}, database {database}: applied {}; already applied {}",
        report.server_version,
        list(&report.applied),
        list(&report.already_applied)
    )?;
    for (version, min) in &report.skipped {
        writeln!(
            out,
            "skipped migration {version}: needs ClickHouse {min} or newer"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
