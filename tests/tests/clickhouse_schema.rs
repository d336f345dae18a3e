//! The ClickHouse schema against the real servers: Debian's 18.16 (started by the services
//! script) and the current engine (chdb-core, through python3).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::io::Write;
use std::process::{Command, Stdio};

use antidote_telemetry::rows::{EventRow, Severity};
use antidote_telemetry::schema::{self, ServerVersion};
use antidote_tests::{clickhouse, clickhouse_url, python, unique};

/// The contract of DESIGN §7: these tables with (at least) these columns.
const CONTRACT: &[(&str, &[&str])] = &[
    (
        "events",
        &[
            "event_id",
            "ts",
            "ts_ns",
            "kind",
            "severity",
            "service",
            "session_id",
            "lesson",
            "stage",
            "livelesson_id",
            "endpoint",
            "instance",
            "node",
            "trace_id",
            "span_id",
            "request_id",
            "message",
            "attr_keys",
            "attr_values",
        ],
    ),
    (
        "spans",
        &[
            "ts",
            "ts_ns",
            "duration_ns",
            "trace_id",
            "span_id",
            "parent_span_id",
            "name",
            "kind",
            "service",
            "status_code",
            "status_message",
            "session_id",
            "lesson",
            "livelesson_id",
            "endpoint",
            "instance",
            "attr_keys",
            "attr_values",
        ],
    ),
    (
        "logs",
        &[
            "ts",
            "ts_ns",
            "level",
            "target",
            "message",
            "service",
            "trace_id",
            "span_id",
            "session_id",
            "lesson",
            "livelesson_id",
            "attr_keys",
            "attr_values",
        ],
    ),
    (
        "feedback",
        &[
            "feedback_id",
            "created_at",
            "updated_at",
            "session_id",
            "livelesson_id",
            "lesson",
            "stage",
            "category",
            "rating",
            "message",
            "contact",
            "page_url",
            "user_agent",
            "client_context",
            "status",
            "assignee",
            "priority",
            "group_key",
            "duplicate_of",
        ],
    ),
    (
        "feedback_activity",
        &[
            "activity_id",
            "feedback_id",
            "ts",
            "actor",
            "action",
            "note",
        ],
    ),
];

fn assert_contract(columns: &[(String, String)], engine: &str) {
    for (table, wanted) in CONTRACT {
        for column in *wanted {
            assert!(
                columns.iter().any(|(t, c)| t == table && c == column),
                "{engine}: table {table} lacks contract column {column}"
            );
        }
    }
}

#[derive(Debug, PartialEq, clickhouse::Row, serde::Deserialize)]
struct ColumnRow {
    table: String,
    name: String,
    r#type: String,
}

async fn columns(client: &clickhouse::Client, db: &str) -> Vec<ColumnRow> {
    client
        .query(
            "SELECT table, name, type FROM system.columns WHERE database = ? ORDER BY table, name",
        )
        .bind(db)
        .fetch_all()
        .await
        .unwrap()
}

async fn create_statements(client: &clickhouse::Client, db: &str) -> Vec<String> {
    let tables: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind(db)
        .fetch_all()
        .await
        .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let ddl: String = client
            .query(&format!("SHOW CREATE TABLE {db}.{t}"))
            .fetch_one()
            .await
            .unwrap();
        out.push(ddl);
    }
    out
}

async fn drop_db(client: &clickhouse::Client, db: &str) {
    client
        .query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute()
        .await
        .unwrap();
}

