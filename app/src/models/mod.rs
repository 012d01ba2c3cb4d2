//! Self-hosted models: the "Model configuration" page's "Self-hosted models" tab, the add and
//! edit form, and deletion.

pub mod api;
pub mod domain;
pub mod form;
pub mod list;
pub mod platform;
#[cfg(feature = "ssr")]
pub mod secrets;
#[cfg(feature = "ssr")]
pub mod store;

use leptos::prelude::*;

/// The top of "Model configuration", shared by its tabs.
#[component]
pub fn ModelConfigurationHeader(#[prop(into)] active_tab: String) -> impl IntoView {
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
    }
}
