//! Admission by delivery capacity (SPEC §12, overload): ingest refuses new events while the
//! work already due is more than a few seconds of what is being delivered, instead of
//! accepting events it cannot deliver in time. Counting requests in flight (`events.rs`) bounds
//! memory, not work: a 100-event request costs one slot, and under overload the CPU spent
//! accepting events is taken from delivering them (BENCHMARKS.md, "Latest full run").
//!
//! The rule, decided by `decide` from one reading of the queue (`read`):
//! - An endpoint's due deliveries count up to `lag` seconds of its rate limit (SPEC §7): past
//!   that they wait for the endpoint, not for the machine, so a throttled endpoint's long
//!   backlog takes nobody's share (its account is not refused for it either: like any queued
//!   delivery it goes out at the endpoint's pace).
//! - While the accounts' counted deliveries together are more than `lag` seconds of the
//!   delivery rate measured lately (and more than `floor`), the heaviest accounts are refused
//!   (503 `overloaded`, `Retry-After`) until the rest fit: every account is owed an equal share
//!   of the budget and one that asks for less keeps its events flowing (max-min fairness), so
//!   one account's burst refuses that account first, not everyone.
//!
//! Only rows that can go now count: a disabled endpoint's rows and rows held by an open
//! breaker (or scheduled for a later retry) are not due, so a customer whose receiver is down
//! does not stop anyone's ingest, their own included.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use sqlx::PgPool;

/// How far behind delivery may fall before ingest refuses (`Config`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Seconds of the measured delivery rate the counted backlog may hold.
    pub lag: Duration,
    /// A counted backlog this small is always admitted (a cold start has no measured rate yet).
    pub floor: u64,
}

/// One enabled endpoint with due deliveries, as `read` finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointBacklog {
    pub account_id: String,
    /// Deliveries per second the endpoint accepts (SPEC §7: 1 to 100).
    pub rate_limit: u32,
    /// Its due deliveries, counted up to just past `lag` seconds of its rate limit (enough to
    /// decide; the count stays cheap however long the backlog grows).
    pub due: u64,
}

/// The latest decision, for every account at once: the accounts refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub refused: HashSet<String>,
}

impl Verdict {
    pub fn admits(&self, account: &str) -> bool {
        !self.refused.contains(account)
    }
}

/// The decision for one reading of the queue, given the delivery rate measured lately
/// (deliveries finished per second: `RateMeter`, then `Capacity`).
pub fn decide(backlog: &[EndpointBacklog], delivery_rate: f64, limits: &Limits) -> Verdict {
    let lag = limits.lag.as_secs_f64();
    let mut per_account: HashMap<&str, f64> = HashMap::new();
    for endpoint in backlog {
        let counted = (endpoint.due as f64).min(lag * f64::from(endpoint.rate_limit.max(1)));
        *per_account.entry(endpoint.account_id.as_str()).or_default() += counted;
    }
    let budget = (lag * delivery_rate).max(limits.floor as f64);
    let Some(share) = fair_share(per_account.values().copied().collect(), budget) else {
        return Verdict::default();
    };
    let refused = per_account.into_iter().filter(|(_, wants)| *wants > share).map(|(a, _)| a.to_owned()).collect();
    Verdict { refused }
}

/// Max-min fairness: the share `s` with `Σ min(wants, s) = budget`, or `None` when everything
/// fits. Accounts wanting more than `s` are the ones to refuse.
fn fair_share(mut wants: Vec<f64>, budget: f64) -> Option<f64> {
    if wants.iter().sum::<f64>() <= budget {
        return None;
    }
    wants.sort_by(f64::total_cmp);
    let mut left = budget;
    for (i, want) in wants.iter().enumerate() {
        let share = left / (wants.len() - i) as f64;
        if *want > share {
            return Some(share);
        }
        left -= want;
    }
    None
}

/// The delivery rate to admit against: the highest rate measured in the last `memory`. The
/// rate measured now is only what was offered when the load is light, and falls for a moment
/// whenever the load pauses; what the engine has shown it can do recently is the better
/// estimate of what it can do now.
#[derive(Debug)]
pub struct Capacity {
    memory: Duration,
    seen: Vec<(Instant, f64)>,
}

impl Capacity {
    pub fn new(memory: Duration) -> Self {
        Capacity { memory, seen: Vec::new() }
    }

    pub fn observe(&mut self, at: Instant, rate: f64) -> f64 {
        self.seen.push((at, rate));
        self.best(at)
    }

    /// The highest rate seen within `memory` of `at` (0 when none).
    pub fn best(&mut self, at: Instant) -> f64 {
        self.seen.retain(|(when, _)| at.saturating_duration_since(*when) < self.memory);
        self.seen.iter().map(|(_, r)| *r).fold(0.0, f64::max)
    }
}

/// The verdict the request path reads; `watch` replaces it a few times a second.
#[derive(Default)]
pub struct Admission {
    verdict: RwLock<Verdict>,
}

impl Admission {
    pub fn admits(&self, account: &str) -> bool {
        self.verdict.read().unwrap_or_else(|e| e.into_inner()).admits(account)
    }

