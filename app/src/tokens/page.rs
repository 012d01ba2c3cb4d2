//! `/-/user_settings/personal_access_tokens` (GitLab's address), reached from the user menu's
//! "Access tokens": the signed-in user's own tokens for the JSON API. A new token is shown once,
//! right after it is created; the list shows when each was last used.

use leptos::prelude::*;
use leptos_meta::Title;

use leptos::server_fn::ServerFn;

use super::api::{CreateToken, NEEDS_SCRIPT, RevokeToken, TokensPage, create_token, load_tokens};
use super::domain::TokenForm;
use crate::error::AppError;
use crate::flash::FlashAlert;
use crate::form_field::FormField;

#[component]
pub fn PersonalAccessTokensPage() -> impl IntoView {
    let tokens = crate::page_data::once(load_tokens());
    let flash = crate::page_data::once(crate::flash::take_for_page());
    view! {
        <Title text="Personal access tokens"/>
        <h1 class="page-title">"Personal access tokens"</h1>
        <p class="page-description">
            "You can generate a personal access token for each application you use that needs access to the GitLab Duo Self-Hosted API (/api/v1)."
        </p>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                match tokens.await {
                    Ok(page) => {
                        let scopes = page.scopes.iter().map(|scope| (scope.key().to_owned(), scope.description().to_owned())).collect();
                        view! {
                            <FlashAlert flash/>
                            <NewTokenForm
                                scopes
                                default_expiry=page.default_expiry.to_string()
                                earliest_expiry=page.today.succ_opt().unwrap_or(page.today).to_string()
                                latest_expiry=page.latest_expiry.to_string()
                            />
                            // Read again once a token is created (`refresh.rs`).
                            <div data-refresh="tokens"><TokensTable page/></div>
                        }
                        .into_any()
                    }
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The island: the new token's form. A token is created in the page, not by a plain post: it is
/// shown once, in the answer, and never stored (without JavaScript nothing is created, and the
/// form says why). The list below is read again after it.
#[island]
fn NewTokenForm(
    /// Each scope this user may choose: its key and what it allows.
    scopes: Vec<(String, String)>,
    default_expiry: String,
    earliest_expiry: String,
    latest_expiry: String,
) -> impl IntoView {
    let create = crate::hydration::Call::new();
    let form_ref = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if create.value().with(|created| matches!(created, Some(Ok(_)))) {
            if let Some(form) = form_ref.get_untracked() {
                form.reset();
            }
            crate::refresh::refresh_page_parts();
        }
    });
    let error_for = move |field: &'static str| {
        Signal::derive(move || match create.value().get() {
            Some(Err(AppError::Validation(errors))) => errors.get(field).cloned(),
            _ => None,
        })
    };
    let on_submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let Some(form) = form_ref.get_untracked() else { return };
        let Ok(data) = leptos::web_sys::FormData::new_with_form(&form) else { return };
        let field = |name: &str| data.get(name).as_string().unwrap_or_default();
        create.run(create_token(TokenForm {
            name: field("name"),
            scope: field("scope"),
            expires_at: field("expires_at"),
        }));
    };
    let first_scope = scopes.first().map(|(key, _)| key.clone());
    let expiry_help = format!("At most one year from today; {default_expiry} if left empty.");
    view! {
        {move || match create.value().get() {
            Some(Ok(created)) => Some(view! {
                <div class="alert alert-success new-token" role="status">
                    <label for="created-token">"Your new personal access token"</label>
                    <input id="created-token" class="form-control" type="text" readonly value=created.token data-testid="created-token"/>
                    <p class="form-text">"Make sure you save it - you won't be able to access it again."</p>
                </div>
            }.into_any()),
            Some(Err(AppError::Validation(_))) | None => None,
            Some(Err(error)) => Some(view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any()),
        }}
        <section class="settings-section">
            <h2>"Add a personal access token"</h2>
            <form method="post" action=CreateToken::url() class="token-form" node_ref=form_ref on:submit=on_submit>
                <FormField id="token-name" label="Token name" error=error_for("name")
                    help=Signal::derive(|| "For example, the application using the token or the purpose of the token.".to_owned())>
                    <input id="token-name" name="name" type="text" class="form-control" maxlength="255" required/>
                </FormField>
                <FormField id="token-expires-at" label="Expiration date" error=error_for("expires_at")
                    help=Signal::derive(move || expiry_help.clone())>
                    <input
                        id="token-expires-at"
                        name="expires_at"
                        type="date"
                        class="form-control"
                        value=default_expiry
                        min=earliest_expiry
                        max=latest_expiry
                    />
                </FormField>
                <fieldset class="form-group">
                    <legend>"Select scopes"</legend>
                    {scopes.into_iter().map(|(key, description)| {
                        let id = format!("token-scope-{key}");
                        let checked = Some(&key) == first_scope.as_ref();
                        view! {
                            <div class="form-check">
                                <input id=id.clone() type="radio" name="scope" value=key.clone() checked=checked/>
                                <label for=id>{key}</label>
                                <p class="form-text">{description}</p>
                            </div>
                        }
                    }).collect_view()}
                    {move || error_for("scope").get().map(|message| view! { <p class="invalid-feedback" role="alert">{message}</p> })}
                </fieldset>
                <div class="form-actions">
                    <button type="submit" class="btn btn-confirm" disabled=move || create.pending().get()>"Create token"</button>
                </div>
                // A plain text, not <noscript>: hydration cannot walk into a noscript's content.
                <p class="form-text">{NEEDS_SCRIPT}</p>
            </form>
        </section>
    }
}

/// The list, each token with "Revoke", a plain form: the page comes back without it.
#[component]
fn TokensTable(page: TokensPage) -> impl IntoView {
    if page.tokens.is_empty() {
        return view! { <p class="empty-state">"This user has no active personal access tokens."</p> }
            .into_any();
    }
    let day = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d").to_string();
    view! {
        <section class="settings-section">
            <h2>{format!("Active personal access tokens ({})", page.tokens.len())}</h2>
            <table class="table">
                <thead>
                    <tr>
                        <th scope="col">"Token name"</th>
                        <th scope="col">"Scopes"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Last Used"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col">"Action"</th>
                    </tr>
                </thead>
                <tbody>
                    {page.tokens.into_iter().map(|token| view! {
                        <tr>
                            <td data-label="Token name">{token.name.clone()}</td>
                            <td data-label="Scopes">{token.scope.key()}</td>
                            <td data-label="Created">{day(token.created_at)}</td>
                            <td data-label="Last Used">
                                {token.last_used_at.map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "Never".to_owned())}
                            </td>
                            <td data-label="Expires">{day(token.expires_at)}</td>
                            <td data-label="Action">
                                <form method="post" action=RevokeToken::url()>
                                    <input type="hidden" name="id" value=token.id/>
                                    <button type="submit" class="btn btn-danger btn-sm" aria-label=format!("Revoke {}", token.name)>"Revoke"</button>
                                </form>
                            </td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
    .into_any()
}
