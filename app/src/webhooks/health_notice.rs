use chrono::{DateTime, Utc};
use entity::{api::Endpoint, EndpointStatus};
use leptos::prelude::*;

use super::set_endpoint_enabled;

/// Why the endpoint is failing or disabled, since when and what happens next; on a disabled
/// endpoint a one-click Re-enable (the button the owners' emails point to). Nothing while
/// the endpoint is healthy. Re-enabling one that was disabled automatically sets
/// `recover_from` to the moment it was disabled: the events since were not sent to it.
#[component]
pub fn HealthNotice(
    ep: Endpoint,
    can_write: bool,
    #[prop(into)] on_change: Callback<()>,
    recover_from: RwSignal<Option<DateTime<Utc>>>,
) -> impl IntoView {
    let note = ep.health_note().map(|_| {
        let ep = ep.clone();
        move || ep.health_note_in(&crate::time::show)
    });
    let disabled = ep.status == EndpointStatus::Disabled;
    let disabled_at = (disabled && ep.health.disabled_reason.is_some()).then_some(ep.health.status_since);
    let id = ep.id.to_string();
    let enable = Action::new(move |_: &()| set_endpoint_enabled(id.clone(), true));
    Effect::new(move |_| {
        if let Some(Ok(_)) = enable.value().get() {
            recover_from.set(disabled_at);
            on_change.run(());
        }
    });
    let error = move || enable.value().get().and_then(|r| r.err()).map(|e| e.to_string());
    let class = if disabled { "notice error health-notice" } else { "notice warning health-notice" };
    note.map(|note| {
        view! {
            <div class=class role="status" data-testid="health-notice">
                <p>{note}</p>
                {(disabled && can_write)
                    .then(|| {
                        view! {
                            <button
                                class="button primary"
                                type="button"
                                disabled=move || enable.pending().get()
                                on:click=move |_| {
                                    enable.dispatch(());
                                }
                            >
                                {move || if enable.pending().get() { "Re-enabling…" } else { "Re-enable" }}
                            </button>
                        }
                    })}
                <Show when=move || error().is_some()>
                    <p class="field-error" role="alert">
                        {error}
                    </p>
                </Show>
            </div>
        }
    })
}
