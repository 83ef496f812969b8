//! Endpoint health and the circuit breaker (SPEC §6) as a pure state transition.

use chrono::{DateTime, Utc};
use entity::EndpointStatus;

/// SPEC §6: this many consecutive failed attempts make an endpoint `failing`.
pub const FAILING_AFTER: i32 = 5;

/// A dead letter disables a failing endpoint only once it has failed this many attempts in a
/// row: `FAILING_AFTER` to turn failing, then as many probes after the warning. Once an
/// endpoint is failing, the delivery whose retry comes next is its probe, so with a short
/// retry schedule a 30 %-flaky endpoint would often fail one delivery's last few retries
/// (0.3³ ≈ 3 %) and be disabled; ten failures in a row at 30 % is six in a million.
pub const DISABLE_AFTER: i32 = 2 * FAILING_AFTER;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: EndpointStatus,
    pub consecutive_failures: i32,
    /// When the current failing spell began; `None` while healthy. Any success ends it.
    pub failing_since: Option<DateTime<Utc>>,
}

impl Health {
    pub const fn healthy() -> Self {
        Health { status: EndpointStatus::Healthy, consecutive_failures: 0, failing_since: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    /// Just crossed the threshold: warn the owners, open the breaker.
    BecameFailing,
    /// A success after failing: the breaker closes.
    Recovered,
    /// Disable now and tell the owners why.
    Disable {
        reason: String,
    },
}

/// What a failed attempt's delivery has been through, for the disable rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tried {
    /// This attempt was the delivery's last: it is dead-lettered.
    pub dead_lettered: bool,
    /// When the delivery's previous try in its current budget was recorded; `None` on its first.
    pub previous_at: Option<DateTime<Utc>>,
}

/// What one attempt's result does to the endpoint; `now` is when the answer came.
pub fn after_attempt(
    health: &Health,
    success: bool,
    status_code: Option<u16>,
    tried: Tried,
    now: DateTime<Utc>,
) -> (Health, Change) {
    if success {
        let change = if health.status == EndpointStatus::Failing { Change::Recovered } else { Change::None };
        return (Health::healthy(), change);
    }
    let failures = health.consecutive_failures + 1;
    let disabled = |reason: String| {
        let failing_since = health.failing_since.or(Some(now));
        (
            Health { status: EndpointStatus::Disabled, consecutive_failures: failures, failing_since },
            Change::Disable { reason },
        )
    };
    if status_code == Some(410) {
        return disabled("The endpoint answered 410 Gone, which asks senders to stop.".to_owned());
    }
    // A dead letter disables only an endpoint that has stayed failing since the delivery's
    // previous try: its owners were warned and no attempt has succeeded since. One that
    // crosses the threshold on this attempt turns failing first, and a flapping endpoint
    // (a success in between ends the spell) is not disabled by one unlucky delivery; nor is
    // one whose warning came only a few probes ago (`DISABLE_AFTER`).
    let failing_throughout = health.status == EndpointStatus::Failing
        && health.failing_since.zip(tried.previous_at).is_some_and(|(since, previous)| since <= previous);
    if tried.dead_lettered && failing_throughout && failures >= DISABLE_AFTER {
        return disabled(format!(
            "A delivery failed every retry while the endpoint was failing ({failures} failed attempts in a row)."
        ));
    }
    if health.status == EndpointStatus::Failing {
        return (Health { consecutive_failures: failures, ..health.clone() }, Change::None);
    }
    if failures >= FAILING_AFTER {
        let failing =
            Health { status: EndpointStatus::Failing, consecutive_failures: failures, failing_since: Some(now) };
        return (failing, Change::BecameFailing);
    }
    (Health { consecutive_failures: failures, ..health.clone() }, Change::None)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn healthy(failures: i32) -> Health {
        Health { consecutive_failures: failures, ..Health::healthy() }
    }

    /// Failing since `since`, one failure short of `DISABLE_AFTER`.
    fn failing_since(since: DateTime<Utc>) -> Health {
        Health { status: EndpointStatus::Failing, consecutive_failures: DISABLE_AFTER - 1, failing_since: Some(since) }
    }

    fn retry(previous_at: Option<DateTime<Utc>>) -> Tried {
        Tried { dead_lettered: false, previous_at }
    }

    fn dead(previous_at: Option<DateTime<Utc>>) -> Tried {
        Tried { dead_lettered: true, previous_at }
    }

    #[test]
    fn a_dead_letter_disables_only_after_the_warning_and_as_many_failed_probes_again() {
        let t0 = Utc::now();
        let (mut h, c) = after_attempt(&healthy(4), false, Some(500), dead(Some(t0 - Duration::seconds(1))), t0);
        assert_eq!((h.status, h.failing_since, c), (EndpointStatus::Failing, Some(t0), Change::BecameFailing));
        // Every later dead letter's previous try came after the warning; the probes fail on.
        for probe in 1..FAILING_AFTER {
            let at = t0 + Duration::seconds(probe.into());
            let change;
            (h, change) = after_attempt(&h, false, Some(500), dead(Some(at - Duration::milliseconds(500))), at);
            assert_eq!((h.status, change), (EndpointStatus::Failing, Change::None), "probe {probe}: too soon");
        }
        assert_eq!(h.consecutive_failures, DISABLE_AFTER - 1);
        let at = t0 + Duration::minutes(1);
        let (h, c) = after_attempt(&h, false, Some(500), dead(Some(t0)), at);
        assert_eq!((h.status, h.failing_since), (EndpointStatus::Disabled, Some(t0)), "still unhealthy since t0");
        assert!(matches!(c, Change::Disable { ref reason } if reason.contains("10 failed attempts")), "{c:?}");
    }

    #[test]
    fn a_success_among_the_probes_starts_the_count_again() {
        let t0 = Utc::now();
        let (h, _) = after_attempt(&failing_since(t0), true, Some(200), retry(None), t0);
        let (h, _) =
            after_attempt(&Health { consecutive_failures: FAILING_AFTER - 1, ..h }, false, None, retry(None), t0);
        assert_eq!(h.status, EndpointStatus::Failing);
        let (h, c) = after_attempt(&h, false, Some(500), dead(Some(t0)), t0 + Duration::seconds(1));
        assert_eq!((h.status, c), (EndpointStatus::Failing, Change::None), "six in a row, not ten");
    }

    #[test]
    fn the_fifth_consecutive_failure_makes_an_endpoint_failing_once() {
        let now = Utc::now();
        let (h, c) = after_attempt(&healthy(3), false, Some(500), retry(None), now);
        assert_eq!((h.status, c), (EndpointStatus::Healthy, Change::None));
        let (h, c) = after_attempt(&h, false, Some(500), retry(None), now);
        assert_eq!((h.status, h.consecutive_failures, c), (EndpointStatus::Failing, 5, Change::BecameFailing));
        let later = now + Duration::seconds(1);
        let (h, c) = after_attempt(&h, false, None, retry(Some(now)), later);
        assert_eq!((h.status, c), (EndpointStatus::Failing, Change::None), "the warning is sent once");
        assert_eq!(h.failing_since, Some(now), "the spell began at the fifth failure");
    }

    #[test]
    fn any_success_resets_and_closes_the_breaker() {
        let failing = failing_since(Utc::now());
        let (h, c) = after_attempt(&failing, true, Some(204), retry(None), Utc::now());
        assert_eq!((h, c), (healthy(0), Change::Recovered));
        assert_eq!(after_attempt(&healthy(2), true, Some(200), retry(None), Utc::now()), (healthy(0), Change::None));
    }

    #[test]
    fn dead_lettering_disables_only_an_endpoint_failing_since_the_deliverys_previous_try() {
        let since = Utc::now();
        let now = since + Duration::minutes(30);
        let (h, c) = after_attempt(&healthy(0), false, Some(500), dead(Some(since)), now);
        assert_eq!((h.status, c), (EndpointStatus::Healthy, Change::None), "a healthy endpoint");
        // Flapping: the spell began after the delivery's previous try, so a success came between.
        let (h, c) =
            after_attempt(&failing_since(since), false, Some(500), dead(Some(since - Duration::seconds(1))), now);
        assert_eq!(
            (h.status, c),
            (EndpointStatus::Failing, Change::None),
            "the spell is younger than the delivery's try"
        );
        let (h, _) = after_attempt(&failing_since(since), false, Some(500), dead(None), now);
        assert_eq!(h.status, EndpointStatus::Failing, "a delivery with one try saw no spell before it");
        let (h, c) = after_attempt(&failing_since(since), false, Some(500), dead(Some(since)), now);
        assert_eq!(h.status, EndpointStatus::Disabled);
        assert!(matches!(c, Change::Disable { .. }));
        let (h, c) = after_attempt(&failing_since(since), false, Some(500), retry(Some(since)), now);
        assert_eq!((h.status, c), (EndpointStatus::Failing, Change::None), "a retry still to come disables nothing");
    }

    #[test]
    fn gone_disables_at_once() {
        let now = Utc::now();
        let (h, c) = after_attempt(&healthy(0), false, Some(410), retry(None), now);
        assert_eq!((h.status, h.failing_since), (EndpointStatus::Disabled, Some(now)));
        assert!(matches!(c, Change::Disable { reason } if reason.contains("410")));
    }
}
