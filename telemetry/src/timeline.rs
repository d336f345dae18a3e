//! Everything that happened to one session, from ClickHouse: its events in order, its spans
//! (as trees, one per trace) and each endpoint instance with the last thing that happened to
//! it. What `antidote session ID` prints and `GET /api/v1/sessions/{id}/timeline` returns.
//!
//! Both tables are ordered by `session_id` first, so each query reads one small range.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rows::{EventRow, SpanRow};

/// An endpoint instance of the session and the last thing that happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointHistory {
    pub livelesson_id: String,
    pub lesson: String,
    pub endpoint: String,
    pub instance: String,
    pub node: String,
    /// The kind of its last event (`endpoint.configured`, `endpoint.unreachable`, ...).
    pub last_event: String,
    pub last_message: String,
    pub last_ts_ns: u64,
}

/// The whole session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub session_id: String,
    pub events: Vec<EventRow>,
    pub spans: Vec<SpanRow>,
    pub endpoints: Vec<EndpointHistory>,
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
    Ok(Timeline {
        session_id: session_id.to_owned(),
        events,
        spans,
        endpoints,
    })
}

/// Each endpoint's instance, node and last event, from the events (in time order).
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
                last_event: String::new(),
                last_message: String::new(),
                last_ts_ns: 0,
            });
        if !e.instance.is_empty() {
            h.instance = e.instance.clone();
        }
        if !e.node.is_empty() {
            h.node = e.node.clone();
        }
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
