//! The per-account ingest quota (SPEC §6): a one-second fixed window per account that holds
//! across processes. PostgreSQL keeps each account's count for the current second
//! (`ingest_quota_windows`, one row per account); a process reserves a slice of it at a time
//! (`reserve`) and spends the slice in memory (`IngestQuota`), so most requests touch no
//! database. No process spends more than it reserved, so together they never admit more than
//! the limit; a slice left unspent when its second ends is lost, so admission can fall short
//! of the limit when several processes share an account, never over it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the window resets (the `RateLimit-Reset` and `Retry-After` value).
    pub reset_secs: u64,
}

impl Decision {
    pub fn refused(limit: u64, remaining: u64) -> Decision {
        Decision { allowed: false, limit, remaining, reset_secs: 1 }
    }
}

/// This process's slice of each account's window.
#[derive(Debug, Clone, Copy)]
struct Slice {
    second: u64,
    /// Reserved from the shared window, and spent of that.
    granted: u64,
    spent: u64,
    /// The shared window's total at the last reservation (every process's slices).
    shared_total: u64,
}

#[derive(Default)]
pub struct IngestQuota {
    slices: Mutex<HashMap<String, Slice>>,
    /// One reservation at a time per account in this process: concurrent requests that find
    /// the slice empty wait for one reservation instead of each reserving a slice (which
    /// would spend the shared window on slices nobody uses).
    reserving: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl IngestQuota {
    /// Spends `cost` events of this process's slice of `account`'s window for second
    /// `now_secs`, all or nothing; `None` when the slice is too small (reserve more first).
    pub fn take(&self, account: &str, limit: u64, cost: u64, now_secs: u64) -> Option<Decision> {
        let mut slices = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        let slice = slices.get_mut(account).filter(|s| s.second == now_secs)?;
        if slice.spent + cost > slice.granted {
            return None;
        }
        slice.spent += cost;
        let unspent = slice.granted - slice.spent;
        let remaining = limit.saturating_sub(slice.shared_total) + unspent;
        Some(Decision { allowed: true, limit, remaining, reset_secs: 1 })
    }

    /// Adds `amount`, just reserved in the shared window (whose total is now `shared_total`),
    /// to this process's slice for `now_secs`.
    pub fn grant(&self, account: &str, amount: u64, shared_total: u64, now_secs: u64) {
        let mut slices = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = Slice { second: now_secs, granted: 0, spent: 0, shared_total: 0 };
        let slice = slices.entry(account.to_owned()).or_insert(fresh);
        if slice.second != now_secs {
            *slice = fresh;
        }
        slice.granted += amount;
        slice.shared_total = shared_total;
    }

    /// The lock a request holds while it reserves for `account`.
    pub fn reservation_lock(&self, account: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.reserving.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() > 100_000 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(account.to_owned()).or_default().clone()
    }

    /// What is left for `account` this second as far as this process knows.
    pub fn remaining(&self, account: &str, limit: u64, now_secs: u64) -> u64 {
        let slices = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        match slices.get(account).filter(|s| s.second == now_secs) {
            Some(s) => limit.saturating_sub(s.shared_total) + (s.granted - s.spent),
            None => limit,
        }
    }
}

/// How much to reserve when a request does not fit in the slice: the request, and a tenth of
/// the limit (at most 1,000) for the next ones, so an account publishing steadily reserves
/// about once a second per process. Never more than the limit.
pub fn slice_for(limit: u64, cost: u64) -> u64 {
    cost.max((limit / 10).min(1000)).min(limit)
}

/// Reserves `amount` of `account`'s `limit` in the shared window of second `second`: the
/// window's new total, or `None` when it would pass the limit (nothing is reserved then).
/// A row from an earlier second starts over. `amount` must not exceed `limit`.
///
/// The commit does not wait for the WAL flush (`synchronous_commit = off` for this
/// transaction only): every account reserves at the start of each second, so these commits
/// bunch up behind ingest's and the recorder's flushes, and the requests waiting on them
/// held ingest's in-flight slots until the excess was refused (BENCHMARKS.md, step 8). The
/// row is a rate-limit counter: a database crash can forget the last ~200 ms of
/// reservations, which can let one slice more than the limit through in that second; no
/// event is lost by it. Same pool as ingest, so an outage fails here as fast as there.
pub async fn reserve(pool: &PgPool, account: &str, second: u64, amount: u64, limit: u64) -> sqlx::Result<Option<u64>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    let total: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO ingest_quota_windows AS w (account_id, second, used) VALUES ($1, $2, $3)
         ON CONFLICT (account_id) DO UPDATE
         SET second = EXCLUDED.second,
             used = CASE WHEN w.second = EXCLUDED.second THEN w.used + EXCLUDED.used ELSE EXCLUDED.used END
         WHERE CASE WHEN w.second = EXCLUDED.second THEN w.used + EXCLUDED.used ELSE EXCLUDED.used END <= $4
         RETURNING used",
    )
    .bind(account)
    .bind(second as i64)
    .bind(amount as i64)
    .bind(limit as i64)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(total.map(|(t,)| t.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_is_spent_all_or_nothing_then_asks_for_more() {
        let q = IngestQuota::default();
        assert_eq!(q.take("acc", 10, 1, 100), None, "nothing reserved yet");
        q.grant("acc", 6, 6, 100);
        assert_eq!(q.take("acc", 10, 4, 100).map(|d| d.remaining), Some(6), "4 of the limit's 10 + 2 unspent");
        assert_eq!(q.take("acc", 10, 3, 100), None, "4 + 3 > 6 reserved: reserve more");
        assert!(q.take("acc", 10, 2, 100).is_some());
        assert_eq!(q.take("acc", 10, 1, 101), None, "a new second needs a new reservation");
        q.grant("acc", 5, 5, 101);
        assert_eq!(q.remaining("acc", 10, 101), 10, "5 reserved, none spent");
        assert_eq!(q.remaining("other", 10, 101), 10, "accounts do not share a slice");
    }

    #[test]
    fn slices_cover_the_request_and_never_pass_the_limit() {
        assert_eq!(slice_for(10_000, 10), 1000);
        assert_eq!(slice_for(10_000, 5000), 5000);
        assert_eq!(slice_for(3, 2), 2);
        assert_eq!(slice_for(100, 1), 10);
        assert_eq!(slice_for(3, 5), 3);
    }
}
