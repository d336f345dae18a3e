//! The Antidote platform: curriculum model and validator, the NATS bus layout, and (as they
//! land) the API, scheduler and backends. The `antidote` binary in `main.rs` is a thin CLI over
//! this library; see ARCHITECTURE.md for the map.

pub mod api;
pub mod backend;
pub mod bus;
pub mod cli;
pub mod curriculum;
pub mod ingest;
pub mod livelesson;
pub mod operator;
pub mod scheduler;
pub mod web;
