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
    // The control is the caller's: once in the browser, it is marked invalid and pointed at its
    // error here, so every form gets `aria-invalid` and `aria-describedby` the same way.
    let error_id = format!("{id}-error");
    Effect::new({
        let (id, error_id) = (id.clone(), error_id.clone());
        move |_| {
            let invalid = error.get().is_some();
            if let Some(control) = leptos::prelude::document().get_element_by_id(&id) {
                let _ = control.set_attribute("aria-invalid", if invalid { "true" } else { "false" });
                if invalid {
                    let _ = control.set_attribute("aria-describedby", &error_id);
                } else {
                    let _ = control.remove_attribute("aria-describedby");
                }
            }
        }
    });
    view! {
        <div class="form-group">
            <label for=id>{label}</label>
            {children()}
            {move || error.get().map(|message| view! { <p class="invalid-feedback" id=error_id.clone() role="alert">{message}</p> })}
            {help.map(|help| view! { <p class="form-text">{move || help.get()}</p> })}
        </div>
    }
}
