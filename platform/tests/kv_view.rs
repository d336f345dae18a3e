//! The api role's in-memory copy of a KV bucket against the real NATS server: it fills with
//! what is there, follows puts, updates and removals, and answers from KV what it lacks.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::time::{Duration, Instant};

use antidote_platform::bus::{self, Layout};
use antidote_platform::livelesson::Session;
use antidote_platform::livelesson::store::{Change, Store};
use antidote_platform::livelesson::view::View;
use tokio_util::sync::CancellationToken;

fn session(id: &str) -> Session {
    serde_json::from_value(serde_json::json!({
        "id": id, "created_at": 1, "last_active_at": 1, "livelessons": {}
    }))
    .unwrap()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_copy_follows_the_bucket() {
    let nats = async_nats::connect(common::nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let layout = Layout::new(format!(
        "t{}",
        antidote_platform::backend::local::random_id(8)
    ));
    bus::ensure(&js, &layout).await.unwrap();
    let store = Store::open(&js, &layout).await.unwrap();
    store
        .sessions
        .create("before0001", &session("before0001"))
        .await
        .unwrap();

    let shutdown = CancellationToken::new();
    let view = View::follow(store.sessions.clone(), shutdown.clone());
    eventually("existing key cached", || {
        view.cached("before0001").is_some()
    })
    .await;

    store
        .sessions
        .create("after00001", &session("after00001"))
        .await
        .unwrap();
    // Whether or not the watch delivered it yet, a read finds it.
    assert!(view.get("after00001").await.unwrap().is_some());
    eventually("new key cached", || view.cached("after00001").is_some()).await;

    store
        .sessions
        .update("after00001", |s| {
            s.last_active_at = 42;
            Change::Write(())
        })
        .await
        .unwrap();
    eventually("update applied", || {
        view.cached("after00001")
            .is_some_and(|s| s.last_active_at == 42)
    })
    .await;

    store.sessions.remove("before0001").await.unwrap();
    eventually("removal applied", || view.cached("before0001").is_none()).await;
    assert!(view.get("before0001").await.unwrap().is_none());
    assert!(view.get("never00001").await.unwrap().is_none());

    shutdown.cancel();
    bus::remove(&js, &layout).await;
}
