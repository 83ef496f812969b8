//! Counting what the receiver saw against what the load generator had accepted: pure
//! functions over plain data, so the arithmetic is tested without a server.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// A request the receiver answered: which endpoint, which `webhook-id`, when, and whether it
/// answered 2xx.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub endpoint: u32,
    pub webhook_id: String,
    pub at: Instant,
    pub ok: bool,
}

/// An event the server accepted (202): when its request was scheduled to go out (the
/// open-loop tick, not when it actually started), when the 202 came, and which account sent it.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub scheduled: Instant,
    pub answered: Instant,
    pub account: usize,
}

/// The state the database gives a delivery the receiver never acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbState {
    /// `pending`: still queued, to be sent.
    Queued,
    /// `failed`: dead-lettered after its last attempt.
    DeadLettered,
    /// Any other state (`delivered` without a 2xx at the receiver, for one).
    Other,
}

impl DbState {
    pub fn from_status(status: &str) -> DbState {
        match status {
            "pending" => DbState::Queued,
            "failed" => DbState::DeadLettered,
            _ => DbState::Other,
        }
    }
}

/// Where one accepted (event, endpoint) pair ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    DeadLettered,
    Queued,
    /// Neither acknowledged at the receiver, dead-lettered nor still queued.
    Lost,
}

/// The fate of one accepted delivery, by identity: first the receiver's 2xx receipts, then
/// the database's row for the same (event id, endpoint).
pub fn classify(delivered_at_receiver: bool, db: Option<DbState>) -> Fate {
    match (delivered_at_receiver, db) {
        (true, _) => Fate::Delivered,
        (false, Some(DbState::DeadLettered)) => Fate::DeadLettered,
        (false, Some(DbState::Queued)) => Fate::Queued,
        (false, Some(DbState::Other) | None) => Fate::Lost,
    }
}

/// A latency percentile over every accepted delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latency {
    /// Nothing was accepted.
    #[default]
    NoData,
    At(Duration),
    /// The percentile falls on deliveries that were never delivered (slower than any that was).
    Never,
}

/// Nearest-rank percentile `q` of `sorted` (the latencies of the delivered, ascending) and
/// `undelivered` more values, each larger than any delivered one.
pub fn percentile(sorted: &[Duration], undelivered: u64, q: f64) -> Latency {
    let n = sorted.len() as u64 + undelivered;
    if n == 0 {
        return Latency::NoData;
    }
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    match sorted.get(rank as usize - 1) {
        Some(d) => Latency::At(*d),
        None => Latency::Never,
    }
}

/// The figures of one scenario's deliveries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivered {
    /// Accepted (event, endpoint) pairs.
    pub expected: u64,
    /// Acknowledged with 2xx at the receiver, each pair counted once.
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Still pending in the database when the bench stopped the server.
    pub queued: u64,
    /// In none of the three.
    pub lost: u64,
    /// 2xx receipts beyond the first of the same (endpoint, webhook-id).
    pub duplicates: u64,
    /// Delivered within the load window, per second of it.
    pub delivered_per_sec_in_window: f64,
    /// Scheduled send time of the event's request → first 2xx receipt, over every accepted
    /// delivery (the undelivered count as slower than any delivered one).
    pub latency_p50: Latency,
    pub latency_p95: Latency,
    pub latency_p99: Latency,
    /// Slowest of the delivered.
    pub latency_max: Duration,
}

/// The first 2xx receipt of each (endpoint, webhook-id), and how many 2xx receipts repeated one.
pub fn first_oks(receipts: &[Receipt]) -> (HashMap<(u32, &str), Instant>, u64) {
    let mut first_ok: HashMap<(u32, &str), Instant> = HashMap::new();
    let mut duplicates = 0;
    for r in receipts.iter().filter(|r| r.ok) {
        match first_ok.entry((r.endpoint, r.webhook_id.as_str())) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                duplicates += 1;
                if r.at < *e.get() {
                    e.insert(r.at);
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(r.at);
            }
        }
    }
    (first_ok, duplicates)
}

