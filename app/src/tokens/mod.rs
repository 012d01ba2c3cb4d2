//! Personal access tokens: a user's own bearer tokens for the JSON API (`/api/v1`).
//! `domain.rs` (the rules: scopes, names, expiry), `store.rs` (the one owner of
//! `personal_access_tokens`: minting, listing, revoking, authenticating), `api.rs` (the page's
//! server functions, also called by the command line), `page.rs` (the page).

pub mod api;
pub mod domain;
pub mod page;
#[cfg(feature = "ssr")]
pub mod store;