    pub fn set(&self, verdict: Verdict) {
        *self.verdict.write().unwrap_or_else(|e| e.into_inner()) = verdict;
    }
}

/// Deliveries finished per second, from a counter that only grows (PostgreSQL's count of rows
/// deleted from the queue: a delivery leaves it when delivered or dead-lettered), over the
/// readings of the last `window`. PostgreSQL publishes the counter about once a second, so the
/// window spans several publications.
#[derive(Debug)]
pub struct RateMeter {
    window: Duration,
    readings: std::collections::VecDeque<(Instant, i64)>,
}

impl RateMeter {
    pub fn new(window: Duration) -> Self {
        RateMeter { window, readings: Default::default() }
    }

    /// The rate over the readings kept, `None` until they span a second.
    pub fn observe(&mut self, at: Instant, total: i64) -> Option<f64> {
        if self.readings.back().is_some_and(|(_, last)| total < *last) {
            self.readings.clear(); // the statistics were reset
        }
        self.readings.push_back((at, total));
        while self.readings.len() > 2 && at.saturating_duration_since(self.readings[1].0) >= self.window {
            self.readings.pop_front();
        }
        let (first_at, first) = *self.readings.front()?;
        let span = at.saturating_duration_since(first_at).as_secs_f64();
        (span >= 1.0).then(|| (total - first) as f64 / span)
    }
}

/// How often the queue is read: refusals start and stop within about this.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Reads the queue every `INTERVAL` and publishes the verdict, for as long as the process
/// runs. When the database cannot be read it admits everything: ingest then finds the
/// database down by itself and answers 503 `unavailable`, which says what is wrong.
pub async fn watch(pool: PgPool, admission: Arc<Admission>, limits: Limits) {
    let mut meter = RateMeter::new(Duration::from_secs(5));
    let mut capacity = Capacity::new(Duration::from_secs(30));
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match read(&pool, &limits).await {
            Ok((backlog, finished)) => {
                let now = Instant::now();
                let rate = match meter.observe(now, finished) {
                    Some(rate) => capacity.observe(now, rate),
                    None => capacity.best(now), // the first second, or after a counter reset
                };
                admission.set(decide(&backlog, rate, &limits));
            }
            Err(err) => {
                tracing::debug!(%err, "could not read the queue for admission; admitting everything");
                admission.set(Verdict::default());
            }
        }
    }
}

/// `account_id, rate_limit, due, finished` (`read`).
type BacklogRow = (Option<String>, Option<i32>, Option<i64>, i64);

