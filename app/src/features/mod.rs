//! AI-native features: the "AI-native features" tab of Model configuration, where each feature
//! gets its model from a dropdown that saves at once.

pub mod api;
pub mod page;
