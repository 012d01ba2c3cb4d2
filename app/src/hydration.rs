//! Whether the browser bundle runs yet. Until the page is hydrated its buttons are the server's
//! HTML, with no handlers: a control that needs the bundle is drawn disabled until then (or is a
//! plain form, which works either way), so that no click is silently lost on a slow link.

use leptos::prelude::*;

#[derive(Clone, Copy)]
struct Hydrated(RwSignal<bool>);

/// Starts tracking hydration for the whole app: false in the server's HTML, true once the
/// browser bundle has hydrated the page (effects run only then). The document is marked
/// `data-hydrated` too, for styles and tests.
pub fn provide_hydration() {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| {
        hydrated.set(true);
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });
    provide_context(Hydrated(hydrated));
}

/// True once the page is hydrated.
pub fn use_hydrated() -> Signal<bool> {
    match use_context::<Hydrated>() {
        Some(Hydrated(hydrated)) => hydrated.into(),
        None => Signal::stored(false),
    }
}

/// What the browser's field `id` (an input or a select) holds as the page hydrates: what the
/// admin typed or chose in the server's HTML before the bundle arrived (on a slow link, seconds
/// of typing), which would otherwise be replaced by the value the page was drawn with. `None` on the server, on a
/// page drawn in the browser (no such field yet), and for a field left as it was drawn.
pub fn typed_before_hydration(id: &str, drawn: &str) -> Option<String> {
    // Only while hydrating: later, a field of that id is an older drawing of this page.
    if cfg!(feature = "ssr") || use_hydrated().get_untracked() {
        return None;
    }
    use leptos::wasm_bindgen::JsCast;
    use leptos::web_sys::{HtmlInputElement, HtmlSelectElement};
    let field = document().get_element_by_id(id)?;
    let typed = match field.dyn_ref::<HtmlInputElement>() {
        Some(input) => input.value(),
        None => field.dyn_ref::<HtmlSelectElement>()?.value(),
    };
    (typed != drawn).then_some(typed)
}
