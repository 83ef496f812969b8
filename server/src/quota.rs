//! The per-account ingest quota (SPEC §6): a one-second fixed window per account, kept in
//! this process. Pure arithmetic, so it is tested without a server.

use std::{collections::HashMap, sync::Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the window resets (the `RateLimit-Reset` and `Retry-After` value).
    pub reset_secs: u64,
}

#[derive(Default)]
pub struct IngestQuota {
    windows: Mutex<HashMap<String, (u64, u64)>>,
}

impl IngestQuota {
    /// Takes `cost` events from `account`'s window for second `now_secs`, all or nothing.
    pub fn take(&self, account: &str, limit: u64, cost: u64, now_secs: u64) -> Decision {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let entry = windows.entry(account.to_owned()).or_insert((now_secs, 0));
        if entry.0 != now_secs {
            *entry = (now_secs, 0);
        }
        let allowed = entry.1 + cost <= limit;
        if allowed {
            entry.1 += cost;
        }
        Decision { allowed, limit, remaining: limit.saturating_sub(entry.1), reset_secs: 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_up_to_the_limit_then_refuses_until_the_next_second() {
        let q = IngestQuota::default();
        assert_eq!(q.take("acc", 10, 6, 100).remaining, 4);
        let refused = q.take("acc", 10, 5, 100);
        assert!(!refused.allowed, "6 + 5 > 10");
        assert_eq!(refused.remaining, 4, "a refused request takes nothing");
        assert!(q.take("acc", 10, 4, 100).allowed);
        assert!(q.take("acc", 10, 10, 101).allowed, "a new second, a new window");
        assert!(q.take("other", 10, 10, 101).allowed, "accounts do not share a window");
    }
}
