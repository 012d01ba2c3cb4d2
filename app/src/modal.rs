//! The one modal dialog: the chat box and both delete modals. Focus moves into it when it opens
//! and stays there (Tab and Shift+Tab cycle within it); Escape or a click on the backdrop
//! closes it; and focus goes back to whatever opened it.

use leptos::html;
use leptos::prelude::*;

/// What may take focus inside the dialog.
const FOCUSABLE: &str = "a[href], button:not([disabled]), textarea:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), [tabindex]:not([tabindex='-1'])";

#[component]
pub fn Modal(
    /// The id of the dialog's heading.
    labelled_by: &'static str,
    /// Extra classes of the dialog box.
    #[prop(optional)]
    class: &'static str,
    on_close: Callback<()>,
    children: Children,
) -> impl IntoView {
    let dialog = NodeRef::<html::Div>::new();
    // Browser only: where focus was when the modal opened, given back when it closes.
    let opener = StoredValue::new_local(None::<leptos::web_sys::HtmlElement>);
    Effect::new(move |_| {
        use leptos::wasm_bindgen::JsCast;
        let Some(dialog) = dialog.get() else { return };
        let document = leptos::prelude::document();
        opener.set_value(
            document.active_element().and_then(|e| e.dyn_into::<leptos::web_sys::HtmlElement>().ok()),
        );
        let first = dialog
            .query_selector("[autofocus]")
            .ok()
            .flatten()
            .or_else(|| dialog.query_selector(FOCUSABLE).ok().flatten())
            .and_then(|e| e.dyn_into::<leptos::web_sys::HtmlElement>().ok());
        match first {
            Some(element) => {
                let _ = element.focus();
            }
            None => {
                let _ = dialog.focus();
            }
        }
    });
    on_cleanup(move || {
        if let Some(opener) = opener.try_get_value().flatten() {
            let _ = opener.focus();
        }
    });
    let on_keydown = move |event: leptos::ev::KeyboardEvent| {
        use leptos::wasm_bindgen::JsCast;
        if event.key() == "Escape" {
            event.prevent_default();
            on_close.run(());
            return;
        }
        if event.key() != "Tab" {
            return;
        }
        let Some(dialog) = dialog.get() else { return };
        let Ok(found) = dialog.query_selector_all(FOCUSABLE) else { return };
        let focusable: Vec<leptos::web_sys::HtmlElement> = (0..found.length())
            .filter_map(|index| found.item(index))
            .filter_map(|node| node.dyn_into::<leptos::web_sys::HtmlElement>().ok())
            .collect();
        let (Some(first), Some(last)) = (focusable.first(), focusable.last()) else { return };
        let active = leptos::prelude::document().active_element();
        let at = |element: &leptos::web_sys::HtmlElement| {
            active
                .as_ref()
                .is_some_and(|active| active == element.unchecked_ref::<leptos::web_sys::Element>())
        };
        if event.shift_key() && (at(first) || active.as_ref() == Some(dialog.unchecked_ref())) {
            event.prevent_default();
            let _ = last.focus();
        } else if !event.shift_key() && at(last) {
            event.prevent_default();
            let _ = first.focus();
        }
    };
    view! {
        <div
            class="modal-backdrop"
            on:click=move |event| {
                // Only a click on the backdrop itself, not one inside the dialog.
                if event.target() == event.current_target() {
                    on_close.run(());
                }
            }
        >
            <div
                node_ref=dialog
                class=format!("modal {class}")
                role="dialog"
                aria-modal="true"
                aria-labelledby=labelled_by
                tabindex="-1"
                on:keydown=on_keydown
            >
                {children()}
            </div>
        </div>
    }
}
