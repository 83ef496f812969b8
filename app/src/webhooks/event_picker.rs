use std::collections::BTreeSet;

use entity::{EventCategory, EventType};
use leptos::prelude::*;

/// Checkboxes grouped by category, each group with a select-all that shows the partial
/// state, and a running count.
#[component]
pub fn EventPicker(selected: RwSignal<BTreeSet<EventType>>, #[prop(into)] disabled: Signal<bool>) -> impl IntoView {
    let count = move || selected.with(|s| s.len());
    view! {
        <div class="event-picker">
            <p class="count" aria-live="polite">
                {move || format!("{} of {} events selected", count(), EventType::ALL.len())}
            </p>
            <div class="groups">
                {EventCategory::ALL
                    .into_iter()
                    .map(|category| view! { <EventGroup category selected disabled /> })
                    .collect_view()}
            </div>
        </div>
    }
}

#[component]
fn EventGroup(
    category: EventCategory,
    selected: RwSignal<BTreeSet<EventType>>,
    disabled: Signal<bool>,
) -> impl IntoView {
    let types: Vec<EventType> = category.event_types().collect();
    let total = types.len();
    let chosen = {
        let types = types.clone();
        move || selected.with(|s| types.iter().filter(|t| s.contains(t)).count())
    };
    let all = {
        let chosen = chosen.clone();
        move || chosen() == total
    };
    let some = {
        let chosen = chosen.clone();
        move || (1..total).contains(&chosen())
    };
    let toggle_all = {
        let types = types.clone();
        let all = all.clone();
        move |_| {
            let select = !all();
            selected.update(|s| {
                for t in &types {
                    if select {
                        s.insert(*t);
                    } else {
                        s.remove(t);
                    }
                }
            })
        }
    };
    let group_id = format!("group-{}", category.label().to_lowercase());
    view! {
        <fieldset class="event-group">
            <legend>
                <label class="check group-check">
                    <input
                        type="checkbox"
                        id=group_id
                        prop:checked=all
                        prop:indeterminate=some
                        on:change=toggle_all
                        disabled=move || disabled.get()
                        aria-label=format!("All {} events", category.label())
                    />
                    <span>{category.label()}</span>
                    <span class="muted">{move || format!("{}/{}", chosen(), total)}</span>
                </label>
            </legend>
            {types.into_iter().map(|t| view! { <EventChoice t selected disabled /> }).collect_view()}
        </fieldset>
    }
}

/// One type: its checkbox, what it means, and the payload a receiver gets for it.
#[component]
fn EventChoice(t: EventType, selected: RwSignal<BTreeSet<EventType>>, disabled: Signal<bool>) -> impl IntoView {
    let described_by = format!("desc-{}", t.as_str().replace('.', "-"));
    let sample = serde_json::to_string_pretty(&entity::samples::sample_payload(t)).unwrap_or_default();
    view! {
        <div class="event-choice">
            <label class="check">
                <input
                    type="checkbox"
                    name="event_types"
                    value=t.as_str()
                    aria-describedby=described_by.clone()
                    prop:checked=move || selected.with(|s| s.contains(&t))
                    on:change=move |_| {
                        selected
                            .update(|s| {
                                if !s.remove(&t) {
                                    s.insert(t);
                                }
                            })
                    }
                    disabled=move || disabled.get()
                />
                <code>{t.as_str()}</code>
            </label>
            <p class="event-description muted" id=described_by>
                {t.description()}
            </p>
            <details class="event-sample">
                <summary>"Sample payload"</summary>
                <pre>
                    <code>{sample}</code>
                </pre>
            </details>
        </div>
    }
}
