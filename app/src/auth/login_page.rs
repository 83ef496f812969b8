use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// Why the user is on the login page, from the `?error=` / `?reason=` the server set.
fn notice(error: Option<String>, reason: Option<String>) -> Option<(&'static str, &'static str)> {
    match (error.as_deref(), reason.as_deref()) {
        (Some("invalid"), _) => Some(("error", "Incorrect email or password.")),
        (Some("missing"), _) => Some(("error", "Enter your email and your password.")),
        (Some("throttled"), _) => {
            Some(("error", "Too many failed attempts. Wait a minute, then try again."))
        }
        (Some(_), _) => Some(("error", "Logging in failed. Please try again.")),
        (None, Some("expired")) => Some(("info", "Your session expired. Please log in again.")),
        (None, Some("logged_out")) => Some(("info", "You have been logged out.")),
        _ => None,
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let email = move || query.read().get("email").unwrap_or_default();
    let next = move || query.read().get("next").unwrap_or_default();
    let message = move || {
        let q = query.read();
        notice(q.get("error"), q.get("reason"))
    };

    view! {
        <Title text="Log in · Webhooks" />
        <main class="centered">
            <form class="card narrow login" method="post" action="/login">
                <h1>"Log in to Webhooks"</h1>
                {move || {
                    message()
                        .map(|(kind, text)| {
                            let role = if kind == "error" { "alert" } else { "status" };
                            view! {
                                <p class=format!("notice {kind}") role=role>
                                    {text}
                                </p>
                            }
                        })
                }}
                <label for="email">"Email"</label>
                <input
                    id="email"
                    name="email"
                    type="email"
                    autocomplete="username"
                    required
                    autofocus
                    value=email
                />
                <label for="password">"Password"</label>
                <input
                    id="password"
                    name="password"
                    type="password"
                    autocomplete="current-password"
                    required
                />
                <input type="hidden" name="next" value=next />
                <button class="button primary" type="submit">
                    "Log in"
                </button>
            </form>
        </main>
    }
}
