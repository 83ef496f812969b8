use leptos::prelude::*;

use super::{reveal_secret, rotate_secret};

const MASK: &str = "whsec_••••••••••••••••••••••••";

/// The signing secret: masked, with reveal, copy and regenerate (after a confirmation), for
/// owners and admins; shown in full once, right after the endpoint is created (`fresh`) or
/// the secret regenerated. Members never see it (SPEC §9), so they get no controls.
#[component]
pub fn SecretPanel(id: String, can_write: bool, fresh: bool) -> impl IntoView {
    if !can_write {
        return view! {
            <section class="card secret-panel" aria-labelledby="secret-heading">
                <h2 id="secret-heading">"Signing secret"</h2>
                <p class="muted">
                    "Every delivery is signed with this endpoint's secret. Only owners and admins of the account can see it."
                </p>
            </section>
        }
        .into_any();
    }
    let revealed = RwSignal::new(None::<String>);
    let confirming = RwSignal::new(false);
    let status = RwSignal::new(None::<String>);
    let id = StoredValue::new(id);

    let reveal = Action::new(move |_: &()| reveal_secret(id.get_value()));
    let rotate = Action::new(move |_: &()| rotate_secret(id.get_value()));
    // In the browser only: an effect does not run during server rendering.
    Effect::new(move |_| {
        if fresh {
            reveal.dispatch(());
        }
    });
    Effect::new(move |_| match reveal.value().get() {
        Some(Ok(secret)) => revealed.set(Some(secret)),
        Some(Err(err)) => status.set(Some(err.to_string())),
        None => {}
    });
    Effect::new(move |_| match rotate.value().get() {
        Some(Ok(secret)) => {
            revealed.set(Some(secret));
            confirming.set(false);
            status.set(Some("New secret generated. The previous secret keeps working for 24 hours.".into()));
        }
        Some(Err(err)) => status.set(Some(err.to_string())),
        None => {}
    });
    let copy = move |_| {
        leptos::task::spawn_local(async move {
            let secret = match revealed.get_untracked() {
                Some(s) => Ok(s),
                None => reveal_secret(id.get_value()).await,
            };
            let message = match secret {
                Ok(secret) => copy_to_clipboard(secret).await,
                Err(err) => err.to_string(),
            };
            status.set(Some(message));
        });
    };

    view! {
        <section class="card secret-panel" aria-labelledby="secret-heading">
            <h2 id="secret-heading">"Signing secret"</h2>
            <p class="muted">
                "Every delivery is signed with this secret (" <code>"webhook-signature"</code> " and "
                <code>"X-Webhook-Signature"</code> "). Use it to check that requests come from us."
            </p>
            <div class="secret-row">
                <code class="secret-value" data-testid="secret-value">
                    {move || revealed.get().unwrap_or_else(|| MASK.to_owned())}
                </code>
                <button
                    class="button"
                    type="button"
                    on:click=move |_| {
                        if revealed.get_untracked().is_some() {
                            revealed.set(None)
                        } else {
                            reveal.dispatch(());
                        }
                    }
                >
                    {move || if revealed.get().is_some() { "Hide" } else { "Reveal" }}
                </button>
                <button class="button" type="button" on:click=copy>"Copy"</button>
                <button class="button danger-outline" type="button" on:click=move |_| confirming.set(true)>
                    "Regenerate"
                </button>
            </div>
            <Show when=move || confirming.get()>
                <div class="confirm" role="alertdialog" aria-labelledby="regen-question">
                    <p id="regen-question">
                        "Generate a new secret? Deliveries are signed with both the old and the new secret for 24 hours, then only with the new one."
                    </p>
                    <button class="button danger" type="button" on:click=move |_| { rotate.dispatch(()); }>
                        "Regenerate secret"
                    </button>
                    <button class="button subtle" type="button" on:click=move |_| confirming.set(false)>"Cancel"</button>
                </div>
            </Show>
            <p class="status-line" role="status">{move || status.get()}</p>
        </section>
    }
    .into_any()
}

#[cfg(feature = "hydrate")]
async fn copy_to_clipboard(text: String) -> String {
    let promise = window().navigator().clipboard().write_text(&text);
    match wasm_bindgen_futures::JsFuture::from(promise).await {
        Ok(_) => "Secret copied to the clipboard.".to_owned(),
        Err(_) => "The browser refused the clipboard. Reveal the secret and copy it by hand.".to_owned(),
    }
}

#[cfg(not(feature = "hydrate"))]
async fn copy_to_clipboard(_text: String) -> String {
    "Copying needs JavaScript. Reveal the secret and copy it by hand.".to_owned()
}
