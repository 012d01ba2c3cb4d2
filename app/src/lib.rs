//! The Duo Self-Hosted admin console: pages, shared domain types and server functions.
//! Compiled twice: with `ssr` into the server, with `hydrate` into the browser bundle. Pages are
//! drawn on the server alone (Leptos's islands); the bundle holds only the islands, the
//! interactive widgets, which hydrate where they stand. Server-only code sits in `ssr` modules
//! beside the page it serves.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod chat;
pub mod checks;
pub mod config_as_code;
pub mod configuration;
pub mod drafts;
pub mod error;
pub mod features;
pub mod flash;
pub mod form_field;
pub mod gateway;
pub mod hydration;
pub mod layout;
pub mod modal;
pub mod models;
pub mod overview;
pub mod page_data;
pub mod refresh;
#[cfg(feature = "ssr")]
pub mod state;
pub mod tokens;
pub mod unsaved;
pub mod url_parts;
pub mod when;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::audit::AuditEventsPage;
use crate::auth::sign_in::SignInPage;
use crate::configuration::ConfigurationPage;
use crate::features::page::AiFeaturesPage;
use crate::layout::{AdminShell, NotFound};
use crate::models::form::{EditModelPage, NewModelPage};
use crate::models::history::ModelHistoryPage;
use crate::models::list::SelfHostedModelsPage;
use crate::overview::AdminOverview;
use crate::tokens::page::PersonalAccessTokensPage;

/// The name of the browser bundle and style sheet under `/pkg/`.
pub const OUTPUT_NAME: &str = "duo_admin";

/// The HTML document every page is rendered into.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.ico"/>
                // Here, not in `App`: the server alone knows the bundle's versioned folder.
                <link rel="stylesheet" href=format!("/{}/{OUTPUT_NAME}.css", options.site_pkg_dir)/>
                // Islands: only the interactive widgets are hydrated, each where it stands.
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    hydration::provide_hydration();
    view! {
        <Title formatter=|page: String| format!("{page} · Admin area · GitLab")/>
        <Router>
            // Async: each page is sent whole, once its data has loaded. Out-of-order streaming
            // would send the data last with a script to put it in place, leaving "Loading…" on
            // screen with JavaScript off, where the forms must still work. The data are a few
            // quick queries, so waiting for them costs little.
            <Routes fallback=NotFound>
                <Route path=path!("/users/sign_in") view=SignInPage ssr=SsrMode::Async/>
                <ParentRoute path=path!("/admin") view=AdminShell ssr=SsrMode::Async>
                    <Route path=path!("") view=AdminOverview/>
                    <Route path=path!("audit_events") view=AuditEventsPage/>
                    <Route path=path!("gitlab_duo/configuration") view=ConfigurationPage/>
                    <Route path=path!("gitlab_duo/self_hosted") view=AiFeaturesPage/>
                    <Route path=path!("gitlab_duo/self_hosted/features") view=AiFeaturesPage/>
                    <Route path=path!("gitlab_duo/self_hosted/models") view=SelfHostedModelsPage/>
                    <Route path=path!("gitlab_duo/self_hosted/models/new") view=NewModelPage/>
                    <Route path=path!("gitlab_duo/self_hosted/models/:id/edit") view=EditModelPage/>
                    <Route path=path!("gitlab_duo/self_hosted/models/:id") view=ModelHistoryPage/>
                    // GitLab 19 calls the page "Model selection" and serves it here too.
                    <Route path=path!("gitlab_duo/model_selection") view=AiFeaturesPage/>
                    <Route path=path!("gitlab_duo/model_selection/features") view=AiFeaturesPage/>
                    <Route path=path!("gitlab_duo/model_selection/models") view=SelfHostedModelsPage/>
                    <Route path=path!("gitlab_duo/model_selection/models/new") view=NewModelPage/>
                    <Route path=path!("gitlab_duo/model_selection/models/:id/edit") view=EditModelPage/>
                </ParentRoute>
                // GitLab keeps a user's own settings outside the admin area, in the same shell.
                <ParentRoute path=path!("/-/user_settings") view=AdminShell ssr=SsrMode::Async>
                    <Route path=path!("personal_access_tokens") view=PersonalAccessTokensPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
