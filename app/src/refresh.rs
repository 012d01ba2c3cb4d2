//! Parts of a page that follow what the server stored, drawn again without reloading the page:
//! after a test, a chat or "Test all", the statuses and "Last test" cells. The server marks each
//! such part `data-refresh="KEY"`; the page is read again and each part's content is replaced by
//! its new drawing. Only plain HTML is marked (never an island), so no control is redrawn under
//! the admin's hands and nothing interactive has to be hydrated again.

/// Reads the page again and puts each marked part's new drawing in place. Best effort: if the
/// page cannot be read (signed out, offline), the parts stay as they are.
pub fn refresh_page_parts() {
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(async {
        if let Err(error) = browser::refresh().await {
            leptos::logging::warn!("could not read the page again: {error:?}");
        }
    });
}

#[cfg(feature = "hydrate")]
mod browser {
    use leptos::wasm_bindgen::{JsCast, JsValue};
    use leptos::web_sys::{DomParser, Element, Response, SupportedType};
    use wasm_bindgen_futures::JsFuture;

    pub async fn refresh() -> Result<(), JsValue> {
        let window = leptos::prelude::window();
        let address = window.location().href()?;
        let response: Response = JsFuture::from(window.fetch_with_str(&address)).await?.dyn_into()?;
        if !response.ok() {
            return Ok(());
        }
        let html = JsFuture::from(response.text()?).await?.as_string().unwrap_or_default();
        let drawn = DomParser::new()?.parse_from_string(&html, SupportedType::TextHtml)?;
        let parts = leptos::prelude::document().query_selector_all("[data-refresh]")?;
        for index in 0..parts.length() {
            let Some(part) = parts.item(index).and_then(|node| node.dyn_into::<Element>().ok()) else {
                continue;
            };
            let Some(key) = part.get_attribute("data-refresh") else { continue };
            // Keys are the server's own (feature keys, model ids): no quote to escape.
            if let Some(fresh) = drawn.query_selector(&format!("[data-refresh=\"{key}\"]"))? {
                part.set_inner_html(&fresh.inner_html());
            }
        }
        Ok(())
    }
}
