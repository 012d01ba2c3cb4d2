//! The pages' data: loaded on the server for the page being drawn, and handed to an island (the
//! browser's part of a page) as JSON in its props. Every page makes its resources here (clippy
//! refuses Leptos's own constructors: `clippy.toml`).
//!
//! Why not Leptos's own readers: a resource made in an island, and an island's props, are
//! decoded with `serde_json::from_str`, while a server function's reply is decoded with
//! `serde_json::from_slice`. The two readers are two copies of every type's decoder in the
//! bundle (they were 147 and 141 KB of its 2.35 MB before wasm-opt). Reading everything as bytes
//! leaves one copy.

use leptos::prelude::*;
use leptos::server::codee::{Decoder, Encoder};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An island's prop that carries a page's data: JSON text inside the props' JSON, read as bytes
/// (as server functions' replies are) so that its type's decoder is in the bundle once.
#[derive(Debug, Clone, PartialEq)]
pub struct IslandData<T>(pub T);

impl<T: Serialize> Serialize for IslandData<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for IslandData<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        serde_json::from_slice(text.as_bytes()).map(IslandData).map_err(serde::de::Error::custom)
    }
}

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
