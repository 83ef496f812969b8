//! The dashboard: Leptos components rendered on the server and hydrated in the browser,
//! and the server functions they call. Server-only code lives behind feature `ssr`.
#![forbid(unsafe_code)]
// Leptos view types nest deeply; without erase_components (see Cargo.toml) the default
// limit is too low for the endpoint table.
#![recursion_limit = "512"]

use entity::paths;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{ParentRoute, Redirect, Route, Router, Routes},
    path,
};

pub mod api_keys;
pub mod auth;
pub mod components;
pub mod error;
#[cfg(feature = "ssr")]
pub mod server;
pub mod session;
pub mod team;
pub mod time;
pub mod webhooks;

pub use error::AppError;
pub use session::CurrentUser;

use crate::{
    api_keys::ApiKeysPage,
    auth::LoginPage,
    components::layout::Shell,
    team::{InvitePage, TeamPage},
    webhooks::{EditWebhookPage, NewWebhookPage, WebhooksPage},
};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    time::provide_local_time();
    // Lets end-to-end tests wait until the page is interactive: effects run only in the
    // browser, after hydration.
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/webhooks.css" />
        <Title text="Webhooks" />
        <Router>
            <Routes fallback=|| view! { <NotFound /> }>
                <Route path=path!("/login") view=LoginPage />
                <Route path=path!("/invite/:token") view=InvitePage />
                <Route path=path!("/") view=|| view! { <Redirect path=paths::webhooks() /> } />
                <ParentRoute path=path!("/settings") view=Shell>
                    <Route path=path!("/webhooks") view=WebhooksPage />
                    <Route path=path!("/webhooks/new") view=NewWebhookPage />
                    <Route path=path!("/webhooks/:id") view=EditWebhookPage />
                    <Route path=path!("/api-keys") view=ApiKeysPage />
                    <Route path=path!("/team") view=TeamPage />
                    <Route path=path!("") view=|| view! { <Redirect path=paths::webhooks() /> } />
                </ParentRoute>
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="centered">
            <div class="card narrow">
                <h1>"Page not found"</h1>
                <p>"There is nothing at this address."</p>
                <a class="button" href=paths::webhooks()>
                    "Go to your webhooks"
                </a>
            </div>
        </main>
    }
}
