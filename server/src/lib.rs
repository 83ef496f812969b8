//! The `webhooks` server: HTTP (dashboard + REST API), workers and the CLI's commands.
#![forbid(unsafe_code)]

pub mod bulk_retry;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dashboard_port;
pub mod db;
pub mod delivery;
pub mod email;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod log_partitions;
pub mod metrics;
pub mod queue_vacuum;
pub mod quota;
pub mod retention;
pub mod secrets;
pub mod startup;
pub mod telemetry;
pub mod ttl_cache;
pub mod wake;
