//! AI-native features: the "AI-native features" tab of Model configuration, where each feature
//! gets its model from a dropdown that saves at once. `sections` holds the tab's rules as pure
//! functions, `api` the server functions and the owner of `feature_settings`, `page` the screen.

pub mod api;
pub mod domain;
pub mod page;
#[cfg(feature = "ssr")]
pub mod sections;
