//! Retry timing (SPEC §6) as pure functions: no clock reads, no randomness unless passed in, so
//! the worker and the tests share exactly the same rules.
//!
//! After a failed first attempt the delivery is retried once per schedule entry (default
//! 1m, 5m, 30m, 2h, 24h, ± 10 % jitter); when the last retry fails it is dead-lettered.
//! A `Retry-After` on 429/503 is honoured when it asks for more time than the schedule.

use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::config::RetrySchedule;

/// Jitter amplitude: ± 10 % of the scheduled delay (SPEC §6).
const JITTER_FRACTION: f64 = 0.10;

/// Upper bound for a receiver's `Retry-After`: the longest default step. A receiver must not be
/// able to park a delivery for years with one header.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Attempt again after this delay (measured from the failed attempt).
    Retry { after: Duration },
    /// Schedule exhausted: dead-letter the delivery (status `failed`, kept, retryable by hand).
    Dead,
}

/// Attempts a delivery gets in total: the first one plus one retry per schedule entry
/// (6 with the default schedule).
pub fn max_attempts(schedule: &RetrySchedule) -> u32 {
    u32::try_from(schedule.0.len()).map_or(u32::MAX, |retries| retries.saturating_add(1))
}

/// The un-jittered delay before the next attempt, given how many attempts have failed so far.
///
/// `failed_attempts = 1` (the first attempt failed) gives the first schedule entry; `None` once
/// the schedule is exhausted, meaning dead-letter. `0` (nothing has failed yet) gives zero: the
/// first attempt is not delayed.
pub fn base_delay(schedule: &RetrySchedule, failed_attempts: u32) -> Option<Duration> {
    let Some(index) = failed_attempts.checked_sub(1) else {
        return Some(Duration::ZERO);
    };
    let index = usize::try_from(index).ok()?;
    schedule.0.get(index).copied()
}

/// Spreads `delay` by ± 10 %: `unit` in [-1, 1] maps linearly onto [-10 %, +10 %] (values
/// outside are clamped, NaN counts as 0). Jitter stops a burst of failures from retrying in
/// lockstep against a receiver that is just recovering.
pub fn with_jitter(delay: Duration, unit: f64) -> Duration {
    let unit = if unit.is_nan() { 0.0 } else { unit.clamp(-1.0, 1.0) };
    let nanos = delay.as_nanos();
    // Integer nanoseconds keep the bounds exact (60 s * 1.1 is 66 s, not 66.000000000000001 s).
    let offset = (nanos as f64 * JITTER_FRACTION * unit).round();
    let jittered =
        if offset >= 0.0 { nanos.saturating_add(offset as u128) } else { nanos.saturating_sub((-offset) as u128) };
    duration_from_nanos(jittered)
}

/// A jitter unit drawn uniformly from [-1, 1], for [`with_jitter`] and [`decide`].
pub fn random_jitter_unit(rng: &mut impl Rng) -> f64 {
    rng.gen_range(-1.0..=1.0)
}

/// [`with_jitter`] with the unit drawn from `rng`.
pub fn with_random_jitter(delay: Duration, rng: &mut impl Rng) -> Duration {
    with_jitter(delay, random_jitter_unit(rng))
}

fn duration_from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it always fits.
    let sub_nanos = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, sub_nanos)
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
///
/// A date in the past means "now" (`Duration::ZERO`); anything else unparseable is `None`
/// (ignored, the schedule applies). Results are capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let delay = if value.bytes().all(|b| b.is_ascii_digit()) {
        delay_seconds(value)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// `1*DIGIT`; a number too big for u64 is still a valid (absurd) delay, so it saturates and the
/// caller's cap applies.
fn delay_seconds(digits: &str) -> Duration {
    Duration::from_secs(digits.parse::<u64>().unwrap_or(u64::MAX))
}

