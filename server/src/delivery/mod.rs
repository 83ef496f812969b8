//! The attempt pipeline. `signing`, `retry`, `health`, `rate_limit` and `payload` do no I/O;
//! `ssrf` classifies addresses as pure functions and resolves names only in its `Guard`;
//! `client` and `attempt` are the edge (`failure` words their errors) that talks to receivers; `store` and `record` the one
//! that talks to the queue tables.

pub mod attempt;
pub mod client;
pub mod dispatcher;
pub mod error;
pub mod failure;
pub mod fetcher;
pub mod health;
pub mod payload;
pub mod rate_limit;
pub mod record;
pub mod retry;
pub mod signing;
pub mod ssrf;
pub mod store;
