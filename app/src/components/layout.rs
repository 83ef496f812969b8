use entity::paths;
use leptos::prelude::*;
use leptos_router::components::{Outlet, A};

use crate::auth::whoami;

/// The frame of every logged-in page: navigation, the account and the logout button.
#[component]
pub fn Shell() -> impl IntoView {
    let user = Resource::new(|| (), |_| whoami());
    view! {
        <div class="shell">
            <header class="topbar">
                <a class="brand" href=paths::webhooks()>
                    "Webhooks"
                </a>
                <nav aria-label="Main">
                    <A href=paths::webhooks()>"Endpoints"</A>
                    <A href=paths::api_keys()>"API keys"</A>
                    <A href=paths::team()>"Team"</A>
                </nav>
                <div class="account">
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            user.await
                                .ok()
                                .map(|u| {
                                    view! {
                                        <span class="who">
                                            <span class="account-name">{u.account_name}</span>
                                            <span class="email">{u.email}</span>
                                        </span>
                                    }
                                })
                        })}
                    </Suspense>
                    <form method="post" action="/logout">
                        <button class="button subtle" type="submit">
                            "Log out"
                        </button>
                    </form>
                </div>
            </header>
            <main class="content">
                <Outlet />
            </main>
        </div>
    }
}
