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
/// callers retry or answer 503 (`unavailable`).
pub fn role_pool(config: &Config, max_connections: u32) -> anyhow::Result<sqlx::PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .connect_lazy(&config.database_url)?)
}

/// Applies pending sea-orm migrations, creates apalis' own schema and the delivery log's (attempts'
/// and events') day partitions up to [`crate::log_partitions::AHEAD_DAYS`] ahead. Idempotent.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await?;
    let pool = db.get_postgres_connection_pool();
    apalis_postgres::PostgresStorage::setup(pool).await?;
    // Not a reason to refuse to start: the default partition takes the rows meanwhile and
    // housekeeping tries again within the hour (it fails, say, when a long query holds the
    // table past the DDL's lock timeout).
    if let Err(e) = crate::log_partitions::ensure(pool, chrono::Utc::now()).await {
        tracing::warn!(error = %e, "could not make the delivery log's next day partitions");
    }
    Ok(())
}

/// True when `err` says the database cannot be reached or serve right now (down,
/// restarting, out of connections or resources), rather than that the statement was wrong:
/// the REST API answers 503, ingest marks the database down, the recorder retries.
pub fn unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| outage_sqlstate(&code)),
        _ => false,
    }
}

/// [`unavailable`] for sea-orm's errors.
pub fn orm_unavailable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match err {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => unavailable(e),
        DbErr::Conn(_) => true,
        _ => false,
    }
}

/// SQLSTATE classes of an outage: 08 connection exception, 53 insufficient resources
/// (53300 too many connections, out of memory or disk), 57 operator intervention (57P01
/// admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now, a cancelled statement).
pub fn outage_sqlstate(code: &str) -> bool {
    ["08", "53", "57"].iter().any(|class| code.starts_with(class))
}

/// A PostgreSQL error with only a SQLSTATE, as sqlx reports one.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct PgCode(pub &'static str);

#[cfg(test)]
mod pg_code {
    use std::{borrow::Cow, error::Error as StdError, fmt};

    use super::PgCode;

    impl fmt::Display for PgCode {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl StdError for PgCode {}

    impl sqlx::error::DatabaseError for PgCode {
        fn message(&self) -> &str {
            "from the server"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coded(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(PgCode(code)))
    }

    #[test]
    fn every_outage_code_either_classifier_knew_is_an_outage() {
        // The REST API's 08xxx, 57P01-57P03 and 53300, and the recorder's classes 08, 53, 57.
        for code in ["08000", "08003", "08006", "08001", "57P01", "57P02", "57P03", "57014", "53300", "53100", "53200"]
        {
            assert!(unavailable(&coded(code)), "{code}");
        }
        assert!(unavailable(&sqlx::Error::PoolTimedOut));
        assert!(unavailable(&sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into())));
    }

    #[test]
    fn a_wrong_statement_is_not_an_outage() {
        // Undefined table, unique violation, invalid text, serialization failure, deadlock.
        for code in ["42P01", "23505", "22P02", "40001", "40P01"] {
            assert!(!unavailable(&coded(code)), "{code}");
        }
        assert!(!unavailable(&sqlx::Error::RowNotFound));
        assert!(!orm_unavailable(&sea_orm::DbErr::Custom("bug".into())));
    }
}
