//! "Recover since T" (SPEC §8): deliveries for the events the endpoint subscribes to and
//! never got, for instance while it was disabled, created by a background job.

use chrono::{DateTime, Duration, Utc};
use entity::api::BulkRetry;
use leptos::prelude::*;

use super::{
    bulk_retry::{follow, JobProgress},
    recover_start,
};
use crate::components::notice::ErrorNotice;
use crate::time::{from_input, show, to_input, zone_now};

/// With `offer` (just re-enabled after being disabled automatically): one button that
/// recovers from that moment. Without it: a start time to pick, a day back by default.
#[component]
pub fn RecoverPanel(endpoint_id: String, #[prop(optional)] offer: Option<DateTime<Utc>>) -> impl IntoView {
    let endpoint_id = StoredValue::new(endpoint_id);
    let since = RwSignal::new(Some(offer.unwrap_or_else(|| Utc::now() - Duration::days(1))));
    let error = RwSignal::new(None::<String>);
    let job = RwSignal::new(None::<BulkRetry>);
    let start = Action::new(move |since: &DateTime<Utc>| recover_start(endpoint_id.get_value(), *since));
    Effect::new(move |_| match start.value().get() {
        Some(Ok(started)) => job.set(Some(started)),
        Some(Err(e)) => error.set(Some(e.to_string())),
        None => {}
    });
    follow(job);
    let go = move |_| {
        error.set(None);
        match since.get_untracked() {
            Some(t) => {
                start.dispatch(t);
            }
            None => error.set(Some("Enter the date and time to recover from.".into())),
        }
    };
    let button = move || {
        view! {
            <button class="button" type="button" disabled=move || start.pending().get() on:click=go>
                {move || if start.pending().get() { "Starting…" } else { "Recover missed events" }}
            </button>
        }
    };
    let body = match offer {
        Some(t) => view! {
            <p>
                {move || {
                    format!(
                        "Events published while the endpoint was disabled (since {}) were not sent to it. Send them now, oldest first?",
                        show(t, "%Y-%m-%d %H:%M"),
                    )
                }}
            </p>
            {button()}
        }
        .into_any(),
        None => view! {
            <h3>"Recover missed events"</h3>
            <p class="muted">
                "Sends the events since the time below that this endpoint subscribes to and never received, for instance while it was disabled. Events it already has are not sent again."
            </p>
            <div class="bulk-fields">
                <label for="recover-since">{move || format!("Since ({})", zone_now())}</label>
                <input
                    id="recover-since"
                    type="datetime-local"
                    prop:value=move || since.get().map(to_input).unwrap_or_default()
                    on:input=move |ev| since.set(from_input(&event_target_value(&ev)))
                />
                {button()}
            </div>
        }
        .into_any(),
    };
    let class = if offer.is_some() { "notice info recover" } else { "bulk-retry recover" };
    view! {
        <div class=class data-testid="recover">
            {body}
            {move || {
                error
                    .get()
                    .map(|e| {
                        view! { <ErrorNotice message=e /> }
                    })
            }}
            {move || job.get().map(|j| view! { <JobProgress j /> })}
        </div>
    }
}
