//! The audit trail: one function every change calls inside its own transaction (`ssr::record`),
//! and the `/admin/audit_events` page that lists events newest first.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::error::{AppError, FieldErrors};

pub const AUDIT_EVENTS_PER_PAGE: i64 = 20;
/// Pages past this are clamped to it: a huge `page` must not overflow the offset.
pub const MAX_PAGE: i64 = 1_000_000;
pub const DATE_INVALID: &str = "Enter a date as YYYY-MM-DD.";
pub const DATES_REVERSED: &str = "The end date is before the start date.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub actor_name: String,
    pub action: String,
    pub target_type: String,
    pub target_name: Option<String>,
    pub message: String,
    pub ip_address: Option<String>,
    /// What changed, setting by setting: "Endpoint: http://a → http://b", "API key replaced
    /// (…1a2b → …3c4d)". Secrets only ever appear as their fingerprints.
    #[serde(default)]
    pub changes: Vec<String>,
}

/// Which events to list: the audit page's GET parameters, so that a filtered page is a link
/// (and works without JavaScript). Blank means any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub author: String,
    pub action: String,
    /// The first day, `YYYY-MM-DD` (UTC), included.
    pub from: String,
    /// The last day, `YYYY-MM-DD` (UTC), included.
    pub to: String,
}

impl AuditFilter {
    /// The page's address with these filters, at `page`.
    pub fn link(&self, page: i64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("page", &page.to_string());
        for (name, value) in
            [("author", &self.author), ("action", &self.action), ("from", &self.from), ("to", &self.to)]
        {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        format!("/admin/audit_events?{}", query.finish())
    }

    /// The days as times: from the first day's start to the end of the last (UTC).
    pub fn bounds(&self) -> Result<Bounds, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut day = |field: &str, value: &str| {
            let value = value.trim();
            if value.is_empty() {
                return None;
            }
            match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
                Ok(day) => Some(day),
                Err(_) => {
                    errors.insert(field.to_owned(), DATE_INVALID.to_owned());
                    None
                }
            }
        };
        let (from, to) = (day("from", &self.from), day("to", &self.to));
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            errors.insert("to".to_owned(), DATES_REVERSED.to_owned());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let start = |day: chrono::NaiveDate| day.and_hms_opt(0, 0, 0).map(|time| time.and_utc());
        Ok((from.and_then(start), to.and_then(|day| day.succ_opt()).and_then(start)))
    }
}

/// From (included) and until (excluded), each if given.
pub type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl AuditFilter {
    /// The filter as the events are asked for.
    pub fn query(&self) -> Result<EventQuery, FieldErrors> {
        let (since, until) = self.bounds()?;
        let given = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        Ok(EventQuery { action: given(&self.action), actor: given(&self.author), since, until })
    }
}

/// Which events to list, as the page's filters and the JSON API ask: one action, one actor (in
/// any letter case), a time range. `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// An action such as `model_created`, exactly.
    pub action: Option<String>,
    pub actor: Option<String>,
    /// Events at or after this moment.
    pub since: Option<DateTime<Utc>>,
    /// Events before this moment.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditEventsPage {
    pub events: Vec<AuditEvent>,
    pub page: i64,
    pub has_next_page: bool,
    /// Every author and every action in the trail, for the filters.
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub actions: Vec<String>,
}

