//! The rules the dashboard and the REST API share, one place for each: tenant scoping, roles,
//! validation, state transitions. `app`'s server functions and `server`'s REST handlers call
//! the same functions and map the one `ServiceError` to their own boundary's error.
//! The delivery machinery and email are reached through two narrow ports, `Engine` and
//! `Outbox`, implemented in the server crate.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod actor;
pub mod api_keys;
pub mod bulk_retries;
pub mod deliveries;
pub mod endpoints;
pub mod engine;
pub mod error;
pub mod outbox;
pub mod passwords;
pub mod secret_box;
pub mod team;
pub mod tokens;

pub use actor::{Actor, UserActor};
pub use error::ServiceError;
