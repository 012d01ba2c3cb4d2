//! Unsaved changes are not left behind by accident: while a form holds changes, leaving the page
//! asks first, whether by closing or reloading the tab (the browser's own `beforeunload`
//! prompt) or by following a link of the console, which asks in the console's own words.

use leptos::prelude::*;

pub const LEAVE_QUESTION: &str = "You have unsaved changes. Leave this page and lose them?";

/// Asks before leaving the page while `dirty` is true. Browser only (it does nothing in the
/// server's rendering); the listeners go when the calling component does.
pub fn warn_before_leaving(dirty: Signal<bool>) {
    // The server's rendering has nothing to guard, and must not make the browser-only values
    // below: one dropped on another thread than it was made on panics.
    if cfg!(feature = "ssr") {
        return;
    }
    use leptos::wasm_bindgen::JsCast;
    use leptos::wasm_bindgen::closure::Closure;
    // Set once the admin has agreed to leave: the browser's prompt must not ask again.
    let agreed = StoredValue::new(false);
    let unload = StoredValue::new_local(None::<WindowListenerHandle>);
    let click = StoredValue::new_local(None::<Closure<dyn Fn(leptos::web_sys::MouseEvent)>>);
    Effect::new(move |_| {
        if unload.with_value(Option::is_some) {
            return;
        }
        unload.set_value(Some(window_event_listener(leptos::ev::beforeunload, move |event| {
            if dirty.get_untracked() && !agreed.get_value() {
                event.prevent_default();
                // Older browsers look for a return value instead.
                event.set_return_value("");
            }
        })));
        // On the document: one listener for every link of the page, wherever it is.
        let on_click =
            Closure::<dyn Fn(leptos::web_sys::MouseEvent)>::new(move |event: leptos::web_sys::MouseEvent| {
                let plain = event.button() == 0
                    && !(event.meta_key() || event.ctrl_key() || event.shift_key() || event.alt_key());
                if !dirty.get_untracked() || event.default_prevented() || !plain {
                    return;
                }
                let link = event
                    .target()
                    .and_then(|target| target.dyn_into::<leptos::web_sys::Element>().ok())
                    .and_then(|element| element.closest("a[href]").ok().flatten());
                let Some(link) = link else { return };
                if link.get_attribute("target").is_some_and(|target| target != "_self")
                    || link.has_attribute("download")
                {
                    return;
                }
                if window().confirm_with_message(LEAVE_QUESTION).unwrap_or(true) {
                    agreed.set_value(true);
                } else {
                    event.prevent_default();
                    event.stop_propagation();
                }
            });
        let _ = document().add_event_listener_with_callback("click", on_click.as_ref().unchecked_ref());
        click.set_value(Some(on_click));
    });
    on_cleanup(move || {
        if let Some(handle) = unload.try_update_value(Option::take).flatten() {
            handle.remove();
        }
        if let Some(on_click) = click.try_update_value(Option::take).flatten() {
            let _ =
                document().remove_event_listener_with_callback("click", on_click.as_ref().unchecked_ref());
        }
    });
}
