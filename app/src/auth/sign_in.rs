//! `/users/sign_in`: GitLab's sign-in form. It is a plain HTML form posted to the server
//! (`server/src/auth.rs`), so it works the same with JavaScript on or off, and the password
//! never passes through client-side state.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::error::UNAUTHORIZED_MESSAGE;

pub const INVALID_LOGIN_MESSAGE: &str = "Invalid login or password.";
pub const SIGNED_OUT_MESSAGE: &str = "Signed out successfully.";
pub const TOO_MANY_ATTEMPTS_MESSAGE: &str =
    "Too many failed sign-in attempts. Wait a few minutes, then try again.";

#[component]
pub fn SignInPage() -> impl IntoView {
    let query = use_query_map();
    let redirect_to = move || query.read().get("redirect_to").unwrap_or_default();
    let login = move || query.read().get("login").unwrap_or_default();
    let alert = move || {
        let query = query.read();
        match query.get("error").as_deref() {
            Some("invalid") => Some(("alert-danger", INVALID_LOGIN_MESSAGE)),
            Some("locked") => Some(("alert-danger", TOO_MANY_ATTEMPTS_MESSAGE)),
            _ if query.get("signed_out").is_some() => Some(("alert-info", SIGNED_OUT_MESSAGE)),
            _ if query.get("redirect_to").is_some() => Some(("alert-warning", UNAUTHORIZED_MESSAGE)),
            _ => None,
        }
    };

    view! {
        <Title text="Sign in"/>
        <main class="sign-in-page">
            <div class="sign-in-brand">
                <span class="brand-mark" aria-hidden="true"></span>
                <h1>"GitLab Duo Self-Hosted"</h1>
            </div>
            {move || {
                alert()
                    .map(|(class, text)| {
                        view! {
                            <div class=format!("alert {class}") role="alert">
                                {text}
                            </div>
                        }
                    })
            }}
            <form class="sign-in-box" method="post" action="/users/sign_in">
                <input type="hidden" name="redirect_to" value=redirect_to/>
                <div class="form-group">
                    <label for="user_login">"Username or primary email"</label>
                    <input
                        id="user_login"
                        name="login"
                        type="text"
                        class="form-control"
                        autocomplete="username"
                        autofocus
                        required
                        value=login
                    />
                </div>
                <div class="form-group">
                    <label for="user_password">"Password"</label>
                    <input
                        id="user_password"
                        name="password"
                        type="password"
                        class="form-control"
                        autocomplete="current-password"
                        required
                    />
                </div>
                <button type="submit" class="btn btn-confirm btn-block">
                    "Sign in"
                </button>
            </form>
        </main>
    }
}
