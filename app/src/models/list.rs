//! `/admin/gitlab_duo/self_hosted/models`: the "Self-hosted models" tab, with search, paging
//! and GitLab's two delete modals.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::ModelConfigurationHeader;
use super::api::{DeleteModel, ModelRow, ModelsPage, list_models};
use crate::chat::panel::{ChatPanel, ChatTarget};
use crate::modal::Modal;

pub const LOAD_ERROR: &str = "An error occurred while loading self-hosted models. Please try again.";
pub use super::{CREATED_NOTICE, SAVED_NOTICE};
pub const DELETED_NOTICE: &str = "Your self-hosted model was successfully deleted.";
pub const DELETE_ERROR: &str = "An error occurred while deleting your self-hosted model. Please try again.";

#[component]
pub fn SelfHostedModelsPage() -> impl IntoView {
    let query = use_query_map();
    let search = move || query.read().get("search").unwrap_or_default();
    let page = move || query.read().get("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).max(1);
    let delete = ServerAction::<DeleteModel>::new();
    // Re-read the list after each delete.
    let models = crate::page_data::resource(
        move || (search(), page(), delete.version().get()),
        |(s, p, _)| list_models(s, p),
    );
    let to_delete = RwSignal::new(None::<ModelRow>);
    let to_test = RwSignal::new(None::<ModelRow>);
    // The model whose "Test" opened the chat box: the list is read again when the box closes
    // (its last test changed), so focus goes back to that row's new "Test" button.
    let refocus = RwSignal::new(None::<i64>);

    view! {
        <Title text="Model configuration"/>
        <ModelConfigurationHeader active_tab="models"/>
        {move || match delete.value().get() {
            Some(Ok(())) => Some(view! { <div class="alert alert-success" role="status">{DELETED_NOTICE}</div> }.into_any()),
            // The server's reason when it gives one (a model that came into use meanwhile).
            Some(Err(crate::error::AppError::Conflict(message))) => Some(view! { <div class="alert alert-danger" role="alert">{message}</div> }.into_any()),
            Some(Err(_)) => Some(view! { <div class="alert alert-danger" role="alert">{DELETE_ERROR}</div> }.into_any()),
            None => None,
        }}
        <form class="search-bar" method="get" action="/admin/gitlab_duo/self_hosted/models" role="search">
            <input
                type="search"
                name="search"
                class="form-control"
                placeholder="Search by name or model identifier"
                aria-label="Search self-hosted models"
                value=search
            />
            <button type="submit" class="btn">"Search"</button>
        </form>
        <super::test_all::TestAll of=super::test_all::TestAllOf::Models on_done=Callback::new(move |_| models.refetch())/>
        <Suspense fallback=|| view! { <p class="loading">"Loading self-hosted models…"</p> }>
            {move || Suspend::new(async move {
                match models.await {
                    Err(_) => view! { <div class="alert alert-danger" role="alert">{LOAD_ERROR}</div> }.into_any(),
                    Ok(listing) => view! { <ModelsTable listing search=search() to_delete to_test refocus/> }.into_any(),
                }
            })}
        </Suspense>
        <DeleteModal to_delete delete/>
        {move || to_test.get().map(|model| view! {
            <ChatPanel target=ChatTarget::Model(model.id.0) title=format!("Test {}", model.name) on_close=Callback::new(move |_| {
                refocus.set(Some(model.id.0));
                to_test.set(None);
                models.refetch();
            })/>
        })}
    }
}

#[component]
fn ModelsTable(
    listing: ModelsPage,
    search: String,
    to_delete: RwSignal<Option<ModelRow>>,
    to_test: RwSignal<Option<ModelRow>>,
    refocus: RwSignal<Option<i64>>,
) -> impl IntoView {
    let ModelsPage { models, page, has_next_page, beta_enabled, now, console_region } = listing;
    // "Test" and "Delete" open the bundle's dialogs: usable once the page is hydrated.
    let hydrated = crate::hydration::use_hydrated();
    Effect::new(move |_| {
        if let Some(id) = refocus.get_untracked() {
            refocus.set(None);
            // After this frame, once the new table is in the document.
            request_animation_frame(move || {
                let selector = format!("button[data-test-model='{id}']");
                if let Ok(Some(button)) = leptos::prelude::document().query_selector(&selector) {
                    use leptos::wasm_bindgen::JsCast;
                    if let Ok(button) = button.dyn_into::<leptos::web_sys::HtmlElement>() {
                        let _ = button.focus();
                    }
                }
            });
        }
    });
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
                        let row = model.clone();
                        let test_row = model.clone();
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
                                <td class="last-test">{last_test}</td>
                                <td class="actions">
                                    <button type="button" class="btn btn-sm" data-test-model=model.id.0 disabled=move || !hydrated.get() on:click=move |_| to_test.set(Some(test_row.clone()))>
                                        "Test"
                                    </button>
                                    <a class="btn btn-sm" href=edit_href>"Edit"</a>
                                    <button
                                        type="button"
                                        class="btn btn-sm btn-danger-secondary"
                                        disabled=move || !hydrated.get()
                                        on:click=move |_| to_delete.set(Some(row.clone()))
                                    >
                                        "Delete"
                                    </button>
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

/// GitLab's two modals: "cannot be deleted" while a feature uses the model, else the
/// confirmation. The server refuses an in-use model whatever this shows.
#[component]
fn DeleteModal(to_delete: RwSignal<Option<ModelRow>>, delete: ServerAction<DeleteModel>) -> impl IntoView {
    let close = move || to_delete.set(None);
    let on_close = Callback::new(move |_| close());
    move || {
        to_delete.get().map(|model| {
            let name = model.name.clone();
            if model.used_by.is_empty() {
                let id = model.id.0;
                view! {
                    <Modal labelled_by="delete-title" on_close>
                            <h2 id="delete-title">"Delete self-hosted model"</h2>
                            <p>"You are about to delete the " <strong>{name}</strong> " self-hosted model. This action cannot be undone."</p>
                            <p>"Are you sure you want to proceed?"</p>
                            <div class="modal-footer">
                                <button type="button" class="btn" on:click=move |_| close()>"Cancel"</button>
                                <button
                                    type="button"
                                    class="btn btn-danger"
                                    on:click=move |_| {
                                        delete.dispatch(DeleteModel { id });
                                        close();
                                    }
                                >
                                    "Delete"
                                </button>
                            </div>
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
                            <ul>{model.used_by.into_iter().map(|feature| view! { <li>{feature}</li> }).collect_view()}</ul>
                            <p>"Once the model is no longer in use, you can return here to delete it."</p>
                            <div class="modal-footer">
                                <button type="button" class="btn" on:click=move |_| close()>"Cancel"</button>
                                <a class="btn btn-confirm" href="/admin/gitlab_duo/self_hosted/features">"View AI-native features"</a>
                            </div>
                    </Modal>
                }
                .into_any()
            }
        })
    }
}