/// Every enabled endpoint whose breaker is closed with due deliveries (counted up to just
/// past `lag` seconds of its rate limit), and how many deliveries have left the queue so far
/// (`RateMeter`), in one round trip. Both are cheap whatever the queue holds: the count stops
/// at the cap, and the counter is a statistics lookup (counting recent attempts instead cost
/// ~110 ms a reading under the overload bench).
pub async fn read(pool: &PgPool, limits: &Limits) -> sqlx::Result<(Vec<EndpointBacklog>, i64)> {
    // One row with NULL endpoint columns when nothing is due: the counter still comes back.
    let rows: Vec<BacklogRow> = sqlx::query_as(
        "WITH finished AS (
             SELECT COALESCE(sum(n_tup_del), 0)::int8 AS n FROM pg_stat_user_tables
             WHERE relid = 'delivery_queue'::regclass
         ), backlog AS (
             SELECT e.account_id, e.rate_limit, c.due FROM endpoints e
             CROSS JOIN LATERAL (
                 SELECT count(*) AS due FROM (
                     SELECT 1 FROM delivery_queue q WHERE q.endpoint_id = e.id AND q.due_at <= now()
                     LIMIT ceil($1 * e.rate_limit)::int8 + 1
                 ) capped
             ) c
             WHERE e.enabled AND (e.breaker_until IS NULL OR e.breaker_until <= now()) AND c.due > 0
         )
         SELECT b.account_id, b.rate_limit, b.due, finished.n FROM finished LEFT JOIN backlog b ON true",
    )
    .bind(limits.lag.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let finished = rows.first().map_or(0, |r| r.3);
    let backlog = rows
        .into_iter()
        .filter_map(|(account_id, rate_limit, due, _)| {
            Some(EndpointBacklog {
                account_id: account_id?,
                rate_limit: rate_limit?.max(1) as u32,
                due: due?.max(0) as u64,
            })
        })
        .collect();
    Ok((backlog, finished))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { lag: Duration::from_secs(2), floor: 1_000 }
    }

    fn endpoint(account: &str, rate_limit: u32, due: u64) -> EndpointBacklog {
        EndpointBacklog { account_id: account.into(), rate_limit, due }
    }

    fn refused(verdict: &Verdict) -> Vec<&str> {
        let mut refused: Vec<&str> = verdict.refused.iter().map(String::as_str).collect();
        refused.sort();
        refused
    }

    #[test]
    fn within_the_measured_rate_every_account_is_admitted() {
        // 100 endpoints × 150 due = 15,000 within 2 s × 10,000/s.
        let backlog: Vec<_> = (0..100).map(|n| endpoint(&format!("acc_{n}"), 100, 150)).collect();
        assert_eq!(decide(&backlog, 10_000.0, &limits()), Verdict::default());
    }

    #[test]
    fn past_the_measured_rate_equal_accounts_are_all_refused_and_a_new_one_is_not() {
        // 300 accounts × 150 due = 45,000 against 2 s × 10,000/s: each is owed 66.7.
        let backlog: Vec<_> = (0..300).map(|n| endpoint(&format!("acc_{n}"), 100, 150)).collect();
        let verdict = decide(&backlog, 10_000.0, &limits());
        assert_eq!(verdict.refused.len(), 300);
        assert!(verdict.admits("acc_new"), "an account with nothing due is owed its share");
        assert!(decide(&backlog, 20_000.0, &limits()).refused.len() == 300, "40,000 is still short");
        assert!(decide(&backlog, 22_500.0, &limits()).refused.is_empty());
    }

    #[test]
    fn the_heaviest_account_is_refused_first() {
        // Budget 2,000 (2 s × 1,000/s): the light accounts fit in their shares, the heavy one
        // gets what is left (1,400) and is refused.
        let backlog = [
            endpoint("acc_heavy", 100, 150),
            endpoint("acc_heavy", 100, 150),
            endpoint("acc_heavy", 100, 150),
            endpoint("acc_heavy", 100, 150),
            endpoint("acc_heavy", 100, 150),
            endpoint("acc_light", 100, 100),
            endpoint("acc_lighter", 100, 100),
        ];
        // heavy wants 750 (each endpoint counts 150); the lights 100 each: 950 is within 2,000.
        assert!(decide(&backlog, 1_000.0, &limits()).refused.is_empty());
        // At 300/s the budget is the floor, 1,000: still within.
        assert!(decide(&backlog, 300.0, &limits()).refused.is_empty());
        let tight = Limits { floor: 600, ..limits() };
        // Budget 600: shares of 200 each; the lights take 100 + 100, heavy gets 400 < 750.
        assert_eq!(refused(&decide(&backlog, 0.0, &tight)), ["acc_heavy"]);
    }

    #[test]
    fn a_rate_limited_endpoint_counts_only_what_it_can_take_in_the_lag() {
        // 5,000 due at 10/s counts 20 (2 s of it), not 5,000: nobody is refused for it.
        let backlog = [endpoint("acc_a", 10, 5_000), endpoint("acc_b", 100, 50)];
        assert!(decide(&backlog, 0.0, &Limits { floor: 100, ..limits() }).refused.is_empty());
    }

    #[test]
    fn below_the_floor_nothing_is_refused_even_with_no_measured_rate() {
        let backlog = [endpoint("acc_a", 100, 150), endpoint("acc_b", 100, 150)];
        assert!(decide(&backlog, 0.0, &limits()).refused.is_empty());
        assert_eq!(refused(&decide(&backlog, 0.0, &Limits { floor: 299, ..limits() })), ["acc_a", "acc_b"]);
    }

    #[test]
    fn the_fair_share_leaves_what_small_accounts_do_not_use_to_large_ones() {
        assert_eq!(fair_share(vec![10.0, 20.0], 100.0), None);
        assert_eq!(fair_share(vec![10.0, 200.0, 300.0], 100.0), Some(45.0));
        assert_eq!(fair_share(vec![60.0, 60.0], 100.0), Some(50.0));
    }

    #[test]
    fn the_rate_is_what_the_counter_grew_over_the_window() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut meter = RateMeter::new(Duration::from_secs(3));
        assert_eq!(meter.observe(at(0), 1_000), None, "one reading is no rate");
        assert_eq!(meter.observe(at(500), 1_000), None, "half a second is too short");
        assert_eq!(meter.observe(at(1_000), 11_000), Some(10_000.0));
        assert_eq!(meter.observe(at(2_000), 21_000), Some(10_000.0));
        // Readings older than the window go: 3.5 s on, the rate is over the last 3 s or so.
        assert_eq!(meter.observe(at(3_500), 21_000), Some(20_000.0 / 3.0));
        assert_eq!(meter.observe(at(5_000), 21_000), Some(0.0));
        assert_eq!(meter.observe(at(5_500), 5), None, "a reset counter starts over");
    }

    #[test]
    fn capacity_is_the_highest_rate_seen_within_its_memory() {
        let start = Instant::now();
        let mut capacity = Capacity::new(Duration::from_secs(30));
        assert_eq!(capacity.observe(start, 3_000.0), 3_000.0);
        assert_eq!(capacity.observe(start + Duration::from_secs(5), 100.0), 3_000.0);
        assert_eq!(capacity.best(start + Duration::from_secs(29)), 3_000.0, "no new reading: the memory stands");
        assert_eq!(capacity.observe(start + Duration::from_secs(31), 200.0), 200.0);
        assert_eq!(capacity.best(start + Duration::from_secs(62)), 0.0);
    }
}
