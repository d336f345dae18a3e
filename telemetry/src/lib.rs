//! Telemetry for Antidote: the ClickHouse schema and its migrations, the row types of the
//! contract tables, and the ClickHouse client settings every role shares.
//!
//! Later parts (tracing setup, context propagation, the ingest sink, metrics) live here too;
//! see ARCHITECTURE.md.

pub mod clickhouse_client;
pub mod event;
pub mod rows;
pub mod schema;