/// `sent`: event id → its request; `fan_out`: account → the endpoints subscribed to its events;
/// `db`: (endpoint, event id) → state, for the deliveries the database has not marked
/// delivered. `window`: the load's start and end.
pub fn summarize(
    sent: &HashMap<String, Sent>,
    fan_out: &dyn Fn(usize) -> Vec<u32>,
    receipts: &[Receipt],
    db: &HashMap<(u32, String), DbState>,
    window: (Instant, Instant),
) -> Delivered {
    let (first_ok, duplicates) = first_oks(receipts);
    let mut latencies = Vec::with_capacity(first_ok.len());
    let mut d = Delivered { duplicates, ..Delivered::default() };
    let mut in_window = 0u64;
    let mut key = (0u32, String::new());
    for (id, s) in sent {
        for endpoint in fan_out(s.account) {
            d.expected += 1;
            let at = first_ok.get(&(endpoint, id.as_str()));
            let state = if at.is_some() {
                None
            } else {
                key.0 = endpoint;
                key.1.clone_from(id);
                db.get(&key).copied()
            };
            match classify(at.is_some(), state) {
                Fate::Delivered => {
                    let at = *at.expect("delivered has a receipt");
                    d.delivered += 1;
                    latencies.push(at.saturating_duration_since(s.scheduled));
                    if at <= window.1 {
                        in_window += 1;
                    }
                }
                Fate::DeadLettered => d.dead_lettered += 1,
                Fate::Queued => d.queued += 1,
                Fate::Lost => d.lost += 1,
            }
        }
    }
    latencies.sort_unstable();
    let undelivered = d.expected - d.delivered;
    let span = window.1.saturating_duration_since(window.0).as_secs_f64().max(1e-9);
    d.delivered_per_sec_in_window = in_window as f64 / span;
    d.latency_p50 = percentile(&latencies, undelivered, 0.50);
    d.latency_p95 = percentile(&latencies, undelivered, 0.95);
    d.latency_p99 = percentile(&latencies, undelivered, 0.99);
    d.latency_max = latencies.last().copied().unwrap_or_default();
    d
}

/// How many of `times` fall in each whole second after `origin`, for `seconds` seconds (later
/// ones are dropped, earlier ones count in second 0).
pub fn per_second(times: impl IntoIterator<Item = Instant>, origin: Instant, seconds: usize) -> Vec<u64> {
    let mut series = vec![0u64; seconds];
    for t in times {
        let second = t.saturating_duration_since(origin).as_secs() as usize;
        if let Some(slot) = series.get_mut(second) {
            *slot += 1;
        }
    }
    series
}

/// Minimum, median (nearest rank) and maximum of `series[from..to]`, the whole seconds of the
/// load after a warm-up; `None` when that range is empty.
pub fn spread(series: &[u64], from: usize, to: usize) -> Option<(u64, u64, u64)> {
    let mut window: Vec<u64> = series.get(from..to.min(series.len()))?.to_vec();
    if window.is_empty() {
        return None;
    }
    window.sort_unstable();
    let median = window[window.len().div_ceil(2) - 1];
    Some((window[0], median, window[window.len() - 1]))
}

