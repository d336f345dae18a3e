//! The scheduler with the local backend against the real NATS server: lessons reach READY,
//! change stage, fail with reasons, are collected when idle, and survive `kill -9` of the
//! scheduler without leaving anything behind.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use antidote_platform::backend::{Backend, LivelessonSpec};
use antidote_platform::bus::{self, Layout};
use antidote_platform::curriculum::Curriculum;
use antidote_platform::livelesson::client::{Client, ClientError};
use antidote_platform::livelesson::{Livelesson, Status};
use antidote_platform::scheduler::{Scheduler, SchedulerConfig};
use common::{Lab, assert_gone, bundled, fixture, nats_url, repo_root, spec_for};
use tokio_util::sync::CancellationToken;

fn prefix() -> String {
    format!("t{}", antidote_platform::backend::local::random_id(8))
}

async fn nats() -> async_nats::Client {
    let url = nats_url();
    async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!("cannot reach NATS at {url}: {e}; run deploy/local/services.sh start")
    })
}

struct Running {
    client: Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    curriculum: Arc<Curriculum>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
        bus::remove(&self.client.js, &self.client.layout).await;
    }
}

async fn start(lab: &Lab, curriculum: Curriculum, config: SchedulerConfig) -> Running {
    let layout = Layout::new(prefix());
    let curriculum = Arc::new(curriculum);
    let scheduler = Scheduler::new(
        config,
        nats().await,
        layout.clone(),
        Arc::clone(&curriculum),
        lab.backend.clone(),
    )
    .await
    .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(shutdown.clone()));
    let client = Client::new(nats().await, layout, "test").await.unwrap();
    Running {
        client,
        shutdown,
        task,
        curriculum,
    }
}

