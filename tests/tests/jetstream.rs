//! The NATS layout against the real server the services script runs: streams and buckets are
//! created idempotently, messages keep their trace and session headers through a durable
//! consumer, and KV updates are guarded by revisions.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use antidote_platform::bus::{self, Layout, SESSION_HEADER};
use antidote_tests::{nats, unique};
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;

#[tokio::test]
async fn event_round_trips_through_jetstream_with_its_headers() {
    let js = jetstream::new(nats().await);
    let layout = Layout::new(unique("t"));
    bus::ensure(&js, &layout).await.unwrap();
    // A second ensure (another role starting) changes nothing and does not fail.
    bus::ensure(&js, &layout).await.unwrap();

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", traceparent);
    headers.insert(SESSION_HEADER, "s0m3s3ss10");
    let payload = br#"{"kind":"session.created"}"#.to_vec();
    let ack = js
        .publish_with_headers(
            layout.event("session.created"),
            headers,
            payload.clone().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let events_stream = layout.streams()[1].name.clone();
    assert_eq!(ack.stream, events_stream);

    let stream = js.get_stream(&events_stream).await.unwrap();
    let consumer = stream
        .get_or_create_consumer(
            "ingest-test",
            consumer::pull::Config {
                durable_name: Some("ingest-test".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut messages = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let msg = messages.next().await.expect("one message").unwrap();
    assert_eq!(msg.payload.as_ref(), payload.as_slice());
    let h = msg.headers.as_ref().expect("headers kept");
    assert_eq!(h.get("traceparent").map(|v| v.as_str()), Some(traceparent));
    assert_eq!(
        h.get(SESSION_HEADER).map(|v| v.as_str()),
        Some("s0m3s3ss10")
    );
    msg.ack().await.unwrap();
    assert!(messages.next().await.is_none(), "exactly one message");

    let mut consumer = consumer;
    // The ack is processed asynchronously by the server; poll briefly until it is counted.
    let mut pending = u64::MAX;
    for _ in 0..50 {
        let info = consumer.info().await.unwrap();
        pending = (info.num_ack_pending as u64) + info.num_pending;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending, 0, "message acknowledged and nothing left");
    bus::remove(&js, &layout).await;
}

#[tokio::test]
async fn livelesson_state_updates_are_guarded_by_revision() {
    let js = jetstream::new(nats().await);
    let layout = Layout::new(unique("t"));
    bus::ensure(&js, &layout).await.unwrap();
    let kv = js.get_key_value(layout.livelessons_bucket()).await.unwrap();

    let rev = kv.create("ll1", "INITIALIZED".into()).await.unwrap();
    // A second creator loses.
    assert!(kv.create("ll1", "INITIALIZED".into()).await.is_err());
    let rev2 = kv.update("ll1", "BOOTING".into(), rev).await.unwrap();
    // A writer holding the old revision cannot overwrite the newer state.
    assert!(kv.update("ll1", "FAILED".into(), rev).await.is_err());
    let entry = kv.entry("ll1").await.unwrap().unwrap();
    assert_eq!(entry.value.as_ref(), b"BOOTING");
    assert_eq!(entry.revision, rev2);
    bus::remove(&js, &layout).await;
}

#[tokio::test]
async fn work_queue_hands_each_request_to_one_consumer() {
    let js = jetstream::new(nats().await);
    let layout = Layout::new(unique("t"));
    bus::ensure(&js, &layout).await.unwrap();
    let spec = &layout.streams()[0];
    assert_eq!(
        spec.retention,
        jetstream::stream::RetentionPolicy::WorkQueue
    );
    js.publish(layout.livelesson_requests(), "create".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let stream = js.get_stream(&spec.name).await.unwrap();
    let consumer = stream
        .get_or_create_consumer(
            "schedulers",
            consumer::pull::Config {
                durable_name: Some("schedulers".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let msg = consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    msg.double_ack().await.unwrap();
    // Acknowledged work leaves a work-queue stream.
    let mut stream = stream;
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
    bus::remove(&js, &layout).await;
}

#[tokio::test]
async fn an_existing_feedback_stream_gets_the_hour_long_duplicate_window() {
    let js = jetstream::new(nats().await);
    let layout = Layout::new(unique("t"));
    // The stream as an earlier version made it: the server's 2-minute window.
    js.create_stream(jetstream::stream::Config {
        name: layout.feedback_stream(),
        subjects: vec![format!("{}.feedback.>", layout.prefix())],
        ..Default::default()
    })
    .await
    .unwrap();
    bus::ensure(&js, &layout).await.unwrap();
    let mut stream = js.get_stream(layout.feedback_stream()).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.duplicate_window, Duration::from_secs(3600));
    bus::remove(&js, &layout).await;
}
