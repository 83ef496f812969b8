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

/// The figures of one scenario's deliveries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivered {
    /// Deliveries the receiver acknowledged with 2xx, each counted once.
    pub delivered: u64,
    /// Deliveries expected and never acknowledged.
    pub missing: u64,
    /// 2xx receipts beyond the first of the same (endpoint, webhook-id).
    pub duplicates: u64,
    /// Delivered within the load window, per second of it.
    pub delivered_per_sec_in_window: f64,
    /// Time from the event's ingest request to its first 2xx receipt.
    pub latency_p50: Duration,
    pub latency_p95: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
}

/// `sent`: event id → when its ingest request started; `fan_out`: event id → the endpoints
/// subscribed to it. `window`: the load's start and end.
pub fn summarize(
    sent: &HashMap<String, Instant>,
    fan_out: &dyn Fn(&str) -> Vec<u32>,
    receipts: &[Receipt],
    window: (Instant, Instant),
) -> Delivered {
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
    let mut latencies = Vec::with_capacity(first_ok.len());
    let (mut delivered, mut missing, mut in_window) = (0u64, 0u64, 0u64);
    for (id, sent_at) in sent {
        for endpoint in fan_out(id) {
            match first_ok.get(&(endpoint, id.as_str())) {
                Some(at) => {
                    delivered += 1;
                    latencies.push(at.saturating_duration_since(*sent_at));
                    if *at <= window.1 {
                        in_window += 1;
                    }
                }
                None => missing += 1,
            }
        }
    }
    latencies.sort_unstable();
    let span = window.1.saturating_duration_since(window.0).as_secs_f64().max(1e-9);
    Delivered {
        delivered,
        missing,
        duplicates,
        delivered_per_sec_in_window: in_window as f64 / span,
        latency_p50: percentile(&latencies, 0.50),
        latency_p95: percentile(&latencies, 0.95),
        latency_p99: percentile(&latencies, 0.99),
        latency_max: latencies.last().copied().unwrap_or_default(),
    }
}

/// Nearest-rank percentile of sorted values; zero for none.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
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
        assert_eq!(percentile(&values, 0.50), ms(50));
        assert_eq!(percentile(&values, 0.95), ms(95));
        assert_eq!(percentile(&values, 0.99), ms(99));
        assert_eq!(percentile(&values[..1], 0.99), ms(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn duplicates_missing_and_latency_are_counted_per_endpoint() {
        let t0 = Instant::now();
        let sent: HashMap<String, Instant> = [("a".to_owned(), t0), ("b".to_owned(), t0 + ms(10))].into();
        let receipt =
            |endpoint, id: &str, after, ok| Receipt { endpoint, webhook_id: id.to_owned(), at: t0 + ms(after), ok };
        let receipts = vec![
            receipt(1, "a", 30, false), // a failed attempt is neither delivered nor a duplicate
            receipt(1, "a", 40, true),
            receipt(2, "a", 20, true),
            receipt(2, "a", 50, true), // the same webhook-id twice at one endpoint
            receipt(1, "b", 110, true),
        ];
        let fan_out = |_: &str| vec![1, 2];
        let d = summarize(&sent, &fan_out, &receipts, (t0, t0 + ms(100)));
        assert_eq!(d.delivered, 3);
        assert_eq!(d.missing, 1, "b never reached endpoint 2");
        assert_eq!(d.duplicates, 1);
        assert_eq!(d.latency_max, ms(100), "b: sent at 10, received at 110");
        assert!((d.delivered_per_sec_in_window - 20.0).abs() < 1e-6, "2 in the 100 ms window");
    }
}