/// An action's key as words: `model_updated` reads "Model updated".
pub fn action_label(action: &str) -> String {
    let words = action.replace('_', " ");
    let mut chars = words.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[server(endpoint = "audit_events", input = GetUrl)]
pub async fn list_audit_events(
    page: i64,
    #[server(default)] author: String,
    #[server(default)] action: String,
    #[server(default)] from: String,
    #[server(default)] to: String,
) -> Result<AuditEventsPage, AppError> {
    ssr::list(page, AuditFilter { author, action, from, to }).await.map_err(AppError::respond)
}

#[component]
pub fn AuditEventsPage() -> impl IntoView {
    let query = use_query_map();
    let page = move || query.read().get("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).max(1);
    let filter = move || {
        let query = query.read();
        let get = |name: &str| query.get(name).unwrap_or_default();
        AuditFilter { author: get("author"), action: get("action"), from: get("from"), to: get("to") }
    };
    let events = crate::page_data::resource(
        move || (page(), filter()),
        |(page, filter)| list_audit_events(page, filter.author, filter.action, filter.from, filter.to),
    );

    view! {
        <Title text="Audit events"/>
        <h1 class="page-title">"Audit events"</h1>
        <p class="page-description">
            "Every change made in this console, and every sign-in attempt, newest first."
        </p>
        <Suspense fallback=|| view! { <p class="loading">"Loading audit events…"</p> }>
            {move || Suspend::new(async move {
                let filter = untrack(filter);
                match events.await {
                    Err(AppError::Validation(errors)) => view! {
                        <AuditFilters filter errors authors=Vec::new() actions=Vec::new()/>
                    }.into_any(),
                    Err(error) => view! { <div class="alert alert-danger">{error.to_string()}</div> }.into_any(),
                    Ok(listing) => view! { <AuditEventsTable listing filter/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// One day of the filters ("From", "To"), with its error under it.
#[component]
fn DayFilter(name: &'static str, label: &'static str, value: String, error: Option<String>) -> impl IntoView {
    let id = format!("audit-{name}");
    let error_id = format!("{id}-error");
    view! {
        <div class="form-group">
            <label for=id.clone()>{label}</label>
            <input
                id=id
                name=name
                type="date"
                class="form-control"
                value=value
                aria-invalid=error.is_some().to_string()
                aria-describedby=error.is_some().then(|| error_id.clone())
            />
            {error.map(|message| view! { <p class="invalid-feedback" id=error_id>{message}</p> })}
        </div>
    }
}

/// The filters: a plain GET form, so a filtered list is a link and works without JavaScript.
#[component]
fn AuditFilters(
    filter: AuditFilter,
    errors: FieldErrors,
    authors: Vec<String>,
    actions: Vec<String>,
) -> impl IntoView {
    let AuditFilter { author, action, from, to } = filter;
    // A filter value no longer in the trail stays chosen.
    let options = |known: Vec<String>, chosen: &str| {
        let mut known = known;
        if !chosen.is_empty() && !known.iter().any(|k| k == chosen) {
            known.push(chosen.to_owned());
        }
        known
    };
    let authors = options(authors, &author);
    let actions = options(actions, &action);
    let error = |field: &str| errors.get(field).cloned();
    let (from_error, to_error) = (error("from"), error("to"));
    view! {
        <form class="audit-filters" method="get" action="/admin/audit_events" role="search" aria-label="Filter audit events">
            <div class="form-group">
                <label for="audit-author">"Author"</label>
                <select id="audit-author" name="author" class="form-control">
                    <option value="" selected=author.is_empty()>"Any author"</option>
                    {authors.into_iter().map(|name| {
                        let selected = name == author;
                        let value = name.clone();
                        view! { <option value=value selected=selected>{name}</option> }
                    }).collect_view()}
                </select>
            </div>
            <div class="form-group">
                <label for="audit-action">"Action"</label>
                <select id="audit-action" name="action" class="form-control">
                    <option value="" selected=action.is_empty()>"Any action"</option>
                    {actions.into_iter().map(|key| {
                        let selected = key == action;
                        let label = action_label(&key);
                        view! { <option value=key selected=selected>{label}</option> }
                    }).collect_view()}
                </select>
            </div>
            <DayFilter name="from" label="From" value=from error=from_error/>
            <DayFilter name="to" label="To" value=to error=to_error/>
            <div class="audit-filter-actions">
                <button type="submit" class="btn btn-confirm">"Filter"</button>
                <a class="btn" href="/admin/audit_events">"Clear"</a>
            </div>
        </form>
    }
}

#[component]
fn AuditEventsTable(listing: AuditEventsPage, filter: AuditFilter) -> impl IntoView {
    let AuditEventsPage { events, page, has_next_page, authors, actions } = listing;
    let filtered = filter != AuditFilter::default();
    let filters = view! { <AuditFilters filter=filter.clone() errors=FieldErrors::new() authors actions/> };
    if events.is_empty() && page == 1 {
        let text = if filtered { "No audit events match these filters." } else { "No audit events yet." };
        return view! { {filters} <p class="empty-state">{text}</p> }.into_any();
    }
    view! {
        {filters}
        <table class="table audit-table" aria-label="Audit events">
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
                        let changes = (!event.changes.is_empty()).then(|| view! {
                            <ul class="audit-changes">
                                {event.changes.into_iter().map(|change| view! { <li>{change}</li> }).collect_view()}
                            </ul>
                        });
                        view! {
                            <tr>
                                <td>{event.actor_name}</td>
                                <td>{event.message}{changes}</td>
                                <td>{event.target_name.unwrap_or(event.target_type)}</td>
                                <td>{event.ip_address.unwrap_or_else(|| "--".to_owned())}</td>
                                <td>
                                    <time datetime=event.created_at.to_rfc3339()>
                                        {crate::when::absolute(event.created_at)}
                                    </time>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        <crate::layout::Pagination page has_next_page link=move |page| filter.link(page)/>
    }
    .into_any()
}

/// The settings an event's before and after may hold, with the names the forms give them.
const SETTING_LABELS: &[(&str, &str)] = &[
    ("name", "Deployment name"),
    ("platform", "Platform"),
    ("model_family", "Model family"),
    ("endpoint", "Endpoint"),
    ("identifier", "Model identifier"),
    ("ai_gateway_timeout_seconds", "AI Gateway request timeout"),
    ("ai_gateway_url", "Local AI Gateway URL"),
    ("duo_agent_platform_service_url", "Local URL for the GitLab Duo Agent Platform service"),
    ("model", "Model"),
];

/// What an event changed, one line per setting, from its recorded before and after: each
/// setting by its form's name with its old and new value, and the API key (only ever a
/// fingerprint) as added, replaced or removed.
pub fn describe_changes(
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Vec<String> {
    use serde_json::Value;
    let field = |state: Option<&Value>, key: &str| state.and_then(|state| state.get(key)).cloned();
    let shown = |value: &Option<Value>| match value {
        None | Some(Value::Null) => "(none)".to_owned(),
        Some(Value::String(text)) if text.is_empty() => "(none)".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    let mut lines = Vec::new();
    // Only a change of a record that existed before and after is a change "from ... to".
    if before.is_some() && after.is_some() {
        for (key, label) in SETTING_LABELS {
            let (old, new) = (field(before, key), field(after, key));
            if (old.is_some() || new.is_some()) && shown(&old) != shown(&new) {
                lines.push(format!("{label}: {} → {}", shown(&old), shown(&new)));
            }
        }
    }
    let fingerprint = |state: Option<&Value>| {
        field(state, "api_key_fingerprint").and_then(|value| value.as_str().map(str::to_owned))
    };
    match (fingerprint(before), fingerprint(after)) {
        (None, Some(new)) => lines.push(format!("API key added ({new})")),
        (Some(old), Some(new)) if old != new => lines.push(format!("API key replaced ({old} → {new})")),
        (Some(old), None) if after.is_some() => lines.push(format!("API key removed (was {old})")),
        _ => {}
    }
    lines
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use chrono::{DateTime, Utc};
    use serde_json::Value;
    use sqlx::PgExecutor;

    use super::{
        AUDIT_EVENTS_PER_PAGE, AuditEvent, AuditEventsPage, AuditFilter, EventQuery, describe_changes,
    };
    use crate::error::AppError;

    /// At most this many authors and actions are offered as filters.
    const FILTER_CHOICES: i64 = 200;

    /// The audit page's list: its filters' words checked first.
    pub async fn list(page: i64, filter: AuditFilter) -> Result<AuditEventsPage, AppError> {
        list_events(page, &filter.query().map_err(AppError::Validation)?).await
    }

    /// One page of the events that `query` picks, newest first: the page and the JSON API.
    pub async fn list_events(page: i64, query: &EventQuery) -> Result<AuditEventsPage, AppError> {
        crate::auth::ssr::current_user().await?;
        let pool = leptos::prelude::expect_context::<sqlx::PgPool>();
        let page = page.clamp(1, super::MAX_PAGE);
        // One extra row tells whether a next page exists without counting the whole table.
        let rows = sqlx::query!(
            r#"SELECT id, created_at AS "created_at: DateTime<Utc>", actor_name, action, target_type,
                      target_name, message, ip_address, before, after
               FROM audit_events
               WHERE ($3::text IS NULL OR lower(actor_name) = lower($3)) AND ($4::text IS NULL OR action = $4)
                 AND ($5::timestamptz IS NULL OR created_at >= $5)
                 AND ($6::timestamptz IS NULL OR created_at < $6)
               ORDER BY created_at DESC, id DESC
               LIMIT $1 OFFSET $2"#,
            AUDIT_EVENTS_PER_PAGE + 1,
            (page - 1) * AUDIT_EVENTS_PER_PAGE,
            query.actor.as_deref(),
            query.action.as_deref(),
            // Both time crates are in the build (sessions use `time`): say which this is.
            query.since as Option<DateTime<Utc>>,
            query.until as Option<DateTime<Utc>>,
        )
        .fetch_all(&pool)
        .await?;
        let has_next_page = rows.len() as i64 > AUDIT_EVENTS_PER_PAGE;
        let events = rows
            .into_iter()
            .take(AUDIT_EVENTS_PER_PAGE as usize)
            .map(|row| AuditEvent {
                changes: describe_changes(row.before.as_ref(), row.after.as_ref()),
                id: row.id,
                created_at: row.created_at,
                actor_name: row.actor_name,
                action: row.action,
                target_type: row.target_type,
                target_name: row.target_name,
                message: row.message,
                ip_address: row.ip_address,
            })
            .collect();
        let authors = sqlx::query_scalar!(
            "SELECT DISTINCT actor_name FROM audit_events ORDER BY actor_name LIMIT $1",
            FILTER_CHOICES
        )
        .fetch_all(&pool)
        .await?;
        let actions = sqlx::query_scalar!(
            "SELECT DISTINCT action FROM audit_events ORDER BY action LIMIT $1",
            FILTER_CHOICES
        )
        .fetch_all(&pool)
        .await?;
        Ok(AuditEventsPage { events, page, has_next_page, authors, actions })
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_name_each_setting_with_its_old_and_new_value_and_the_key_by_fingerprint() {
        let before =
            json!({"name": "Mixtral", "endpoint": "http://a/v1", "api_key_fingerprint": "sha256:aaaa"});
        let replaced =
            json!({"name": "Mixtral", "endpoint": "http://b/v1", "api_key_fingerprint": "sha256:bbbb"});
        assert_eq!(
            describe_changes(Some(&before), Some(&replaced)),
            ["Endpoint: http://a/v1 → http://b/v1", "API key replaced (sha256:aaaa → sha256:bbbb)"]
        );
        let removed = json!({"name": "Mixtral", "endpoint": "http://a/v1", "api_key_fingerprint": null});
        assert_eq!(describe_changes(Some(&before), Some(&removed)), ["API key removed (was sha256:aaaa)"]);
        let settings = json!({"ai_gateway_timeout_seconds": 60, "ai_gateway_url": null});
        let changed = json!({"ai_gateway_timeout_seconds": 120, "ai_gateway_url": "http://gw"});
        assert_eq!(
            describe_changes(Some(&settings), Some(&changed)),
            ["AI Gateway request timeout: 60 → 120", "Local AI Gateway URL: (none) → http://gw"]
        );
        // Created: no "from"; the key shows as added.
        assert_eq!(describe_changes(None, Some(&replaced)), ["API key added (sha256:bbbb)"]);
        // Destroyed: nothing "removed", the record went.
        assert!(describe_changes(Some(&before), None).is_empty());
    }

    #[test]
    fn a_filter_is_a_link_and_its_days_are_whole_days() {
        let filter =
            AuditFilter { author: "ada lovelace".into(), from: "2026-12-01".into(), ..Default::default() };
        assert_eq!(filter.link(2), "/admin/audit_events?page=2&author=ada+lovelace&from=2026-12-01");
        assert_eq!(AuditFilter::default().link(1), "/admin/audit_events?page=1");
        let day = AuditFilter { from: "2026-12-01".into(), to: "2026-12-01".into(), ..Default::default() };
        let (from, to) = day.bounds().unwrap();
        assert_eq!((to.unwrap() - from.unwrap()).num_hours(), 24);
        let bad = AuditFilter { from: "yesterday".into(), to: "2026-11-01".into(), ..Default::default() };
        assert_eq!(bad.bounds().unwrap_err().get("from").map(String::as_str), Some(DATE_INVALID));
        let reversed =
            AuditFilter { from: "2026-12-02".into(), to: "2026-12-01".into(), ..Default::default() };
        assert_eq!(reversed.bounds().unwrap_err().get("to").map(String::as_str), Some(DATES_REVERSED));
    }
}
