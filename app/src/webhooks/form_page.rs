use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use entity::{
    api::Endpoint,
    endpoint_input::{EndpointInput, FieldError},
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use super::{
    chart::HealthChart, create_endpoint, delivery_log::DeliveryLog, event_picker::EventPicker, get_endpoint,
    health_notice::HealthNotice, recover::RecoverPanel, secret_panel::SecretPanel, update_endpoint,
};
use crate::{auth::whoami, AppError};

#[component]
pub fn NewWebhookPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <Title text="Add webhook · Settings" />
        <section class="page">
            <a class="back" href="/settings/webhooks">"← All webhooks"</a>
            <header class="page-header">
                <div>
                    <h1>"Add webhook"</h1>
                    <p class="lead">"We check that the URL answers before saving it."</p>
                </div>
            </header>
            <Suspense fallback=|| view! { <p class="loading" role="status">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let can_write = me.await.map(|u| u.role.can_write()).unwrap_or(false);
                    view! { <EndpointForm initial=EndpointInput::default() id=None can_write /> }
                })}
            </Suspense>
        </section>
    }
}

#[component]
pub fn EditWebhookPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let endpoint = Resource::new(id, get_endpoint);
    let me = Resource::new(|| (), |_| whoami());
    let created = move || query.read().get("created").is_some();
    // Outlives the reload after a re-enable, which renders a new EditView.
    let recover_from = RwSignal::new(None::<DateTime<Utc>>);
    view! {
        <Title text="Edit webhook · Settings" />
        <section class="page">
            <a class="back" href="/settings/webhooks">"← All webhooks"</a>
            <Suspense fallback=|| view! { <p class="loading" role="status">"Loading webhook…"</p> }>
                {move || Suspend::new(async move {
                    let can_write = me.await.map(|u| u.role.can_write()).unwrap_or(false);
                    match endpoint.await {
                        Ok(ep) => {
                            let reload = Callback::new(move |_| endpoint.refetch());
                            view! { <EditView ep can_write created=created() reload recover_from /> }.into_any()
                        }
                        Err(AppError::NotFound) => {
                            view! {
                                <div class="empty-state">
                                    <h2>"Webhook not found"</h2>
                                    <p>"It may have been deleted."</p>
                                    <a class="button" href="/settings/webhooks">"Back to webhooks"</a>
                                </div>
                            }
                                .into_any()
                        }
                        Err(err) => view! { <p class="notice error" role="alert">{err.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn EditView(
    ep: Endpoint,
    can_write: bool,
    created: bool,
    reload: Callback<()>,
    recover_from: RwSignal<Option<DateTime<Utc>>>,
) -> impl IntoView {
    let id = ep.id.to_string();
    let initial = EndpointInput {
        url: ep.url.clone(),
        description: ep.description.clone(),
        event_types: ep.event_types.clone(),
        enabled: ep.enabled,
        rate_limit: ep.rate_limit,
    };
    let status = ep.status.as_str();
    let id_for_offer = id.clone();
    view! {
        <header class="page-header">
            <div>
                <h1>"Edit webhook"</h1>
                <p class="lead url">{ep.url.clone()}</p>
            </div>
            <span class=format!("badge {status}")>{status}</span>
        </header>
        {created.then(|| view! {
            <p class="notice success" role="status">
                "Webhook created. Its signing secret is shown below: copy it now to verify deliveries."
            </p>
        })}
        <HealthNotice ep=ep.clone() can_write on_change=reload recover_from />
        {move || recover_from.get().filter(|_| can_write).map(|t| view! { <RecoverPanel endpoint_id=id_for_offer.clone() offer=t /> })}
        <EndpointForm initial id=Some(id.clone()) can_write />
        <SecretPanel id=id.clone() can_write fresh=created />
        <HealthChart endpoint_id=id.clone() />
        <DeliveryLog
            endpoint_id=id
            can_write
            disabled=!ep.enabled
            held=Signal::derive(move || ep.hold_reason_in(&crate::time::show))
        />
    }
}

#[derive(Clone)]
enum Saved {
    Created(String),
    Updated,
}

/// The add/edit form. The browser checks the same rules as the server first
/// (`EndpointInput::errors`); the server's answer is the authority, and a failed save keeps
/// everything the user typed.
#[component]
fn EndpointForm(initial: EndpointInput, id: Option<String>, can_write: bool) -> impl IntoView {
    let url = RwSignal::new(initial.url.clone());
    let description = RwSignal::new(initial.description.clone());
    let selected = RwSignal::new(initial.event_types.iter().copied().collect::<BTreeSet<_>>());
    let enabled = RwSignal::new(initial.enabled);
    let rate_limit = RwSignal::new(initial.rate_limit.to_string());
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let form_error = RwSignal::new(None::<String>);
    let saved = RwSignal::new(false);
    let is_new = id.is_none();
    let read_only = Signal::derive(move || !can_write);

    let save = Action::new(move |input: &EndpointInput| {
        let (input, id) = (input.clone(), id.clone());
        async move {
            match id {
                None => create_endpoint(input).await.map(|c| Saved::Created(c.endpoint.id.to_string())),
                Some(id) => update_endpoint(id, input).await.map(|_| Saved::Updated),
            }
        }
    });
    let navigate = use_navigate();
    Effect::new(move |_| match save.value().get() {
        Some(Ok(Saved::Created(new_id))) => {
            navigate(&format!("/settings/webhooks/{new_id}?created=1"), Default::default())
        }
        Some(Ok(Saved::Updated)) => saved.set(true),
        Some(Err(err)) => match err {
            AppError::Validation(list) => errors.set(list),
            AppError::Invalid { field, message } => errors.set(vec![FieldError { field, message }]),
            other => form_error.set(Some(other.to_string())),
        },
        None => {}
    });

    let current = move || EndpointInput {
        url: url.get(),
        description: description.get(),
        event_types: selected.get().into_iter().collect(),
        enabled: enabled.get(),
        rate_limit: rate_limit.get().trim().parse().unwrap_or(0),
    };
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        saved.set(false);
        form_error.set(None);
        let input = current();
        let problems = input.errors();
        errors.set(problems.clone());
        if problems.is_empty() {
            save.dispatch(input);
        }
    };
    let error_for = move |field: &'static str| {
        move || errors.with(|e| e.iter().find(|x| x.field == field).map(|x| x.message.clone()))
    };
    let field_error = move |field: &'static str| {
        let message = error_for(field);
        view! {
            <Show when=move || message().is_some()>
                <p class="field-error" id=format!("{field}-error") role="alert">{message}</p>
            </Show>
        }
    };
    let pending = save.pending();

    view! {
        <form class="card endpoint-form" on:submit=on_submit novalidate>
            {(!can_write).then(|| view! {
                <p class="notice info" role="status">"You have read-only access. Ask an owner or admin to change webhooks."</p>
            })}
            <label for="url">"Endpoint URL"</label>
            <input
                id="url"
                name="url"
                type="url"
                placeholder="https://example.com/webhooks"
                autocomplete="off"
                required
                prop:value=move || url.get()
                on:input=move |ev| url.set(event_target_value(&ev))
                aria-invalid=move || error_for("url")().is_some().to_string()
                aria-describedby="url-error"
                disabled=read_only
            />
            {field_error("url")}

            <label for="description">"Description " <span class="muted">"(optional)"</span></label>
            <input
                id="description"
                name="description"
                type="text"
                placeholder="What receives these events"
                prop:value=move || description.get()
                on:input=move |ev| description.set(event_target_value(&ev))
                aria-describedby="description-error"
                disabled=read_only
            />
            {field_error("description")}

            <fieldset class="events">
                <legend>"Events to send"</legend>
                <EventPicker selected disabled=read_only />
                {field_error("event_types")}
            </fieldset>

            <div class="row">
                <div>
                    <label for="rate_limit">"Rate limit " <span class="muted">"(events per second, 1–100)"</span></label>
                    <input
                        id="rate_limit"
                        name="rate_limit"
                        type="number"
                        min="1"
                        max="100"
                        prop:value=move || rate_limit.get()
                        on:input=move |ev| rate_limit.set(event_target_value(&ev))
                        aria-describedby="rate_limit-error"
                        disabled=read_only
                    />
                    {field_error("rate_limit")}
                </div>
                <label class="check switch-label">
                    <input
                        type="checkbox"
                        role="switch"
                        name="enabled"
                        prop:checked=move || enabled.get()
                        on:change=move |ev| enabled.set(event_target_checked(&ev))
                        disabled=read_only
                    />
                    <span>"Active"</span>
                </label>
            </div>

            <Show when=move || form_error.get().is_some()>
                <p class="notice error" role="alert">{move || form_error.get()}</p>
            </Show>
            <Show when=move || saved.get()>
                <p class="notice success" role="status">"Changes saved."</p>
            </Show>
            {can_write.then(|| view! {
                <div class="actions">
                    <button class="button primary" type="submit" disabled=move || pending.get()>
                        {move || match (pending.get(), is_new) {
                            (true, _) => "Checking URL and saving…",
                            (false, true) => "Create webhook",
                            (false, false) => "Save changes",
                        }}
                    </button>
                    <a class="button subtle" href="/settings/webhooks">"Cancel"</a>
                </div>
            })}
        </form>
    }
}
