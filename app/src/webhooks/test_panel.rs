use entity::{api::TestOutcome, EventType};
use leptos::prelude::*;

use super::send_test_event;
use crate::components::notice::ErrorNotice;

/// Sends a signed sample event of a chosen type and shows what the receiver answered.
#[component]
pub fn TestPanel(id: String) -> impl IntoView {
    let event_type = RwSignal::new(EventType::TaskCompleted);
    let id = StoredValue::new(id);
    let test_send = Action::new(move |t: &EventType| send_test_event(id.get_value(), *t));
    let pending = test_send.pending();
    let select_id = format!("test-type-{}", id.get_value());
    view! {
        <div class="test-panel">
            <label for=select_id.clone()>"Sample event"</label>
            <select
                id=select_id
                on:change=move |ev| {
                    if let Ok(t) = event_target_value(&ev).parse() {
                        event_type.set(t)
                    }
                }
            >
                {EventType::ALL
                    .into_iter()
                    .map(|t| {
                        view! {
                            <option value=t.as_str() selected=t == EventType::TaskCompleted>
                                {t.as_str()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <button
                class="button primary"
                type="button"
                disabled=move || pending.get()
                on:click=move |_| {
                    test_send.dispatch(event_type.get_untracked());
                }
            >
                {move || if pending.get() { "Sending…" } else { "Send test event" }}
            </button>
            <div class="test-result" aria-live="polite">
                {move || {
                    test_send
                        .value()
                        .get()
                        .map(|result| match result {
                            Ok(outcome) => view! { <Outcome outcome /> }.into_any(),
                            Err(err) => view! { <ErrorNotice message=err.to_string() /> }.into_any(),
                        })
                }}
            </div>
        </div>
    }
}

#[component]
fn Outcome(outcome: TestOutcome) -> impl IntoView {
    let (class, label) = if outcome.success { ("badge healthy", "Delivered") } else { ("badge failing", "Failed") };
    let summary = match (outcome.status_code, &outcome.error) {
        (Some(code), _) => format!("HTTP {code} · {} ms", outcome.response_time_ms),
        (None, Some(err)) => format!("{err} ({} ms)", outcome.response_time_ms),
        (None, None) => format!("No response · {} ms", outcome.response_time_ms),
    };
    view! {
        <div class="outcome" data-testid="test-outcome">
            <span class=class>{label}</span>
            <span class="summary">{summary}</span>
            {(!outcome.body_excerpt.is_empty())
                .then(|| view! { <pre class="excerpt">{outcome.body_excerpt.clone()}</pre> })}
            <p class="muted">
                "Logged in the delivery log as a test of event " <code>{outcome.event_id.clone()}</code> "."
            </p>
        </div>
    }
}
