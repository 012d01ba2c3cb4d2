//! `/admin/gitlab_duo/configuration`: GitLab Duo's instance settings. Beta models and features
//! (turning them on records the admin's acceptance of the testing agreement), the AI Gateway
//! request timeout and URL, the Agent Platform service address, and a gateway health check.

use leptos::prelude::*;
use leptos_meta::Title;

use super::api::{InstanceSettings, RunHealthCheck, SaveConfiguration, load_configuration};
use crate::error::{AppError, FieldErrors};
use crate::form_field::FormField;

pub const SAVED: &str = "Application settings saved successfully.";
pub const SAVE_FAILED: &str = "An error occurred while updating your settings. Reload the page to try again.";

#[component]
pub fn ConfigurationPage() -> impl IntoView {
    let save = ServerAction::<SaveConfiguration>::new();
    // Read the settings again only after a save that succeeded: a refused one keeps what the
    // admin typed on screen, beside its errors.
    let saved = RwSignal::new(0u32);
    Effect::new(move |_| {
        if matches!(save.value().get(), Some(Ok(()))) {
            saved.update(|count| *count += 1);
        }
    });
    let settings = Resource::new(move || saved.get(), |_| load_configuration());
    view! {
        <Title text="Configuration"/>
        <div class="page-heading">
            <h1 class="page-title">"Configuration"</h1>
            <p class="page-description">"Configure AI-native GitLab Duo features."</p>
        </div>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match settings.await {
                    Ok(settings) => view! { <ConfigurationForm settings save/> }.into_any(),
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ConfigurationForm(settings: InstanceSettings, save: ServerAction<SaveConfiguration>) -> impl IntoView {
    let beta = RwSignal::new(settings.beta_enabled);
    let timeout = RwSignal::new(settings.ai_gateway_timeout_seconds.to_string());
    let gateway = RwSignal::new(settings.ai_gateway_url.clone().unwrap_or_default());
    let agent = RwSignal::new(settings.duo_agent_platform_service_url.clone().unwrap_or_default());
    let initial =
        (beta.get_untracked(), timeout.get_untracked(), gateway.get_untracked(), agent.get_untracked());
    let changed = {
        let initial = initial.clone();
        move || (beta.get(), timeout.get(), gateway.get(), agent.get()) != initial
    };
    // Before hydration (or with JavaScript off) the button stays usable: only the browser can
    // tell whether something changed.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let errors = move || match save.value().get() {
        Some(Err(AppError::Validation(errors))) => errors,
        _ => FieldErrors::new(),
    };
    // The timeout is checked as it is typed (the rule the server applies); the URLs on save.
    let timeout_error = move || super::rules::parse_timeout(&timeout.get()).err().map(str::to_owned);
    let error_for = move |field: &'static str| {
        Signal::derive(move || {
            let typed =
                (field == "ai_gateway_timeout_seconds" && hydrated.get()).then(timeout_error).flatten();
            typed.or_else(|| errors().get(field).cloned())
        })
    };
    // After a refused save, focus goes to the first field in error.
    Effect::new(move |_| {
        if matches!(save.value().get(), Some(Err(AppError::Validation(_)))) {
            request_animation_frame(|| {
                use leptos::wasm_bindgen::JsCast;
                if let Some(field) = leptos::prelude::document()
                    .query_selector(".settings-form [aria-invalid='true']")
                    .ok()
                    .flatten()
                    .and_then(|field| field.dyn_into::<leptos::web_sys::HtmlElement>().ok())
                {
                    let _ = field.focus();
                }
            });
        }
    });
    let health = ServerAction::<RunHealthCheck>::new();
    let (initial_timeout, initial_gateway, initial_agent) =
        (initial.1.clone(), initial.2.clone(), initial.3.clone());

    view! {
        {move || match save.value().get() {
            Some(Ok(())) => Some(view! { <div class="alert alert-success" role="status">{SAVED}</div> }.into_any()),
            Some(Err(AppError::Validation(_))) | None => None,
            Some(Err(AppError::Forbidden)) => Some(view! { <div class="alert alert-danger" role="alert">{AppError::Forbidden.to_string()}</div> }.into_any()),
            Some(Err(_)) => Some(view! { <div class="alert alert-danger" role="alert">{SAVE_FAILED}</div> }.into_any()),
        }}
        <ActionForm action=save attr:class="settings-form">
            <section class="settings-section">
                <h2>"Self-hosted beta models and features"</h2>
                <div class="form-check">
                    <input
                        id="beta-enabled"
                        type="checkbox"
                        name="beta_enabled"
                        value="on"
                        checked=settings.beta_enabled
                        prop:checked=move || beta.get()
                        on:change=move |ev| beta.set(event_target_checked(&ev))
                    />
                    <label for="beta-enabled">"Use beta models and features in GitLab Duo Self-Hosted"</label>
                </div>
                <p class="form-text">
                    "Enabling self-hosted beta models and features is your acceptance of the GitLab Testing Agreement."
                </p>
                {settings.accepted_by.clone().map(|by| view! { <p class="form-text">{format!("Accepted by {by}.")}</p> })}
            </section>
            <section class="settings-section">
                <FormField
                    id="ai-gateway-timeout"
                    label="AI Gateway request timeout"
                    error=error_for("ai_gateway_timeout_seconds")
                    help="Maximum time in seconds to wait for responses from the AI Gateway (up to 600 seconds). Increasing this value might result in degraded user experience."
                >
                    <div class="input-with-unit">
                        <input
                            id="ai-gateway-timeout"
                            name="ai_gateway_timeout_seconds"
                            type="number"
                            min="60"
                            max="600"
                            class="form-control"
                            value=initial_timeout
                            prop:value=move || timeout.get()
                            on:input=move |ev| timeout.set(event_target_value(&ev))
                        />
                        <span>"seconds"</span>
                    </div>
                </FormField>
                <FormField
                    id="ai-gateway-url"
                    label="Local AI Gateway URL"
                    error=error_for("ai_gateway_url")
                    help="Enter the URL for your local AI Gateway. This endpoint is used for GitLab Duo Self-Hosted requests. The URL must be a complete URL, including either the \"http://\" or \"https://\" protocol. For example \"http://EXAMPLE-URL\". For more information, see how to install the GitLab AI Gateway."
                >
                    <input
                        id="ai-gateway-url"
                        name="ai_gateway_url"
                        type="text"
                        class="form-control"
                        value=initial_gateway
                        prop:value=move || gateway.get()
                        on:input=move |ev| gateway.set(event_target_value(&ev))
                    />
                </FormField>
                <FormField
                    id="agent-platform-url"
                    label="Local URL for the GitLab Duo Agent Platform service"
                    error=error_for("duo_agent_platform_service_url")
                    help="Enter the URL for your Duo Agent Platform service. This endpoint is used for GitLab Duo Agent Platform requests. The URL must not include the \"http://\" or \"https://\" protocol. For example \"example.com:50052\"."
                >
                    <input
                        id="agent-platform-url"
                        name="duo_agent_platform_service_url"
                        type="text"
                        class="form-control"
                        placeholder="example.com:50052"
                        value=initial_agent
                        prop:value=move || agent.get()
                        on:input=move |ev| agent.set(event_target_value(&ev))
                    />
                </FormField>
            </section>
            <div class="form-actions">
                <button
                    type="submit"
                    class="btn btn-confirm"
                    disabled=move || hydrated.get() && (!changed() || save.pending().get() || timeout_error().is_some())
                >
                    "Save changes"
                </button>
                <button type="button" class="btn" on:click=move |_| { health.dispatch(RunHealthCheck {}); }>
                    "Run health check"
                </button>
            </div>
        </ActionForm>
        {move || health.pending().get().then(|| view! { <p class="loading" role="status">"Checking the AI Gateway…"</p> })}
        {move || health.value().get().map(|result| match result {
            Ok(check) => view! {
                <div class=if check.healthy { "alert alert-success" } else { "alert alert-danger" } role="status">{check.message}</div>
            }.into_any(),
            Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
        })}
    }
}
