//! An action that asks first, in place: a button that turns into what will happen, the
//! confirming button and Cancel. Used in table rows, where a modal would lose the row.

use leptos::prelude::*;

#[component]
pub fn ConfirmInline(
    /// The first button's text ("Revoke"); the question is labelled "Confirm revoke".
    label: &'static str,
    /// The first button's accessible name when its text is ambiguous in a table
    /// ("Remove ada@example.com").
    #[prop(optional, into)]
    aria_label: Option<String>,
    /// What happens, said before the confirming button.
    warning: &'static str,
    /// The confirming button's text ("Revoke key").
    confirm: &'static str,
    #[prop(into)] on_confirm: Callback<()>,
) -> impl IntoView {
    let confirming = RwSignal::new(false);
    let aria_label = StoredValue::new(aria_label);
    view! {
        <Show
            when=move || confirming.get()
            fallback=move || {
                view! {
                    <button
                        class="button danger-outline"
                        type="button"
                        aria-label=aria_label.get_value()
                        on:click=move |_| confirming.set(true)
                    >
                        {label}
                    </button>
                }
            }
        >
            <span class="confirm-inline" role="alertdialog" aria-label=format!("Confirm {}", label.to_lowercase())>
                {warning}
                " "
                <button
                    class="button danger"
                    type="button"
                    on:click=move |_| {
                        on_confirm.run(());
                        confirming.set(false);
                    }
                >
                    {confirm}
                </button>
                <button class="button subtle" type="button" on:click=move |_| confirming.set(false)>
                    "Cancel"
                </button>
            </span>
        </Show>
    }
}
