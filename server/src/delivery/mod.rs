//! The attempt pipeline. `signing`, `retry`, `ssrf` and `samples` do no I/O; `client` and
//! `attempt` are the edge that talks to receivers.

pub mod attempt;
pub mod client;
pub mod dispatcher;
pub mod health;
pub mod payload;
pub mod rate_limit;
pub mod record;
pub mod retry;
pub mod samples;
pub mod signing;
pub mod ssrf;
pub mod store;
