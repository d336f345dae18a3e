//! The scheduler role: drives livelessons through their states with a backend.
//!
//! It consumes `antidote.livelesson.requests` as one durable work queue shared by every
//! scheduler, keeps each livelesson's state in the `livelessons` bucket (revision-checked), and
//! publishes an event for every step. A request is acknowledged once the scheduler has claimed
//! the livelesson in KV; the work itself is then driven by KV state, so a scheduler that dies
//! loses nothing: at start it re-reads KV and cleanly fails (and tears down) whatever it had
//! in flight, keeps READY livelessons running, and sweeps instances no livelesson owns.
//!
//! Architecture invariant: nothing here knows how endpoints are realised; that is the
//! [`Backend`]'s job.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendError, LivelessonSpec};
use crate::bus::{self, Layout};
use crate::curriculum::Curriculum;
use crate::curriculum::model::PresentationType;
use crate::livelesson::store::{Change, Store, StoreError};
use crate::livelesson::{EndpointStatus, Failure, Livelesson, Request, Status, now_ms};
use antidote_telemetry::event::{Event, kind};
use antidote_telemetry::metrics::{self, metrics};
use antidote_telemetry::rows::Severity;
use tracing::Instrument;
use tracing::field::Empty;

/// A span of work on livelesson `$ll`, with the IDs every span carries (DESIGN §7).
macro_rules! ll_span {
    ($name:literal, $ll:expr) => {
        tracing::info_span!(
            $name,
            session.id = %$ll.session_id,
            lesson = %$ll.lesson,
            livelesson.id = %$ll.id,
            otel.status_code = Empty,
            otel.status_description = Empty,
        )
    };
}

/// A device-level span: livelesson `$ll`'s endpoint `$ep` (instance recorded when known).
macro_rules! ep_span {
    ($name:literal, $ll:expr, $ep:expr) => {
        tracing::info_span!(
            $name,
            session.id = %$ll.session_id,
            lesson = %$ll.lesson,
            livelesson.id = %$ll.id,
            endpoint = %$ep,
            instance = Empty,
            attempts = Empty,
            exit_code = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        )
    };
}

/// Marks `span` failed with `message` (an OpenTelemetry error status).
fn span_failed(span: &tracing::Span, message: &str) {
    span.record("otel.status_code", "error");
    span.record("otel.status_description", message);
}

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Stable identity: a restarted scheduler with the same ID knows that what it owned in
    /// flight was interrupted.
    pub id: String,
    /// Delete a livelesson after this long without activity (keepalive refreshes it).
    pub idle_ttl: Duration,
    /// Forget a session with no livelessons after this long without activity.
    pub session_ttl: Duration,
    /// How often garbage collection runs.
    pub gc_interval: Duration,
    /// How long an endpoint may take to become reachable.
    pub reachability_timeout: Duration,
    /// How long one configuration run may take.
    pub configure_timeout: Duration,
    /// How long another scheduler's claim on an in-flight livelesson holds without renewal.
    pub lease: Duration,
    /// Requests handled at once.
    pub max_concurrent: usize,
}

impl SchedulerConfig {
    pub fn new(id: impl Into<String>) -> SchedulerConfig {
        SchedulerConfig {
            id: id.into(),
            idle_ttl: Duration::from_secs(30 * 60),
            session_ttl: Duration::from_secs(24 * 3600),
            gc_interval: Duration::from_secs(30),
            reachability_timeout: Duration::from_secs(60),
            configure_timeout: Duration::from_secs(120),
            lease: Duration::from_secs(120),
            max_concurrent: 64,
        }
    }
}

/// The scheduler.
pub struct Scheduler {
    config: SchedulerConfig,
    js: jetstream::Context,
    layout: Layout,
    store: Store,
    curriculum: Arc<Curriculum>,
    backend: Arc<dyn Backend>,
}

/// A step failed: which phase, and why.
struct StepError {
    phase: &'static str,
    message: String,
}

