//! `/admin/gitlab_duo/self_hosted/models`: the "Self-hosted models" tab, with search, paging
//! and GitLab's two delete modals. Drawn on the server; each row's "Test" and "Delete", and
//! "Test all", are islands.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use leptos::server_fn::ServerFn;

use super::ModelConfigurationHeader;
use super::api::{DeleteModel as DeleteModelCall, ModelsPage, list_models};
use super::test_all::{TestAll, TestAllOf};
use crate::chat::panel::{ChatTarget, TestButton};
use crate::flash::FlashAlert;
use crate::modal::Modal;

pub const LOAD_ERROR: &str = "An error occurred while loading self-hosted models. Please try again.";
pub use super::api::{DELETE_ERROR, DELETED_NOTICE};
pub use super::{CREATED_NOTICE, SAVED_NOTICE};

#[component]
pub fn SelfHostedModelsPage() -> impl IntoView {
    let query = use_query_map();
    let search = query.read_untracked().get("search").unwrap_or_default();
    let page = query.read_untracked().get("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).max(1);
    let models = crate::page_data::once(list_models(search.clone(), page));
    let flash = crate::page_data::once(crate::flash::take_for_page());
    let search_value = search.clone();
    view! {
        <Title text="Model configuration"/>
        <ModelConfigurationHeader active_tab="models"/>
        <Suspense fallback=|| ()>{move || Suspend::new(async move { view! { <FlashAlert flash=flash.await/> } })}</Suspense>
        <form class="search-bar" method="get" action="/admin/gitlab_duo/self_hosted/models" role="search">
            <input
                type="search"
                name="search"
                class="form-control"
                placeholder="Search by name or model identifier"
                aria-label="Search self-hosted models"
                value=search_value
            />
            <button type="submit" class="btn">"Search"</button>
        </form>
        // Its outcomes change the "Last test" cells: they are read again when it ends.
        <TestAll of=TestAllOf::Models/>
        <Suspense fallback=|| view! { <p class="loading">"Loading self-hosted models…"</p> }>
            {move || {
                let search = search.clone();
                Suspend::new(async move {
                    match models.await {
                        Err(_) => view! { <div class="alert alert-danger" role="alert">{LOAD_ERROR}</div> }.into_any(),
                        Ok(listing) => view! { <ModelsTable listing search/> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn ModelsTable(listing: ModelsPage, search: String) -> impl IntoView {
    let ModelsPage { models, page, has_next_page, beta_enabled, now, console_region } = listing;
    if models.is_empty() && page == 1 {
        if search.trim().is_empty() {
            // GitLab's empty state, its middle words a link to the form.
            return view! {
                <p class="empty-state">
                    "No self-hosted models yet. "
                    <a href="/admin/gitlab_duo/self_hosted/models/new">"Add a self-hosted model"</a>
                    " and select it for a feature to start using it."
                </p>
            }
            .into_any();
        }
        let text = format!("No self-hosted models match \"{}\".", search.trim());
        return view! { <p class="empty-state">{text}</p> }.into_any();
    }
    let page_link = move |page: i64| {
        let mut href = format!("/admin/gitlab_duo/self_hosted/models?page={page}");
        if !search.is_empty() {
            href.push_str("&search=");
            href.push_str(&form_urlencoded::byte_serialize(search.as_bytes()).collect::<String>());
        }
        href
    };
    view! {
        <table class="table" aria-label="Self-hosted models">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Model family"</th>
                    <th scope="col">"Endpoint"</th>
                    <th scope="col">"Model identifier"</th>
                    <th scope="col">"API token"</th>
                    <th scope="col">"Last test"</th>
                    <th scope="col"><span class="sr-only">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {models
                    .into_iter()
                    .map(|model| {
                        let hidden_beta = !beta_enabled && model.family_release.needs_beta();
                        let endpoint = match model.platform.uses_endpoint() {
                            false => "--".to_owned(),
                            true => model.endpoint.clone().unwrap_or_else(|| "--".to_owned()),
                        };
                        // GitLab shows `--` for a platform without an endpoint; the region says
                        // where a Bedrock model runs instead, the project and location where a
                        // Vertex AI model does.
                        let region = model.platform.uses_region().then(|| match &model.bedrock_region {
                            Some(region) => format!("Region: {region}"),
                            None => format!("Region: {console_region} (the console's)"),
                        });
                        let region = region.or_else(|| {
                            model.platform.uses_google_project().then(|| {
                                format!(
                                    "Project: {}, location: {}",
                                    model.vertex_project.as_deref().unwrap_or("--"),
                                    model.vertex_location.as_deref().unwrap_or("--")
                                )
                            })
                        });
                        let edit_href = format!("/admin/gitlab_duo/self_hosted/models/{}/edit", model.id.0);
                        // When it ran (the exact time on hover) and, for a failure, why, in the cell.
                        let last_test = model.last_test.clone().map(|test| {
                            let text = if test.ok {
                                format!("OK · {} ms", test.figures.total_ms)
                            } else {
                                "Failed".to_owned()
                            };
                            let class = if test.ok { "badge badge-success" } else { "badge badge-danger" };
                            view! {
                                <span class=class>{text}</span>" "
                                <time datetime=test.at.to_rfc3339() title=crate::when::absolute(test.at)>
                                    {crate::when::ago(test.at, now)}
                                </time>
                                {(!test.ok).then(|| view! { <p class="last-test-reason">{test.message}</p> })}
                            }
                        });
                        view! {
                            <tr data-model-name=model.name.clone()>
                                <td class="model-name">
                                    <a href=format!("/admin/gitlab_duo/self_hosted/models/{}", model.id.0) title="Test history">{model.name.clone()}</a>
                                </td>
                                <td>
                                    {model.family_name.clone()}
                                    {model.family_release.badge().map(|badge| view! { <span class="badge badge-neutral">{badge}</span> })}
                                    {hidden_beta.then(|| view! {
                                        <div class="form-text">"In use by a feature; beta models are turned off, so it cannot be chosen for new features."</div>
                                    })}
                                </td>
                                <td class="endpoint">
                                    {endpoint}
                                    {region.map(|region| view! { <div class="form-text model-region">{region}</div> })}
                                </td>
                                <td><code>{model.identifier.clone()}</code></td>
                                <td>
                                    {model.has_api_key.then(|| view! {
                                        <span class="check" role="img" aria-label="Model uses an API token">"✓"</span>
                                    })}
                                </td>
                                // Read again after a test or "Test all" (`refresh.rs`).
                                <td class="last-test" data-refresh=format!("last-test-{}", model.id.0)>{last_test}</td>
                                <td class="actions">
                                    <div class="row-actions">
                                        <TestButton target=ChatTarget::Model(model.id.0) title=model.name.clone()/>
                                        <a class="btn btn-sm" href=edit_href>"Edit"</a>
                                        <DeleteModel id=model.id.0 name=model.name.clone() used_by=model.used_by.clone()/>
                                    </div>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        <crate::layout::Pagination page has_next_page link=page_link/>
    }
    .into_any()
}

/// The island of a row's "Delete": the button, usable once hydrated, and GitLab's two modals:
/// "cannot be deleted" while a feature uses the model, else the confirmation, whose "Delete"
/// posts a plain form (the list comes back without the model, with a notice). The server
/// refuses an in-use model whatever this shows.
#[island]
fn DeleteModel(id: i64, name: String, used_by: Vec<String>) -> impl IntoView {
    crate::hydration::provide_hydration();
    let hydrated = crate::hydration::use_hydrated();
    let open = RwSignal::new(false);
    let on_close = Callback::new(move |_| open.set(false));
    let modal = move || {
        let name = name.clone();
        if used_by.is_empty() {
            view! {
                <Modal labelled_by="delete-title" on_close>
                    <h2 id="delete-title">"Delete self-hosted model"</h2>
                    <p>"You are about to delete the " <strong>{name}</strong> " self-hosted model. This action cannot be undone."</p>
                    <p>"Are you sure you want to proceed?"</p>
                    <form method="post" action=DeleteModelCall::url() class="modal-footer">
                        <input type="hidden" name="id" value=id.to_string()/>
                        <button type="button" class="btn" on:click=move |_| open.set(false)>"Cancel"</button>
                        <button type="submit" class="btn btn-danger">"Delete"</button>
                    </form>
                </Modal>
            }
            .into_any()
        } else {
            view! {
                <Modal labelled_by="delete-title" on_close>
                    <h2 id="delete-title">"This self-hosted model cannot be deleted"</h2>
                    <p>
                        "To remove " <strong>{name}</strong>
                        ", you must first remove it from the following AI Feature(s):"
                    </p>
                    <ul>{used_by.iter().map(|feature| view! { <li>{feature.clone()}</li> }).collect_view()}</ul>
                    <p>"Once the model is no longer in use, you can return here to delete it."</p>
                    <div class="modal-footer">
                        <button type="button" class="btn" on:click=move |_| open.set(false)>"Cancel"</button>
                        <a class="btn btn-confirm" href="/admin/gitlab_duo/self_hosted/features">"View AI-native features"</a>
                    </div>
                </Modal>
            }
            .into_any()
        }
    };
    view! {
        <button
            type="button"
            class="btn btn-sm btn-danger-secondary"
            disabled=move || !hydrated.get()
            on:click=move |_| open.set(true)
        >
            "Delete"
        </button>
        {move || open.get().then(modal.clone())}
    }
}
