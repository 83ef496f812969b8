//! `/settings/api-keys`: the account's API keys (SPEC §9). Owners and admins create a key
//! (shown once, in full), see when each was last used, and revoke it; members are told who
//! can. The server functions call `service::api_keys`.

use entity::api::{ApiKeyInfo, CreatedApiKey};
use leptos::{prelude::*, server_fn::codec::Json};
use leptos_meta::Title;

use crate::{
    auth::whoami,
    components::confirm::ConfirmInline,
    components::notice::{ErrorNotice, Loading},
    time::{show_bare, zone_now},
    AppError,
};

#[server(endpoint = "api-keys/list")]
pub async fn list_api_keys() -> Result<Vec<ApiKeyInfo>, AppError> {
    let (actor, ctx) = crate::server::actor_and_context().await?;
    Ok(service::api_keys::list(&ctx.db, &actor).await?)
}

#[server(endpoint = "api-keys/create")]
pub async fn create_api_key() -> Result<CreatedApiKey, AppError> {
    let (actor, ctx) = crate::server::actor_and_context().await?;
    Ok(service::api_keys::create(&ctx.db, &actor).await?)
}

#[server(endpoint = "api-keys/revoke", input = Json)]
pub async fn revoke_api_key(id: String) -> Result<ApiKeyInfo, AppError> {
    let (actor, ctx) = crate::server::actor_and_context().await?;
    Ok(service::api_keys::revoke(&ctx.db, &actor, &id).await?)
}

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <Title text="API keys · Settings" />
        <section class="page">
            <header class="page-header">
                <div>
                    <h1>"API keys"</h1>
                    <p class="lead">
                        "Your application publishes events with an API key: "
                        <code>"Authorization: Bearer whk_…"</code> ". A key acts for the whole account."
                    </p>
                </div>
            </header>
            <Suspense fallback=|| {
                view! { <Loading what="Loading…" /> }
            }>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(u) if u.role.can_write() => view! { <KeyManager /> }.into_any(),
                        Ok(_) => {
                            view! {
                                <p class="notice info" role="status">
                                    "Only owners and admins of the account can see and manage API keys."
                                </p>
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
fn KeyManager() -> impl IntoView {
    let keys = Resource::new(|| (), |_| list_api_keys());
    let create = Action::new(|_: &()| create_api_key());
    let revoke = Action::new(|id: &String| revoke_api_key(id.clone()));
    // Both read every time (no short circuit), so either action's next result refetches.
    Effect::new(move |_| {
        let created = create.value().with(|v| matches!(v, Some(Ok(_))));
        let revoked = revoke.value().with(|v| matches!(v, Some(Ok(_))));
        if created || revoked {
            keys.refetch();
        }
    });
    let created = move || create.value().get().and_then(Result::ok);
    let error = move || {
        let failed = |v: Option<Result<_, AppError>>| v.and_then(|r| r.err()).map(|e| e.to_string());
        failed(create.value().get().map(|r| r.map(|_| ())))
            .or_else(|| failed(revoke.value().get().map(|r| r.map(|_| ()))))
    };
    view! {
        <section class="card" aria-labelledby="keys-heading">
            <div class="card-header">
                <h2 id="keys-heading">"Keys"</h2>
                <button
                    class="button primary"
                    type="button"
                    disabled=move || create.pending().get()
                    on:click=move |_| {
                        create.dispatch(());
                    }
                >
                    {move || if create.pending().get() { "Creating…" } else { "Create API key" }}
                </button>
            </div>
            {move || {
                created()
                    .map(|c| {
                        view! {
                            <div class="notice success new-key" role="status" data-testid="new-key">
                                <p>"New key created. Copy it now: it is shown only this once."</p>
                                <code class="secret-value">{c.key}</code>
                            </div>
                        }
                    })
            }}
            {move || {
                error()
                    .map(|e| {
                        view! { <ErrorNotice message=e /> }
                    })
            }}
            <Transition fallback=|| {
                view! { <Loading what="Loading keys…" /> }
            }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(list) if list.is_empty() => {
                            view! { <p class="empty-log">"No API keys yet. Create one to publish events."</p> }
                                .into_any()
                        }
                        Ok(list) => {
                            view! {
                                <table class="api-keys">
                                    <thead>
                                        <tr>
                                            <th scope="col">"Key"</th>
                                            <th scope="col">{move || format!("Created ({})", zone_now())}</th>
                                            <th scope="col">{move || format!("Last used ({})", zone_now())}</th>
                                            <th scope="col">"Status"</th>
                                            <th scope="col">
                                                <span class="visually-hidden">"Actions"</span>
                                            </th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {list.into_iter().map(|k| view! { <KeyRow k revoke /> }).collect_view()}
                                    </tbody>
                                </table>
                            }
                                .into_any()
                        }
                        Err(err) => view! { <ErrorNotice message=err.to_string() /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn KeyRow(k: ApiKeyInfo, revoke: Action<String, Result<ApiKeyInfo, AppError>>) -> impl IntoView {
    let when = |t: chrono::DateTime<chrono::Utc>| show_bare(t, "%Y-%m-%d %H:%M");
    let id = StoredValue::new(k.id.clone());
    let status = match k.revoked_at {
        Some(t) => view! { <span class="badge disabled">{move || format!("Revoked {}", when(t))}</span> }.into_any(),
        None => view! { <span class="badge healthy">"Active"</span> }.into_any(),
    };
    let active = k.revoked_at.is_none();
    let (created, last_used) = (k.created_at, k.last_used_at);
    view! {
        <tr data-key=k.id.clone()>
            <td>
                <code>{format!("{}…", k.prefix)}</code>
            </td>
            <td data-label="Created">{move || when(created)}</td>
            <td data-label="Last used">{move || last_used.map(when).unwrap_or_else(|| "Never".to_owned())}</td>
            <td>{status}</td>
            <td class="row-actions">
                {active
                    .then(|| {
                        view! {
                            <ConfirmInline
                                label="Revoke"
                                warning="Requests with this key will be refused."
                                confirm="Revoke key"
                                on_confirm=move || {
                                    revoke.dispatch(id.get_value());
                                }
                            />
                        }
                    })}
            </td>
        </tr>
    }
}
