use chrono::Utc;
use entity::{
    api::{Attempt, Delivery, DeliveryFilter, DeliveryPage, Throttle},
    DeliveryStatus, EventType,
};
use leptos::prelude::*;

use crate::{
    components::notice::{ErrorNotice, Loading},
    time::{from_input, show, show_bare, zone_now},
    AppError,
};

use super::{bulk_retry::BulkRetryPanel, get_delivery, list_deliveries, recover::RecoverPanel, resend_delivery};

/// The log's filters, as their inputs hold them.
#[derive(Clone, Copy)]
struct Filters {
    status: RwSignal<Option<DeliveryStatus>>,
    event_type: RwSignal<Option<EventType>>,
    since: RwSignal<String>,
    until: RwSignal<String>,
    event_id: RwSignal<String>,
}

impl Filters {
    fn new() -> Self {
        Self {
            status: RwSignal::new(None),
            event_type: RwSignal::new(None),
            since: RwSignal::new(String::new()),
            until: RwSignal::new(String::new()),
            event_id: RwSignal::new(String::new()),
        }
    }

    /// The first page's filter (tracked).
    fn to_filter(self) -> DeliveryFilter {
        DeliveryFilter {
            status: self.status.get(),
            event_type: self.event_type.get(),
            since: from_input(&self.since.get()),
            until: from_input(&self.until.get()),
            event_id: Some(self.event_id.get().trim().to_owned()).filter(|e| !e.is_empty()),
            cursor: None,
        }
    }
}

/// What every row needs besides its delivery.
#[derive(Clone, Copy)]
struct RowContext {
    can_write: bool,
    held: Signal<Option<String>>,
    throttled: RwSignal<Option<Throttle>>,
    disabled: bool,
}

type PageAction = Action<String, Result<DeliveryPage, AppError>>;

/// The endpoint's delivery log: newest first, filterable, paged, each row expandable to
/// its attempts with Retry (failed) or Replay (delivered).
#[component]
pub fn DeliveryLog(
    endpoint_id: String,
    can_write: bool,
    /// What holds the endpoint's pending deliveries (`Endpoint::hold_reason`), shown on them.
    #[prop(into)]
    held: Signal<Option<String>>,
    /// A disabled endpoint is sent nothing: no Send now, and recovery waits for re-enabling.
    disabled: bool,
) -> impl IntoView {
    let endpoint_id = StoredValue::new(endpoint_id);
    let filters = Filters::new();
    let refresh = RwSignal::new(0u32);
    let more = RwSignal::new(Vec::<Delivery>::new());
    let cursor = RwSignal::new(None::<String>);
    let throttled = RwSignal::new(None::<Throttle>);
    let first = Resource::new(
        move || (filters.to_filter(), refresh.get()),
        move |(f, _)| list_deliveries(endpoint_id.get_value(), f),
    );
    let load_more = Action::new(move |c: &String| {
        let f = DeliveryFilter { cursor: Some(c.clone()), ..filters.to_filter() };
        list_deliveries(endpoint_id.get_value(), f)
    });
    Effect::new(move |_| {
        if let Some(Ok(page)) = first.get() {
            more.set(Vec::new());
            cursor.set(page.next_cursor);
            throttled.set(page.throttled);
        }
    });
    #[cfg(feature = "hydrate")]
    follow_live(endpoint_id.get_value(), refresh);
    Effect::new(move |_| {
        if let Some(Ok(page)) = load_more.value().get() {
            more.update(|m| m.extend(page.data));
            cursor.set(page.next_cursor);
        }
    });
    let rows = RowContext { can_write, held, throttled, disabled };

    view! {
        <section class="card log" aria-labelledby="log-heading">
            <div class="log-header">
                <h2 id="log-heading">"Delivery log"</h2>
                <LogFilters filters refresh />
            </div>
            <Transition fallback=|| {
                view! { <Loading what="Loading deliveries…" /> }
            }>
                {move || Suspend::new(async move {
                    match first.await {
                        Ok(page) if page.data.is_empty() => {
                            view! {
                                <p class="empty-log">
                                    "No deliveries match. Events sent to this endpoint appear here."
                                </p>
                            }
                                .into_any()
                        }
                        Ok(page) => view! { <DeliveryTable first=page.data more rows /> }.into_any(),
                        Err(err) => view! { <ErrorNotice message=err.to_string() /> }.into_any(),
                    }
                })}
            </Transition>
            {can_write.then(|| view! { <BulkRetryPanel endpoint_id=endpoint_id.get_value() /> })}
            {(can_write && !disabled).then(|| view! { <RecoverPanel endpoint_id=endpoint_id.get_value() /> })}
            <LoadOlderButton cursor load_more />
        </section>
    }
}

