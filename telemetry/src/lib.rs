//! Telemetry for Antidote: the ClickHouse schema and its migrations, the row types of the
//! contract tables, the ClickHouse client settings every role shares, the event model and
//! the Prometheus metrics.
//!
//! Later parts (tracing setup, context propagation, the span and log sinks) live here too;
//! see ARCHITECTURE.md.

pub mod clickhouse_client;
pub mod event;
pub mod logs;
pub mod metrics;
pub mod retention;
pub mod rows;
pub mod schema;
pub mod setup;
pub mod spans;
pub mod timeline;
pub mod triage;

pub use setup::{Telemetry, init, init_with};
