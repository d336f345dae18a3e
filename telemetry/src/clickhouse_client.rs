//! Building a `clickhouse::Client` that works against every server we support.
//!
//! ClickHouse 18.16 (Debian 12's package) has no `RowBinaryWithNamesAndTypes`, which the
//! `clickhouse` crate uses to validate rows against the table schema; validation is therefore
//! off, and the row types in [`crate::rows`] must match the DDL in [`crate::schema`] by hand.
//! The schema tests insert and read back every row type to keep the two in step.

/// The contract database name.
pub const DATABASE: &str = "antidote";
/// Environment variable naming the ClickHouse HTTP URL.
pub const CLICKHOUSE_URL_ENV: &str = "ANTIDOTE_CLICKHOUSE_URL";
/// Default ClickHouse HTTP URL (the standard port; `antidote up` uses the project's own).
pub const DEFAULT_CLICKHOUSE_URL: &str = "http://127.0.0.1:8123";

/// A client for `url`, without a default database (queries name `antidote.<table>`).
pub fn client(url: &str) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(url)
        .with_validation(false)
}
