use entity::{api::Endpoint, event_type::summarize, paths};
use leptos::prelude::*;
use leptos_meta::Title;

use super::{delete_endpoint, list_endpoints, set_endpoint_enabled, test_panel::TestPanel};
use crate::{
    auth::whoami,
    components::notice::{ErrorNotice, Loading},
};

#[component]
pub fn WebhooksPage() -> impl IntoView {
    let toggle = Action::new(|(id, on): &(String, bool)| set_endpoint_enabled(id.clone(), *on));
    let delete = Action::new(|id: &String| delete_endpoint(id.clone()));
    let endpoints = Resource::new(move || (toggle.version().get(), delete.version().get()), |_| list_endpoints());
    let me = Resource::new(|| (), |_| whoami());
    let action_error = move || {
        let failed = |r: Option<Result<_, crate::AppError>>| r.and_then(|r| r.err()).map(|e| e.to_string());
        failed(toggle.value().get().map(|r| r.map(|_| ()))).or_else(|| failed(delete.value().get()))
    };
    view! {
        <Title text="Webhooks · Settings" />
        <section class="page">
            <header class="page-header">
                <div>
                    <h1>"Webhooks"</h1>
                    <p class="lead">"Endpoints receive a signed HTTP POST when events happen in your account."</p>
                </div>
                <a class="button primary" href=paths::new_endpoint()>
                    "Add webhook"
                </a>
            </header>
            <Show when=move || action_error().is_some()>
                <p class="notice error" role="alert">
                    {action_error}
                </p>
            </Show>
            <Transition fallback=|| {
                view! { <Loading what="Loading webhooks…" /> }
            }>
                {move || Suspend::new(async move {
                    let can_write = me.await.map(|u| u.role.can_write()).unwrap_or(false);
                    match endpoints.await {
                        Ok(list) if list.is_empty() => view! { <EmptyState /> }.into_any(),
                        Ok(list) => view! { <EndpointTable list can_write toggle delete /> }.into_any(),
                        Err(err) => view! { <ErrorNotice message=err.to_string() /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn EmptyState() -> impl IntoView {
    view! {
        <div class="empty-state">
            <h2>"No webhooks yet"</h2>
            <p>"Add an endpoint to start receiving events such as task.completed or payment.failed."</p>
            <a class="button primary" href=paths::new_endpoint()>
                "Add webhook"
            </a>
        </div>
    }
}

type ToggleAction = Action<(String, bool), Result<Endpoint, crate::AppError>>;
type DeleteAction = Action<String, Result<(), crate::AppError>>;

#[component]
fn EndpointTable(list: Vec<Endpoint>, can_write: bool, toggle: ToggleAction, delete: DeleteAction) -> impl IntoView {
    view! {
        <table class="endpoints">
            <thead>
                <tr>
                    <th scope="col">"Endpoint"</th>
                    <th scope="col">"Events"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Enabled"</th>
                    <th scope="col">
                        <span class="visually-hidden">"Actions"</span>
                    </th>
                </tr>
            </thead>
            <tbody>
                {list.into_iter().map(|ep| view! { <EndpointRow ep can_write toggle delete /> }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn EndpointRow(ep: Endpoint, can_write: bool, toggle: ToggleAction, delete: DeleteAction) -> impl IntoView {
    let id = ep.id.to_string();
    let status = ep.status.as_str();
    let confirming = RwSignal::new(false);
    let testing = RwSignal::new(false);
    let url = ep.url.clone();
    let edit_href = paths::endpoint(&id);
    let (toggle_id, delete_id) = (id.clone(), id.clone());
    let test_id = StoredValue::new(id.clone());
    let enabled = ep.enabled;
    view! {
        <tr data-endpoint=id.clone()>
            <td>
                <a class="url" href=edit_href.clone()>
                    {ep.url.clone()}
                </a>
                <div class="description">{ep.description.clone()}</div>
            </td>
            <td>{summarize(&ep.event_types)}</td>
            <td>
                <span class=format!("badge {status}")>{status}</span>
                {ep
                    .health_note()
                    .is_some()
                    .then(|| {
                        let ep = ep.clone();
                        view! { <div class="health-note">{move || ep.health_note_in(&crate::time::show)}</div> }
                    })}
            </td>
            <td data-label="Enabled">
                <input
                    type="checkbox"
                    role="switch"
                    aria-label=format!("Enabled: {}", ep.url)
                    prop:checked=enabled
                    disabled=!can_write
                    on:change=move |ev| {
                        toggle.dispatch((toggle_id.clone(), event_target_checked(&ev)));
                    }
                />
            </td>
            <td class="row-actions">
                <a class="button" href=edit_href>
                    {if can_write { "Edit" } else { "View" }}
                </a>
                {can_write
                    .then(|| {
                        view! {
                            <button
                                class="button"
                                type="button"
                                aria-expanded=move || testing.get().to_string()
                                on:click=move |_| testing.update(|t| *t = !*t)
                            >
                                "Test"
                            </button>
                            <button class="button danger-outline" type="button" on:click=move |_| confirming.set(true)>
                                "Delete"
                            </button>
                        }
                    })}
            </td>
        </tr>
        <Show when=move || confirming.get()>
            <tr class="confirm-row">
                <td colspan="5">
                    <div class="confirm" role="alertdialog" aria-label="Confirm deletion">
                        <p>
                            "Delete the webhook " <strong>{url.clone()}</strong>
                            "? Deliveries to it stop and its logs are removed."
                        </p>
                        <button
                            class="button danger"
                            type="button"
                            on:click={
                                let delete_id = delete_id.clone();
                                move |_| {
                                    delete.dispatch(delete_id.clone());
                                }
                            }
                        >
                            "Delete webhook"
                        </button>
                        <button class="button subtle" type="button" on:click=move |_| confirming.set(false)>
                            "Cancel"
                        </button>
                    </div>
                </td>
            </tr>
        </Show>
        <Show when=move || testing.get()>
            <tr class="test-row">
                <td colspan="5">
                    <TestPanel id=test_id.get_value() />
                </td>
            </tr>
        </Show>
    }
}