/// The most deliveries owed at the end of any second in `from..to`: everything accepted so far
/// (`accepted` events per second, each fanning out to `fan_out` deliveries) less everything
/// delivered so far, both counted from the start of the load. Per-second counts of an exact
/// offered rate scatter around it whatever the engine does; this says whether delivery kept
/// up with what was accepted, second by second. `None` when that range is empty.
pub fn peak_owed(accepted: &[u64], delivered: &[u64], fan_out: u64, from: usize, to: usize) -> Option<u64> {
    let to = to.min(accepted.len()).min(delivered.len());
    let (mut owed, mut peak) = (0i64, None);
    for i in 0..to {
        owed += (accepted[i] * fan_out) as i64 - delivered[i] as i64;
        if i >= from {
            // A delivery can reach the receiver before its 202 reaches the load generator.
            peak = peak.max(Some(owed.max(0) as u64));
        }
    }
    peak
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&values, 0, 0.50), Latency::At(ms(50)));
        assert_eq!(percentile(&values, 0, 0.95), Latency::At(ms(95)));
        assert_eq!(percentile(&values, 0, 0.99), Latency::At(ms(99)));
        assert_eq!(percentile(&values[..1], 0, 0.99), Latency::At(ms(1)));
        assert_eq!(percentile(&[], 0, 0.5), Latency::NoData);
    }

    #[test]
    fn undelivered_count_as_slower_than_any_delivered() {
        // 90 delivered (1..=90 ms) and 10 never delivered: p50 and p90 are finite, p95 is not.
        let values: Vec<Duration> = (1..=90).map(ms).collect();
        assert_eq!(percentile(&values, 10, 0.50), Latency::At(ms(50)));
        assert_eq!(percentile(&values, 10, 0.90), Latency::At(ms(90)));
        assert_eq!(percentile(&values, 10, 0.95), Latency::Never);
        assert_eq!(percentile(&values, 10, 0.99), Latency::Never);
        // One undelivered in a thousand moves p99 by one rank, not to infinity.
        let values: Vec<Duration> = (1..=999).map(ms).collect();
        assert_eq!(percentile(&values, 1, 0.99), Latency::At(ms(990)));
        assert_eq!(percentile(&[], 3, 0.01), Latency::Never);
    }

    #[test]
    fn fates_by_identity() {
        assert_eq!(classify(true, None), Fate::Delivered);
        assert_eq!(classify(true, Some(DbState::Queued)), Fate::Delivered, "the receipt wins over a stale row");
        assert_eq!(classify(false, Some(DbState::DeadLettered)), Fate::DeadLettered);
        assert_eq!(classify(false, Some(DbState::Queued)), Fate::Queued);
        assert_eq!(classify(false, Some(DbState::Other)), Fate::Lost, "marked delivered, never received");
        assert_eq!(classify(false, None), Fate::Lost, "no row at all");
        assert_eq!(DbState::from_status("pending"), DbState::Queued);
        assert_eq!(DbState::from_status("failed"), DbState::DeadLettered);
        assert_eq!(DbState::from_status("delivered"), DbState::Other);
    }

    #[test]
    fn each_pair_is_counted_once_by_identity() {
        let t0 = Instant::now();
        let sent_at = |after, account| Sent { scheduled: t0 + ms(after), answered: t0 + ms(after + 5), account };
        let sent: HashMap<String, Sent> = [
            ("a".to_owned(), sent_at(0, 0)),
            ("b".to_owned(), sent_at(10, 0)),
            ("c".to_owned(), sent_at(20, 1)),
            ("d".to_owned(), sent_at(30, 1)),
        ]
        .into();
        let receipt =
            |endpoint, id: &str, after, ok| Receipt { endpoint, webhook_id: id.to_owned(), at: t0 + ms(after), ok };
        let receipts = vec![
            receipt(1, "a", 30, false), // a failed attempt is neither delivered nor a duplicate
            receipt(1, "a", 40, true),
            receipt(2, "a", 20, true),
            receipt(2, "a", 50, true), // the same webhook-id twice at one endpoint
            receipt(1, "b", 110, true),
            receipt(3, "c", 60, true),
            receipt(3, "b", 60, true), // b was not sent to endpoint 3: ignored
            receipt(2, "x", 60, true), // never accepted: ignored
        ];
        // Account 0's events go to endpoints 1 and 2, account 1's to endpoint 3.
        let fan_out = |account: usize| if account == 0 { vec![1, 2] } else { vec![3] };
        let db: HashMap<(u32, String), DbState> = [
            ((2, "b".to_owned()), DbState::DeadLettered),
            ((3, "c".to_owned()), DbState::Queued), // stale: the receipt says delivered
        ]
        .into();
        let d = summarize(&sent, &fan_out, &receipts, &db, (t0, t0 + ms(100)));
        assert_eq!(d.expected, 6);
        assert_eq!(d.delivered, 4, "a at 1 and 2, b at 1, c at 3");
        assert_eq!(d.dead_lettered, 1, "b at endpoint 2");
        assert_eq!(d.queued, 0);
        assert_eq!(d.lost, 1, "d at endpoint 3: no receipt, no row");
        assert_eq!(d.duplicates, 1);
        assert_eq!(d.latency_max, ms(100), "b: scheduled at 10, received at 110");
        // Latencies 20, 40, 40, 100 and two undelivered: p50 is the 3rd, p95 the 6th.
        assert_eq!(d.latency_p50, Latency::At(ms(40)));
        assert_eq!(d.latency_p95, Latency::Never);
        assert!((d.delivered_per_sec_in_window - 30.0).abs() < 1e-6, "3 in the 100 ms window");
    }

    #[test]
    fn per_second_buckets_and_spread_after_warm_up() {
        let t0 = Instant::now();
        let times = [0, 999, 1000, 2500, 2600, 2700, 9000].map(|m| t0 + ms(m));
        let series = per_second(times, t0, 4);
        assert_eq!(series, vec![2, 1, 3, 0], "the 9 s one falls outside the 4 s series");
        assert_eq!(spread(&series, 1, 4), Some((0, 1, 3)));
        assert_eq!(spread(&series, 0, 2), Some((1, 1, 2)), "even count: the lower median");
        assert_eq!(spread(&series, 0, 99), Some((0, 1, 3)), "clamped to the series");
        assert_eq!(spread(&series, 4, 9), None);
        assert_eq!(spread(&series, 5, 9), None);
    }

    #[test]
    fn peak_owed_is_the_running_gap_between_accepted_and_delivered() {
        // 10 accepted every second; delivery falls 4 behind in second 2 and catches up.
        let accepted = [10, 10, 10, 10, 10];
        let delivered = [10, 10, 6, 12, 12];
        assert_eq!(peak_owed(&accepted, &delivered, 1, 1, 5), Some(4));
        assert_eq!(peak_owed(&accepted, &delivered, 1, 3, 5), Some(2), "the gap at second 3 is 2, at 4 none");
        assert_eq!(peak_owed(&accepted, &delivered, 2, 0, 1), Some(10), "each event owes two deliveries");
        assert_eq!(peak_owed(&[1], &[3], 1, 0, 1), Some(0), "delivered before the 202 arrived: nothing owed");
        assert_eq!(peak_owed(&accepted, &delivered, 1, 5, 9), None);
    }
}
