//! The ClickHouse schema of DESIGN §7 as numbered migrations, and the runner behind
//! `antidote migrate`.
//!
//! Every statement must run on ClickHouse 18.16 (Debian 12) and on the current release: no
//! DateTime64, Map, window functions, `{param:Type}` placeholders, `toStartOfInterval` or
//! `JSONExtract*`. Features only newer servers have go into migrations with a
//! `min_server` version; on an older server they are skipped and not recorded, so they apply
//! once the server is upgraded and `antidote migrate` runs again.
//!
//! Statements are idempotent (`IF NOT EXISTS`), so a migration interrupted half-way is simply
//! run again. Applied versions are recorded in `schema_migrations`.

mod migrations;

use std::fmt;

pub use migrations::MIGRATIONS;

/// One schema migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Increasing version number, recorded in `schema_migrations` once applied.
    pub version: u32,
    /// What the migration does, for people.
    pub name: &'static str,
    /// The oldest server (major, minor) that supports it; `None` for every server.
    pub min_server: Option<ServerVersion>,
    /// DDL statements; `{db}` stands for the database name.
    pub statements: &'static [&'static str],
}

/// A ClickHouse server version (major, minor), e.g. 18.16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion(pub u32, pub u32);

impl ServerVersion {
    /// Parses what `SELECT version()` returns, e.g. `18.16.1` or `26.9.2.1`.
    pub fn parse(s: &str) -> Option<ServerVersion> {
        let mut parts = s.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(ServerVersion(major, minor))
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl Migration {
    /// Whether this migration can run on `server`.
    pub fn supported_on(&self, server: ServerVersion) -> bool {
        self.min_server.is_none_or(|min| server >= min)
    }

    /// The statements with `{db}` replaced by `db`.
    pub fn sql(&self, db: &str) -> Vec<String> {
        self.statements
            .iter()
            .map(|s| s.replace("{db}", db))
            .collect()
    }
}

/// The statement creating the database itself.
pub fn create_database_sql(db: &str) -> String {
    format!("CREATE DATABASE IF NOT EXISTS {db}")
}

/// The statement creating the table that records applied migrations.
pub fn create_migrations_table_sql(db: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (\
         version UInt32, name String, applied_at DateTime, server_version String\
         ) ENGINE = ReplacingMergeTree() ORDER BY version"
    )
}

/// Every statement `migrate` would run on `server`, in order (database and bookkeeping
/// table first). Used by tests to run the same SQL on other engines.
pub fn all_statements(db: &str, server: ServerVersion) -> Vec<String> {
    let mut out = vec![create_database_sql(db), create_migrations_table_sql(db)];
    for m in MIGRATIONS.iter().filter(|m| m.supported_on(server)) {
        out.extend(m.sql(db));
    }
    out
}

/// What one `migrate` run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// The server's version string.
    pub server_version: String,
    /// Versions applied by this run.
    pub applied: Vec<u32>,
    /// Versions already recorded before this run.
    pub already_applied: Vec<u32>,
    /// Versions skipped because the server is too old, with the version each needs.
    pub skipped: Vec<(u32, ServerVersion)>,
}

/// Failures of `migrate`.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot reach ClickHouse at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: clickhouse::error::Error,
    },
    #[error("ClickHouse reported version `{0}`, which is not MAJOR.MINOR[...]")]
    BadServerVersion(String),
    #[error("migration {version} ({name}) failed on statement {statement}: {source}")]
    Statement {
        version: u32,
        name: &'static str,
        statement: String,
        #[source]
        source: clickhouse::error::Error,
    },
    #[error("cannot {what}: {source}")]
    Bookkeeping {
        what: &'static str,
        #[source]
        source: clickhouse::error::Error,
    },
}

/// Brings database `db` up to the newest schema the server supports.
///
/// `url` is only used in error messages.
pub async fn migrate(
    client: &clickhouse::Client,
    url: &str,
    db: &str,
) -> Result<MigrateReport, SchemaError> {
    let server_version: String =
        client
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(|source| SchemaError::Unreachable {
                url: url.to_owned(),
                source,
            })?;
    let server = ServerVersion::parse(&server_version)
        .ok_or_else(|| SchemaError::BadServerVersion(server_version.clone()))?;

    for (what, sql) in [
        ("create the database", create_database_sql(db)),
        ("create schema_migrations", create_migrations_table_sql(db)),
    ] {
        client
            .query(&sql)
            .execute()
            .await
            .map_err(|source| SchemaError::Bookkeeping { what, source })?;
    }

    let applied_before: Vec<u32> = client
        .query(&format!(
            "SELECT DISTINCT version FROM {db}.schema_migrations ORDER BY version"
        ))
        .fetch_all()
        .await
        .map_err(|source| SchemaError::Bookkeeping {
            what: "read schema_migrations",
            source,
        })?;

    let mut report = MigrateReport {
        server_version: server_version.clone(),
        ..Default::default()
    };
    for m in MIGRATIONS {
        if applied_before.contains(&m.version) {
            report.already_applied.push(m.version);
            continue;
        }
        if let Some(min) = m.min_server.filter(|_| !m.supported_on(server)) {
            report.skipped.push((m.version, min));
            continue;
        }
        for statement in m.sql(db) {
            client
                .query(&statement)
                .execute()
                .await
                .map_err(|source| SchemaError::Statement {
                    version: m.version,
                    name: m.name,
                    statement: statement.clone(),
                    source,
                })?;
        }
        // `?` placeholders are bound client-side by the crate, which works on every server.
        client
            .query(&format!(
                "INSERT INTO {db}.schema_migrations (version, name, applied_at, server_version) \
                 SELECT ?, ?, now(), ?"
            ))
            .bind(m.version)
            .bind(m.name)
            .bind(server_version.as_str())
            .execute()
            .await
            .map_err(|source| SchemaError::Bookkeeping {
                what: "record the migration",
                source,
            })?;
        report.applied.push(m.version);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_parse_and_order() {
        assert_eq!(ServerVersion::parse("18.16.1"), Some(ServerVersion(18, 16)));
        assert_eq!(ServerVersion::parse("26.9.2.1"), Some(ServerVersion(26, 9)));
        assert_eq!(ServerVersion::parse("x"), None);
        assert!(ServerVersion(18, 16) < ServerVersion(21, 8));
    }

    #[test]
    fn versions_increase_and_statements_name_the_database() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "migration {} out of order", m.version);
            last = m.version;
            for s in m.statements {
                assert!(s.contains("{db}."), "statement does not name {{db}}: {s}");
            }
        }
    }

    #[test]
    fn old_servers_get_only_portable_sql() {
        // The rules of DESIGN §7, checked on the SQL an 18.16 server receives.
        let forbidden = [
            "DateTime64",
            "Map(",
            "OVER (",
            "toStartOfInterval",
            "JSONExtract",
            "LowCardinality",
            " TTL ",
            "CODEC",
            "INDEX",
        ];
        for s in all_statements("antidote", ServerVersion(18, 16)) {
            for f in forbidden {
                assert!(!s.contains(f), "`{f}` in SQL for 18.16: {s}");
            }
        }
    }

    #[test]
    fn new_servers_get_the_gated_migrations_too() {
        let old = all_statements("antidote", ServerVersion(18, 16)).len();
        let new = all_statements("antidote", ServerVersion(26, 9)).len();
        assert!(new > old);
    }
}