/// Polls until `pred` holds for the livelesson (or panics after `secs`).
async fn wait_for(
    client: &Client,
    id: &str,
    secs: u64,
    pred: impl Fn(&Livelesson) -> bool,
) -> Livelesson {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let ll = client.get(id).await.unwrap();
        if pred(&ll) {
            return ll;
        }
        assert!(
            Instant::now() < deadline,
            "livelesson stuck: {:?} {:?}",
            ll.status,
            ll.error
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_gone(client: &Client, id: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while client.store.livelessons.get(id).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "livelesson {id} never deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn verifies(lab: &Lab, spec: &LivelessonSpec, stage: usize) -> bool {
    let v = spec.lesson.stages[stage].verify.as_ref().unwrap();
    lab.backend
        .exec(spec, &v.endpoint, &v.command, Duration::from_secs(10))
        .await
        .unwrap()
        .succeeded()
}

async fn eventually_verifies(lab: &Lab, spec: &LivelessonSpec, stage: usize) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !verifies(lab, spec, stage).await {
        assert!(Instant::now() < deadline, "stage {stage} never verified");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn three_router_lesson_reaches_ready_and_changes_stage() {
    let lab = Lab::new();
    let run = start(&lab, bundled(), SchedulerConfig::new("t1")).await;
    let session = run.client.create_session().await.unwrap();
    let ll = run
        .client
        .request_livelesson(&run.curriculum, &session.id, "ospf-triangle", 0)
        .await
        .unwrap();
    assert_eq!(ll.status, Status::Initialized);
    // Asking again returns the same livelesson.
    let again = run
        .client
        .request_livelesson(&run.curriculum, &session.id, "ospf-triangle", 0)
        .await
        .unwrap();
    assert_eq!(again.id, ll.id);

    let ready = wait_for(&run.client, &ll.id, 60, |l| l.status == Status::Ready).await;
    assert!(ready.endpoints.iter().all(|e| !e.instance.is_empty()));
    assert!(
        ready
            .endpoints
            .iter()
            .all(|e| e.last_configuration.as_ref().is_some_and(|c| c.succeeded()))
    );
    let spec = spec_for(&run.curriculum, &ready.lesson, &ready.id);
    eventually_verifies(&lab, &spec, 0).await;
    assert!(
        !verifies(&lab, &spec, 1).await,
        "stage 1 verified before its configuration"
    );

    run.client
        .change_stage(&run.curriculum, &ll.id, 1)
        .await
        .unwrap();
    wait_for(&run.client, &ll.id, 60, |l| {
        l.status == Status::Ready && l.stage == 1
    })
    .await;
    eventually_verifies(&lab, &spec, 1).await;

    run.client.delete(&ll.id, "learner").await.unwrap();
    wait_gone(&run.client, &ll.id, 30).await;
    assert_gone(&lab, &ll.id);
    let (s, _) = run
        .client
        .store
        .sessions
        .get(&session.id)
        .await
        .unwrap()
        .unwrap();
    assert!(s.livelessons.is_empty());
    run.stop().await;
}

#[tokio::test]
async fn nre_labs_lessons_run_or_fail_with_a_reason() {
    let lab = Lab::new();
    let run = start(&lab, fixture(), SchedulerConfig::new("t2")).await;
    let session = run.client.create_session().await.unwrap();
    let mut ids = Vec::new();
    for slug in ["linux-basics", "yaml-introduction"] {
        let ll = run
            .client
            .request_livelesson(&run.curriculum, &session.id, slug, 0)
            .await
            .unwrap();
        ids.push(ll.id);
    }
    for id in &ids {
        wait_for(&run.client, id, 60, |l| l.status == Status::Ready).await;
    }
    let napalm = run
        .client
        .request_livelesson(
            &run.curriculum,
            &session.id,
            "napalm-multi-vendor-network-automation",
            0,
        )
        .await
        .unwrap();
    let failed = wait_for(&run.client, &napalm.id, 30, |l| l.status == Status::Failed).await;
    let error = failed.error.unwrap();
    assert_eq!(error.phase, "unavailable");
    assert!(error.message.contains("vqfx-snap1"), "{}", error.message);
    for id in &ids {
        run.client.delete(id, "learner").await.unwrap();
        wait_gone(&run.client, id, 30).await;
        assert_gone(&lab, id);
    }
    run.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_or_fail_with_phase_and_output() {
    let lab = Lab::new();
    let mut curriculum = fixture();
    // A router image whose second FRR daemon cannot start.
    let mut frr = bundled().images["frr"].clone();
    frr.local.as_mut().unwrap().daemons = vec!["zebra".into(), "nosuchd".into()];
    curriculum.images.insert("frr".into(), frr);
    let troubleshooting = bundled().lessons["ospf-troubleshooting"].clone();
    curriculum
        .lessons
        .insert("ospf-troubleshooting".into(), troubleshooting);
    let run = start(&lab, curriculum, SchedulerConfig::new("t3")).await;
    let session = run.client.create_session().await.unwrap();

    let err = run
        .client
        .request_livelesson(&run.curriculum, &session.id, "no-such-lesson", 0)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::UnknownLesson(_)), "{err}");
    let err = run
        .client
        .request_livelesson(&run.curriculum, &session.id, "linux-basics", 1)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "lesson `linux-basics` has 1 stage(s), numbered from 0; there is no stage 1"
    );
    let err = run
        .client
        .request_livelesson(&run.curriculum, "nosession0", "linux-basics", 0)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::UnknownSession(_)), "{err}");
    let err = run.client.get("bad id!").await.unwrap_err();
    assert_eq!(err.to_string(), "unknown livelesson `bad id!`");

    let ll = run
        .client
        .request_livelesson(&run.curriculum, &session.id, "ospf-troubleshooting", 0)
        .await
        .unwrap();
    let failed = wait_for(&run.client, &ll.id, 30, |l| l.status == Status::Failed).await;
    let error = failed.error.unwrap();
    assert_eq!(error.phase, "create");
    // The message names the daemon and carries its own output.
    assert!(
        error.message.contains("nosuchd failed to start"),
        "{}",
        error.message
    );
    assert!(error.message.contains("No such file"), "{}", error.message);
    // A failed livelesson leaves nothing running and does not block the lesson.
    assert_gone(&lab, &ll.id);
    let retry = run
        .client
        .request_livelesson(&run.curriculum, &session.id, "ospf-troubleshooting", 0)
        .await
        .unwrap();
    assert_ne!(retry.id, ll.id);
    wait_for(&run.client, &retry.id, 30, |l| l.status == Status::Failed).await;
    run.stop().await;
}

