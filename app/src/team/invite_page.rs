//! `/invite/:token`: the public page an invitation email links to. The form is a plain POST
//! to `/invitations/accept` (`server/src/http/invitations.rs`), so the session cookie is set
//! by that response and accepting works before hydration; a refusal comes back as `?error=`.

use entity::team::{InvitationLookup, MIN_PASSWORD_CHARS};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{invitation, role_label};
use crate::components::notice::{ErrorNotice, Loading};

/// The sentence for the `?error=` code the accept route redirected with.
fn error_text(code: &str) -> String {
    match code {
        "password" => format!("Choose a password of at least {MIN_PASSWORD_CHARS} characters."),
        "taken" => "This email already belongs to a user. Log in with it instead.".to_owned(),
        _ => "Accepting the invitation failed. Please try again.".to_owned(),
    }
}

#[component]
pub fn InvitePage() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let found = Resource::new(token, invitation);
    view! {
        <Title text="Invitation · Webhooks" />
        <main class="centered">
            <Suspense fallback=|| {
                view! { <Loading what="Loading…" /> }
            }>
                {move || Suspend::new(async move {
                    match found.await {
                        Ok(InvitationLookup::Open { account_name, email, role }) => {
                            view! { <AcceptForm token=token() account_name email role=role_label(role) /> }.into_any()
                        }
                        Ok(dead) => {
                            view! {
                                <div class="card narrow invite">
                                    <h1>"Invitation"</h1>
                                    <p class="notice error" role="alert">
                                        {dead.refusal().unwrap_or_default()}
                                    </p>
                                    <a class="button" href="/login">
                                        "Go to the login page"
                                    </a>
                                </div>
                            }
                                .into_any()
                        }
                        Err(err) => view! { <ErrorNotice message=err.to_string() /> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn AcceptForm(token: String, account_name: String, email: String, role: &'static str) -> impl IntoView {
    let query = use_query_map();
    let error = move || query.read().get("error").map(|code| error_text(&code));
    view! {
        <form class="card narrow invite" method="post" action="/invitations/accept">
            <h1>{format!("Join {account_name}")}</h1>
            <p>
                "You are invited to the Webhooks account " <strong>{account_name.clone()}</strong> " as "
                <strong class="invite-role">{role}</strong> "."
            </p>
            <label for="email">"Email"</label>
            <input id="email" type="email" autocomplete="username" readonly value=email />
            <label for="password">"Choose a password"</label>
            <input
                id="password"
                name="password"
                type="password"
                autocomplete="new-password"
                minlength=MIN_PASSWORD_CHARS.to_string()
                required
                autofocus
                aria-describedby="password-hint password-error"
                aria-invalid=move || error().is_some().to_string()
            />
            <p class="muted" id="password-hint">
                {format!("At least {MIN_PASSWORD_CHARS} characters.")}
            </p>
            {move || {
                error()
                    .map(|m| {
                        view! {
                            <p class="field-error" id="password-error" role="alert">
                                {m}
                            </p>
                        }
                    })
            }}
            <input type="hidden" name="token" value=token />
            <button class="button primary" type="submit">
                "Accept invitation"
            </button>
        </form>
    }
}