/// Status, event type, creation time range and event id; each applies on change.
#[component]
fn LogFilters(filters: Filters, refresh: RwSignal<u32>) -> impl IntoView {
    let Filters { status, event_type, since, until, event_id } = filters;
    view! {
        <div class="filters">
            <label for="filter-status">"Status"</label>
            <select id="filter-status" on:change=move |ev| status.set(event_target_value(&ev).parse().ok())>
                <option value="">"All"</option>
                <option value="delivered">"Delivered"</option>
                <option value="failed">"Failed"</option>
                <option value="pending">"Pending"</option>
            </select>
            <label for="filter-type">"Event type"</label>
            <select id="filter-type" on:change=move |ev| event_type.set(event_target_value(&ev).parse().ok())>
                <option value="">"All"</option>
                {EventType::ALL
                    .into_iter()
                    .map(|t| view! { <option value=t.as_str()>{t.as_str()}</option> })
                    .collect_view()}
            </select>
            <label for="filter-since">{move || format!("Created from ({})", zone_now())}</label>
            <input id="filter-since" type="datetime-local" on:change=move |ev| since.set(event_target_value(&ev)) />
            <label for="filter-until">{move || format!("Created to ({})", zone_now())}</label>
            <input id="filter-until" type="datetime-local" on:change=move |ev| until.set(event_target_value(&ev)) />
            <label for="filter-event">"Event id"</label>
            <input
                id="filter-event"
                type="search"
                placeholder="evt_…"
                autocomplete="off"
                spellcheck="false"
                on:change=move |ev| event_id.set(event_target_value(&ev))
            />
            <button class="button" type="button" on:click=move |_| refresh.update(|n| *n += 1)>
                "Refresh"
            </button>
        </div>
    }
}

/// The first page of deliveries, then the older ones loaded below it.
#[component]
fn DeliveryTable(first: Vec<Delivery>, more: RwSignal<Vec<Delivery>>, rows: RowContext) -> impl IntoView {
    view! {
        <table class="deliveries">
            <thead>
                <tr>
                    <th scope="col">{move || format!("Time ({})", zone_now())}</th>
                    <th scope="col">"Event"</th>
                    <th scope="col">"Response"</th>
                    <th scope="col">"Time"</th>
                    <th scope="col">"Attempts"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">
                        <span class="visually-hidden">"Details"</span>
                    </th>
                </tr>
            </thead>
            <tbody>
                {first.into_iter().map(|d| view! { <DeliveryRow d rows /> }).collect_view()}
                <For each=move || more.get() key=|d| d.id.clone() let:d>
                    <DeliveryRow d rows />
                </For>
            </tbody>
        </table>
    }
}

/// Shown while there are older deliveries than those listed.
#[component]
fn LoadOlderButton(cursor: RwSignal<Option<String>>, load_more: PageAction) -> impl IntoView {
    view! {
        <Show when=move || cursor.get().is_some()>
            <button
                class="button"
                type="button"
                disabled=move || load_more.pending().get()
                on:click=move |_| {
                    if let Some(c) = cursor.get_untracked() {
                        load_more.dispatch(c);
                    }
                }
            >
                "Load older deliveries"
            </button>
        </Show>
    }
}

/// Refreshes the log whenever the server reports a new attempt for this endpoint
/// (server-sent events from `/live/endpoints/{id}`, fed by PostgreSQL notifications).
#[cfg(feature = "hydrate")]
fn follow_live(endpoint_id: String, refresh: RwSignal<u32>) {
    use wasm_bindgen::{closure::Closure, JsCast};
    let Ok(source) = web_sys::EventSource::new(&format!("/live/endpoints/{endpoint_id}")) else { return };
    let on_attempt = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |_| refresh.update(|n| *n += 1));
    let _ = source.add_event_listener_with_callback("attempt", on_attempt.as_ref().unchecked_ref());
    let source = send_wrapper::SendWrapper::new((source, on_attempt));
    on_cleanup(move || source.0.close());
}

