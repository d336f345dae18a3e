//! The operator's commands: the `api`, `scheduler` and `ingest` roles, `antidote up` (all of
//! them in one process), and `antidote lesson start|list|stop|catalog`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::backend::local::{LocalBackend, LocalConfig};
use crate::bus::Layout;
use crate::cli::{ApiArgs, Common, LessonCommand, LocalArgs, MetricsArgs};
use crate::curriculum::{self, Curriculum};
use crate::livelesson::client::Client;
use crate::livelesson::{EndpointStatus, Livelesson, Status, now_ms};
use crate::scheduler::{Scheduler, SchedulerConfig};

/// `println!` that ignores a closed stdout (e.g. `| head`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Logs as JSON lines on stderr (level from `RUST_LOG`, default info).
/// This process's telemetry (logs, spans), set up by the first role that starts.
static TELEMETRY: std::sync::OnceLock<antidote_telemetry::Telemetry> = std::sync::OnceLock::new();

/// JSON logs on stderr and spans for `service` (a role; `antidote up` names each span's role
/// by the module that made it).
pub fn init_logging(service: &str) {
    TELEMETRY.get_or_init(|| antidote_telemetry::init(service));
}

/// Starts publishing this process's finished spans and log records to NATS (the first call
/// does).
fn export_telemetry(nats: &async_nats::Client, layout: &Layout, shutdown: &CancellationToken) {
    let Some(telemetry) = TELEMETRY.get() else {
        return;
    };
    let js = async_nats::jetstream::new(nats.clone());
    if let Some(rx) = telemetry.take_spans() {
        tokio::spawn(antidote_telemetry::spans::publish(
            rx,
            js.clone(),
            layout.spans(),
            shutdown.clone(),
        ));
    }
    if let Some(rx) = telemetry.take_logs() {
        tokio::spawn(antidote_telemetry::logs::publish(
            rx,
            js,
            layout.logs(),
            shutdown.clone(),
        ));
    }
}

async fn connect(common: &Common) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(&common.nats_url)
        .await
        .with_context(|| format!("cannot reach NATS at {}", common.nats_url))
}

fn load_curriculum(common: &Common) -> anyhow::Result<Curriculum> {
    let c = curriculum::load(&common.curriculum).with_context(|| {
        format!(
            "cannot load the curriculum (set --curriculum or ANTIDOTE_CURRICULUM; now {})",
            common.curriculum.display()
        )
    })?;
    for invalid in &c.invalid_lessons {
        tracing::warn!(lesson = %invalid.name, problems = invalid.problems.len(), "lesson is invalid and not served");
    }
    Ok(c)
}

/// `antidote scheduler`: runs until SIGINT or SIGTERM.
pub async fn run_scheduler(
    common: Common,
    local: LocalArgs,
    config: SchedulerConfig,
    metrics: MetricsArgs,
) -> anyhow::Result<ExitCode> {
    init_logging("scheduler");
    let shutdown = shutdown_on_signal();
    serve_metrics(&metrics, &shutdown).await?;
    let curriculum = Arc::new(load_curriculum(&common)?);
    let backend = LocalBackend::new(LocalConfig::new(&local.local_state_dir))
        .context("cannot prepare the local backend")?;
    tracing::info!(installation = backend.installation_id(), scheduler = %config.id, "scheduler starting");
    let nats = connect(&common).await?;
    export_telemetry(&nats, &Layout::new(&common.prefix), &shutdown);
    let scheduler = Scheduler::new(
        config,
        nats,
        Layout::new(&common.prefix),
        curriculum,
        Arc::new(backend),
    )
    .await?;
    scheduler.run(shutdown).await?;
    tracing::info!("scheduler stopped");
    Ok(ExitCode::SUCCESS)
}

