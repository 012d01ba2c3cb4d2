//! `/admin/gitlab_duo/configuration`: GitLab Duo's instance settings, as `rules` (parsing with
//! GitLab's messages), `api` (server functions, and the owner of the settings tables) and
//! `page` (the screen).

pub mod api;
pub mod page;
pub mod rules;

pub use page::ConfigurationPage;
pub use rules::{AGENT_URL_INVALID, GATEWAY_URL_INVALID, TIMEOUT_RANGE};
