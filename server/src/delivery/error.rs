//! Why a drain or the recording of a batch stopped. The recorder answers every outcome of a
//! batch with the batch's result, so the error is `Clone` (the database error shared).

use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("database: {0}")]
    Database(Arc<sqlx::Error>),
    #[error("the recorder has stopped")]
    RecorderStopped,
    #[error("the fetcher has stopped")]
    FetcherStopped,
}

impl From<sqlx::Error> for EngineError {
    fn from(err: sqlx::Error) -> Self {
        EngineError::Database(Arc::new(err))
    }
}
