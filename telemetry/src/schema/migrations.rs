//! The migrations themselves. Append only: never edit a migration that has shipped.
//!
//! Sort keys start with `session_id` because the question asked most is "everything about
//! session X" — it must read a small range. Tables are partitioned by day so retention can drop
//! whole partitions. The engines are ReplacingMergeTree keyed so that a redelivered row (same
//! event_id / span_id / log_id / activity_id) collapses into one: ingest is at-least-once.

use super::{Migration, ServerVersion};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "contract tables: events, spans, logs, feedback, feedback_activity",
        min_server: None,
        statements: &[
            "CREATE TABLE IF NOT EXISTS {db}.events (
                event_id UUID,
                ts DateTime,
                ts_ns UInt64,
                kind String,
                severity Enum8('debug' = 1, 'info' = 2, 'warn' = 3, 'error' = 4),
                service String,
                session_id String,
                lesson String,
                stage Int16,
                livelesson_id String,
                endpoint String,
                instance String,
                node String,
                trace_id String,
                span_id String,
                request_id String,
                message String,
                attr_keys Array(String),
                attr_values Array(String)
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMMDD(ts)
            ORDER BY (session_id, ts_ns, event_id)",
            "CREATE TABLE IF NOT EXISTS {db}.spans (
                ts DateTime,
                ts_ns UInt64,
                duration_ns UInt64,
                trace_id String,
                span_id String,
                parent_span_id String,
                name String,
                kind String,
                service String,
                status_code String,
                status_message String,
                session_id String,
                lesson String,
                livelesson_id String,
                endpoint String,
                instance String,
                attr_keys Array(String),
                attr_values Array(String)
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMMDD(ts)
            ORDER BY (session_id, trace_id, span_id)",
            "CREATE TABLE IF NOT EXISTS {db}.logs (
                log_id UUID,
                ts DateTime,
                ts_ns UInt64,
                level String,
                target String,
                message String,
                service String,
                trace_id String,
                span_id String,
                session_id String,
                lesson String,
                livelesson_id String,
                attr_keys Array(String),
                attr_values Array(String)
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMMDD(ts)
            ORDER BY (session_id, ts_ns, log_id)",
            // Latest state per report: every update inserts the whole row with a higher
            // revision; queries read `FINAL` (or argMax by revision).
            "CREATE TABLE IF NOT EXISTS {db}.feedback (
                feedback_id String,
                created_at DateTime,
                updated_at DateTime,
                revision UInt64,
                session_id String,
                livelesson_id String,
                lesson String,
                stage Int16,
                category String,
                rating UInt8,
                message String,
                contact String,
                page_url String,
                user_agent String,
                client_context String,
                status String,
                assignee String,
                priority String,
                group_key String,
                duplicate_of String
            ) ENGINE = ReplacingMergeTree(revision)
            PARTITION BY toYYYYMM(created_at)
            ORDER BY feedback_id",
            "CREATE TABLE IF NOT EXISTS {db}.feedback_activity (
                activity_id UUID,
                feedback_id String,
                ts DateTime,
                ts_ns UInt64,
                actor String,
                action String,
                changed_keys Array(String),
                old_values Array(String),
                new_values Array(String),
                note String
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMM(ts)
            ORDER BY (feedback_id, ts_ns, activity_id)",
        ],
    },
    Migration {
        version: 2,
        name: "trace_id skip indexes (finding a trace without its session)",
        min_server: Some(ServerVersion(21, 8)),
        statements: &[
            "ALTER TABLE {db}.events ADD INDEX IF NOT EXISTS events_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4",
            "ALTER TABLE {db}.spans ADD INDEX IF NOT EXISTS spans_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4",
            "ALTER TABLE {db}.logs ADD INDEX IF NOT EXISTS logs_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4",
        ],
    },
];
