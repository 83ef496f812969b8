//! The one PostgreSQL pool of a process, shared by sea-orm and apalis.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::Config;

/// How long a query waits for a pooled connection before giving up. While PostgreSQL is
/// down, acquiring retries the connection until this deadline, so it bounds how long an API
/// request hangs before its 503 (`ApiError::Unavailable`); under normal load a connection is
/// free within milliseconds.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(config.database_url.clone());
    options
        .max_connections(config.db_pool_size)
        .min_connections(1)
        // sea-orm passes both to sqlx's acquire timeout (which covers connecting too).
        .connect_timeout(ACQUIRE_TIMEOUT)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A connection idle through an outage is dead: check it before handing it out.
        .test_before_acquire(true)
        .sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

/// A pool of its own for one hot role (ingest's group commit, the dispatcher), so a flood
/// of one can never starve the other of connections. Lazy: a process that never ingests
/// opens no ingest connection. No ping before each acquire (it doubled the round trips of
/// the hot path); a connection that broke is dropped by sqlx when it is returned, and the
/// callers retry or answer 503 (`database_unavailable`).
pub fn role_pool(config: &Config, max_connections: u32) -> anyhow::Result<sqlx::PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .connect_lazy(&config.database_url)?)
}

/// Applies pending sea-orm migrations and creates apalis' own schema. Idempotent.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await?;
    apalis_postgres::PostgresStorage::setup(db.get_postgres_connection_pool()).await?;
    Ok(())
}