/// The last answer, and for a pending delivery what it waits for (`Delivery::waiting_reason`).
fn response_summary(d: &Delivery, held: Option<&str>, throttled: Option<&Throttle>) -> String {
    let last = match (d.last_status_code, &d.last_error) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(err)) => err.clone(),
        (None, None) => "Not attempted yet".to_owned(),
    };
    match d.waiting_reason(held, throttled, Utc::now(), &show) {
        Some(why) => format!("{last} · {why}"),
        None => last,
    }
}

#[component]
fn DeliveryRow(d: Delivery, rows: RowContext) -> impl IntoView {
    let RowContext { can_write, held, throttled, disabled } = rows;
    let open = RwSignal::new(false);
    let id = d.id.clone();
    let status = d.status.as_str();
    let badge = match d.status {
        DeliveryStatus::Delivered => "badge healthy",
        DeliveryStatus::Failed => "badge failing",
        DeliveryStatus::Pending => "badge disabled",
    };
    let at = d.last_attempt_at.unwrap_or(d.created_at);
    let summary_of = d.clone();
    let time = move || show_bare(at, "%Y-%m-%d %H:%M:%S");
    let utc = entity::api::utc(at, "%Y-%m-%d %H:%M:%S");
    let ms = d.last_response_time_ms.map(|ms| format!("{ms} ms")).unwrap_or_default();
    view! {
        <tr data-delivery=id.clone()>
            <td title=utc>{time}</td>
            <td>
                <code>{d.event_type.clone()}</code>
                {d
                    .test
                    .then(|| {
                        view! {
                            <span class="badge test" title="A test send from this page or the API">
                                "test"
                            </span>
                        }
                    })}
            </td>
            <td class="response">
                {move || response_summary(&summary_of, held.get().as_deref(), throttled.get().as_ref())}
            </td>
            <td>{ms}</td>
            <td>{d.attempt_count}</td>
            <td>
                <span class=badge>{status}</span>
            </td>
            <td class="row-actions">
                {can_write.then(|| view! { <RowAction d=d.clone() disabled /> })}
                <button
                    class="button"
                    type="button"
                    aria-expanded=move || open.get().to_string()
                    on:click=move |_| open.update(|o| *o = !*o)
                >
                    {move || if open.get() { "Hide" } else { "Details" }}
                </button>
            </td>
        </tr>
        <Show when=move || open.get()>
            <tr class="detail-row">
                <td colspan="7">
                    <DeliveryDetail id=id.clone() can_write />
                </td>
            </tr>
        </Show>
    }
}

/// The delivery's one action, in its row: Retry (failed), Replay (delivered) or Send now
/// (waiting for a retry). The live log refreshes the row once the attempt is recorded.
#[component]
fn RowAction(d: Delivery, disabled: bool) -> impl IntoView {
    let Some((label, replay)) = action_for(&d).filter(|(label, _)| !(disabled && *label == "Send now")) else {
        return ().into_any();
    };
    let id = d.id.clone();
    let resend = Action::new(move |_: &()| resend_delivery(id.clone(), replay));
    view! {
        {move || match resend.value().get() {
            Some(Ok(_)) => {
                view! {
                    <span class="muted" role="status">
                        "Queued"
                    </span>
                }
                    .into_any()
            }
            Some(Err(err)) => {
                view! {
                    <span class="field-error" role="alert">
                        {err.to_string()}
                    </span>
                }
                    .into_any()
            }
            None => {
                view! {
                    <button
                        class="button"
                        type="button"
                        disabled=move || resend.pending().get()
                        on:click=move |_| {
                            resend.dispatch(());
                        }
                    >
                        {label}
                    </button>
                }
                    .into_any()
            }
        }}
    }
    .into_any()
}

/// Retry (failed), Replay (delivered), Send now (pending after a failed attempt); a
/// delivery not attempted yet has none.
fn action_for(d: &Delivery) -> Option<(&'static str, bool)> {
    match d.status {
        DeliveryStatus::Failed => Some(("Retry", false)),
        DeliveryStatus::Delivered => Some(("Replay", true)),
        DeliveryStatus::Pending if d.attempt_count > 0 => Some(("Send now", false)),
        DeliveryStatus::Pending => None,
    }
}

