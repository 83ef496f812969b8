//! The two states every loading region shows: waiting (announced politely) and failed
//! (announced at once). One markup each, so every page says them the same way.

use leptos::prelude::*;

/// "Loading webhooks…" while a resource is on its way.
#[component]
pub fn Loading(what: &'static str) -> impl IntoView {
    view! {
        <p class="loading" role="status">
            {what}
        </p>
    }
}

/// What failed, said in a sentence the reader can act on.
#[component]
pub fn ErrorNotice(#[prop(into)] message: String) -> impl IntoView {
    view! {
        <p class="notice error" role="alert">
            {message}
        </p>
    }
}
