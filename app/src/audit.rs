//! The audit trail: one function every change calls inside its own transaction (`ssr::record`),
//! and the `/admin/audit_events` page that lists events newest first.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

pub const AUDIT_EVENTS_PER_PAGE: i64 = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub actor_name: String,
    pub action: String,
    pub target_type: String,
    pub target_name: Option<String>,
    pub message: String,
    pub ip_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEventsPage {
    pub events: Vec<AuditEvent>,
    pub page: i64,
    pub has_next_page: bool,
}

#[server(endpoint = "audit_events", input = GetUrl)]
pub async fn list_audit_events(page: i64) -> Result<AuditEventsPage, AppError> {
    crate::auth::ssr::current_user().await?;
    let pool = expect_context::<sqlx::PgPool>();
    let page = page.max(1);
    // One extra row tells whether a next page exists without counting the whole table.
    let mut events = sqlx::query_as!(
        AuditEvent,
        r#"SELECT id, created_at AS "created_at: DateTime<Utc>", actor_name, action, target_type, target_name, message, ip_address
           FROM audit_events
           ORDER BY created_at DESC, id DESC
           LIMIT $1 OFFSET $2"#,
        AUDIT_EVENTS_PER_PAGE + 1,
        (page - 1) * AUDIT_EVENTS_PER_PAGE,
    )
    .fetch_all(&pool)
    .await?;
    let has_next_page = events.len() as i64 > AUDIT_EVENTS_PER_PAGE;
    events.truncate(AUDIT_EVENTS_PER_PAGE as usize);
    Ok(AuditEventsPage { events, page, has_next_page })
}

#[component]
pub fn AuditEventsPage() -> impl IntoView {
    let query = use_query_map();
    let page = move || query.read().get("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).max(1);
    let events = Resource::new(page, list_audit_events);

    view! {
        <Title text="Audit events"/>
        <h1 class="page-title">"Audit events"</h1>
        <p class="page-description">
            "Every change made in this console, and every sign-in attempt, newest first."
        </p>
        <Suspense fallback=|| view! { <p class="loading">"Loading audit events…"</p> }>
            {move || Suspend::new(async move {
                match events.await {
                    Err(error) => view! { <div class="alert alert-danger">{error.to_string()}</div> }.into_any(),
                    Ok(listing) => view! { <AuditEventsTable listing/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn AuditEventsTable(listing: AuditEventsPage) -> impl IntoView {
    let AuditEventsPage { events, page, has_next_page } = listing;
    if events.is_empty() && page == 1 {
        return view! { <p class="empty-state">"No audit events yet."</p> }.into_any();
    }
    view! {
        <table class="table">
            <thead>
                <tr>
                    <th scope="col">"Author"</th>
                    <th scope="col">"Action"</th>
                    <th scope="col">"Target"</th>
                    <th scope="col">"IP address"</th>
                    <th scope="col">"Date"</th>
                </tr>
            </thead>
            <tbody>
                {events
                    .into_iter()
                    .map(|event| {
                        view! {
                            <tr>
                                <td>{event.actor_name}</td>
                                <td>{event.message}</td>
                                <td>{event.target_name.unwrap_or(event.target_type)}</td>
                                <td>{event.ip_address.unwrap_or_else(|| "--".to_owned())}</td>
                                <td>
                                    <time datetime=event.created_at.to_rfc3339()>
                                        {event.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()}
                                    </time>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        <crate::layout::Pagination page has_next_page link=|page| format!("/admin/audit_events?page={page}")/>
    }
    .into_any()
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use serde_json::Value;
    use sqlx::PgExecutor;

    /// The address of the client a request came from, decided once per request by the server
    /// (the peer's address, or behind a trusted proxy the one it forwarded), for audit events
    /// and sign-in throttling alike.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ClientAddress(pub Option<String>);

    /// Who did it: a signed-in user, or (for failed sign-ins and start-up) a name alone.
    pub struct Actor {
        pub id: Option<i64>,
        pub name: String,
        pub ip_address: Option<String>,
    }

    impl Actor {
        /// Start-up, the command line: no user, no address.
        pub fn system(name: &str) -> Actor {
            Actor { id: None, name: name.to_owned(), ip_address: None }
        }

        /// The signed-in user of the request being served, with the client's address.
        pub async fn signed_in(user: &crate::auth::CurrentUser) -> Actor {
            let address = leptos_axum::extract::<axum::Extension<ClientAddress>>().await.ok();
            Actor {
                id: Some(user.id.0),
                name: user.username.clone(),
                ip_address: address.and_then(|axum::Extension(ClientAddress(address))| address),
            }
        }
    }

    /// One audit event. `before` and `after` hold the record's state around the change, with
    /// every secret already reduced to its fingerprint by the caller's own types.
    pub struct NewAuditEvent<'a> {
        pub action: &'a str,
        pub target_type: &'a str,
        pub target_id: Option<String>,
        pub target_name: Option<&'a str>,
        pub message: String,
        pub before: Option<Value>,
        pub after: Option<Value>,
    }

    /// Records an event. Pass the transaction of the change itself, so that the change and its
    /// audit event are saved together or not at all.
    pub async fn record(
        executor: impl PgExecutor<'_>,
        actor: &Actor,
        event: NewAuditEvent<'_>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query!(
            r#"INSERT INTO audit_events
                 (actor_id, actor_name, action, target_type, target_id, target_name, message,
                  before, after, ip_address)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
            actor.id,
            &actor.name,
            event.action,
            event.target_type,
            event.target_id,
            event.target_name,
            event.message,
            event.before,
            event.after,
            actor.ip_address.as_deref(),
        )
        .execute(executor)
        .await?;
        Ok(())
    }
}
