//! The console's pages, one module each, with the server functions they call.

pub mod account;
pub mod bills;
pub mod detail;
pub mod operator;
pub mod packs;
pub mod signin;
pub mod usage;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The value of query parameter `name` (empty when absent), tracked.
pub fn query_param(name: &'static str) -> Memo<String> {
    let query = use_query_map();
    Memo::new(move |_| query.with(|query| query.get(name).unwrap_or_default()))
}

/// A filter form's `<select>` with its label: "all" (the empty value) first, then `choices`,
/// the one whose value is `selected` chosen.
#[component]
pub fn ChoiceFilter(
    /// Text key of the label.
    label: &'static str,
    /// The query parameter.
    name: &'static str,
    /// Text key of the "all" option.
    all: &'static str,
    choices: Vec<crate::dto::Choice>,
    selected: String,
) -> impl IntoView {
    let lang = expect_context::<crate::i18n::Lang>();
    let options = choices
        .into_iter()
        .map(|choice| {
            let chosen = choice.value == selected;
            view! { <option value=choice.value selected=chosen>{choice.label}</option> }
        })
        .collect_view();
    view! {
        <label>
            {crate::i18n::t(lang, label)}
            <select name=name>
                <option value="" selected=selected.is_empty()>{crate::i18n::t(lang, all)}</option>
                {options}
            </select>
        </label>
    }
}
