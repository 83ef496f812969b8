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

/// The pool for ingest quota reservations: like `role_pool`, with `synchronous_commit` off.
/// A reservation is a rate-limit counter, not data: its commit need not wait for the WAL
/// flush (BENCHMARKS.md, engine step 6: with 200 accounts these were 200 flushing commits a
/// second, the top wait of the end-to-end load). A database crash can lose the last few
/// hundred milliseconds of reservations, so in the second of a crash a process may admit one
/// slice more than the limit; no event is lost by it.
pub fn quota_pool(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    let options: sqlx::postgres::PgConnectOptions = config.database_url.parse()?;
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(QUOTA_POOL_SIZE)
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .connect_lazy_with(options.options([("synchronous_commit", "off")])))
}

/// Reservations are one short statement each, about once a second per busy account.
const QUOTA_POOL_SIZE: u32 = 4;

/// Applies pending sea-orm migrations and creates apalis' own schema. Idempotent.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await?;
    apalis_postgres::PostgresStorage::setup(db.get_postgres_connection_pool()).await?;
    Ok(())
}
