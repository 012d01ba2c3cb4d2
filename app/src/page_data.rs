//! The pages' data, loaded on the server and carried in the page's HTML to the browser bundle,
//! which reads it there instead of asking again. Every page makes its resources here (clippy
//! refuses Leptos's own constructors: `clippy.toml`).
//!
//! Why not Leptos's `Resource::new`: it decodes that HTML with `serde_json::from_str`, while a
//! server function's reply is decoded with `serde_json::from_slice`. The two readers are two
//! copies of every type's decoder in the bundle: 147 and 141 KB of its 2.35 MB before wasm-opt.
//! Reading the page's data as bytes too leaves one copy.

use leptos::prelude::*;
use leptos::server::codee::{Decoder, Encoder};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// JSON, read the way server functions' replies are read.
pub struct PageJson;

impl<T: Serialize> Encoder<T> for PageJson {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(value: &T) -> Result<String, Self::Error> {
        serde_json::to_string(value)
    }
}

impl<T: DeserializeOwned> Decoder<T> for PageJson {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(encoded: &str) -> Result<T, Self::Error> {
        serde_json::from_slice(encoded.as_bytes())
    }
}

/// A page's data, loaded again whenever `source` changes (as `Resource::new`).
#[track_caller]
pub fn resource<T, S, Fut>(
    source: impl Fn() -> S + Send + Sync + 'static,
    fetcher: impl Fn(S) -> Fut + Send + Sync + 'static,
) -> Resource<T, PageJson>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync + Clone + PartialEq + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    Resource::new_with_options(source, fetcher, false)
}

/// A page's data, loaded once (as `OnceResource::new`).
#[track_caller]
pub fn once<T>(load: impl Future<Output = T> + Send + 'static) -> OnceResource<T, PageJson>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    OnceResource::new_with_options(load, false)
}
