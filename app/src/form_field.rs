//! The labelled field both forms are made of: the label, the control, the field's error in its
//! place (announced as it appears), and the help text under it.

use leptos::prelude::*;

#[component]
pub fn FormField(
    /// The control's `id`, which the label names.
    #[prop(into)]
    id: String,
    label: &'static str,
    /// The field's current error, if any.
    #[prop(into, optional)]
    error: Signal<Option<String>>,
    /// Help under the field.
    #[prop(into, optional)]
    help: Option<Signal<String>>,
    children: Children,
) -> impl IntoView {
    view! {
        <div class="form-group">
            <label for=id>{label}</label>
            {children()}
            {move || error.get().map(|message| view! { <p class="invalid-feedback" role="alert">{message}</p> })}
            {help.map(|help| view! { <p class="form-text">{move || help.get()}</p> })}
        </div>
    }
}
