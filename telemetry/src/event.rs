//! The platform event: one typed record of something that happened (DESIGN §7).
//!
//! Events travel as JSON on `antidote.events.<kind>` and land in the `events` table; the field
//! names are the table's columns. Empty strings mean "not applicable" and `stage` is -1 when
//! the event concerns no particular stage.

use serde::{Deserialize, Serialize};

use crate::rows::Severity;

/// Every event kind of DESIGN §7 (the minimum set; more may be added).
pub mod kind {
    pub const SESSION_CREATED: &str = "session.created";
    pub const LIVELESSON_REQUESTED: &str = "livelesson.requested";
    pub const LIVELESSON_STATE_CHANGED: &str = "livelesson.state_changed";
    pub const LIVELESSON_READY: &str = "livelesson.ready";
    pub const LIVELESSON_FAILED: &str = "livelesson.failed";
    pub const LIVELESSON_STAGE_CHANGED: &str = "livelesson.stage_changed";
    pub const LIVELESSON_DELETED: &str = "livelesson.deleted";
    pub const ENDPOINT_CREATED: &str = "endpoint.created";
    pub const ENDPOINT_REACHABLE: &str = "endpoint.reachable";
    pub const ENDPOINT_UNREACHABLE: &str = "endpoint.unreachable";
    pub const ENDPOINT_CONFIGURED: &str = "endpoint.configured";
    pub const ENDPOINT_CONFIG_FAILED: &str = "endpoint.config_failed";
    pub const ENDPOINT_DELETED: &str = "endpoint.deleted";
    pub const TERMINAL_OPENED: &str = "terminal.opened";
    pub const TERMINAL_CLOSED: &str = "terminal.closed";
    pub const FEEDBACK_SUBMITTED: &str = "feedback.submitted";
    pub const FEEDBACK_UPDATED: &str = "feedback.updated";
    pub const CLIENT_ERROR: &str = "client.error";
    pub const HTTP_ERROR: &str = "http.error";
    /// Beyond the minimum set: a learner's Verify and its result (for triage).
    pub const STAGE_VERIFIED: &str = "livelesson.verified";
}

/// One event, as published and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: uuid::Uuid,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub kind: String,
    pub severity: Severity,
    pub service: String,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub lesson: String,
    #[serde(default = "no_stage")]
    pub stage: i16,
    #[serde(default)]
    pub livelesson_id: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub instance: String,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub trace_id: String,
    #[serde(default)]
    pub span_id: String,
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub message: String,
    /// Extra attributes as parallel key/value lists (the table has no Map type).
    #[serde(default)]
    pub attr_keys: Vec<String>,
    #[serde(default)]
    pub attr_values: Vec<String>,
}

fn no_stage() -> i16 {
    -1
}

impl Event {
    /// A new event of `kind` from `service`, now, with every ID empty.
    pub fn new(kind: &str, service: &str, severity: Severity) -> Event {
        let ts_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Event {
            event_id: uuid::Uuid::new_v4(),
            ts_ns,
            kind: kind.to_owned(),
            severity,
            service: service.to_owned(),
            session_id: String::new(),
            lesson: String::new(),
            stage: -1,
            livelesson_id: String::new(),
            endpoint: String::new(),
            instance: String::new(),
            node: String::new(),
            trace_id: String::new(),
            span_id: String::new(),
            request_id: String::new(),
            message: String::new(),
            attr_keys: Vec::new(),
            attr_values: Vec::new(),
        }
    }

    /// Adds an attribute.
    pub fn attr(mut self, key: &str, value: impl ToString) -> Event {
        self.attr_keys.push(key.to_owned());
        self.attr_values.push(value.to_string());
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Event {
        self.message = message.into();
        self
    }
}

impl From<&Event> for crate::rows::EventRow {
    fn from(e: &Event) -> crate::rows::EventRow {
        let ts_ns = e.ts_ns;
        let secs = i64::try_from(ts_ns / 1_000_000_000).unwrap_or(i64::MAX);
        crate::rows::EventRow {
            event_id: e.event_id,
            ts: time::OffsetDateTime::from_unix_timestamp(secs)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            ts_ns,
            kind: e.kind.clone(),
            severity: e.severity,
            service: e.service.clone(),
            session_id: e.session_id.clone(),
            lesson: e.lesson.clone(),
            stage: e.stage,
            livelesson_id: e.livelesson_id.clone(),
            endpoint: e.endpoint.clone(),
            instance: e.instance.clone(),
            node: e.node.clone(),
            trace_id: e.trace_id.clone(),
            span_id: e.span_id.clone(),
            request_id: e.request_id.clone(),
            message: e.message.clone(),
            attr_keys: e.attr_keys.clone(),
            attr_values: e.attr_values.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_becomes_a_row_with_second_and_nanosecond_times() {
        let mut e = Event::new(kind::LIVELESSON_READY, "scheduler", Severity::Info).attr("a", 1);
        e.ts_ns = 1_796_000_000_123_456_789;
        let row = crate::rows::EventRow::from(&e);
        assert_eq!(row.ts.unix_timestamp(), 1_796_000_000);
        assert_eq!(row.ts_ns, e.ts_ns);
        assert_eq!(row.attr_keys, vec!["a"]);
        assert_eq!(row.stage, -1);
    }

    #[test]
    fn events_round_trip_as_json() {
        let e = Event::new(kind::SESSION_CREATED, "api", Severity::Warn).message("m");
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"severity\":\"warn\""), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }
}
