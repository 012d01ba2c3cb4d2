//! `/-/user_settings/personal_access_tokens` (GitLab's address), reached from the user menu's
//! "Access tokens": the signed-in user's own tokens for the JSON API. A new token is shown once,
//! right after it is created; the list shows when each was last used.

use leptos::prelude::*;
use leptos_meta::Title;

use super::api::{CreateToken, NEEDS_SCRIPT, RevokeToken, TokensPage, load_tokens};
use crate::error::AppError;
use crate::form_field::FormField;

#[component]
pub fn PersonalAccessTokensPage() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let tokens = crate::page_data::resource(
        move || (create.version().get(), revoke.version().get()),
        |_| load_tokens(),
    );
    view! {
        <Title text="Personal access tokens"/>
        <div class="page-heading">
            <h1 class="page-title">"Personal access tokens"</h1>
            <p class="page-description">
                "You can generate a personal access token for each application you use that needs access to the GitLab Duo Self-Hosted API (/api/v1)."
            </p>
        </div>
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
        {move || revoke.value().get().and_then(Result::err).map(|error| view! {
            <div class="alert alert-danger" role="alert">{error.to_string()}</div>
        })}
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match tokens.await {
                    Ok(page) => view! { <NewTokenForm page=page.clone() create/> <TokensTable page revoke/> }.into_any(),
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn NewTokenForm(page: TokensPage, create: ServerAction<CreateToken>) -> impl IntoView {
    let error_for = move |field: &'static str| {
        Signal::derive(move || match create.value().get() {
            Some(Err(AppError::Validation(errors))) => errors.get(field).cloned(),
            _ => None,
        })
    };
    let first_scope = page.scopes.first().copied();
    view! {
        <section class="settings-section">
            <h2>"Add a personal access token"</h2>
            <ActionForm action=create attr:class="token-form">
                <FormField id="token-name" label="Token name" error=error_for("name")
                    help=Signal::derive(|| "For example, the application using the token or the purpose of the token.".to_owned())>
                    <input id="token-name" name="name" type="text" class="form-control" maxlength="255" required/>
                </FormField>
                <FormField id="token-expires-at" label="Expiration date" error=error_for("expires_at")
                    help=Signal::derive(move || format!("At most one year from today; {} if left empty.", page.default_expiry))>
                    <input
                        id="token-expires-at"
                        name="expires_at"
                        type="date"
                        class="form-control"
                        value=page.default_expiry.to_string()
                        min=page.today.succ_opt().unwrap_or(page.today).to_string()
                        max=page.latest_expiry.to_string()
                    />
                </FormField>
                <fieldset class="form-group">
                    <legend>"Select scopes"</legend>
                    {page.scopes.iter().map(|scope| {
                        let id = format!("token-scope-{}", scope.key());
                        view! {
                            <div class="form-check">
                                <input id=id.clone() type="radio" name="scope" value=scope.key() checked=Some(*scope) == first_scope/>
                                <label for=id>{scope.key()}</label>
                                <p class="form-text">{scope.description()}</p>
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
            </ActionForm>
        </section>
    }
}

#[component]
fn TokensTable(page: TokensPage, revoke: ServerAction<RevokeToken>) -> impl IntoView {
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
                                <ActionForm action=revoke>
                                    <input type="hidden" name="id" value=token.id/>
                                    <button type="submit" class="btn btn-danger btn-sm" aria-label=format!("Revoke {}", token.name)>"Revoke"</button>
                                </ActionForm>
                            </td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
    .into_any()
}
