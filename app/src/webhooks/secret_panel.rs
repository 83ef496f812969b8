use leptos::prelude::*;

use super::{reveal_secret, rotate_secret};
use crate::AppError;

const MASK: &str = "whsec_••••••••••••••••••••••••";

type SecretAction = Action<(), Result<String, AppError>>;

/// The signing secret: masked, with reveal, copy and regenerate (after a confirmation), for
/// owners and admins; shown in full once, right after the endpoint is created (`fresh`) or
/// the secret regenerated. Members never see it (SPEC §9), so they get no controls.
#[component]
pub fn SecretPanel(id: String, can_write: bool, fresh: bool) -> impl IntoView {
    if can_write {
        view! { <OwnerSecretPanel id fresh /> }.into_any()
    } else {
        view! { <MemberSecretPanel /> }.into_any()
    }
}

#[component]
fn MemberSecretPanel() -> impl IntoView {
    view! {
        <section class="card secret-panel" aria-labelledby="secret-heading">
            <h2 id="secret-heading">"Signing secret"</h2>
            <p class="muted">
                "Every delivery is signed with this endpoint's secret. Only owners and admins of the account can see it."
            </p>
        </section>
    }
}

/// The panel for owners and admins.
#[component]
fn OwnerSecretPanel(id: String, fresh: bool) -> impl IntoView {
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
    let copy = Callback::new(move |()| {
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
    });

    view! {
        <section class="card secret-panel" aria-labelledby="secret-heading">
            <h2 id="secret-heading">"Signing secret"</h2>
            <p class="muted">
                "Every delivery is signed with this secret (" <code>"webhook-signature"</code> " and "
                <code>"X-Webhook-Signature"</code> "). Use it to check that requests come from us."
            </p>
            <SecretValueRow revealed reveal copy confirming />
            <RegenerateConfirm confirming rotate />
            <p class="status-line" role="status">
                {move || status.get()}
            </p>
        </section>
    }
}

/// The secret, masked until revealed, with Reveal/Hide, Copy and Regenerate.
#[component]
fn SecretValueRow(
    revealed: RwSignal<Option<String>>,
    reveal: SecretAction,
    copy: Callback<()>,
    confirming: RwSignal<bool>,
) -> impl IntoView {
    view! {
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
            <button class="button" type="button" on:click=move |_| copy.run(())>
                "Copy"
            </button>
            <button class="button danger-outline" type="button" on:click=move |_| confirming.set(true)>
                "Regenerate"
            </button>
        </div>
    }
}

/// The question before a new secret replaces the current one.
#[component]
fn RegenerateConfirm(confirming: RwSignal<bool>, rotate: SecretAction) -> impl IntoView {
    view! {
        <Show when=move || confirming.get()>
            <div class="confirm" role="alertdialog" aria-labelledby="regen-question">
                <p id="regen-question">
                    "Generate a new secret? Deliveries are signed with both the old and the new secret for 24 hours, then only with the new one."
                </p>
                <button
                    class="button danger"
                    type="button"
                    on:click=move |_| {
                        rotate.dispatch(());
                    }
                >
                    "Regenerate secret"
                </button>
                <button class="button subtle" type="button" on:click=move |_| confirming.set(false)>
                    "Cancel"
                </button>
            </div>
        </Show>
    }
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