#[tokio::test]
async fn migrate_twice_gives_the_same_schema_on_the_packaged_server() {
    let client = clickhouse().await;
    let url = clickhouse_url();
    let db = unique("antidote_migrate");

    let first = schema::migrate(&client, &url, &db).await.unwrap();
    assert!(first.applied.contains(&1), "{first:?}");
    let cols = columns(&client, &db).await;
    let ddl = create_statements(&client, &db).await;

    let second = schema::migrate(&client, &url, &db).await.unwrap();
    assert!(second.applied.is_empty(), "second run applied {second:?}");
    assert_eq!(second.already_applied, first.applied);
    assert_eq!(second.skipped, first.skipped);
    assert_eq!(columns(&client, &db).await, cols);
    assert_eq!(create_statements(&client, &db).await, ddl);

    // The server's own version decides what is skipped; the record says what was applied.
    let server = ServerVersion::parse(&first.server_version).unwrap();
    for (version, min) in &first.skipped {
        assert!(server < *min, "migration {version} skipped on {server}");
    }
    let recorded: Vec<u32> = client
        .query(&format!(
            "SELECT version FROM {db}.schema_migrations FINAL ORDER BY version"
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(recorded, first.applied);

    let pairs: Vec<(String, String)> = cols.into_iter().map(|c| (c.table, c.name)).collect();
    assert_contract(&pairs, &format!("ClickHouse {}", first.server_version));
    drop_db(&client, &db).await;
}

fn sample_event(session: &str) -> EventRow {
    let now = time::OffsetDateTime::now_utc();
    let ts = now.replace_nanosecond(0).unwrap();
    EventRow {
        event_id: uuid::Uuid::new_v4(),
        ts,
        ts_ns: u64::try_from(now.unix_timestamp_nanos()).unwrap(),
        kind: "livelesson.state_changed".into(),
        severity: Severity::Warn,
        service: "scheduler".into(),
        session_id: session.into(),
        lesson: "ospf-triangle".into(),
        stage: 1,
        livelesson_id: "k3j4h5g6f7".into(),
        endpoint: "r1".into(),
        instance: "antidote-ab12-r1".into(),
        node: "host-1".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "00f067aa0ba902b7".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        message: "state BOOTING -> CONFIGURING: it's \"quoted\", tab\tand ünïcode".into(),
        attr_keys: vec!["from".into(), "to".into()],
        attr_values: vec!["BOOTING".into(), "CONFIGURING".into()],
    }
}

#[tokio::test]
async fn event_rows_round_trip_and_redelivery_collapses() {
    let client = clickhouse().await;
    let db = unique("antidote_roundtrip");
    schema::migrate(&client, &clickhouse_url(), &db)
        .await
        .unwrap();

    let session = "s0m3s3ss10";
    let row = sample_event(session);
    let other = sample_event("0th3rs3ss1");
    // The same event twice (an at-least-once redelivery) plus another session's event.
    // Inserts name the table alone; the database comes from the client, as in the sink.
    let in_db = client.clone().with_database(&db);
    for batch in [vec![row.clone(), other.clone()], vec![row.clone()]] {
        let mut insert = in_db.insert::<EventRow>("events").await.unwrap();
        for r in &batch {
            insert.write(r).await.unwrap();
        }
        insert.end().await.unwrap();
    }

    let fetched: Vec<EventRow> = client
        .query(&format!(
            "SELECT ?fields FROM {db}.events FINAL WHERE session_id = ? ORDER BY ts_ns"
        ))
        .bind(session)
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(fetched, vec![row]);
    drop_db(&client, &db).await;
}

/// Runs the statements on the current ClickHouse engine (chdb-core) twice and returns the
/// (table, column) pairs of the database.
fn run_on_chdb(db: &str, statements: &[String]) -> (String, Vec<(String, String)>) {
    const SCRIPT: &str = r#"
import json, sys, tempfile
try:
    from chdb import session
except ImportError as e:
    sys.exit(f"chdb-core is not installed for {sys.executable}: {e}; "
             "run `deploy/local/services.sh pip chdb-core` (the README's test command does)")
db, statements = json.load(sys.stdin)
s = session.Session(tempfile.mkdtemp())
for round in (1, 2):
    for st in statements:
        try:
            s.query(st)
        except Exception as e:
            sys.exit(f"round {round}: {e}\n--- statement ---\n{st}")
print(s.query("SELECT version()", "TabSeparated").bytes().decode().strip())
out = s.query(f"SELECT table, name FROM system.columns WHERE database = '{db}'", "TabSeparated")
print(out.bytes().decode(), end="")
"#;
    let mut child = Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let input = serde_json::to_vec(&(db, statements)).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chdb run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let version = lines.next().unwrap_or_default().to_owned();
    let pairs = lines
        .filter_map(|l| l.split_once('\t'))
        .map(|(t, c)| (t.to_owned(), c.to_owned()))
        .collect();
    (version, pairs)
}

#[test]
fn the_same_ddl_runs_on_the_current_engine() {
    // Everything, gated migrations included: the current engine is newer than every gate.
    let statements = schema::all_statements("antidote", ServerVersion(u32::MAX, 0));
    let (version, pairs) = run_on_chdb("antidote", &statements);
    let server = ServerVersion::parse(&version).expect("chdb reports its version");
    for m in schema::MIGRATIONS {
        assert!(
            m.supported_on(server),
            "migration {} needs {:?}, chdb is {version}",
            m.version,
            m.min_server
        );
    }
    assert_contract(&pairs, &format!("chdb {version}"));
}

/// The triage queries (DESIGN §7: every query runs on 18.16 and the current release) on both
/// engines, on the migrated schema.
#[tokio::test]
async fn the_triage_queries_run_on_both_engines() {
    let client = clickhouse().await;
    let db = unique("triage_sql");
    schema::migrate(&client, &clickhouse_url(), &db)
        .await
        .unwrap();
    let queries = antidote_telemetry::triage::sample_sql(&client);
    for sql in &queries {
        let sql = sql.replace(" FROM feedback", &format!(" FROM {db}.feedback"));
        client
            .query(&sql.replace('?', "??"))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("18.16: {e}\n{sql}"));
    }
    drop_db(&client, &db).await;

    let mut statements = schema::all_statements("antidote", ServerVersion(u32::MAX, 0));
    statements.extend(
        queries
            .iter()
            .map(|q| q.replace(" FROM feedback", " FROM antidote.feedback")),
    );
    run_on_chdb("antidote", &statements);
}

#[tokio::test]
async fn retention_drops_only_days_past_it() {
    let client = clickhouse().await;
    let db = unique("antidote_retention");
    schema::migrate(&client, &clickhouse_url(), &db)
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let mut old = sample_event("retention1");
    old.ts = now - time::Duration::days(40);
    old.ts_ns = u64::try_from(old.ts.unix_timestamp_nanos()).unwrap();
    let recent = sample_event("retention1");
    let mut insert = client
        .clone()
        .with_database(&db)
        .insert::<EventRow>("events")
        .await
        .unwrap();
    insert.write(&old).await.unwrap();
    insert.write(&recent).await.unwrap();
    insert.end().await.unwrap();

    let cutoff = antidote_telemetry::retention::cutoff(now, 30);
    let dropped = antidote_telemetry::retention::drop_before(&client, &db, cutoff)
        .await
        .unwrap();
    let old_day = antidote_telemetry::retention::cutoff(old.ts, 0).to_string();
    assert_eq!(dropped, [("events".to_owned(), old_day)]);
    let left: Vec<String> = client
        .query(&format!("SELECT toString(event_id) FROM {db}.events"))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(left, [recent.event_id.to_string()]);
    // Nothing past retention: nothing to do.
    assert!(
        antidote_telemetry::retention::drop_before(&client, &db, cutoff)
            .await
            .unwrap()
            .is_empty()
    );
    drop_db(&client, &db).await;
}
