//! Everything that happened to one session, from ClickHouse: its events in order, its spans
//! (as trees, one per trace), each endpoint instance with its reachability checks and
//! configuration runs, and the session's feedback reports. What `antidote session ID`
//! prints, `GET /api/v1/sessions/{id}/timeline` returns and a triage report page shows.
//!
//! Events and spans are ordered by `session_id` first, so each query reads one small range.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::kind;
use crate::rows::{EventRow, SpanRow};
use crate::triage::{self, ReportSummary};

/// One reachability result of an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReachabilityCheck {
    pub ts_ns: u64,
    pub reachable: bool,
    /// Why it was not (empty when it was).
    pub message: String,
}

/// One configuration run on an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigurationRun {
    pub ts_ns: u64,
    pub stage: i16,
    pub ok: bool,
    /// The exit code, `none` when the run was killed, empty when unknown.
    pub exit_code: String,
    pub duration_ms: String,
    /// The end of its output.
    pub output_tail: String,
    pub message: String,
}

/// An endpoint instance of the session: where it ran and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointHistory {
    pub livelesson_id: String,
    pub lesson: String,
    pub endpoint: String,
    pub instance: String,
    pub node: String,
    /// The backend that ran it (`local`, `kubernetes`).
    pub backend: String,
    /// The kind of its last event (`endpoint.configured`, `endpoint.unreachable`, ...).
    pub last_event: String,
    pub last_message: String,
    pub last_ts_ns: u64,
    /// Whether it is failing: its creation failed, or its latest reachability check or
    /// configuration run did (an earlier failure that a later success replaced does not count).
    pub failed: bool,
    pub reachability: Vec<ReachabilityCheck>,
    pub configurations: Vec<ConfigurationRun>,
    #[serde(skip)]
    create_failed: bool,
}

/// The whole session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub session_id: String,
    pub events: Vec<EventRow>,
    pub spans: Vec<SpanRow>,
    pub endpoints: Vec<EndpointHistory>,
    /// The session's feedback reports, oldest first.
    pub feedback: Vec<ReportSummary>,
}

/// Reads session `session_id`'s timeline (`client` points at the contract database).
pub async fn session_timeline(
    client: &clickhouse::Client,
    session_id: &str,
) -> Result<Timeline, clickhouse::error::Error> {
    let events = client
        .query(
            "SELECT event_id, ts, ts_ns, kind, severity, service, session_id, lesson, stage, \
             livelesson_id, endpoint, instance, node, trace_id, span_id, request_id, message, \
             attr_keys, attr_values \
             FROM events FINAL WHERE session_id = ? ORDER BY ts_ns, event_id",
        )
        .bind(session_id)
        .fetch_all::<EventRow>()
        .await?;
    let spans = client
        .query(
            "SELECT ts, ts_ns, duration_ns, trace_id, span_id, parent_span_id, name, kind, \
             service, status_code, status_message, session_id, lesson, livelesson_id, endpoint, \
             instance, attr_keys, attr_values \
             FROM spans FINAL WHERE session_id = ? ORDER BY ts_ns, span_id",
        )
        .bind(session_id)
        .fetch_all::<SpanRow>()
        .await?;
    let endpoints = endpoint_histories(&events);
    let feedback = triage::session_reports(client, session_id).await?;
    Ok(Timeline {
        session_id: session_id.to_owned(),
        events,
        spans,
        endpoints,
        feedback,
    })
}

/// The value of attribute `key` of an event.
pub fn attr<'a>(e: &'a EventRow, key: &str) -> Option<&'a str> {
    e.attr_keys
        .iter()
        .position(|k| k == key)
        .and_then(|i| e.attr_values.get(i))
        .map(String::as_str)
}

