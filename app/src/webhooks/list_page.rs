use entity::{api::Endpoint, event_type::summarize};
use leptos::prelude::*;
use leptos_meta::Title;

use super::list_endpoints;

#[component]
pub fn WebhooksPage() -> impl IntoView {
    let endpoints = Resource::new(|| (), |_| list_endpoints());
    view! {
        <Title text="Webhooks · Settings" />
        <section class="page">
            <header class="page-header">
                <div>
                    <h1>"Webhooks"</h1>
                    <p class="lead">
                        "Endpoints receive a signed HTTP POST when events happen in your account."
                    </p>
                </div>
                <a class="button primary" href="/settings/webhooks/new">
                    "Add webhook"
                </a>
            </header>
            <Suspense fallback=|| {
                view! {
                    <p class="loading" role="status">
                        "Loading webhooks…"
                    </p>
                }
            }>
                {move || Suspend::new(async move {
                    match endpoints.await {
                        Ok(list) if list.is_empty() => view! { <EmptyState /> }.into_any(),
                        Ok(list) => view! { <EndpointTable list /> }.into_any(),
                        Err(err) => {
                            view! {
                                <p class="notice error" role="alert">
                                    {err.to_string()}
                                </p>
                            }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn EmptyState() -> impl IntoView {
    view! {
        <div class="empty-state">
            <h2>"No webhooks yet"</h2>
            <p>
                "Add an endpoint to start receiving events such as task.completed or payment.failed."
            </p>
            <a class="button primary" href="/settings/webhooks/new">
                "Add webhook"
            </a>
        </div>
    }
}

#[component]
fn EndpointTable(list: Vec<Endpoint>) -> impl IntoView {
    view! {
        <table class="endpoints">
            <thead>
                <tr>
                    <th scope="col">"Endpoint"</th>
                    <th scope="col">"Events"</th>
                    <th scope="col">"Status"</th>
                </tr>
            </thead>
            <tbody>
                {list
                    .into_iter()
                    .map(|ep| {
                        let status = ep.status.as_str();
                        view! {
                            <tr>
                                <td>
                                    <div class="url">{ep.url}</div>
                                    <div class="description">{ep.description}</div>
                                </td>
                                <td>{summarize(&ep.event_types)}</td>
                                <td>
                                    <span class=format!("badge {status}")>{status}</span>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}
