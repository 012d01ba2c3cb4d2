//! Whether the browser bundle runs yet. Until an island is hydrated its buttons are the server's
//! HTML, with no handlers: a control that needs the bundle is drawn disabled until then (or is a
//! plain form, which works either way), so that no click is silently lost on a slow link.

use leptos::prelude::*;

#[derive(Clone, Copy)]
struct Hydrated(RwSignal<bool>);

/// Starts tracking hydration for one island (each island is its own reactive root, so each
/// calls this first): false in the server's HTML, true once the browser has hydrated it
/// (effects run only then).
pub fn provide_hydration() {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    provide_context(Hydrated(hydrated));
}

/// True once the island is hydrated.
pub fn use_hydrated() -> Signal<bool> {
    match use_context::<Hydrated>() {
        Some(Hydrated(hydrated)) => hydrated.into(),
        None => Signal::stored(false),
    }
}

/// Marks the document `data-hydrated` once every island of the page is hydrated, for styles and
/// tests. Leptos's loader hydrates the islands right after `hydrate()` returns, each within the
/// same task (its awaits are on values, not on timers), so a zero timeout runs after the last.
pub fn mark_document_hydrated() {
    set_timeout(
        || {
            if let Some(root) = document().document_element() {
                let _ = root.set_attribute("data-hydrated", "true");
            }
        },
        std::time::Duration::ZERO,
    );
}

/// What the browser's field `id` (an input or a select) holds as the island hydrates: what the
/// admin typed or chose in the server's HTML before the bundle arrived (on a slow link, seconds
/// of typing), which would otherwise be replaced by the value the page was drawn with. `None` on
/// the server and for a field left as it was drawn.
pub fn typed_before_hydration(id: &str, drawn: &str) -> Option<String> {
    // Only while hydrating: later, a field of that id is an older drawing of this island.
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

/// A server function's action, for an island: as `ServerAction::new`, but without the error a
/// plain form post left in the address. The router reads that error on the server, and an island
/// is hydrated in the browser without it: the two drawings would differ. A page that shows such
/// an error gives it to its island as a prop (`error::refused`).
pub fn island_action<S>() -> Action<S, Result<S::Output, S::Error>>
where
    S: leptos::server_fn::ServerFn + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
    S::Error: Send + Sync + 'static,
{
    Action::new(|input: &S| S::run_on_client(input.clone()))
}