#[tokio::test]
async fn idle_livelessons_are_collected_and_kept_alive_ones_stay() {
    let lab = Lab::new();
    let mut config = SchedulerConfig::new("t4");
    config.idle_ttl = Duration::from_secs(4);
    config.session_ttl = Duration::from_secs(2);
    config.gc_interval = Duration::from_millis(500);
    let run = start(&lab, fixture(), config).await;
    let mut ids = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let session = run.client.create_session().await.unwrap();
        sessions.push(session.id.clone());
        let ll = run
            .client
            .request_livelesson(&run.curriculum, &session.id, "linux-basics", 0)
            .await
            .unwrap();
        ids.push(ll.id);
    }
    for id in &ids {
        wait_for(&run.client, id, 60, |l| l.status == Status::Ready).await;
    }
    let (idle, kept) = (&ids[0], &ids[1]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while run
        .client
        .store
        .livelessons
        .get(idle)
        .await
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "idle livelesson never collected");
        run.client.keepalive(kept).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_gone(&lab, idle);
    let still = run.client.get(kept).await.unwrap();
    assert_eq!(still.status, Status::Ready);
    // The idle session, now without livelessons, expires; the active one stays.
    let deadline = Instant::now() + Duration::from_secs(20);
    while run
        .client
        .store
        .sessions
        .get(&sessions[0])
        .await
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "idle session never expired");
        run.client.keepalive(kept).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        run.client
            .store
            .sessions
            .get(&sessions[1])
            .await
            .unwrap()
            .is_some()
    );
    run.client.delete(kept, "learner").await.unwrap();
    wait_gone(&run.client, kept, 30).await;
    run.stop().await;
}

/// `antidote scheduler` as a separate process, so it can be killed for real.
fn scheduler_process(lab: &Lab, prefix: &str, curriculum: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_antidote"))
        .args(["scheduler", "--scheduler-id", "killed"])
        .env("ANTIDOTE_NATS_URL", nats_url())
        .env("ANTIDOTE_NATS_PREFIX", prefix)
        .env("ANTIDOTE_CURRICULUM", curriculum)
        .env("ANTIDOTE_LOCAL_STATE_DIR", lab.state.path())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(lab.state.path().join("scheduler.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn kill_9_mid_provisioning_then_restart_leaves_nothing_behind() {
    let lab = Lab::new();
    let prefix = prefix();
    let curriculum_dir = repo_root().join("curriculum");
    let curriculum = bundled();
    let mut child = scheduler_process(&lab, &prefix, &curriculum_dir);
    let client = Client::new(nats().await, Layout::new(prefix.clone()), "test")
        .await
        .unwrap();
    let session = client.create_session().await.unwrap();
    let ll = client
        .request_livelesson(&curriculum, &session.id, "ospf-triangle", 0)
        .await
        .unwrap();
    // Kill it as soon as endpoints exist but before READY.
    wait_for(&client, &ll.id, 30, |l| {
        l.status == Status::Ready || l.endpoints.iter().any(|e| !e.instance.is_empty())
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = client.get(&ll.id).await.unwrap();
    assert_ne!(
        at_kill.status,
        Status::Ready,
        "provisioning finished before the kill"
    );
    assert!(
        !lab.namespaces().is_empty(),
        "nothing was created before the kill"
    );

    let mut child = scheduler_process(&lab, &prefix, &curriculum_dir);
    let failed = wait_for(&client, &ll.id, 30, |l| l.status == Status::Failed).await;
    assert_eq!(failed.error.unwrap().phase, "interrupted");
    assert_gone(&lab, &ll.id);
    // And the lesson can be asked for again.
    let retry = client
        .request_livelesson(&curriculum, &session.id, "ospf-triangle", 0)
        .await
        .unwrap();
    wait_for(&client, &retry.id, 60, |l| l.status == Status::Ready).await;
    client.delete(&retry.id, "learner").await.unwrap();
    wait_gone(&client, &retry.id, 30).await;
    assert_gone(&lab, &retry.id);

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    bus::remove(&client.js, &client.layout).await;
}

#[tokio::test]
async fn twenty_three_router_livelessons_at_once() {
    let lab = Lab::new();
    let run = start(&lab, bundled(), SchedulerConfig::new("t6")).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let session = run.client.create_session().await.unwrap();
        let ll = run
            .client
            .request_livelesson(&run.curriculum, &session.id, "ospf-triangle", 0)
            .await
            .unwrap();
        ids.push(ll.id);
    }
    for id in &ids {
        let ll = wait_for(&run.client, id, 180, |l| {
            matches!(l.status, Status::Ready | Status::Failed)
        })
        .await;
        assert_eq!(ll.status, Status::Ready, "{id}: {:?}", ll.error);
    }
    for id in &ids {
        run.client.delete(id, "learner").await.unwrap();
    }
    for id in &ids {
        wait_gone(&run.client, id, 120).await;
        assert_gone(&lab, id);
    }
    assert!(lab.namespaces().is_empty(), "{:?}", lab.namespaces());
    run.stop().await;
}