/// The api role's state: NATS client, curriculum, backend (terminals, verify), web assets.
async fn api_state(
    common: &Common,
    nats: async_nats::Client,
    curriculum: Arc<Curriculum>,
    backend: Arc<LocalBackend>,
    api: &ApiArgs,
    clickhouse: clickhouse::Client,
) -> anyhow::Result<crate::api::AppState> {
    let client = Client::new(nats, Layout::new(&common.prefix), "api").await?;
    let vendor = crate::web::Vendor::load(&api.web_modules);
    if let Some(missing) = &vendor.missing {
        tracing::warn!("{missing}");
    }
    if api.maintainer_tokens.iter().all(|t| t.trim().is_empty()) {
        tracing::warn!(
            "no maintainer tokens (ANTIDOTE_MAINTAINER_TOKENS): the maintainer routes are closed"
        );
    }
    let state = crate::api::AppState::new(client, curriculum, backend, vendor)
        .with_telemetry(clickhouse)
        .with_maintainer_tokens(api.maintainer_tokens.clone());
    if !state.maintainer_tokens.is_empty() {
        // Names only: an entry `name:secret` is recorded as `name`; a bare one as
        // `maintainer`.
        let names: Vec<&str> = state
            .maintainer_tokens
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        tracing::info!(maintainers = %names.join(", "), "maintainer routes open (/triage)");
    }
    Ok(state)
}

/// `antidote api`: runs until SIGINT or SIGTERM.
pub async fn run_api(
    common: Common,
    local: LocalArgs,
    api: ApiArgs,
    clickhouse: clickhouse::Client,
) -> anyhow::Result<ExitCode> {
    init_logging("api");
    let curriculum = Arc::new(load_curriculum(&common)?);
    let backend = Arc::new(
        LocalBackend::new(LocalConfig::new(&local.local_state_dir))
            .context("cannot prepare the local backend")?,
    );
    let nats = connect(&common).await?;
    let shutdown = shutdown_on_signal();
    export_telemetry(&nats, &Layout::new(&common.prefix), &shutdown);
    let state = api_state(&common, nats, curriculum, backend, &api, clickhouse).await?;
    let (addr, server) = crate::api::serve(state, &api.listen, shutdown).await?;
    tracing::info!(%addr, "api listening");
    server.await??;
    tracing::info!("api stopped");
    Ok(ExitCode::SUCCESS)
}

/// What `antidote up` runs with.
#[derive(Debug)]
pub struct UpSettings {
    pub nats_url: Option<String>,
    pub clickhouse_url: Option<String>,
    pub prefix: String,
    pub curriculum: std::path::PathBuf,
    pub services_script: std::path::PathBuf,
    pub local: LocalArgs,
    pub api: ApiArgs,
    pub scheduler: SchedulerConfig,
}

/// Starts the project's NATS and ClickHouse with the services script and returns their URLs.
fn start_services(script: &std::path::Path) -> anyhow::Result<(String, String)> {
    if !script.is_file() {
        anyhow::bail!(
            "no NATS/ClickHouse URL given and the services script {} does not exist (run from the project's root, or set ANTIDOTE_NATS_URL and ANTIDOTE_CLICKHOUSE_URL)",
            script.display()
        );
    }
    outln!("starting NATS and ClickHouse with {}", script.display());
    let status = std::process::Command::new(script)
        .arg("start")
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        anyhow::bail!("{} start failed ({status})", script.display());
    }
    let env = std::process::Command::new(script)
        .arg("env")
        .output()
        .with_context(|| format!("cannot run {} env", script.display()))?;
    let text = String::from_utf8_lossy(&env.stdout);
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.trim().to_owned())
    };
    match (value("ANTIDOTE_NATS_URL"), value("ANTIDOTE_CLICKHOUSE_URL")) {
        (Some(nats), Some(clickhouse)) => Ok((nats, clickhouse)),
        _ => anyhow::bail!(
            "{} env did not name ANTIDOTE_NATS_URL and ANTIDOTE_CLICKHOUSE_URL",
            script.display()
        ),
    }
}

