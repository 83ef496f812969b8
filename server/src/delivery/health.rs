//! Endpoint health and the circuit breaker (SPEC §6) as a pure state transition.

use entity::EndpointStatus;

/// SPEC §6: this many consecutive failed attempts make an endpoint `failing`.
pub const FAILING_AFTER: i32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: EndpointStatus,
    pub consecutive_failures: i32,
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

/// What one attempt's result does to the endpoint. `dead_lettered` is true when this
/// attempt was the delivery's last.
pub fn after_attempt(
    health: &Health,
    success: bool,
    status_code: Option<u16>,
    dead_lettered: bool,
) -> (Health, Change) {
    if success {
        let change = if health.status == EndpointStatus::Failing { Change::Recovered } else { Change::None };
        return (Health { status: EndpointStatus::Healthy, consecutive_failures: 0 }, change);
    }
    let failures = health.consecutive_failures + 1;
    if status_code == Some(410) {
        let reason = "The endpoint answered 410 Gone, which asks senders to stop.".to_owned();
        return (
            Health { status: EndpointStatus::Disabled, consecutive_failures: failures },
            Change::Disable { reason },
        );
    }
    let failing = health.status == EndpointStatus::Failing || failures >= FAILING_AFTER;
    // Only an endpoint that was already failing (its owners warned) is disabled by a dead
    // letter; one that crosses the threshold on this attempt turns failing first.
    if health.status == EndpointStatus::Failing && dead_lettered {
        let reason = format!(
            "A delivery failed every retry while the endpoint was failing ({failures} failed attempts in a row)."
        );
        return (
            Health { status: EndpointStatus::Disabled, consecutive_failures: failures },
            Change::Disable { reason },
        );
    }
    if failing && health.status != EndpointStatus::Failing {
        return (Health { status: EndpointStatus::Failing, consecutive_failures: failures }, Change::BecameFailing);
    }
    let status = if failing { EndpointStatus::Failing } else { health.status };
    (Health { status, consecutive_failures: failures }, Change::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(failures: i32) -> Health {
        Health { status: EndpointStatus::Healthy, consecutive_failures: failures }
    }

    #[test]
    fn a_dead_letter_on_the_attempt_that_crosses_the_threshold_warns_before_any_disable() {
        let (h, c) = after_attempt(&healthy(4), false, Some(500), true);
        assert_eq!((h.status, c), (EndpointStatus::Failing, Change::BecameFailing));
        let (h, c) = after_attempt(&h, false, Some(500), true);
        assert_eq!(h.status, EndpointStatus::Disabled);
        assert!(matches!(c, Change::Disable { .. }), "{c:?}");
    }

    #[test]
    fn the_fifth_consecutive_failure_makes_an_endpoint_failing_once() {
        let (h, c) = after_attempt(&healthy(3), false, Some(500), false);
        assert_eq!((h.status, c), (EndpointStatus::Healthy, Change::None));
        let (h, c) = after_attempt(&h, false, Some(500), false);
        assert_eq!((h.status, h.consecutive_failures, c), (EndpointStatus::Failing, 5, Change::BecameFailing));
        let (h, c) = after_attempt(&h, false, None, false);
        assert_eq!((h.status, c), (EndpointStatus::Failing, Change::None), "the warning is sent once");
    }

    #[test]
    fn any_success_resets_and_closes_the_breaker() {
        let failing = Health { status: EndpointStatus::Failing, consecutive_failures: 9 };
        let (h, c) = after_attempt(&failing, true, Some(204), false);
        assert_eq!((h, c), (healthy(0), Change::Recovered));
        assert_eq!(after_attempt(&healthy(2), true, Some(200), false), (healthy(0), Change::None));
    }

    #[test]
    fn dead_lettering_disables_only_a_failing_endpoint() {
        let (h, c) = after_attempt(&healthy(0), false, Some(500), true);
        assert_eq!((h.status, c), (EndpointStatus::Healthy, Change::None));
        let failing = Health { status: EndpointStatus::Failing, consecutive_failures: 7 };
        let (h, c) = after_attempt(&failing, false, Some(500), true);
        assert_eq!(h.status, EndpointStatus::Disabled);
        assert!(matches!(c, Change::Disable { .. }));
    }

    #[test]
    fn gone_disables_at_once() {
        let (h, c) = after_attempt(&healthy(0), false, Some(410), false);
        assert_eq!(h.status, EndpointStatus::Disabled);
        assert!(matches!(c, Change::Disable { reason } if reason.contains("410")));
    }
}
