//! With an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`), the spans of a learner action reach a real
//! OTLP/gRPC receiver too — the same spans (IDs, names, attributes) that go to ClickHouse
//! through NATS. (Its own test binary: tracing is set up once per process.)

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use antidote_platform::livelesson::Status;
use common::bundled;
use common::stack::{Stack, http};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::sync::mpsc;

/// A received span: trace ID, span ID, name, attributes.
type Received = (String, String, String, Vec<(String, String)>);

/// A collector that hands every received span to the test.
struct Receiver(mpsc::UnboundedSender<Received>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for s in ss.spans {
                    let attrs = s
                        .attributes
                        .iter()
                        .map(|kv| {
                            let v = kv
                                .value
                                .as_ref()
                                .and_then(|v| v.value.as_ref())
                                .map(|v| format!("{v:?}"))
                                .unwrap_or_default();
                            (kv.key.clone(), v)
                        })
                        .collect();
                    let _ = self
                        .0
                        .send((hex(&s.trace_id), hex(&s.span_id), s.name, attrs));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_also_reach_an_otlp_receiver() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(tx)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let stack = Stack::start(bundled()).await;
    // As OTEL_EXPORTER_OTLP_ENDPOINT=http://ADDR would.
    let telemetry = antidote_telemetry::init_with("test", Some(format!("http://{addr}")));
    let mut queued = telemetry
        .take_spans()
        .expect("the first init in this process");

    let session = stack.client.create_session().await.unwrap().id;
    let r = http()
        .post(stack.url("/api/v1/livelessons"))
        .header("x-antidote-session", &session)
        .json(&serde_json::json!({"lesson": "bash-basics"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let trace = r.headers()["x-trace-id"].to_str().unwrap().to_owned();
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.client.get(&id).await.unwrap().status != Status::Ready {
        assert!(Instant::now() < deadline, "never READY");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    telemetry.flush();

    // What went to ClickHouse's queue for this trace…
    let mut mine = BTreeSet::new();
    while let Ok(row) = queued.try_recv() {
        if row.trace_id == trace {
            mine.insert((row.span_id, row.name));
        }
    }
    assert!(mine.len() >= 5, "{mine:?}");
    // …arrives at the OTLP receiver, span for span.
    let mut otlp = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mine.is_subset(&otlp) {
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some((t, span, name, attrs))) if t == trace => {
                if name == "livelesson.provision" {
                    assert!(
                        attrs
                            .iter()
                            .any(|(k, v)| k == "session.id" && v.contains(&session)),
                        "{attrs:?}"
                    );
                }
                otlp.insert((span, name));
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("receiver gone"),
            Err(_) => telemetry.flush(),
        }
        assert!(
            Instant::now() < deadline,
            "OTLP got {otlp:?}, ClickHouse queue had {mine:?}"
        );
    }
    stack.stop().await;
}
