//! The per-endpoint rate limit (SPEC §6) as a sliding one-second window. Only the worker
//! holding an endpoint's lease sends to it, and it seeds the window from the attempts
//! recorded in the last second, so the limit holds across processes.
//!
//! A send is recorded when its response arrives, not when it starts: a receiver sees each
//! request somewhere between the two, so spacing the start of request n + limit at least a
//! second after the end of request n keeps every one-second window at the receiver within
//! the limit, however the network delays individual requests.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct SlidingWindow {
    limit: usize,
    sent: VecDeque<Instant>,
}

impl SlidingWindow {
    pub fn new(limit: u32, recent: impl IntoIterator<Item = Instant>) -> Self {
        let mut sent: Vec<Instant> = recent.into_iter().collect();
        sent.sort();
        SlidingWindow { limit: limit.max(1) as usize, sent: sent.into() }
    }

    fn expire(&mut self, now: Instant) {
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            self.sent.pop_front();
        }
    }

    /// How long to wait before the next send is allowed; zero when it may go now.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.expire(now);
        if self.sent.len() < self.limit {
            return Duration::ZERO;
        }
        let oldest = self.sent[self.sent.len() - self.limit];
        WINDOW.saturating_sub(now.duration_since(oldest))
    }

    /// What will be left in the window once a send starting `now` is counted.
    pub fn remaining_after_one(&mut self, now: Instant) -> u32 {
        self.expire(now);
        self.limit.saturating_sub(self.sent.len() + 1) as u32
    }

    /// Records a send that completed at `now`; returns what is left in the window.
    pub fn record(&mut self, now: Instant) -> u32 {
        self.expire(now);
        self.sent.push_back(now);
        self.limit.saturating_sub(self.sent.len()) as u32
    }

    pub fn limit(&self) -> u32 {
        self.limit as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_window_of_one_second_ever_holds_more_than_the_limit() {
        let start = Instant::now();
        let mut w = SlidingWindow::new(3, []);
        let mut now = start;
        let mut sends = vec![];
        for _ in 0..12 {
            now += w.wait(now);
            w.record(now);
            sends.push(now);
            now += Duration::from_millis(10);
        }
        for (i, t) in sends.iter().enumerate() {
            let in_window = sends[i..].iter().filter(|s| s.duration_since(*t) < WINDOW).count();
            assert!(in_window <= 3, "{in_window} sends within 1 s of send {i}");
        }
        let span = sends.last().unwrap().duration_since(start);
        assert!(span >= Duration::from_secs(3), "12 sends at 3/s take at least 3 s, took {span:?}");
    }

    #[test]
    fn recent_sends_of_another_worker_count() {
        let now = Instant::now();
        let mut w = SlidingWindow::new(2, [now - Duration::from_millis(300), now - Duration::from_millis(100)]);
        assert_eq!(w.wait(now), Duration::from_millis(700));
        assert_eq!(w.wait(now + Duration::from_millis(700)), Duration::ZERO);
    }

    #[test]
    fn remaining_counts_down_within_a_window() {
        let now = Instant::now();
        let mut w = SlidingWindow::new(100, []);
        assert_eq!(w.record(now), 99);
        assert_eq!(w.record(now), 98);
        assert_eq!(w.record(now + WINDOW), 99, "the first two expired");
    }
}
