use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// Why the user is on the login page, from the `?error=` / `?reason=` (and, when throttled,
/// `?retry=` minutes) the server set.
fn notice(error: Option<String>, reason: Option<String>, retry: Option<String>) -> Option<(&'static str, String)> {
    let text = |kind, text: &str| Some((kind, text.to_owned()));
    match (error.as_deref(), reason.as_deref()) {
        (Some("invalid"), _) => text("error", "Incorrect email or password."),
        (Some("missing"), _) => text("error", "Enter your email and your password."),
        (Some("throttled"), _) => {
            let minutes = retry.and_then(|m| m.parse::<u32>().ok()).unwrap_or(15).max(1);
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            Some(("error", format!("Too many failed attempts. Try again in {minutes} {unit}.")))
        }
        (Some(_), _) => text("error", "Logging in failed. Please try again."),
        (None, Some("expired")) => text("info", "Your session expired. Please log in again."),
        (None, Some("logged_out")) => text("info", "You have been logged out."),
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
        notice(q.get("error"), q.get("reason"), q.get("retry"))
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
                <input id="email" name="email" type="email" autocomplete="username" required autofocus value=email />
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password" required />
                <input type="hidden" name="next" value=next />
                <button class="button primary" type="submit">
                    "Log in"
                </button>
            </form>
        </main>
    }
}