/// Whether a status's `Retry-After` is honoured: only "too many requests" and "unavailable"
/// (SPEC §6); on other statuses the header is noise we do not let extend the schedule.
fn honours_retry_after(status: Option<u16>) -> bool {
    matches!(status, Some(429 | 503))
}

/// The decision after `failed_attempts` attempts have failed, the last one with `status`
/// (`None` = network error or timeout) and an already-parsed `retry_after`.
///
/// The scheduled delay gets jitter from `jitter_unit` (see [`with_jitter`]). A `Retry-After`
/// on 429/503 replaces it only when later. An exhausted schedule is `Dead` regardless of
/// `Retry-After`: a receiver cannot buy extra attempts.
pub fn decide(
    schedule: &RetrySchedule,
    failed_attempts: u32,
    status: Option<u16>,
    retry_after: Option<Duration>,
    jitter_unit: f64,
) -> Decision {
    let Some(base) = base_delay(schedule, failed_attempts) else {
        return Decision::Dead;
    };
    let scheduled = with_jitter(base, jitter_unit);
    let after = match retry_after {
        Some(asked) if honours_retry_after(status) => scheduled.max(asked.min(MAX_RETRY_AFTER)),
        _ => scheduled,
    };
    Decision::Retry { after }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;

    /// The schedule a process runs with when `WEBHOOKS_RETRY_SCHEDULE` is unset.
    fn default_schedule() -> RetrySchedule {
        crate::config::parse_schedule(&crate::config::default_of("retry_schedule")).unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_default_schedule_gives_the_spec_delays_after_each_failure() {
        let s = default_schedule();
        assert_eq!(base_delay(&s, 1), Some(secs(MIN)));
        assert_eq!(base_delay(&s, 2), Some(secs(5 * MIN)));
        assert_eq!(base_delay(&s, 3), Some(secs(30 * MIN)));
        assert_eq!(base_delay(&s, 4), Some(secs(2 * HOUR)));
        assert_eq!(base_delay(&s, 5), Some(secs(24 * HOUR)));
    }

    #[test]
    fn the_default_schedule_is_exhausted_after_the_fifth_retry_fails() {
        let s = default_schedule();
        assert_eq!(max_attempts(&s), 6);
        assert_eq!(base_delay(&s, 6), None);
        assert_eq!(base_delay(&s, u32::MAX), None);
        assert_eq!(decide(&s, 6, Some(500), None, 0.0), Decision::Dead);
    }

    #[test]
    fn nothing_failed_yet_means_no_delay() {
        assert_eq!(base_delay(&default_schedule(), 0), Some(Duration::ZERO));
    }

    #[test]
    fn an_empty_schedule_dead_letters_after_the_first_failure() {
        let s = RetrySchedule(vec![]);
        assert_eq!(max_attempts(&s), 1);
        assert_eq!(decide(&s, 1, Some(500), None, 0.0), Decision::Dead);
    }

    #[test]
    fn jitter_is_exactly_plus_or_minus_ten_percent_at_the_extremes() {
        assert_eq!(with_jitter(secs(60), 1.0), secs(66));
        assert_eq!(with_jitter(secs(60), -1.0), secs(54));
        assert_eq!(with_jitter(secs(60), 0.0), secs(60));
        assert_eq!(with_jitter(secs(24 * HOUR), 1.0), secs(26 * HOUR + 24 * MIN));
        assert_eq!(with_jitter(secs(24 * HOUR), -1.0), secs(21 * HOUR + 36 * MIN));
        assert_eq!(with_jitter(secs(60), 0.5), secs(63));
    }

    #[test]
    fn jitter_units_outside_the_range_are_clamped_and_nan_means_none() {
        assert_eq!(with_jitter(secs(60), 7.0), secs(66));
        assert_eq!(with_jitter(secs(60), -7.0), secs(54));
        assert_eq!(with_jitter(secs(60), f64::NAN), secs(60));
        assert_eq!(with_jitter(secs(60), f64::INFINITY), secs(66));
    }

    #[test]
    fn jitter_does_not_overflow_on_huge_delays() {
        assert!(with_jitter(Duration::MAX, 1.0) >= Duration::MAX - secs(1));
    }

    #[test]
    fn random_jitter_always_stays_within_ten_percent() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..10_000 {
            let d = with_random_jitter(secs(300), &mut rng);
            assert!(d >= secs(270) && d <= secs(330), "{d:?}");
        }
    }

    #[test]
    fn retry_after_accepts_delay_seconds() {
        let now = SystemTime::UNIX_EPOCH + secs(1_700_000_000);
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_accepts_an_http_date_relative_to_now() {
        // 1994-11-06 08:49:37 UTC = 784111777 (the RFC's own example date).
        let now = SystemTime::UNIX_EPOCH + secs(784_111_777 - 90);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(secs(90)));
    }

    #[test]
    fn retry_after_in_the_past_means_now() {
        let now = SystemTime::UNIX_EPOCH + secs(784_111_777 + 3600);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        let now = SystemTime::UNIX_EPOCH + secs(1_700_000_000);
        for value in ["", "  ", "soon", "-5", "1.5", "12s", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
    }

    #[test]
    fn absurd_retry_after_values_are_capped_at_twenty_four_hours() {
        let now = SystemTime::UNIX_EPOCH + secs(784_111_777);
        assert_eq!(parse_retry_after("999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn decide_applies_jitter_to_the_scheduled_delay() {
        let s = default_schedule();
        assert_eq!(decide(&s, 1, None, None, 1.0), Decision::Retry { after: secs(66) });
        assert_eq!(decide(&s, 2, Some(500), None, -1.0), Decision::Retry { after: secs(270) });
    }

    #[test]
    fn retry_after_on_429_and_503_wins_when_later_than_the_schedule() {
        let s = default_schedule();
        for status in [429, 503] {
            let d = decide(&s, 1, Some(status), Some(secs(600)), 0.0);
            assert_eq!(d, Decision::Retry { after: secs(600) }, "{status}");
        }
    }

    #[test]
    fn retry_after_earlier_than_the_schedule_is_ignored() {
        let s = default_schedule();
        let d = decide(&s, 1, Some(429), Some(secs(10)), 0.0);
        assert_eq!(d, Decision::Retry { after: secs(60) });
    }

    #[test]
    fn retry_after_is_ignored_for_500_and_network_errors() {
        let s = default_schedule();
        assert_eq!(decide(&s, 1, Some(500), Some(secs(600)), 0.0), Decision::Retry { after: secs(60) });
        assert_eq!(decide(&s, 1, None, Some(secs(600)), 0.0), Decision::Retry { after: secs(60) });
    }

    #[test]
    fn retry_after_cannot_revive_an_exhausted_schedule() {
        let s = default_schedule();
        assert_eq!(decide(&s, 6, Some(429), Some(secs(5)), 0.0), Decision::Dead);
        assert_eq!(decide(&s, 6, Some(503), Some(secs(600)), 0.0), Decision::Dead);
    }

    #[test]
    fn seconds_scale_schedules_work_for_tests() {
        let s = RetrySchedule(vec![secs(1), secs(2)]);
        assert_eq!(max_attempts(&s), 3);
        assert_eq!(decide(&s, 1, Some(500), None, 0.0), Decision::Retry { after: secs(1) });
        assert_eq!(decide(&s, 2, Some(500), None, 1.0), Decision::Retry { after: Duration::from_millis(2200) });
        assert_eq!(decide(&s, 3, Some(500), None, 0.0), Decision::Dead);
    }

    #[test]
    fn sub_second_schedules_keep_millisecond_precision() {
        let s = RetrySchedule(vec![Duration::from_millis(500)]);
        assert_eq!(decide(&s, 1, None, None, -1.0), Decision::Retry { after: Duration::from_millis(450) });
    }
}