#[component]
fn DeliveryDetail(id: String, can_write: bool) -> impl IntoView {
    let id = StoredValue::new(id);
    let resend = Action::new(move |replay: &bool| resend_delivery(id.get_value(), *replay));
    let detail = Resource::new(move || resend.version().get(), move |_| get_delivery(id.get_value()));
    view! {
        <div class="delivery-detail" data-testid="delivery-detail">
            <Suspense fallback=|| {
                view! { <Loading what="Loading attempts…" /> }
            }>
                {move || Suspend::new(async move {
                    match detail.await {
                        Ok(d) => view! { <DetailBody d can_write resend /> }.into_any(),
                        Err(err) => view! { <ErrorNotice message=err.to_string() /> }.into_any(),
                    }
                })}
            </Suspense>
            {move || {
                resend
                    .value()
                    .get()
                    .and_then(|r| r.err())
                    .map(|err| {
                        view! { <ErrorNotice message=err.to_string() /> }
                    })
            }}
        </div>
    }
}

#[component]
fn DetailBody(d: Delivery, can_write: bool, resend: Action<bool, Result<Delivery, AppError>>) -> impl IntoView {
    let action = action_for(&d);
    let queued = (d.status == DeliveryStatus::Pending).then(|| {
        let d = d.clone();
        move || waiting_text(&d)
    });
    view! {
        <div class="detail-actions">
            <span class="muted">"webhook-id " <code>{d.event_id.clone()}</code></span>
            {(can_write && action.is_some())
                .then(|| {
                    let (label, replay) = action.unwrap_or(("Retry", false));
                    view! {
                        <button
                            class="button primary"
                            type="button"
                            disabled=move || resend.pending().get()
                            on:click=move |_| {
                                resend.dispatch(replay);
                            }
                        >
                            {label}
                        </button>
                    }
                })}
            {queued
                .map(|text| {
                    view! {
                        <span class="muted" data-testid="waiting">
                            {text}
                        </span>
                    }
                })}
        </div>
        {d.attempts.into_iter().rev().map(|a| view! { <AttemptDetail a /> }).collect_view()}
    }
}

/// What a pending delivery waits for: its first attempt, or retry n at a given time.
fn waiting_text(d: &Delivery) -> String {
    d.waiting_reason(None, None, Utc::now(), &show).unwrap_or_else(|| match d.attempt_count {
        0 => "Queued: the first attempt is due.".to_owned(),
        n => format!("Retry {n} is due now."),
    })
}

/// One attempt: its outcome and timing, then the request sent and the response received.
#[component]
fn AttemptDetail(a: Attempt) -> impl IntoView {
    let outcome = match (a.status_code, &a.error) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(err)) => err.clone(),
        (None, None) => "No response".to_owned(),
    };
    let badge = if a.success { "badge healthy" } else { "badge failing" };
    view! {
        <article class="attempt">
            <header>
                <strong>{format!("Attempt {}", a.attempt_number)}</strong>
                <span class=badge>{if a.success { "success" } else { "failed" }}</span>
                <span>{outcome}</span>
                <span class="muted">
                    {move || format!("{} ms · {}", a.response_time_ms, show(a.attempted_at, "%Y-%m-%d %H:%M:%S"))}
                </span>
            </header>
            <div class="attempt-grid">
                <MessagePane title="Request" headers=headers_text(&a.request_headers) body=pretty(&a.request_body) />
                <MessagePane
                    title="Response"
                    headers=a.response_headers.as_ref().map(headers_text).unwrap_or_else(|| "—".into())
                    body=a.response_body.as_deref().map(pretty).unwrap_or_else(|| "—".into())
                />
            </div>
        </article>
    }
}

/// One side of an attempt's exchange: its headers and its body.
#[component]
fn MessagePane(title: &'static str, headers: String, body: String) -> impl IntoView {
    view! {
        <div>
            <h3>{title}</h3>
            <pre class="headers">{headers}</pre>
            <pre class="body">{body}</pre>
        </div>
    }
}

fn headers_text(headers: &serde_json::Value) -> String {
    headers
        .as_object()
        .map(|m| {
            m.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join("\n")
        })
        .unwrap_or_default()
}

/// Pretty-printed when the body is JSON; as it is otherwise (including the 10 KB marker).
fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}
