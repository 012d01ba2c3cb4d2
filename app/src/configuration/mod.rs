//! `/admin/gitlab_duo/configuration`: GitLab Duo's instance settings, as `rules` (parsing with
//! GitLab's messages), `api` (server functions, and the owner of the settings tables),
//! `page` (the screen) and `health` (its health block: features ready, the AI Gateway's
//! reachability, the scheduled checks).

pub mod api;
pub mod health;
pub mod page;
pub mod rules;

pub use page::ConfigurationPage;
pub use rules::{AGENT_URL_INVALID, GATEWAY_URL_INVALID, TIMEOUT_RANGE};
