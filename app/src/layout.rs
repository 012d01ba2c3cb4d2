//! The admin area's chrome, as on GitLab: a top bar with the signed-in user and "Sign out", and
//! a sidebar whose "GitLab Duo" group leads to Configuration and Model configuration.

use leptos::prelude::*;
use leptos_router::components::Outlet;
use leptos_router::hooks::use_location;

use crate::auth::fetch_current_user;

#[component]
pub fn AdminShell() -> impl IntoView {
    let user = crate::page_data::once(fetch_current_user());
    view! {
        <div class="layout">
            <header class="top-bar">
                <a class="brand" href="/admin">
                    <span class="brand-mark" aria-hidden="true"></span>
                    "GitLab Duo Self-Hosted"
                </a>
                <Suspense>
                    {move || Suspend::new(async move {
                        user.await.ok().map(|user| view! {
                            <div class="user-menu">
                                <span class="user-name" data-testid="current-user">
                                    {user.username.clone()}
                                    <span class="user-role">{user.role.label()}</span>
                                </span>
                                <a class="btn btn-default btn-sm" href=crate::tokens::domain::PAGE_PATH>"Access tokens"</a>
                                <form method="post" action="/users/sign_out">
                                    <button type="submit" class="btn btn-default btn-sm">"Sign out"</button>
                                </form>
                            </div>
                        })
                    })}
                </Suspense>
            </header>
            <aside class="sidebar">
                <nav aria-label="Admin area">
                    <div class="sidebar-title">"Admin area"</div>
                    <SidebarLink href="/admin" label="Overview"/>
                    <div class="sidebar-group">"GitLab Duo"</div>
                    <SidebarLink href="/admin/gitlab_duo/configuration" label="Configuration"/>
                    <SidebarLink href="/admin/gitlab_duo/self_hosted" label="Model configuration"/>
                    <div class="sidebar-group">"Monitoring"</div>
                    <SidebarLink href="/admin/audit_events" label="Audit events"/>
                </nav>
            </aside>
            <main class="content" id="content-body">
                <Outlet/>
            </main>
        </div>
    }
}

/// A plain link: every page is loaded whole from the server. The current section's link is
/// marked for the eye and for assistive technology.
#[component]
fn SidebarLink(href: &'static str, label: &'static str) -> impl IntoView {
    let path = use_location().pathname.get_untracked();
    // A section stays highlighted on its sub-pages; "Overview" only on itself.
    let active = if href == "/admin" { path == href } else { path.starts_with(href) };
    view! {
        <a
            href=href
            class=if active { "sidebar-link active" } else { "sidebar-link" }
            aria-current=if path == href { Some("page") } else { active.then_some("true") }
        >
            {label}
        </a>
    }
}

/// Shown for any address that matches no page, with a 404 status.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <leptos_meta::Title text="Page not found"/>
        <main class="not-found">
            <h1>"404: Page not found"</h1>
            <p>"Make sure the address is correct and the page has not moved."</p>
            <a class="btn btn-confirm" href="/admin">"Go to the Admin area"</a>
        </main>
    }
}

/// "Prev", the page number and "Next" under a paged list; `link` gives a page's address.
#[component]
pub fn Pagination(page: i64, has_next_page: bool, link: impl Fn(i64) -> String + 'static) -> impl IntoView {
    view! {
        <nav class="pagination" aria-label="Pagination">
            {(page > 1).then(|| view! { <a class="btn" href=link(page - 1)>"Prev"</a> })}
            <span class="page-number">{format!("Page {page}")}</span>
            {has_next_page.then(|| view! { <a class="btn" href=link(page + 1)>"Next"</a> })}
        </nav>
    }
}
