//! One integration-test binary: every test gets the real app on a free port and its own
//! fresh PostgreSQL database, dropped afterwards.

mod access;
mod auth;
mod cli;
mod deliveries;
mod delivery;
mod endpoints;
mod health;
mod helpers;
mod hostile;
mod ingest;
mod metrics;
mod receiver;
mod security;
mod smtp;
mod team;
mod workers;
