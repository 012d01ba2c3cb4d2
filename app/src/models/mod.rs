//! Self-hosted models: the "Model configuration" page's "Self-hosted models" tab, the add and
//! edit form, and deletion.

pub mod api;
pub mod domain;
pub mod form;
pub mod history;
pub mod list;
pub mod platform;
#[cfg(feature = "ssr")]
pub mod secrets;
#[cfg(feature = "ssr")]
pub mod store;
pub mod test_all;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

pub const CREATED_NOTICE: &str = "Model added. Select it for a feature to start using it.";
pub const SAVED_NOTICE: &str = "The self-hosted model was successfully saved.";
/// Where a saved model's form goes, as GitLab does: to the features, to select it for one.
pub const AFTER_SAVE_PATH: &str = "/admin/gitlab_duo/self_hosted/features";

/// The top of "Model configuration", shared by its tabs: the heading, the tabs, and the notice
/// a saved model's form leaves (`?notice=created|saved`).
#[component]
pub fn ModelConfigurationHeader(#[prop(into)] active_tab: String) -> impl IntoView {
    let query = use_query_map();
    let notice = move || match query.read().get("notice").as_deref() {
        Some("created") => Some(CREATED_NOTICE),
        Some("saved") => Some(SAVED_NOTICE),
        _ => None,
    };
    let tab = move |href: &'static str, label: &'static str, key: &'static str| {
        let selected = active_tab == key;
        view! {
            <a href=href role="tab" aria-selected=selected.to_string() class=if selected { "tab active" } else { "tab" }>
                {label}
            </a>
        }
    };
    view! {
        <div class="page-heading">
            <div>
                <h1 class="page-title">"Model configuration"</h1>
                <p class="page-description">
                    "Manage GitLab Duo by configuring and assigning self-hosted models to AI-native features."
                </p>
            </div>
            <a class="btn btn-confirm" href="/admin/gitlab_duo/self_hosted/models/new">"Add self-hosted model"</a>
        </div>
        <nav class="tabs" role="tablist">
            {tab("/admin/gitlab_duo/self_hosted/features", "AI-native features", "features")}
            {tab("/admin/gitlab_duo/self_hosted/models", "Self-hosted models", "models")}
        </nav>
        {move || notice().map(|text| view! { <div class="alert alert-success" role="status">{text}</div> })}
    }
}