/// `antidote up`: every role in one process until SIGINT or SIGTERM.
pub async fn run_up(settings: UpSettings) -> anyhow::Result<ExitCode> {
    init_logging("antidote");
    let (nats_url, clickhouse_url) = match (&settings.nats_url, &settings.clickhouse_url) {
        (Some(n), Some(c)) => (n.clone(), c.clone()),
        _ => {
            let script = settings.services_script.clone();
            let (n, c) = tokio::task::spawn_blocking(move || start_services(&script)).await??;
            (
                settings.nats_url.clone().unwrap_or(n),
                settings.clickhouse_url.clone().unwrap_or(c),
            )
        }
    };
    let common = Common {
        nats_url: nats_url.clone(),
        prefix: settings.prefix.clone(),
        curriculum: settings.curriculum.clone(),
    };
    let clickhouse = antidote_telemetry::clickhouse_client::client(&clickhouse_url);
    let database = antidote_telemetry::clickhouse_client::DATABASE;
    antidote_telemetry::schema::migrate(&clickhouse, &clickhouse_url, database)
        .await
        .with_context(|| format!("cannot create the ClickHouse schema at {clickhouse_url}"))?;
    let curriculum = Arc::new(load_curriculum(&common)?);
    let backend = Arc::new(
        LocalBackend::new(LocalConfig::new(&settings.local.local_state_dir))
            .context("cannot prepare the local backend")?,
    );
    let nats = connect(&common).await?;
    let shutdown = shutdown_on_signal();
    export_telemetry(&nats, &Layout::new(&common.prefix), &shutdown);

    let scheduler = Scheduler::new(
        settings.scheduler,
        nats.clone(),
        Layout::new(&common.prefix),
        curriculum.clone(),
        backend.clone(),
    )
    .await?;
    let scheduler_task = tokio::spawn(scheduler.run(shutdown.clone()));
    let ingest = crate::ingest::run_all(
        crate::ingest::IngestConfig {
            batch_size: 5000,
            flush_interval: Duration::from_secs(1),
            database: database.to_owned(),
            retention_days: 30,
        },
        nats.clone(),
        Layout::new(&common.prefix),
        clickhouse,
        shutdown.clone(),
    );
    let ingest_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let r = ingest.await;
            if r.is_err() && !shutdown.is_cancelled() {
                // Nothing would reach ClickHouse any more: stop everything rather than run on.
                tracing::error!("ingest stopped; stopping antidote up");
                shutdown.cancel();
            }
            r
        }
    });
    let state = api_state(
        &common,
        nats,
        curriculum.clone(),
        backend,
        &settings.api,
        antidote_telemetry::clickhouse_client::client(&clickhouse_url).with_database(database),
    )
    .await?;
    let (addr, server) = crate::api::serve(state, &settings.api.listen, shutdown.clone()).await?;
    outln!(
        "Antidote is up: http://{addr}/  ({} lessons, NATS {nats_url}, ClickHouse {clickhouse_url}; Ctrl-C stops it)",
        curriculum.lessons.len()
    );
    tracing::info!(%addr, "antidote up");
    let served = server.await;
    shutdown.cancel();
    let scheduled = scheduler_task.await;
    let ingested = ingest_task.await;
    served??;
    scheduled??;
    ingested??;
    tracing::info!("antidote stopped");
    Ok(ExitCode::SUCCESS)
}

/// Serves `/metrics` for a role without the api, when asked to.
async fn serve_metrics(args: &MetricsArgs, shutdown: &CancellationToken) -> anyhow::Result<()> {
    if let Some(listen) = &args.metrics_listen {
        let addr = crate::api::serve_metrics(listen, shutdown.clone()).await?;
        tracing::info!(%addr, "metrics at /metrics");
    }
    Ok(())
}

/// A token cancelled by SIGINT or SIGTERM.
fn shutdown_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        signal.cancel();
    });
    shutdown
}

/// `antidote ingest`: runs until SIGINT or SIGTERM.
pub async fn run_ingest(
    nats_url: &str,
    prefix: &str,
    clickhouse_url: &str,
    config: crate::ingest::IngestConfig,
    metrics: MetricsArgs,
) -> anyhow::Result<ExitCode> {
    init_logging("ingest");
    let shutdown = shutdown_on_signal();
    serve_metrics(&metrics, &shutdown).await?;
    let nats = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(nats_url)
        .await
        .with_context(|| format!("cannot reach NATS at {nats_url}"))?;
    let client = antidote_telemetry::clickhouse_client::client(clickhouse_url);
    tracing::info!(clickhouse = clickhouse_url, database = %config.database, "ingest starting");
    export_telemetry(&nats, &Layout::new(prefix), &shutdown);
    crate::ingest::run_all(config, nats, Layout::new(prefix), client, shutdown).await?;
    tracing::info!("ingest stopped");
    Ok(ExitCode::SUCCESS)
}

