//! The endpoint's health over 24 hours or 7 days: success rate as bars, average response
//! time as a line, with a time axis, both value axes and a tooltip for each hour or day (on
//! hover and on keyboard focus). Drawn as SVG by the app itself.

use chrono::{DateTime, Duration, DurationRound, Utc};
use entity::api::StatBucket;
use leptos::prelude::*;

use super::endpoint_stats;
use crate::{
    components::notice::{ErrorNotice, Loading},
    time::show_bare,
};

const W: f64 = 640.0;
const H: f64 = 180.0;
/// Room for the axes' labels: success rate left, response time right, time below.
const LEFT: f64 = 44.0;
const RIGHT: f64 = 56.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 22.0;
const PLOT_W: f64 = W - LEFT - RIGHT;
const PLOT_H: f64 = H - TOP - BOTTOM;

#[component]
pub fn HealthChart(endpoint_id: String) -> impl IntoView {
    let endpoint_id = StoredValue::new(endpoint_id);
    let days = RwSignal::new(1);
    let stats = Resource::new(move || days.get(), move |d| endpoint_stats(endpoint_id.get_value(), d));
    view! {
        <section class="card chart" aria-labelledby="chart-heading">
            <div class="log-header">
                <h2 id="chart-heading">"Health"</h2>
                <div class="filters" role="group" aria-label="Period">
                    <button
                        class="button"
                        type="button"
                        aria-pressed=move || (days.get() == 1).to_string()
                        on:click=move |_| days.set(1)
                    >
                        "24 hours"
                    </button>
                    <button
                        class="button"
                        type="button"
                        aria-pressed=move || (days.get() == 7).to_string()
                        on:click=move |_| days.set(7)
                    >
                        "7 days"
                    </button>
                </div>
            </div>
            <Transition fallback=|| {
                view! { <Loading what="Loading…" /> }
            }>
                {move || Suspend::new(async move {
                    match stats.await {
                        Ok(buckets) if buckets.is_empty() => {
                            view! { <p class="empty-log">"No attempts in this period."</p> }.into_any()
                        }
                        Ok(buckets) => {
                            let d = days.get_untracked();
                            view! { <Chart slots=series(&buckets, d, Utc::now()) hourly=d <= 1 /> }.into_any()
                        }
                        Err(err) => view! { <ErrorNotice message=err.to_string() /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Every hour (`days` ≤ 1) or day of the period up to `now`, oldest first, the ones without
/// attempts included, so the time axis has no gaps. The server sends only buckets with
/// attempts, each starting at a whole hour or day (UTC).
pub fn series(buckets: &[StatBucket], days: i32, now: DateTime<Utc>) -> Vec<StatBucket> {
    let step = if days <= 1 { Duration::hours(1) } else { Duration::days(1) };
    let last = now.duration_trunc(step).unwrap_or(now);
    let first = (now - Duration::days(i64::from(days.max(1)))).duration_trunc(step).unwrap_or(last);
    let mut out = Vec::new();
    let mut start = first;
    while start <= last {
        let found = buckets.iter().find(|b| b.start == start);
        out.push(found.cloned().unwrap_or(StatBucket { start, total: 0, succeeded: 0, avg_ms: 0.0 }));
        start += step;
    }
    out
}

/// What the tooltip says about one hour or day.
pub fn describe(b: &StatBucket, period: &str) -> String {
    if b.total == 0 {
        return format!("{period}: no attempts");
    }
    format!(
        "{period}: {} of {} delivered ({:.0} %), {:.0} ms average",
        b.succeeded,
        b.total,
        b.succeeded as f64 * 100.0 / b.total as f64,
        b.avg_ms
    )
}

/// A round top for the response-time axis: 1, 2 or 5 times a power of ten, at least `max`.
pub fn nice_ceiling(max: f64) -> f64 {
    let max = max.max(1.0);
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|v| *v >= max).unwrap_or(10.0 * power)
}

#[component]
fn Chart(slots: Vec<StatBucket>, hourly: bool) -> impl IntoView {
    let total: i64 = slots.iter().map(|b| b.total).sum();
    let ok: i64 = slots.iter().map(|b| b.succeeded).sum();
    let avg = slots.iter().map(|b| b.avg_ms * b.total as f64).sum::<f64>() / total.max(1) as f64;
    let top_ms = nice_ceiling(slots.iter().map(|b| b.avg_ms).fold(0.0, f64::max));
    let slot_w = PLOT_W / slots.len().max(1) as f64;
    let x = move |i: usize| LEFT + slot_w * i as f64;
    let y_rate = |rate: f64| TOP + PLOT_H * (1.0 - rate);
    let summary = format!(
        "{:.1} % delivered · {:.0} ms average · {total} attempts",
        ok as f64 * 100.0 / total.max(1) as f64,
        avg
    );
    let line: String = slots
        .iter()
        .enumerate()
        .filter(|(_, b)| b.total > 0)
        .map(|(i, b)| format!("{:.1},{:.1}", x(i) + slot_w / 2.0, TOP + PLOT_H * (1.0 - b.avg_ms / top_ms)))
        .collect::<Vec<_>>()
        .join(" ");
    let (label_every, label_format, period_format) =
        if hourly { (6, "%H:%M", "%a %H:%M") } else { (1, "%a %-d", "%a %b %-d") };
    let step = if hourly { Duration::hours(1) } else { Duration::days(1) };
    let period = move |b: &StatBucket| {
        format!(
            "{} – {}",
            show_bare(b.start, period_format),
            show_bare(b.start + step, if hourly { "%H:%M" } else { period_format })
        )
    };
    let slots = StoredValue::new(slots);
    let hovered = RwSignal::new(None::<usize>);
    let tooltip =
        move || hovered.get().and_then(|i| slots.with_value(|s| s.get(i).map(|b| (i, describe(b, &period(b))))));
    view! {
        <p class="chart-summary" data-testid="chart-summary">
            {summary}
        </p>
        <div class="chart-frame" on:mouseleave=move |_| hovered.set(None)>
            <svg
                class="health-chart"
                viewBox=format!("0 0 {W} {H}")
                role="img"
                aria-label="Success rate and response time"
            >
                {[1.0, 0.5, 0.0]
                    .into_iter()
                    .map(|rate| {
                        view! {
                            <line class="grid" x1=LEFT x2=LEFT + PLOT_W y1=y_rate(rate) y2=y_rate(rate) />
                            <text class="axis rate" x=LEFT - 6.0 y=y_rate(rate) + 4.0 text-anchor="end">
                                {format!("{:.0} %", rate * 100.0)}
                            </text>
                            <text class="axis ms" x=LEFT + PLOT_W + 6.0 y=y_rate(rate) + 4.0>
                                {format!("{:.0} ms", top_ms * rate)}
                            </text>
                        }
                    })
                    .collect_view()}
                {slots
                    .with_value(|buckets| {
                        buckets
                            .iter()
                            .enumerate()
                            .map(|(i, b)| {
                                let rate = b.succeeded as f64 / b.total.max(1) as f64;
                                let label = (i % label_every == 0)
                                    .then(|| {
                                        let start = b.start;
                                        view! {
                                            <text
                                                class="axis time"
                                                x=x(i) + slot_w / 2.0
                                                y=H - 6.0
                                                text-anchor="middle"
                                            >
                                                {move || show_bare(start, label_format)}
                                            </text>
                                        }
                                    });
                                let bars = (b.total > 0)
                                    .then(|| {
                                        view! {
                                            <rect
                                                class="failed"
                                                x=x(i) + 1.0
                                                y=TOP
                                                width=(slot_w - 2.0).max(1.0)
                                                height=PLOT_H
                                            />
                                            <rect
                                                class="ok"
                                                x=x(i) + 1.0
                                                y=y_rate(rate)
                                                width=(slot_w - 2.0).max(1.0)
                                                height=PLOT_H * rate
                                            />
                                        }
                                    });
                                view! {
                                    {bars}
                                    {label}
                                    <rect
                                        class="hit"
                                        x=x(i)
                                        y=TOP
                                        width=slot_w
                                        height=PLOT_H
                                        tabindex="0"
                                        data-slot=i
                                        aria-label=describe(b, &entity::api::utc(b.start, period_format))
                                        on:mouseenter=move |_| hovered.set(Some(i))
                                        on:focus=move |_| hovered.set(Some(i))
                                        on:blur=move |_| hovered.set(None)
                                    />
                                }
                            })
                            .collect_view()
                    })}
                <polyline class="latency" points=line />
            </svg>
            {move || {
                tooltip()
                    .map(|(i, text)| {
                        let left = (x(i) + slot_w / 2.0) / W * 100.0;
                        view! {
                            <div
                                class="chart-tooltip"
                                role="status"
                                data-testid="chart-tooltip"
                                style=format!("left: clamp(9rem, {left:.1}%, calc(100% - 9rem))")
                            >
                                {text}
                            </div>
                        }
                    })
            }}
        </div>
        <p class="chart-legend">
            <span class="key ok"></span>
            "delivered"
            <span class="key failed"></span>
            "failed"
            <span class="key latency"></span>
            "average response time"
        </p>
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn bucket(start: DateTime<Utc>, total: i64, succeeded: i64) -> StatBucket {
        StatBucket { start, total, succeeded, avg_ms: 120.0 }
    }

    #[test]
    fn a_day_has_every_hour_on_its_axis_and_the_hours_without_attempts_are_empty() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 14, 20, 0).unwrap();
        let two = Utc.with_ymd_and_hms(2026, 11, 30, 2, 0, 0).unwrap();
        let s = series(&[bucket(two, 5, 4)], 1, now);
        assert_eq!(s.len(), 25, "from 13:00 yesterday (partly in the window) to 14:00 today");
        assert_eq!(s[0].start, Utc.with_ymd_and_hms(2026, 11, 29, 14, 0, 0).unwrap());
        assert_eq!(s[24].start, Utc.with_ymd_and_hms(2026, 11, 30, 14, 0, 0).unwrap());
        assert_eq!(s.iter().map(|b| b.total).sum::<i64>(), 5);
        assert_eq!(s[12], bucket(two, 5, 4));
        assert_eq!(series(&[], 7, now).len(), 8);
    }

    #[test]
    fn the_tooltip_gives_the_counts_and_the_rate() {
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 2, 0, 0).unwrap();
        assert_eq!(
            describe(&bucket(t, 4, 3), "02:00 – 03:00"),
            "02:00 – 03:00: 3 of 4 delivered (75 %), 120 ms average"
        );
        assert_eq!(describe(&bucket(t, 0, 0), "02:00 – 03:00"), "02:00 – 03:00: no attempts");
    }

    #[test]
    fn the_response_time_axis_ends_on_a_round_value() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(140.0), 200.0);
        assert_eq!(nice_ceiling(480.0), 500.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        assert_eq!(nice_ceiling(1001.0), 2000.0);
    }
}