/// Each endpoint's instance, node, backend, reachability checks and configuration runs, from
/// the events (in time order).
pub fn endpoint_histories(events: &[EventRow]) -> Vec<EndpointHistory> {
    let mut by_endpoint: BTreeMap<(String, String), EndpointHistory> = BTreeMap::new();
    for e in events.iter().filter(|e| !e.endpoint.is_empty()) {
        let h = by_endpoint
            .entry((e.livelesson_id.clone(), e.endpoint.clone()))
            .or_insert_with(|| EndpointHistory {
                livelesson_id: e.livelesson_id.clone(),
                lesson: e.lesson.clone(),
                endpoint: e.endpoint.clone(),
                instance: String::new(),
                node: String::new(),
                backend: String::new(),
                last_event: String::new(),
                last_message: String::new(),
                last_ts_ns: 0,
                failed: false,
                reachability: Vec::new(),
                configurations: Vec::new(),
                create_failed: false,
            });
        if !e.instance.is_empty() {
            h.instance = e.instance.clone();
        }
        if !e.node.is_empty() {
            h.node = e.node.clone();
        }
        if let Some(b) = attr(e, "backend") {
            h.backend = b.to_owned();
        }
        match e.kind.as_str() {
            kind::ENDPOINT_REACHABLE | kind::ENDPOINT_UNREACHABLE => {
                let reachable = e.kind == kind::ENDPOINT_REACHABLE;
                h.reachability.push(ReachabilityCheck {
                    ts_ns: e.ts_ns,
                    reachable,
                    message: e.message.clone(),
                });
            }
            kind::ENDPOINT_CONFIGURED | kind::ENDPOINT_CONFIG_FAILED => {
                let ok = e.kind == kind::ENDPOINT_CONFIGURED;
                h.configurations.push(ConfigurationRun {
                    ts_ns: e.ts_ns,
                    stage: e.stage,
                    ok,
                    exit_code: attr(e, "exit_code").unwrap_or_default().to_owned(),
                    duration_ms: attr(e, "duration_ms").unwrap_or_default().to_owned(),
                    output_tail: attr(e, "output_tail").unwrap_or_default().to_owned(),
                    message: e.message.clone(),
                });
            }
            kind::ENDPOINT_CREATED if attr(e, "failed") == Some("true") => h.create_failed = true,
            _ => {}
        }
        h.failed = h.create_failed
            || h.reachability.last().is_some_and(|c| !c.reachable)
            || h.configurations.last().is_some_and(|r| !r.ok);
        h.last_event = e.kind.clone();
        h.last_message = e.message.clone();
        h.last_ts_ns = e.ts_ns;
    }
    by_endpoint.into_values().collect()
}

/// The spans as indented trees (one per trace, roots first by time): `(depth, span)`.
pub fn span_trees(spans: &[SpanRow]) -> Vec<(usize, &SpanRow)> {
    let ids: std::collections::HashSet<(&str, &str)> = spans
        .iter()
        .map(|s| (s.trace_id.as_str(), s.span_id.as_str()))
        .collect();
    let mut children: BTreeMap<(&str, &str), Vec<&SpanRow>> = BTreeMap::new();
    let mut roots = Vec::new();
    for s in spans {
        if ids.contains(&(s.trace_id.as_str(), s.parent_span_id.as_str())) {
            children
                .entry((s.trace_id.as_str(), s.parent_span_id.as_str()))
                .or_default()
                .push(s);
        } else {
            roots.push(s);
        }
    }
    let mut out = Vec::with_capacity(spans.len());
    fn walk<'a>(
        s: &'a SpanRow,
        depth: usize,
        children: &BTreeMap<(&str, &str), Vec<&'a SpanRow>>,
        out: &mut Vec<(usize, &'a SpanRow)>,
    ) {
        out.push((depth, s));
        if let Some(kids) = children.get(&(s.trace_id.as_str(), s.span_id.as_str())) {
            for k in kids {
                walk(k, depth + 1, children, out);
            }
        }
    }
    for r in roots {
        walk(r, 0, &children, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, ts: u64) -> SpanRow {
        SpanRow {
            ts: time::OffsetDateTime::UNIX_EPOCH,
            kind: String::new(),
            session_id: String::new(),
            ts_ns: ts,
            duration_ns: 1,
            trace_id: "t".into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: id.into(),
            service: String::new(),
            status_code: String::new(),
            status_message: String::new(),
            lesson: String::new(),
            livelesson_id: String::new(),
            endpoint: String::new(),
            instance: String::new(),
            attr_keys: vec![],
            attr_values: vec![],
        }
    }

    #[test]
    fn spans_become_trees_and_orphans_become_roots() {
        let spans = [
            span("a", "browser", 1),
            span("b", "a", 2),
            span("c", "b", 3),
            span("d", "a", 4),
            span("x", "gone", 5),
        ];
        let tree: Vec<(usize, &str)> = span_trees(&spans)
            .into_iter()
            .map(|(d, s)| (d, s.span_id.as_str()))
            .collect();
        assert_eq!(tree, [(0, "a"), (1, "b"), (2, "c"), (1, "d"), (0, "x")]);
    }
}
