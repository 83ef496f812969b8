//! The add/edit form of an endpoint, one component per field.
use std::collections::BTreeSet;

use entity::{
    endpoint_input::{EndpointInput, FieldError},
    paths, EventType,
};
use leptos::{ev::SubmitEvent, prelude::*};
use leptos_router::hooks::use_navigate;

use super::{create_endpoint, event_picker::EventPicker, update_endpoint};
use crate::AppError;

#[derive(Clone)]
enum Saved {
    Created(String),
    Updated,
}

/// What the last save said: messages beside fields, one for the whole form, or success.
#[derive(Clone, Copy)]
struct Feedback {
    errors: RwSignal<Vec<FieldError>>,
    form_error: RwSignal<Option<String>>,
    saved: RwSignal<bool>,
}

impl Feedback {
    fn new() -> Self {
        Self { errors: RwSignal::new(Vec::new()), form_error: RwSignal::new(None), saved: RwSignal::new(false) }
    }

    fn clear(self) {
        self.saved.set(false);
        self.form_error.set(None);
    }

    fn error_for(self, field: &'static str) -> impl Fn() -> Option<String> + Copy {
        move || self.errors.with(|e| e.iter().find(|x| x.field == field).map(|x| x.message.clone()))
    }
}

/// The add/edit form. The browser checks the same rules as the server first
/// (`EndpointInput::errors`); the server's answer is the authority, and a failed save keeps
/// everything the user typed.
#[component]
pub fn EndpointForm(initial: EndpointInput, id: Option<String>, can_write: bool) -> impl IntoView {
    let url = RwSignal::new(initial.url.clone());
    let description = RwSignal::new(initial.description.clone());
    let selected = RwSignal::new(initial.event_types.iter().copied().collect::<BTreeSet<_>>());
    let enabled = RwSignal::new(initial.enabled);
    let rate_limit = RwSignal::new(initial.rate_limit.to_string());
    let feedback = Feedback::new();
    let is_new = id.is_none();
    let read_only = Signal::derive(move || !can_write);
    let save = save_action(id, feedback);

    let current = move || EndpointInput {
        url: url.get(),
        description: description.get(),
        event_types: selected.get().into_iter().collect(),
        enabled: enabled.get(),
        rate_limit: rate_limit.get().trim().parse().unwrap_or(0),
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        feedback.clear();
        let input = current();
        let problems = input.errors();
        feedback.errors.set(problems.clone());
        if problems.is_empty() {
            save.dispatch(input);
        }
    };

    view! {
        <form class="card endpoint-form" on:submit=on_submit novalidate>
            {(!can_write).then(|| view! { <ReadOnlyNotice /> })}
            <UrlField url feedback read_only />
            <DescriptionField description feedback read_only />
            <EventTypesField selected feedback read_only />
            <div class="row">
                <RateLimitField rate_limit feedback read_only />
                <ActiveSwitch enabled read_only />
            </div>
            <SaveOutcome feedback />
            {can_write.then(|| view! { <FormActions pending=save.pending() is_new /> })}
        </form>
    }
}

/// Creates or updates. A created endpoint opens its page (which shows the new secret once);
/// anything else is reported in the form.
fn save_action(id: Option<String>, feedback: Feedback) -> Action<EndpointInput, Result<Saved, AppError>> {
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
            navigate(&format!("{}?created=1", paths::endpoint(new_id)), Default::default())
        }
        Some(Ok(Saved::Updated)) => feedback.saved.set(true),
        Some(Err(err)) => match err {
            AppError::Validation(list) => feedback.errors.set(list),
            AppError::Invalid { field, message } => feedback.errors.set(vec![FieldError { field, message }]),
            other => feedback.form_error.set(Some(other.to_string())),
        },
        None => {}
    });
    save
}

#[component]
fn ReadOnlyNotice() -> impl IntoView {
    view! {
        <p class="notice info" role="status">
            "You have read-only access. Ask an owner or admin to change webhooks."
        </p>
    }
}

/// The message beside one field, from the browser's check or the server's answer.
#[component]
fn FieldErrorMessage(field: &'static str, feedback: Feedback) -> impl IntoView {
    let message = feedback.error_for(field);
    view! {
        <Show when=move || message().is_some()>
            <p class="field-error" id=format!("{field}-error") role="alert">
                {message}
            </p>
        </Show>
    }
}

#[component]
fn UrlField(url: RwSignal<String>, feedback: Feedback, read_only: Signal<bool>) -> impl IntoView {
    let error = feedback.error_for("url");
    view! {
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
            aria-invalid=move || error().is_some().to_string()
            aria-describedby="url-error"
            disabled=read_only
        />
        <FieldErrorMessage field="url" feedback />
    }
}

#[component]
fn DescriptionField(description: RwSignal<String>, feedback: Feedback, read_only: Signal<bool>) -> impl IntoView {
    view! {
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
        <FieldErrorMessage field="description" feedback />
    }
}

#[component]
fn EventTypesField(
    selected: RwSignal<BTreeSet<EventType>>,
    feedback: Feedback,
    read_only: Signal<bool>,
) -> impl IntoView {
    view! {
        <fieldset class="events">
            <legend>"Events to send"</legend>
            <EventPicker selected disabled=read_only />
            <FieldErrorMessage field="event_types" feedback />
        </fieldset>
    }
}

#[component]
fn RateLimitField(rate_limit: RwSignal<String>, feedback: Feedback, read_only: Signal<bool>) -> impl IntoView {
    view! {
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
            <FieldErrorMessage field="rate_limit" feedback />
        </div>
    }
}

/// Whether the endpoint is sent deliveries.
#[component]
fn ActiveSwitch(enabled: RwSignal<bool>, read_only: Signal<bool>) -> impl IntoView {
    view! {
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
    }
}

/// The save's outcome for the form as a whole: a refusal not tied to a field, or success.
#[component]
fn SaveOutcome(feedback: Feedback) -> impl IntoView {
    let Feedback { form_error, saved, .. } = feedback;
    view! {
        <Show when=move || form_error.get().is_some()>
            <p class="notice error" role="alert">
                {move || form_error.get()}
            </p>
        </Show>
        <Show when=move || saved.get()>
            <p class="notice success" role="status">
                "Changes saved."
            </p>
        </Show>
    }
}

#[component]
fn FormActions(#[prop(into)] pending: Signal<bool>, is_new: bool) -> impl IntoView {
    view! {
        <div class="actions">
            <button class="button primary" type="submit" disabled=move || pending.get()>
                {move || match (pending.get(), is_new) {
                    (true, _) => "Checking URL and saving…",
                    (false, true) => "Create webhook",
                    (false, false) => "Save changes",
                }}
            </button>
            <a class="button subtle" href=paths::webhooks()>
                "Cancel"
            </a>
        </div>
    }
}