/// `antidote session ID`: the session's timeline in the terminal.
pub async fn session(id: &str, clickhouse_url: &str, database: &str) -> anyhow::Result<ExitCode> {
    if !crate::backend::local::is_id(id, 10) {
        anyhow::bail!("`{id}` is not a session ID (10 characters a-z, 0-9)");
    }
    let client =
        antidote_telemetry::clickhouse_client::client(clickhouse_url).with_database(database);
    let t = antidote_telemetry::timeline::session_timeline(&client, id)
        .await
        .with_context(|| {
            format!(
                "cannot read session {id} from ClickHouse at {clickhouse_url} (database {database})"
            )
        })?;
    if t.events.is_empty() && t.spans.is_empty() {
        outln!(
            "no events or spans recorded for session {id} in {clickhouse_url} (database {database})"
        );
        return Ok(ExitCode::from(1));
    }
    outln!(
        "session {id}: {} events, {} spans, {} endpoint instances",
        t.events.len(),
        t.spans.len(),
        t.endpoints.len()
    );
    let start = t
        .events
        .first()
        .map(|e| e.ts_ns)
        .into_iter()
        .chain(t.spans.first().map(|s| s.ts_ns))
        .min()
        .unwrap_or(0);
    let offset = |ns: u64| ns.saturating_sub(start) as f64 / 1e9;
    outln!("\nevents");
    for e in &t.events {
        let mut what = vec![e.lesson.clone()];
        if !e.endpoint.is_empty() {
            what.push(e.endpoint.clone());
        }
        if !e.instance.is_empty() {
            what.push(e.instance.clone());
        }
        outln!(
            "  +{:>8.3}s  {:<26} {:<10} {}{}",
            offset(e.ts_ns),
            e.kind,
            e.livelesson_id,
            what.join(" "),
            if e.message.is_empty() {
                String::new()
            } else {
                format!("  — {}", e.message)
            }
        );
    }
    outln!("\nspans");
    let mut trace = "";
    for (depth, s) in antidote_telemetry::timeline::span_trees(&t.spans) {
        if s.trace_id != trace {
            trace = &s.trace_id;
            outln!("  trace {trace}");
        }
        let device = if s.endpoint.is_empty() {
            String::new()
        } else {
            format!("  {} {}", s.endpoint, s.instance)
        };
        let status = if s.status_code == "error" {
            format!("  ERROR {}", s.status_message)
        } else {
            String::new()
        };
        outln!(
            "    +{:>8.3}s {:indent$}{:<w$} {:>9.1} ms  {}{device}{status}",
            offset(s.ts_ns),
            "",
            s.name,
            s.duration_ns as f64 / 1e6,
            s.service,
            indent = depth * 2,
            w = 40usize.saturating_sub(depth * 2),
        );
    }
    outln!("\nendpoints");
    for h in &t.endpoints {
        outln!(
            "  {:<10} {:<10} {:<28} {:<6} {}{}",
            h.livelesson_id,
            h.endpoint,
            h.instance,
            h.node,
            h.last_event,
            if h.last_message.is_empty() {
                String::new()
            } else {
                format!("  — {}", h.last_message)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `antidote lesson ...`
pub async fn lesson(command: LessonCommand) -> anyhow::Result<ExitCode> {
    match command {
        LessonCommand::Start {
            common,
            slug,
            stage,
            session,
            timeout,
        } => start(&common, &slug, stage, session, timeout).await,
        LessonCommand::Catalog { curriculum } => catalog(&curriculum),
        LessonCommand::List { common } => list(&common).await,
        LessonCommand::Show { common, id } => show(&common, &id).await,
        LessonCommand::Stop {
            common,
            id,
            timeout,
        } => stop(&common, &id, timeout).await,
    }
}

async fn client(common: &Common) -> anyhow::Result<Client> {
    let nats = connect(common).await?;
    Client::new(nats, Layout::new(&common.prefix), "cli").await
}

async fn start(
    common: &Common,
    slug: &str,
    stage: usize,
    session: Option<String>,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let curriculum = load_curriculum(common)?;
    let client = client(common).await?;
    let session_id = match session {
        Some(s) => s,
        None => client.create_session().await?.id,
    };
    let started = Instant::now();
    let ll = client
        .request_livelesson(&curriculum, &session_id, slug, stage)
        .await?;
    outln!(
        "livelesson {} — lesson {slug}, stage {}, session {session_id}",
        ll.id,
        ll.stage
    );
    let mut watch = client.store.livelessons.watch(&ll.id).await?;
    let mut progress = Progress::default();
    // The current value first (it may already be past some states), then every change.
    let mut current = client.get(&ll.id).await.ok();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(ll) = current.take() {
            progress.show(&ll, started);
            match ll.status {
                Status::Ready => {
                    outln!("READY in {:.1}s", started.elapsed().as_secs_f64());
                    print_endpoints(&ll);
                    return Ok(ExitCode::SUCCESS);
                }
                Status::Failed => {
                    let (phase, message) = ll
                        .error
                        .as_ref()
                        .map(|e| (e.phase.as_str(), e.message.as_str()))
                        .unwrap_or(("?", "?"));
                    outln!("FAILED in phase {phase}: {message}");
                    return Ok(ExitCode::from(1));
                }
                _ => {}
            }
        }
        let next = tokio::time::timeout_at(deadline, watch.next()).await;
        match next {
            Err(_) => {
                outln!(
                    "still not READY after {}s; it keeps going — follow it with `antidote lesson list`",
                    timeout.as_secs()
                );
                return Ok(ExitCode::from(2));
            }
            Ok(None) => anyhow::bail!("the NATS watch ended unexpectedly"),
            Ok(Some(entry)) => {
                let entry = entry.context("watching the livelesson")?;
                match client.store.livelessons.decode_entry(&entry)? {
                    Some(ll) => current = Some(ll),
                    None => {
                        outln!("the livelesson was deleted");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
        }
    }
}

/// Prints what changed since the last call: the state, and each endpoint's progress.
#[derive(Default)]
struct Progress {
    status: Option<Status>,
    endpoints: std::collections::BTreeMap<String, EndpointStatus>,
}

impl Progress {
    fn show(&mut self, ll: &Livelesson, started: Instant) {
        let t = started.elapsed().as_secs_f64();
        let mut out = std::io::stdout().lock();
        if self.status != Some(ll.status) {
            self.status = Some(ll.status);
            let _ = writeln!(out, "[{t:6.1}s] {}", ll.status);
        }
        for ep in &ll.endpoints {
            if self.endpoints.get(&ep.name) == Some(&ep.state) {
                continue;
            }
            self.endpoints.insert(ep.name.clone(), ep.state);
            let (n, m) = ll.reachable_count();
            let bar: String = (0..m).map(|i| if i < n { '#' } else { '.' }).collect();
            let detail = match ep.state {
                EndpointStatus::Created => format!("created as {} on {}", ep.instance, ep.node),
                EndpointStatus::Failed => ep
                    .reachability_error
                    .clone()
                    .or_else(|| {
                        ep.last_configuration
                            .as_ref()
                            .map(|c| c.output.trim().to_owned())
                    })
                    .unwrap_or_else(|| "failed".into()),
                EndpointStatus::Configured => ep
                    .last_configuration
                    .as_ref()
                    .map(|c| format!("configured in {} ms", c.duration_ms))
                    .unwrap_or_else(|| "configured".into()),
                other => format!("{other:?}").to_lowercase(),
            };
            let _ = writeln!(
                out,
                "[{t:6.1}s]   [{bar}] {n}/{m} reachable  {}: {detail}",
                ep.name
            );
        }
    }
}

fn print_endpoints(ll: &Livelesson) {
    for ep in &ll.endpoints {
        let presentations: Vec<String> = ep
            .presentations
            .iter()
            .map(|p| format!("{} {}:{}", p.name, p.kind, p.port))
            .collect();
        outln!(
            "  {:<10} {:<12} {}  {}",
            ep.name,
            ep.image,
            ep.instance,
            presentations.join(", ")
        );
    }
}

/// Every lesson with its availability on the local backend; invalid lessons with their
/// problem count.
fn catalog(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let c = curriculum::load(dir)?;
    let availability = crate::backend::local::availability(&c);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<40}  {:>6}  {:<11}  NOTE",
        "LESSON", "STAGES", "LOCAL"
    )?;
    for (slug, loaded) in &c.lessons {
        let (state, note) = match availability.get(slug).and_then(Option::as_ref) {
            None => ("available", String::new()),
            Some(reason) => ("unavailable", reason.clone()),
        };
        writeln!(
            out,
            "{slug:<40}  {:>6}  {state:<11}  {note}",
            loaded.lesson.stages.len()
        )?;
    }
    for invalid in &c.invalid_lessons {
        writeln!(
            out,
            "{:<40}  {:>6}  {:<11}  {} problem(s): run `antidote validate {}`",
            invalid.name,
            "-",
            "invalid",
            invalid.problems.len(),
            dir.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(common: &Common) -> anyhow::Result<ExitCode> {
    let client = client(common).await?;
    let all = client.store.livelessons.values().await?;
    let now = now_ms();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<10}  {:<10}  {:<28}  {:>5}  {:<11}  {:>7}  {:>7}  ENDPOINTS",
        "ID", "SESSION", "LESSON", "STAGE", "STATUS", "AGE", "IDLE"
    )?;
    for ll in &all {
        let (n, m) = ll.reachable_count();
        writeln!(
            out,
            "{:<10}  {:<10}  {:<28}  {:>5}  {:<11}  {:>7}  {:>7}  {n}/{m} reachable",
            ll.id,
            ll.session_id,
            ll.lesson,
            ll.stage,
            ll.status.as_str(),
            human_age(now.saturating_sub(ll.created_at)),
            human_age(now.saturating_sub(ll.last_active_at)),
        )?;
    }
    if all.is_empty() {
        writeln!(out, "(no livelessons)")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn human_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

async fn show(common: &Common, id: &str) -> anyhow::Result<ExitCode> {
    let client = client(common).await?;
    let ll = client.get(id).await?;
    let now = now_ms();
    outln!(
        "livelesson {} — lesson {}, stage {}, session {}",
        ll.id,
        ll.lesson,
        ll.stage,
        ll.session_id
    );
    outln!(
        "status {}, age {}, idle {}",
        ll.status,
        human_age(now.saturating_sub(ll.created_at)),
        human_age(now.saturating_sub(ll.last_active_at))
    );
    if let Some(e) = &ll.error {
        outln!("failed in phase {}: {}", e.phase, e.message);
    }
    for ep in &ll.endpoints {
        outln!(
            "  {} ({}) {:?} {} on {}",
            ep.name,
            ep.image,
            ep.state,
            if ep.instance.is_empty() {
                "-"
            } else {
                &ep.instance
            },
            if ep.node.is_empty() { "-" } else { &ep.node }
        );
        if let Some(err) = &ep.reachability_error {
            outln!("    unreachable: {err}");
        }
        if let Some(run) = &ep.last_configuration {
            let code = run
                .exit_code
                .map_or_else(|| "timed out".to_owned(), |c| format!("exit {c}"));
            outln!("    configuration: {code} in {} ms", run.duration_ms);
            for line in run
                .output
                .trim()
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .iter()
                .rev()
            {
                outln!("      | {line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn stop(common: &Common, id: &str, timeout: Duration) -> anyhow::Result<ExitCode> {
    let client = client(common).await?;
    let mut watch = client.store.livelessons.watch(id).await?;
    client.delete(id, "operator").await?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if client.store.livelessons.get(id).await?.is_none() {
            outln!("livelesson {id} deleted");
            return Ok(ExitCode::SUCCESS);
        }
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Err(_) => anyhow::bail!(
                "livelesson {id} still exists after {}s: is a scheduler running?",
                timeout.as_secs()
            ),
            Ok(None) => anyhow::bail!("the NATS watch ended unexpectedly"),
            Ok(Some(_)) => {}
        }
    }
}
