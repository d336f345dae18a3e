//! Rows of the contract tables as Rust types, in the tables' column order.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Severity of an event (the `severity` Enum8 of `events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(i8)]
pub enum Severity {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// Serializes a [`Severity`] as the Enum8 value ClickHouse stores.
mod severity_repr {
    use super::Severity;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Severity, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_i8(*s as i8)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Severity, D::Error> {
        Ok(match i8::deserialize(de)? {
            1 => Severity::Debug,
            2 => Severity::Info,
            3 => Severity::Warn,
            _ => Severity::Error,
        })
    }
}

/// One row of `antidote.events`.
///
/// `stage` is -1 when the event concerns no particular stage; empty strings mean "not
/// applicable" for the ID columns (ClickHouse 18.16 handles empty strings better than
/// Nullable in sort keys).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct EventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub ts: OffsetDateTime,
    pub ts_ns: u64,
    pub kind: String,
    #[serde(with = "severity_repr")]
    pub severity: Severity,
    pub service: String,
    pub session_id: String,
    pub lesson: String,
    pub stage: i16,
    pub livelesson_id: String,
    pub endpoint: String,
    pub instance: String,
    pub node: String,
    pub trace_id: String,
    pub span_id: String,
    pub request_id: String,
    pub message: String,
    pub attr_keys: Vec<String>,
    pub attr_values: Vec<String>,
}

/// One row of `antidote.spans`: a finished span. IDs are lowercase hex as in `traceparent`;
/// `parent_span_id` is empty for a root span. The contract attributes (`session.id`,
/// `lesson`, `livelesson.id`, `endpoint`, `instance`) have columns of their own; the rest
/// are in the parallel key/value arrays.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct SpanRow {
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub ts: OffsetDateTime,
    pub ts_ns: u64,
    pub duration_ns: u64,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: String,
    pub service: String,
    pub status_code: String,
    pub status_message: String,
    pub session_id: String,
    pub lesson: String,
    pub livelesson_id: String,
    pub endpoint: String,
    pub instance: String,
    pub attr_keys: Vec<String>,
    pub attr_values: Vec<String>,
}

/// One row of `antidote.logs`: a log record of our code, with the trace it was written in
/// and the session, lesson and livelesson of the spans around it.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct LogRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub log_id: Uuid,
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub ts: OffsetDateTime,
    pub ts_ns: u64,
    pub level: String,
    pub target: String,
    pub message: String,
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub session_id: String,
    pub lesson: String,
    pub livelesson_id: String,
    pub attr_keys: Vec<String>,
    pub attr_values: Vec<String>,
}

/// One row of `antidote.feedback`: a report's whole state at `revision` (the highest revision
/// wins, `FINAL`). Published as JSON on `antidote.feedback.submitted` / `.updated`.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct FeedbackRow {
    pub feedback_id: String,
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub created_at: OffsetDateTime,
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub updated_at: OffsetDateTime,
    pub revision: u64,
    pub session_id: String,
    pub livelesson_id: String,
    pub lesson: String,
    pub stage: i16,
    pub category: String,
    /// 0 when the learner gave none.
    pub rating: u8,
    pub message: String,
    pub contact: String,
    pub page_url: String,
    pub user_agent: String,
    /// What the page attached (endpoints, request and trace IDs, client errors), as JSON.
    pub client_context: String,
    pub status: String,
    pub assignee: String,
    pub priority: String,
    pub group_key: String,
    pub duplicate_of: String,
}

/// One row of `antidote.feedback_activity`: one triage action on a report — who, when, which
/// fields moved from what to what, and the note. Published inside the `feedback.updated`
/// message that carries the report's new state, so the two are stored together or not at
/// all.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct FeedbackActivityRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub activity_id: Uuid,
    pub feedback_id: String,
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub ts: OffsetDateTime,
    pub ts_ns: u64,
    /// The maintainer (the name of the token used).
    pub actor: String,
    /// `status`, `update` or `note`.
    pub action: String,
    pub changed_keys: Vec<String>,
    pub old_values: Vec<String>,
    pub new_values: Vec<String>,
    pub note: String,
}

/// The payload of `antidote.feedback.updated`: the report's new state (the fields of
/// [`FeedbackRow`]) and the activity that produced it under `activity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackUpdate {
    #[serde(flatten)]
    pub row: FeedbackRow,
    pub activity: FeedbackActivityRow,
}
