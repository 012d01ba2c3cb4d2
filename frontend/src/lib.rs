//! The browser entry point: hydrates the islands of the page the server rendered (the
//! interactive widgets; everything else stays the server's HTML).
#![recursion_limit = "256"]

// The islands' hydration functions are exported from the app crate: it must be linked in.
use app as _;

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // A server function called from an island that answers with a redirect leads to a whole
    // page, as every link does: the pages are the server's.
    let _ = leptos::server_fn::redirect::set_redirect_hook(|path: &str| {
        let _ = leptos::prelude::window().location().set_href(path);
    });
    leptos::mount::hydrate_islands();
    app::hydration::mark_document_hydrated();
}
