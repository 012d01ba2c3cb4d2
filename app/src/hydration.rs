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

/// A server function called from an island: whether a call runs, and the last one's outcome.
/// What an island needs of Leptos's `ServerAction`, without what it does besides: it reads no
/// error from the address (which the router reads on the server but not in the browser, where
/// the island's two drawings would then differ; a page gives such an error to its island as a
/// prop, `error::refused`) and keeps no input, version or cancellation, which the bundle would
/// carry for each call's type.
pub struct Call<O: Send + Sync + 'static> {
    pending: RwSignal<bool>,
    value: RwSignal<Option<Result<O, crate::error::AppError>>>,
}

impl<O: Send + Sync + 'static> Clone for Call<O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<O: Send + Sync + 'static> Copy for Call<O> {}

impl<O: Send + Sync + 'static> Call<O> {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Call { pending: RwSignal::new(false), value: RwSignal::new(None) }
    }

    /// Runs `call` (a server function's call), and keeps its outcome.
    pub fn run(self, call: impl Future<Output = Result<O, crate::error::AppError>> + 'static) {
        self.pending.set(true);
        leptos::task::spawn_local(async move {
            let outcome = call.await;
            self.value.set(Some(outcome));
            self.pending.set(false);
        });
    }

    pub fn pending(self) -> RwSignal<bool> {
        self.pending
    }

    pub fn value(self) -> RwSignal<Option<Result<O, crate::error::AppError>>> {
        self.value
    }
}
