use chrono::{Duration, Utc};
use entity::{
    api::{BulkRetry, BulkRetryRange},
    BulkRetryKind, BulkRetryState, DeliveryStatus, EventType,
};
use leptos::prelude::*;

use super::{bulk_retry_count, bulk_retry_start, bulk_retry_status};
use crate::components::notice::ErrorNotice;
use crate::time::{from_input, to_input, zone_now};

/// Bulk retry for a time range, of failed deliveries or of those waiting for a retry, of
/// every event type or one: count first, confirm with the number, then follow the job's
/// progress until it finishes.
#[component]
pub fn BulkRetryPanel(endpoint_id: String) -> impl IntoView {
    let endpoint_id = StoredValue::new(endpoint_id);
    let now = Utc::now();
    // Instants, not input text: the inputs show them in the viewer's zone once hydrated.
    let since = RwSignal::new(Some(now - Duration::days(1)));
    let until = RwSignal::new(Some(now + Duration::minutes(1)));
    let status = RwSignal::new(DeliveryStatus::Failed);
    let event_type = RwSignal::new(None::<EventType>);
    let error = RwSignal::new(None::<String>);
    let range = move || match (since.get(), until.get()) {
        (Some(since), Some(until)) => Ok(BulkRetryRange {
            since,
            until,
            status: Some(status.get()),
            event_types: event_type.get().into_iter().collect(),
        }),
        _ => Err("Enter both ends of the range.".to_owned()),
    };
    let what = move || match status.get() {
        DeliveryStatus::Pending => "deliveries waiting for a retry",
        _ => "failed deliveries",
    };
    let count = Action::new(move |r: &BulkRetryRange| bulk_retry_count(endpoint_id.get_value(), r.clone()));
    // A changed filter asks for a new count before anything is resent.
    Effect::new(move |_| {
        let _ = (status.get(), event_type.get(), since.get(), until.get());
        count.value().set(None);
    });
    let start = Action::new(move |r: &BulkRetryRange| bulk_retry_start(endpoint_id.get_value(), r.clone()));
    let job = RwSignal::new(None::<BulkRetry>);
    Effect::new(move |_| match start.value().get() {
        Some(Ok(bulk)) => job.set(Some(bulk)),
        Some(Err(e)) => error.set(Some(e.to_string())),
        None => {}
    });
    follow(job);
    let ask = move |_| {
        error.set(None);
        match range() {
            Ok(r) => {
                count.dispatch(r);
            }
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <div class="bulk-retry">
            <h3>"Bulk retry"</h3>
            <div class="bulk-fields">
                <label for="bulk-since">{move || format!("From ({})", zone_now())}</label>
                <input
                    id="bulk-since"
                    type="datetime-local"
                    prop:value=move || since.get().map(to_input).unwrap_or_default()
                    on:input=move |ev| since.set(from_input(&event_target_value(&ev)))
                />
                <label for="bulk-until">{move || format!("To ({})", zone_now())}</label>
                <input
                    id="bulk-until"
                    type="datetime-local"
                    prop:value=move || until.get().map(to_input).unwrap_or_default()
                    on:input=move |ev| until.set(from_input(&event_target_value(&ev)))
                />
                <label for="bulk-status">"Resend"</label>
                <select
                    id="bulk-status"
                    on:change=move |ev| {
                        status
                            .set(
                                if event_target_value(&ev) == "pending" {
                                    DeliveryStatus::Pending
                                } else {
                                    DeliveryStatus::Failed
                                },
                            )
                    }
                >
                    <option value="failed">"Failed deliveries"</option>
                    <option value="pending">"Deliveries waiting for a retry"</option>
                </select>
                <label for="bulk-type">"Of event type"</label>
                <select id="bulk-type" on:change=move |ev| event_type.set(event_target_value(&ev).parse().ok())>
                    <option value="">"All"</option>
                    {EventType::ALL
                        .into_iter()
                        .map(|t| view! { <option value=t.as_str()>{t.as_str()}</option> })
                        .collect_view()}
                </select>
                <button class="button" type="button" on:click=ask>
                    {move || format!("Count {}…", what())}
                </button>
            </div>
            {move || {
                error
                    .get()
                    .map(|e| {
                        view! { <ErrorNotice message=e /> }
                    })
            }}
            {move || match (count.value().get(), job.get()) {
                (_, Some(j)) => view! { <JobProgress j /> }.into_any(),
                (Some(Ok(0)), None) => {
                    view! {
                        <p class="muted" role="status">
                            {format!("No {} in that range.", what())}
                        </p>
                    }
                        .into_any()
                }
                (Some(Ok(n)), None) => {
                    view! {
                        <div class="confirm" role="alertdialog" aria-label="Confirm bulk retry">
                            <p>{format!("Resend {n} of the {} from this range now?", what())}</p>
                            <button
                                class="button danger"
                                type="button"
                                disabled=move || start.pending().get()
                                on:click=move |_| {
                                    if let Ok(r) = range() {
                                        start.dispatch(r);
                                    }
                                }
                            >
                                {format!("Resend {n}")}
                            </button>
                        </div>
                    }
                        .into_any()
                }
                (Some(Err(e)), None) => view! { <ErrorNotice message=e.to_string() /> }.into_any(),
                (None, None) => ().into_any(),
            }}
        </div>
    }
}

/// Follows a bulk retry's or a recovery's progress once a second until it finishes.
pub(super) fn follow(job: RwSignal<Option<BulkRetry>>) {
    let progress = LocalResource::new(move || {
        let id = job.get().filter(|j| j.state == BulkRetryState::Running).map(|j| j.id);
        async move {
            let id = id?;
            #[cfg(feature = "hydrate")]
            gloo_sleep(1000).await;
            bulk_retry_status(id).await.ok()
        }
    });
    Effect::new(move |_| {
        if let Some(Some(update)) = progress.get() {
            job.set(Some(update));
        }
    });
}

#[component]
pub(super) fn JobProgress(j: BulkRetry) -> impl IntoView {
    let percent = if j.total == 0 { 100 } else { (j.done * 100 / j.total.max(1)).min(100) };
    let label = match (j.kind, j.state == BulkRetryState::Finished) {
        (BulkRetryKind::Recover, true) => {
            format!("Recovery finished: {} of {} missed events queued for delivery.", j.done, j.total)
        }
        (BulkRetryKind::Recover, false) => format!("Recovery running: {} of {} missed events queued…", j.done, j.total),
        (_, true) => format!("Bulk retry finished: {} of {} deliveries queued for a new attempt.", j.done, j.total),
        (_, false) => format!("Bulk retry running: {} of {} queued…", j.done, j.total),
    };
    view! {
        <div class="bulk-progress" role="status" data-testid="bulk-progress">
            <progress max="100" value=percent></progress>
            <span>{label}</span>
        </div>
    }
}

#[cfg(feature = "hydrate")]
async fn gloo_sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
