use entity::api::StatBucket;
use leptos::prelude::*;

use super::endpoint_stats;

const W: f64 = 640.0;
const H: f64 = 160.0;

/// Success rate (bars) and average response time (line) over 24 h or 7 days, drawn as SVG
/// by the app itself.
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
                    <button class="button" type="button" aria-pressed=move || (days.get() == 1).to_string() on:click=move |_| days.set(1)>"24 hours"</button>
                    <button class="button" type="button" aria-pressed=move || (days.get() == 7).to_string() on:click=move |_| days.set(7)>"7 days"</button>
                </div>
            </div>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match stats.await {
                        Ok(buckets) if buckets.is_empty() => view! { <p class="empty-log">"No attempts in this period."</p> }.into_any(),
                        Ok(buckets) => view! { <Chart buckets /> }.into_any(),
                        Err(err) => view! { <p class="notice error" role="alert">{err.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn Chart(buckets: Vec<StatBucket>) -> impl IntoView {
    let total: i64 = buckets.iter().map(|b| b.total).sum();
    let ok: i64 = buckets.iter().map(|b| b.succeeded).sum();
    let avg = buckets.iter().map(|b| b.avg_ms * b.total as f64).sum::<f64>() / total.max(1) as f64;
    let max_ms = buckets.iter().map(|b| b.avg_ms).fold(1.0, f64::max);
    let slot = W / buckets.len() as f64;
    let summary = format!(
        "{:.1} % delivered · {:.0} ms average · {total} attempts",
        ok as f64 * 100.0 / total.max(1) as f64,
        avg
    );
    let line: String = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| format!("{:.1},{:.1}", slot * (i as f64 + 0.5), H - b.avg_ms / max_ms * (H - 10.0)))
        .collect::<Vec<_>>()
        .join(" ");
    view! {
        <p class="chart-summary" data-testid="chart-summary">{summary}</p>
        <svg class="health-chart" viewBox=format!("0 0 {W} {H}") role="img" aria-label="Success rate and response time">
            {buckets.iter().enumerate().map(|(i, b)| {
                let rate = b.succeeded as f64 / b.total.max(1) as f64;
                let height = rate * (H - 10.0);
                view! {
                    <rect class="failed" x=format!("{:.1}", slot * i as f64 + 2.0) y="10" width=format!("{:.1}", slot - 4.0) height=format!("{:.1}", H - 10.0)>
                        <title>{format!("{} · {} of {} delivered · {:.0} ms", crate::time::show(b.start, "%Y-%m-%d %H:%M"), b.succeeded, b.total, b.avg_ms)}</title>
                    </rect>
                    <rect class="ok" x=format!("{:.1}", slot * i as f64 + 2.0) y=format!("{:.1}", H - height) width=format!("{:.1}", slot - 4.0) height=format!("{height:.1}") />
                }
            }).collect_view()}
            <polyline class="latency" points=line />
        </svg>
        <p class="chart-legend"><span class="key ok"></span>"delivered" <span class="key failed"></span>"failed" <span class="key latency"></span>"average response time (max " {format!("{max_ms:.0} ms")} ")"</p>
    }
}
