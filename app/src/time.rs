//! Times in the viewer's zone (issue 12: the dashboard was UTC only). The server cannot know
//! the browser's zone, so it renders UTC, and the browser's first render matches it; once
//! hydrated, `LocalTime` flips and every time on the page shows in local time, with its
//! offset named, each at its own date's offset (daylight saving included). Times typed into
//! date inputs are read in the same zone.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use leptos::prelude::*;

/// Whether the page may show local time: false on the server and until hydration.
#[derive(Clone, Copy)]
pub struct LocalTime(RwSignal<bool>);

/// Called once by the app root.
pub fn provide_local_time() {
    let local = RwSignal::new(false);
    provide_context(LocalTime(local));
    Effect::new(move |_| local.set(true)); // effects run only in the browser
}

/// The zone to show `t` in: the browser's offset at `t` once hydrated, else `None` (UTC).
/// Reading it inside a reactive closure re-renders that closure when the page hydrates.
fn offset_at(t: DateTime<Utc>) -> Option<FixedOffset> {
    let local = use_context::<LocalTime>().is_some_and(|l| l.0.get());
    if !local {
        return None;
    }
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(t.timestamp_millis() as f64));
        FixedOffset::east_opt(-(date.get_timezone_offset() as i32) * 60)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = t;
        None
    }
}

/// `UTC`, or `UTC+05:30`.
fn zone_name(offset: Option<FixedOffset>) -> String {
    match offset.map(|o| o.local_minus_utc()) {
        None | Some(0) => "UTC".to_owned(),
        Some(secs) => {
            let sign = if secs < 0 { '-' } else { '+' };
            let secs = secs.abs();
            format!("UTC{sign}{:02}:{:02}", secs / 3600, secs % 3600 / 60)
        }
    }
}

/// `t` in the viewer's zone with the zone named: "2026-11-30 10:15 UTC+01:00".
pub fn show(t: DateTime<Utc>, format: &str) -> String {
    let offset = offset_at(t);
    format!("{} {}", bare(t, format, offset), zone_name(offset))
}

/// `t` in the viewer's zone without the zone (a table column names it once: `zone_now`).
pub fn show_bare(t: DateTime<Utc>, format: &str) -> String {
    bare(t, format, offset_at(t))
}

fn bare(t: DateTime<Utc>, format: &str, offset: Option<FixedOffset>) -> String {
    match offset {
        Some(o) => t.with_timezone(&o).format(format).to_string(),
        None => t.format(format).to_string(),
    }
}

/// The viewer's zone now, for column headers and input labels.
pub fn zone_now() -> String {
    zone_name(offset_at(Utc::now()))
}

/// A `datetime-local` input's value for `t`.
pub fn to_input(t: DateTime<Utc>) -> String {
    show_bare(t, "%Y-%m-%dT%H:%M")
}

/// A `datetime-local` input's value, read in the viewer's zone.
pub fn from_input(value: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M").ok()?;
    let guess = naive.and_utc();
    let offset = offset_at(guess).map_or(0, |o| o.local_minus_utc());
    Some(guess - chrono::Duration::seconds(offset.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_named_by_their_offset() {
        assert_eq!(zone_name(None), "UTC");
        assert_eq!(zone_name(FixedOffset::east_opt(0)), "UTC");
        assert_eq!(zone_name(FixedOffset::east_opt(5 * 3600 + 1800)), "UTC+05:30");
        assert_eq!(zone_name(FixedOffset::west_opt(3 * 3600)), "UTC-03:00");
    }

    #[test]
    fn without_a_browser_times_are_utc_and_inputs_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-11-30T09:15:00Z").unwrap().to_utc();
        assert_eq!(show(t, "%Y-%m-%d %H:%M"), "2026-11-30 09:15 UTC");
        assert_eq!(from_input(&to_input(t)), Some(t));
        assert_eq!(from_input("yesterday"), None);
    }
}
