//! The NATS layout of DESIGN §3: subjects, JetStream streams and KV buckets.
//!
//! Every role calls [`ensure`] at start; it creates what is missing and updates what exists,
//! so roles can start in any order. With the default prefix `antidote` the names are exactly
//! the contract's (`LIVELESSON_REQUESTS`, `EVENTS`, ..., buckets `livelessons`, `sessions`);
//! another prefix derives its own names, so two installations (or two tests) can share one NATS
//! server without seeing each other's data.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

/// The default subject prefix.
pub const DEFAULT_PREFIX: &str = "antidote";
/// Header carrying the learner's session ID on every message.
pub const SESSION_HEADER: &str = "antidote-session-id";

/// Names of subjects, streams and buckets for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

/// One JetStream stream of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: String,
    pub subjects: Vec<String>,
    pub retention: stream::RetentionPolicy,
    pub max_age: Duration,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a resend (`None`: the server's
    /// 2 minutes).
    pub duplicate_window: Option<Duration>,
}

/// Failures setting up the layout.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot create or update JetStream stream {name}: {source}")]
    Stream {
        name: String,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    #[error("cannot create JetStream key-value bucket {name}: {source}")]
    Bucket {
        name: String,
        #[source]
        source: jetstream::context::CreateKeyValueError,
    },
}

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Layout {
    /// The layout for `prefix` (a NATS subject token such as `antidote`).
    pub fn new(prefix: impl Into<String>) -> Layout {
        Layout {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Stream and bucket names get a prefix only when the subject prefix is not the default.
    fn name(&self, base: &str) -> String {
        if self.prefix == DEFAULT_PREFIX {
            base.to_owned()
        } else {
            let p: String = self
                .prefix
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!("{p}_{base}")
        }
    }

    /// The `EVENTS` stream's name.
    pub fn events_stream(&self) -> String {
        self.name("EVENTS")
    }

    /// The `SPANS` stream's name.
    pub fn spans_stream(&self) -> String {
        self.name("SPANS")
    }

    /// The `FEEDBACK` stream's name.
    pub fn feedback_stream(&self) -> String {
        self.name("FEEDBACK")
    }

    /// The `LOGS` stream's name.
    pub fn logs_stream(&self) -> String {
        self.name("LOGS")
    }

    /// `<prefix>.livelesson.requests`.
    pub fn livelesson_requests(&self) -> String {
        format!("{}.livelesson.requests", self.prefix)
    }

    /// `<prefix>.events.<kind>`.
    pub fn event(&self, kind: &str) -> String {
        format!("{}.events.{kind}", self.prefix)
    }

    /// `<prefix>.telemetry.spans`.
    pub fn spans(&self) -> String {
        format!("{}.telemetry.spans", self.prefix)
    }

    /// `<prefix>.telemetry.logs`.
    pub fn logs(&self) -> String {
        format!("{}.telemetry.logs", self.prefix)
    }

    /// `<prefix>.feedback.<what>` (`submitted`, `updated`).
    pub fn feedback(&self, what: &str) -> String {
        format!("{}.feedback.{what}", self.prefix)
    }

    /// The key-value bucket of livelesson state.
    pub fn livelessons_bucket(&self) -> String {
        self.name("livelessons")
    }

    /// The key-value bucket of session state.
    pub fn sessions_bucket(&self) -> String {
        self.name("sessions")
    }

    /// The key-value bucket holding, per feedback report, the highest revision ever
    /// published: triage refuses to build on a revision ClickHouse shows when a later one
    /// is on its way.
    pub fn feedback_revisions_bucket(&self) -> String {
        self.name("feedback_revisions")
    }

    /// Every key-value bucket of the layout.
    pub fn buckets(&self) -> [String; 3] {
        [
            self.livelessons_bucket(),
            self.sessions_bucket(),
            self.feedback_revisions_bucket(),
        ]
    }

    /// Every stream of the layout.
    pub fn streams(&self) -> Vec<StreamSpec> {
        let p = &self.prefix;
        vec![
            StreamSpec {
                name: self.name("LIVELESSON_REQUESTS"),
                subjects: vec![self.livelesson_requests()],
                retention: stream::RetentionPolicy::WorkQueue,
                max_age: DAY,
                duplicate_window: None,
            },
            StreamSpec {
                name: self.name("EVENTS"),
                subjects: vec![format!("{p}.events.>")],
                retention: stream::RetentionPolicy::Limits,
                max_age: 7 * DAY,
                duplicate_window: None,
            },
            StreamSpec {
                name: self.name("SPANS"),
                subjects: vec![self.spans()],
                retention: stream::RetentionPolicy::Limits,
                max_age: 7 * DAY,
                duplicate_window: None,
            },
            StreamSpec {
                name: self.name("LOGS"),
                subjects: vec![self.logs()],
                retention: stream::RetentionPolicy::Limits,
                max_age: 7 * DAY,
                duplicate_window: None,
            },
            StreamSpec {
                name: self.name("FEEDBACK"),
                subjects: vec![format!("{p}.feedback.>")],
                retention: stream::RetentionPolicy::Limits,
                max_age: 365 * DAY,
                // Report revisions and learners' resends are told apart by message ID for an
                // hour: a triage change built on a revision ingest had not stored yet, or a
                // report sent again after a lost answer, is recognised that long.
                duplicate_window: Some(Duration::from_secs(3600)),
            },
        ]
    }
}

/// Creates or updates every stream and bucket of `layout`.
pub async fn ensure(js: &jetstream::Context, layout: &Layout) -> Result<(), BusError> {
    for spec in layout.streams() {
        let config = stream::Config {
            name: spec.name.clone(),
            subjects: spec.subjects.clone(),
            retention: spec.retention,
            max_age: spec.max_age,
            duplicate_window: spec.duplicate_window.unwrap_or(Duration::from_secs(120)),
            storage: stream::StorageType::File,
            ..Default::default()
        };
        js.create_or_update_stream(config)
            .await
            .map_err(|source| BusError::Stream {
                name: spec.name.clone(),
                source,
            })?;
    }
    for bucket in layout.buckets() {
        if js.get_key_value(&bucket).await.is_ok() {
            continue;
        }
        js.create_key_value(kv::Config {
            bucket: bucket.clone(),
            history: 5,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|source| BusError::Bucket {
            name: bucket.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Deletes every stream and bucket of `layout` (and so all of its data). Missing ones are
/// fine. For tearing down a test installation or retiring a prefix.
pub async fn remove(js: &jetstream::Context, layout: &Layout) {
    for spec in layout.streams() {
        let _ = js.delete_stream(&spec.name).await;
    }
    for bucket in layout.buckets() {
        let _ = js.delete_key_value(&bucket).await;
    }
}

/// The highest revision of feedback report `id` ever published, if any was recorded.
pub async fn published_revision(
    js: &jetstream::Context,
    layout: &Layout,
    id: &str,
) -> Result<Option<u64>, String> {
    let store = js
        .get_key_value(layout.feedback_revisions_bucket())
        .await
        .map_err(|e| e.to_string())?;
    let entry = store.entry(id).await.map_err(|e| e.to_string())?;
    Ok(entry
        .filter(|e| e.operation == kv::Operation::Put)
        .and_then(|e| std::str::from_utf8(&e.value).ok()?.parse().ok()))
}

/// Raises the recorded revision of report `id` to `revision` (never lowers it; concurrent
/// writers are resolved by the bucket's revision check).
pub async fn record_published_revision(
    js: &jetstream::Context,
    layout: &Layout,
    id: &str,
    revision: u64,
) -> Result<(), String> {
    let store = js
        .get_key_value(layout.feedback_revisions_bucket())
        .await
        .map_err(|e| e.to_string())?;
    let value = revision.to_string();
    for _ in 0..5 {
        let entry = store.entry(id).await.map_err(|e| e.to_string())?;
        let written = match entry {
            Some(e) => {
                let have: u64 = std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if have >= revision && e.operation == kv::Operation::Put {
                    return Ok(());
                }
                store
                    .update(id, value.clone().into(), e.revision)
                    .await
                    .is_ok()
            }
            None => store.create(id, value.clone().into()).await.is_ok(),
        };
        if written {
            return Ok(());
        }
    }
    Err(format!(
        "could not record revision {revision} of report {id} (the entry kept changing)"
    ))
}

/// Publishes `event` on `<prefix>.events.<kind>` and waits for JetStream to store it.
pub async fn publish_event(
    js: &jetstream::Context,
    layout: &Layout,
    event: &antidote_telemetry::event::Event,
) -> Result<(), String> {
    // An event belongs to the trace it happened in.
    let mut event = std::borrow::Cow::Borrowed(event);
    if event.trace_id.is_empty() {
        let (trace_id, span_id) = antidote_telemetry::setup::current_ids();
        if !trace_id.is_empty() {
            let e = event.to_mut();
            e.trace_id = trace_id;
            e.span_id = span_id;
        }
    }
    let payload = serde_json::to_vec(&*event).map_err(|e| e.to_string())?;
    let mut headers = async_nats::HeaderMap::new();
    if !event.session_id.is_empty() {
        headers.insert(SESSION_HEADER, event.session_id.as_str());
    }
    antidote_telemetry::setup::inject_nats(&mut headers);
    js.publish_with_headers(layout.event(&event.kind), headers, payload.into())
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Publishes a new report on `<prefix>.feedback.submitted` and waits until JetStream stored
/// it. `msg_id` names the submission (`Nats-Msg-Id`): a resend with the same one within the
/// stream's duplicate window is not stored again, and the report stored the first time is
/// returned instead of `row`.
pub async fn publish_feedback(
    js: &jetstream::Context,
    layout: &Layout,
    row: &antidote_telemetry::rows::FeedbackRow,
    msg_id: &str,
) -> Result<antidote_telemetry::rows::FeedbackRow, String> {
    let payload = serde_json::to_vec(row).map_err(|e| e.to_string())?;
    let ack = publish_report(js, layout, "submitted", row, msg_id, payload).await?;
    if !ack.duplicate {
        return Ok(row.clone());
    }
    // A resend: JetStream answered with the first one's sequence.
    let first = js
        .get_stream(layout.feedback_stream())
        .await
        .map_err(|e| e.to_string())?
        .get_raw_message(ack.sequence)
        .await
        .map_err(|e| {
            format!(
                "cannot read the report sent first (sequence {}): {e}",
                ack.sequence
            )
        })?;
    serde_json::from_slice(&first.payload).map_err(|e| e.to_string())
}

/// Publishes a triage change — the report's new state with its activity — on
/// `<prefix>.feedback.updated` and waits until JetStream stored it. `Ok(false)`: JetStream
/// already had this revision of the report (someone else changed it meanwhile), nothing new
/// was stored.
pub async fn publish_feedback_update(
    js: &jetstream::Context,
    layout: &Layout,
    update: &antidote_telemetry::rows::FeedbackUpdate,
) -> Result<bool, String> {
    let payload = serde_json::to_vec(update).map_err(|e| e.to_string())?;
    let msg_id = format!("{}-{}", update.row.feedback_id, update.row.revision);
    publish_report(js, layout, "updated", &update.row, &msg_id, payload)
        .await
        .map(|ack| !ack.duplicate)
}

async fn publish_report(
    js: &jetstream::Context,
    layout: &Layout,
    what: &str,
    row: &antidote_telemetry::rows::FeedbackRow,
    msg_id: &str,
    payload: Vec<u8>,
) -> Result<jetstream::publish::PublishAck, String> {
    let mut headers = async_nats::HeaderMap::new();
    if !row.session_id.is_empty() {
        headers.insert(SESSION_HEADER, row.session_id.as_str());
    }
    headers.insert("Nats-Msg-Id", msg_id);
    antidote_telemetry::setup::inject_nats(&mut headers);
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        js.publish_with_headers(layout.feedback(what), headers, payload.into())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| "NATS did not confirm within 5 s".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefix_gives_the_contract_names() {
        let l = Layout::new(DEFAULT_PREFIX);
        assert_eq!(l.livelesson_requests(), "antidote.livelesson.requests");
        assert_eq!(
            l.event("session.created"),
            "antidote.events.session.created"
        );
        assert_eq!(l.spans(), "antidote.telemetry.spans");
        assert_eq!(l.logs(), "antidote.telemetry.logs");
        assert_eq!(l.feedback("submitted"), "antidote.feedback.submitted");
        assert_eq!(l.livelessons_bucket(), "livelessons");
        assert_eq!(l.sessions_bucket(), "sessions");
        assert_eq!(l.feedback_revisions_bucket(), "feedback_revisions");
        let names: Vec<String> = l.streams().into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            ["LIVELESSON_REQUESTS", "EVENTS", "SPANS", "LOGS", "FEEDBACK"]
        );
    }

    #[test]
    fn other_prefixes_do_not_collide_with_the_default() {
        let l = Layout::new("test-1");
        assert_eq!(l.livelessons_bucket(), "test_1_livelessons");
        assert!(l.streams().iter().all(|s| s.name.starts_with("test_1_")));
        assert!(
            l.streams()
                .iter()
                .all(|s| s.subjects.iter().all(|x| x.starts_with("test-1.")))
        );
    }
}
