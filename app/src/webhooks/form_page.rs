use chrono::{DateTime, Utc};
use entity::{api::Endpoint, endpoint_input::EndpointInput, paths};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{
    chart::HealthChart, delivery_log::DeliveryLog, endpoint_form::EndpointForm, get_endpoint,
    health_notice::HealthNotice, recover::RecoverPanel, secret_panel::SecretPanel,
};
use crate::components::notice::{ErrorNotice, Loading};
use crate::{auth::whoami, AppError};

#[component]
pub fn NewWebhookPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <Title text="Add webhook · Settings" />
        <section class="page">
            <a class="back" href=paths::webhooks()>
                "← All webhooks"
            </a>
            <header class="page-header">
                <div>
                    <h1>"Add webhook"</h1>
                    <p class="lead">"We check that the URL answers before saving it."</p>
                </div>
            </header>
            <Suspense fallback=|| {
                view! { <Loading what="Loading…" /> }
            }>
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
            <a class="back" href=paths::webhooks()>
                "← All webhooks"
            </a>
            <Suspense fallback=|| {
                view! { <Loading what="Loading webhook…" /> }
            }>
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
                                    <a class="button" href=paths::webhooks()>
                                        "Back to webhooks"
                                    </a>
                                </div>
                            }
                                .into_any()
                        }
                        Err(err) => view! { <ErrorNotice message=err.to_string() /> }.into_any(),
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
        {created
            .then(|| {
                view! {
                    <p class="notice success" role="status">
                        "Webhook created. Its signing secret is shown below: copy it now to verify deliveries."
                    </p>
                }
            })}
        <HealthNotice ep=ep.clone() can_write on_change=reload recover_from />
        {move || {
            recover_from
                .get()
                .filter(|_| can_write)
                .map(|t| view! { <RecoverPanel endpoint_id=id_for_offer.clone() offer=t /> })
        }}
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