impl StepError {
    fn new(phase: &'static str, message: impl Into<String>) -> StepError {
        StepError {
            phase,
            message: message.into(),
        }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> StepError {
        StepError::new("state", e.to_string())
    }
}

const SERVICE: &str = "scheduler";

impl Scheduler {
    /// Connects the scheduler to NATS (creating the layout if needed).
    pub async fn new(
        config: SchedulerConfig,
        nats: async_nats::Client,
        layout: Layout,
        curriculum: Arc<Curriculum>,
        backend: Arc<dyn Backend>,
    ) -> anyhow::Result<Arc<Scheduler>> {
        let js = jetstream::new(nats);
        bus::ensure(&js, &layout).await?;
        let store = Store::open(&js, &layout).await?;
        Ok(Arc::new(Scheduler {
            config,
            js,
            layout,
            store,
            curriculum,
            backend,
        }))
    }

    /// Runs until `shutdown`: reconciles, then consumes requests and collects garbage.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.reconcile().await?;
        let stream = self
            .js
            .get_stream(&self.layout.streams()[0].name)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the request stream: {e}"))?;
        let consumer = stream
            .get_or_create_consumer(
                "schedulers",
                consumer::pull::Config {
                    durable_name: Some("schedulers".into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_deliver: 10,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the scheduler consumer: {e}"))?;

        let gc = tokio::spawn(Arc::clone(&self).gc_loop(shutdown.clone()));
        let permits = Arc::new(Semaphore::new(self.config.max_concurrent));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            // Finished tasks first, then new work while there is room, then cancellation.
            while tasks.try_join_next().is_some() {}
            let batch = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                batch = consumer
                    .fetch()
                    .max_messages(16)
                    .expires(Duration::from_secs(1))
                    .messages() => batch,
            };
            let mut messages = match batch {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch requests; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(msg) = messages.next().await {
                let Ok(msg) = msg else { continue };
                let permit = Arc::clone(&permits)
                    .acquire_owned()
                    .await
                    .map_err(|e| anyhow::anyhow!("semaphore closed: {e}"))?;
                let this = Arc::clone(&self);
                // One trace per learner action: the request's span continues the trace the
                // API started (traceparent in the message headers).
                let span = tracing::info_span!(
                    "scheduler.request",
                    otel.kind = "consumer",
                    request = Empty,
                    session.id = Empty,
                    lesson = Empty,
                    livelesson.id = Empty,
                );
                antidote_telemetry::setup::set_parent_from_nats(&span, msg.headers.as_ref());
                tasks.spawn(
                    async move {
                        let _permit = permit;
                        this.handle_message(msg).await;
                    }
                    .instrument(span),
                );
            }
        }
        gc.abort();
        // In-flight provisioning is left to KV: the next start reconciles it.
        tasks.abort_all();
        Ok(())
    }

    async fn handle_message(&self, msg: jetstream::Message) {
        let request: Request = match serde_json::from_slice(&msg.payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "dropping malformed request");
                let _ = msg.ack_with(jetstream::AckKind::Term).await;
                return;
            }
        };
        let span = tracing::Span::current();
        let (kind, id) = match &request {
            Request::Create { livelesson_id } => ("create", livelesson_id),
            Request::ChangeStage { livelesson_id, .. } => ("change_stage", livelesson_id),
            Request::Keepalive { livelesson_id } => ("keepalive", livelesson_id),
            Request::Delete { livelesson_id, .. } => ("delete", livelesson_id),
        };
        span.record("request", kind);
        span.record("livelesson.id", id.as_str());
        if let Some(session) = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(antidote_telemetry::setup::SESSION_HEADER))
        {
            span.record("session.id", session.as_str());
        }
        match request {
            Request::Create { livelesson_id } => {
                let claimed = self.claim(&livelesson_id, Status::Initialized, None).await;
                let _ = msg.ack().await;
                if let Ok(Some(ll)) = claimed {
                    self.provision(ll).await;
                }
            }
            Request::ChangeStage {
                livelesson_id,
                stage,
            } => {
                let claimed = self.claim(&livelesson_id, Status::Ready, Some(stage)).await;
                let _ = msg.ack().await;
                if let Ok(Some(ll)) = claimed {
                    self.change_stage(ll).await;
                }
            }
            Request::Keepalive { livelesson_id } => {
                let _ = self.keepalive(&livelesson_id).await;
                let _ = msg.ack().await;
            }
            Request::Delete {
                livelesson_id,
                reason,
            } => {
                if let Err(e) = self.delete(&livelesson_id, &reason).await {
                    tracing::error!(livelesson.id = %livelesson_id, error = %e, "delete failed; will retry");
                    let _ = msg
                        .ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(5))))
                        .await;
                    return;
                }
                let _ = msg.ack().await;
            }
        }
    }

    /// Takes ownership of a livelesson in state `from` (INITIALIZED → BOOTING, or READY →
    /// CONFIGURING for a stage change). `None` when it is gone or not in that state.
    async fn claim(
        &self,
        id: &str,
        from: Status,
        stage: Option<usize>,
    ) -> Result<Option<Livelesson>, StoreError> {
        let me = self.config.id.clone();
        let lease = self.lease_until();
        let result = self
            .store
            .livelessons
            .update(id, |ll| {
                if ll.status != from {
                    return Change::Keep(false);
                }
                ll.status = if from == Status::Initialized {
                    Status::Booting
                } else {
                    Status::Configuring
                };
                if let Some(s) = stage {
                    ll.stage = s;
                }
                ll.owner = Some(me.clone());
                ll.lease_until = lease;
                Change::Write(true)
            })
            .await;
        match result {
            Ok((true, ll)) => {
                self.state_event(&ll, from).await;
                Ok(Some(ll))
            }
            Ok((false, _)) => Ok(None),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn lease_until(&self) -> u64 {
        now_ms() + u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX)
    }

    fn spec(&self, ll: &Livelesson) -> Result<LivelessonSpec, StepError> {
        let spec = LivelessonSpec::for_lesson(&self.curriculum, &ll.id, &ll.session_id, &ll.lesson)
            .ok_or_else(|| {
                StepError::new(
                    "request",
                    format!("lesson `{}` is not in the curriculum", ll.lesson),
                )
            })?;
        if ll.stage >= spec.lesson.stages.len() {
            return Err(StepError::new(
                "request",
                format!("lesson `{}` has no stage {}", ll.lesson, ll.stage),
            ));
        }
        Ok(spec)
    }

    fn event(&self, ll: &Livelesson, kind: &str, severity: Severity) -> Event {
        let mut e = Event::new(kind, SERVICE, severity);
        e.session_id = ll.session_id.clone();
        e.lesson = ll.lesson.clone();
        e.stage = i16::try_from(ll.stage).unwrap_or(i16::MAX);
        e.livelesson_id = ll.id.clone();
        e
    }

    fn endpoint_event(
        &self,
        ll: &Livelesson,
        endpoint: &str,
        kind: &str,
        severity: Severity,
    ) -> Event {
        let mut e = self
            .event(ll, kind, severity)
            .attr("backend", self.backend.name());
        e.endpoint = endpoint.to_owned();
        if let Some(ep) = ll.endpoints.iter().find(|x| x.name == endpoint) {
            e.instance = ep.instance.clone();
            e.node = ep.node.clone();
        }
        e
    }

    async fn publish(&self, event: Event) {
        if let Err(e) = bus::publish_event(&self.js, &self.layout, &event).await {
            tracing::warn!(error = %e, kind = %event.kind, "cannot publish event");
        }
    }

    async fn state_event(&self, ll: &Livelesson, from: Status) {
        let e = self
            .event(ll, kind::LIVELESSON_STATE_CHANGED, Severity::Info)
            .message(format!("{from} -> {}", ll.status))
            .attr("from", from)
            .attr("to", ll.status);
        self.publish(e).await;
    }

    /// Applies `f` to the livelesson in KV (renewing this scheduler's lease).
    async fn update(
        &self,
        id: &str,
        f: impl FnMut(&mut Livelesson),
    ) -> Result<Livelesson, StoreError> {
        let lease = self.lease_until();
        let mut f = f;
        self.store
            .livelessons
            .update(id, |ll| {
                f(ll);
                ll.lease_until = lease;
                Change::Write(())
            })
            .await
            .map(|(_, ll)| ll)
    }

    async fn set_status(&self, id: &str, to: Status) -> Result<Livelesson, StoreError> {
        let mut from = to;
        let ll = self
            .update(id, |ll| {
                from = ll.status;
                ll.status = to;
                if !to.in_flight() {
                    ll.owner = None;
                    ll.lease_until = 0;
                }
            })
            .await?;
        if from != to {
            self.state_event(&ll, from).await;
        }
        Ok(ll)
    }

    /// BOOTING → (endpoints, links, reachability) → CONFIGURING → READY, or FAILED.
    async fn provision(&self, ll: Livelesson) {
        let started = Instant::now();
        tracing::Span::current().record("lesson", ll.lesson.as_str());
        let span = ll_span!("livelesson.provision", ll);
        let result = self.provision_steps(&ll).instrument(span.clone()).await;
        if let Err(step) = &result {
            span_failed(&span, &format!("{}: {}", step.phase, step.message));
        }
        match result {
            Ok(()) => {
                if let Ok(ll) = self.set_status(&ll.id, Status::Ready).await {
                    // From the request (queueing included) to READY.
                    let secs = now_ms().saturating_sub(ll.created_at) as f64 / 1000.0;
                    metrics()
                        .time_to_ready
                        .get_or_create(&metrics::lesson(&ll.lesson, self.backend.name()))
                        .observe(secs);
                    let e = self
                        .event(&ll, kind::LIVELESSON_READY, Severity::Info)
                        .attr("duration_ms", started.elapsed().as_millis())
                        .attr("backend", self.backend.name());
                    self.publish(e).await;
                }
            }
            Err(step) => self.fail(&ll.id, step).await,
        }
    }

    async fn provision_steps(&self, ll: &Livelesson) -> Result<(), StepError> {
        let spec = self.spec(ll)?;
        if let Some(reason) = self.backend.unavailable_reason(&spec.lesson, &spec.images) {
            return Err(StepError::new("unavailable", reason));
        }

        // Endpoints, all at once.
        let creates = spec.lesson.endpoints.iter().map(|ep| {
            let spec = &spec;
            let span = ep_span!("endpoint.create", ll, ep.name);
            async move {
                let result = self
                    .backend
                    .create_endpoint(spec, &ep.name)
                    .instrument(span.clone())
                    .await;
                match &result {
                    Ok(i) => {
                        span.record("instance", i.instance.as_str());
                    }
                    Err(e) => span_failed(&span, &e.to_string()),
                }
                (ep.name.clone(), result)
            }
        });
        let mut failure = None;
        for (name, result) in futures::future::join_all(creates).await {
            match result {
                Ok(instance) => {
                    let ll = self
                        .update(&ll.id, |ll| {
                            if let Some(e) = ll.endpoint_mut(&name) {
                                e.state = EndpointStatus::Created;
                                e.instance = instance.instance.clone();
                                e.node = instance.node.clone();
                            }
                        })
                        .await?;
                    let e = self.endpoint_event(&ll, &name, kind::ENDPOINT_CREATED, Severity::Info);
                    self.publish(e).await;
                }
                Err(err) => {
                    let ll = self
                        .update(&ll.id, |ll| {
                            if let Some(e) = ll.endpoint_mut(&name) {
                                e.state = EndpointStatus::Failed;
                            }
                        })
                        .await?;
                    let e = self
                        .endpoint_event(&ll, &name, kind::ENDPOINT_CREATED, Severity::Error)
                        .message(err.to_string())
                        .attr("failed", true);
                    self.publish(e).await;
                    failure.get_or_insert(StepError::new("create", err.to_string()));
                }
            }
        }
        if let Some(f) = failure {
            return Err(f);
        }

        let links = ll_span!("livelesson.links", ll);
        self.backend
            .create_links(&spec)
            .instrument(links.clone())
            .await
            .map_err(|e| {
                span_failed(&links, &e.to_string());
                StepError::new("link", e.to_string())
            })?;

        // Reachability, all endpoints at once, each until its deadline.
        let checks = spec.lesson.endpoints.iter().map(|ep| {
            let span = ep_span!("endpoint.reachability", ll, ep.name);
            self.wait_reachable(ll, &spec, &ep.name).instrument(span)
        });
        for r in futures::future::join_all(checks).await {
            r?;
        }

        let ll = self.set_status(&ll.id, Status::Configuring).await?;
        self.configure_all(&ll, &spec, ll.stage).await?;

        let delay = Duration::from_secs(u64::from(spec.lesson.ready_delay));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    async fn wait_reachable(
        &self,
        ll: &Livelesson,
        spec: &LivelessonSpec,
        endpoint: &str,
    ) -> Result<(), StepError> {
        let ep = spec
            .endpoint(endpoint)
            .map_err(|e| StepError::new("reachability", e.to_string()))?;
        let span = tracing::Span::current();
        if let Ok(Some((now, _))) = self.store.livelessons.get(&ll.id).await
            && let Some(x) = now.endpoints.iter().find(|e| e.name == endpoint)
        {
            span.record("instance", x.instance.as_str());
        }
        let mut attempts = 0u32;
        let deadline = Instant::now() + self.config.reachability_timeout;
        for p in &ep.presentations {
            loop {
                let ssh = p.kind == PresentationType::Ssh;
                attempts += 1;
                span.record("attempts", attempts);
                match self
                    .backend
                    .check_reachable(spec, endpoint, p.port, ssh)
                    .await
                {
                    Ok(()) => break,
                    Err(e) => {
                        let last_error = e.to_string();
                        if matches!(e, BackendError::NotRunning { .. }) || Instant::now() > deadline
                        {
                            let ll = self
                                .update(&ll.id, |ll| {
                                    if let Some(x) = ll.endpoint_mut(endpoint) {
                                        x.state = EndpointStatus::Failed;
                                        x.reachability_error = Some(last_error.clone());
                                    }
                                })
                                .await?;
                            metrics()
                                .reachability_failures
                                .get_or_create(&metrics::lesson(&ll.lesson, self.backend.name()))
                                .inc();
                            let ev = self
                                .endpoint_event(
                                    &ll,
                                    endpoint,
                                    kind::ENDPOINT_UNREACHABLE,
                                    Severity::Error,
                                )
                                .message(last_error.clone())
                                .attr("presentation", &p.name)
                                .attr("port", p.port);
                            self.publish(ev).await;
                            span_failed(&span, &last_error);
                            return Err(StepError::new("reachability", last_error));
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        let ll = self
            .update(&ll.id, |ll| {
                if let Some(x) = ll.endpoint_mut(endpoint) {
                    x.state = EndpointStatus::Reachable;
                    x.reachability_error = None;
                }
            })
            .await?;
        let ev = self.endpoint_event(&ll, endpoint, kind::ENDPOINT_REACHABLE, Severity::Info);
        self.publish(ev).await;
        Ok(())
    }

    /// Applies `stage`'s configuration to every configured endpoint, all at once.
    async fn configure_all(
        &self,
        ll: &Livelesson,
        spec: &LivelessonSpec,
        stage: usize,
    ) -> Result<(), StepError> {
        let runs = spec
            .lesson
            .endpoints
            .iter()
            .filter(|e| e.configuration_type.is_some())
            .map(|ep| async move {
                let span = ep_span!("endpoint.configure", ll, ep.name);
                let _ = self
                    .update(&ll.id, |ll| {
                        if let Some(x) = ll.endpoint_mut(&ep.name) {
                            x.state = EndpointStatus::Configuring;
                            span.record("instance", x.instance.as_str());
                        }
                    })
                    .await;
                let result = self
                    .backend
                    .configure(spec, &ep.name, stage, self.config.configure_timeout)
                    .instrument(span.clone())
                    .await;
                match &result {
                    Ok(run) => {
                        span.record(
                            "exit_code",
                            run.exit_code
                                .map_or_else(|| "none".to_owned(), |c| c.to_string()),
                        );
                        if !run.succeeded() {
                            span_failed(&span, "configuration failed");
                        }
                    }
                    Err(e) => span_failed(&span, &e.to_string()),
                }
                (ep.name.clone(), result)
            });
        let mut failure = None;
        for (name, result) in futures::future::join_all(runs).await {
            let (run, error) = match result {
                Ok(run) if run.succeeded() => (Some(run), None),
                Ok(run) => {
                    let msg = format!(
                        "configuration of `{name}` for stage {stage} exited with {}: {}",
                        run.exit_code
                            .map_or_else(|| "a timeout".to_owned(), |c| format!("status {c}")),
                        run.output.trim()
                    );
                    (Some(run), Some(msg))
                }
                Err(e) => (None, Some(e.to_string())),
            };
            let ok = error.is_none();
            let ll = self
                .update(&ll.id, |ll| {
                    if let Some(x) = ll.endpoint_mut(&name) {
                        x.state = if ok {
                            EndpointStatus::Configured
                        } else {
                            EndpointStatus::Failed
                        };
                        x.last_configuration = run.clone();
                    }
                })
                .await?;
            let kind = if ok {
                kind::ENDPOINT_CONFIGURED
            } else {
                kind::ENDPOINT_CONFIG_FAILED
            };
            let mut ev = self.endpoint_event(
                &ll,
                &name,
                kind,
                if ok { Severity::Info } else { Severity::Error },
            );
            ev.stage = i16::try_from(stage).unwrap_or(i16::MAX);
            if let Some(run) = &run {
                ev = ev
                    .attr("exit_code", run.exit_code_text())
                    .attr("duration_ms", run.duration_ms)
                    .attr("output_tail", run.output_tail(2000));
            }
            if let Some(msg) = &error {
                metrics()
                    .configuration_failures
                    .get_or_create(&metrics::lesson(&ll.lesson, self.backend.name()))
                    .inc();
                ev = ev.message(msg.clone());
                failure.get_or_insert(StepError::new("configure", msg.clone()));
            }
            self.publish(ev).await;
        }
        failure.map_or(Ok(()), Err)
    }

    /// READY → CONFIGURING (new stage) → READY.
    async fn change_stage(&self, ll: Livelesson) {
        tracing::Span::current().record("lesson", ll.lesson.as_str());
        let span = ll_span!("livelesson.change_stage", ll);
        let result = async {
            let spec = self.spec(&ll)?;
            self.configure_all(&ll, &spec, ll.stage).await
        }
        .instrument(span.clone())
        .await;
        if let Err(step) = &result {
            span_failed(&span, &format!("{}: {}", step.phase, step.message));
        }
        match result {
            Ok(()) => {
                if let Ok(ll) = self.set_status(&ll.id, Status::Ready).await {
                    let e = self.event(&ll, kind::LIVELESSON_STAGE_CHANGED, Severity::Info);
                    self.publish(e).await;
                }
            }
            Err(step) => self.fail(&ll.id, step).await,
        }
    }

    /// Marks the livelesson FAILED and tears its instances down (the outputs stay in KV).
    async fn fail(&self, id: &str, step: StepError) {
        tracing::warn!(livelesson.id = %id, phase = step.phase, error = %step.message, "livelesson failed");
        let failure = Failure {
            phase: step.phase.to_owned(),
            message: step.message,
        };
        let Ok(ll) = self
            .update(id, |ll| {
                ll.error = Some(failure.clone());
            })
            .await
        else {
            return;
        };
        // Invariant: a FAILED livelesson has no instances left, so tear down first.
        self.teardown(&ll).await;
        let ll = self.set_status(&ll.id, Status::Failed).await.unwrap_or(ll);
        metrics()
            .livelesson_failures
            .get_or_create(&metrics::lesson(&ll.lesson, self.backend.name()))
            .inc();
        let e = self
            .event(&ll, kind::LIVELESSON_FAILED, Severity::Error)
            .message(failure.message.clone())
            .attr("phase", &failure.phase);
        self.publish(e).await;
    }

    async fn teardown(&self, ll: &Livelesson) {
        match self.backend.delete(&ll.id).await {
            Ok(()) => {
                for ep in ll.endpoints.iter().filter(|e| !e.instance.is_empty()) {
                    let e =
                        self.endpoint_event(ll, &ep.name, kind::ENDPOINT_DELETED, Severity::Info);
                    self.publish(e).await;
                }
            }
            Err(e) => {
                tracing::error!(livelesson.id = %ll.id, error = %e, "teardown failed; the next sweep retries")
            }
        }
    }

    async fn keepalive(&self, id: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let (_, ll) = self
            .store
            .livelessons
            .update(id, |ll| {
                ll.last_active_at = now;
                Change::Write(())
            })
            .await?;
        let _ = self
            .store
            .sessions
            .update(&ll.session_id, |s| {
                s.last_active_at = now;
                Change::Write(())
            })
            .await;
        Ok(())
    }

    /// Removes the livelesson everywhere. Idempotent.
    async fn delete(&self, id: &str, reason: &str) -> Result<(), BackendError> {
        let existing = self.store.livelessons.get(id).await.ok().flatten();
        self.backend.delete(id).await?;
        if let Some((ll, _)) = existing {
            for ep in ll.endpoints.iter().filter(|e| !e.instance.is_empty()) {
                let e = self.endpoint_event(&ll, &ep.name, kind::ENDPOINT_DELETED, Severity::Info);
                self.publish(e).await;
            }
            let _ = self.store.livelessons.remove(id).await;
            let _ = self
                .store
                .sessions
                .update(&ll.session_id, |s| {
                    if s.livelessons.get(&ll.lesson).map(String::as_str) == Some(id) {
                        s.livelessons.remove(&ll.lesson);
                        Change::Write(())
                    } else {
                        Change::Keep(())
                    }
                })
                .await;
            let e = self
                .event(&ll, kind::LIVELESSON_DELETED, Severity::Info)
                .attr("reason", reason);
            self.publish(e).await;
        }
        Ok(())
    }

    /// At start: fail what this scheduler (or a scheduler whose lease ran out) had in flight,
    /// check that READY livelessons still have their instances, sweep orphans.
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        let now = now_ms();
        let all = self.store.livelessons.values().await?;
        let instances = self.backend.list_instances().await?;
        let running: HashSet<&str> = instances.iter().map(|i| i.livelesson_id.as_str()).collect();
        for ll in &all {
            let mine_or_abandoned = ll.owner.as_deref() == Some(&self.config.id)
                || (ll.owner.is_some() && ll.lease_until < now);
            let stale_unclaimed = ll.status == Status::Initialized
                && ll.owner.is_none()
                && now.saturating_sub(ll.created_at) > 10 * 60 * 1000;
            if ll.status.in_flight() && (mine_or_abandoned || stale_unclaimed) {
                let step = StepError::new(
                    "interrupted",
                    format!(
                        "the scheduler stopped while this livelesson was {}; ask again to retry",
                        ll.status
                    ),
                );
                self.fail(&ll.id, step).await;
            } else if ll.status == Status::Ready && !running.contains(ll.id.as_str()) {
                let step = StepError::new(
                    "lost",
                    "its endpoint instances are gone (was the machine restarted?)",
                );
                self.fail(&ll.id, step).await;
            }
        }
        // Instances whose livelesson is not in KV belong to nobody.
        let keep: HashSet<String> = self.store.livelessons.keys().await?.into_iter().collect();
        for orphan in running.iter().filter(|id| !keep.contains(**id)) {
            tracing::info!(livelesson.id = %orphan, "removing orphaned instances");
            self.backend.delete(orphan).await?;
        }
        Ok(())
    }

    async fn gc_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.gc_interval) => {}
            }
            if let Err(e) = self.gc_once().await {
                tracing::warn!(error = %e, "garbage collection failed");
            }
        }
    }

    /// Deletes livelessons idle longer than the TTL and sessions that expired.
    pub async fn gc_once(&self) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let idle = u64::try_from(self.config.idle_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut deleted = Vec::new();
        for ll in self.store.livelessons.values().await? {
            if ll.status.in_flight() {
                continue;
            }
            if now.saturating_sub(ll.last_active_at) > idle {
                match self.delete(&ll.id, "gc").await {
                    Ok(()) => deleted.push(ll.id),
                    Err(e) => {
                        tracing::warn!(livelesson.id = %ll.id, error = %e, "gc delete failed")
                    }
                }
            }
        }
        let session_ttl = u64::try_from(self.config.session_ttl.as_millis()).unwrap_or(u64::MAX);
        for s in self.store.sessions.values().await? {
            if s.livelessons.is_empty() && now.saturating_sub(s.last_active_at) > session_ttl {
                let _ = self.store.sessions.remove(&s.id).await;
            }
        }
        Ok(deleted)
    }
}
