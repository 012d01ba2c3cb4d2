//! `/admin/gitlab_duo/configuration`: GitLab Duo's instance settings. Beta models and features
//! (turning them on records the admin's acceptance of the testing agreement), the AI Gateway
//! request timeout and URL, the Agent Platform service address; under them the health block
//! (`health.rs`).

use leptos::prelude::*;
use leptos_meta::Title;

use super::api::{
    ConfigurationDraft, InstanceSettings, RunHealthCheck, SaveConfiguration, load_configuration,
    take_configuration_draft,
};
use super::health::HealthBlock;
use crate::error::{AppError, FieldErrors};
use crate::features::api::{HiddenFeature, features_hidden_without_beta};
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
    let settings = crate::page_data::resource(move || saved.get(), |_| load_configuration());
    // Only on the first drawing: after a refused save without JavaScript, what was typed.
    let draft = crate::page_data::once(take_configuration_draft());
    // What turning beta off would hide, listed before it is saved.
    let hidden = crate::page_data::resource(move || saved.get(), |_| features_hidden_without_beta());
    view! {
        <Title text="Configuration"/>
        <div class="page-heading">
            <h1 class="page-title">"Configuration"</h1>
            <p class="page-description">"Configure AI-native GitLab Duo features."</p>
        </div>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let hidden = hidden.await.unwrap_or_default();
                let draft = draft.await.ok().flatten();
                match settings.await {
                    Ok(settings) => view! { <ConfigurationForm settings draft save hidden/> }.into_any(),
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                }
            })}
        </Suspense>
        <HealthBlock/>
    }
}

#[component]
fn ConfigurationForm(
    settings: InstanceSettings,
    draft: Option<ConfigurationDraft>,
    save: ServerAction<SaveConfiguration>,
    hidden: Vec<HiddenFeature>,
) -> impl IntoView {
    let was_on = settings.beta_enabled;
    // What "changed" compares with: the saved values.
    let initial = (
        settings.beta_enabled,
        settings.ai_gateway_timeout_seconds.to_string(),
        settings.ai_gateway_url.clone().unwrap_or_default(),
        settings.duo_agent_platform_service_url.clone().unwrap_or_default(),
    );
    // What the fields show: the saved values, or what a refused save without JavaScript kept.
    let shown = draft.map_or_else(
        || initial.clone(),
        |draft| {
            (
                draft.beta_enabled,
                draft.ai_gateway_timeout_seconds,
                draft.ai_gateway_url,
                draft.duo_agent_platform_service_url,
            )
        },
    );
    let beta = RwSignal::new(shown.0);
    let timeout = RwSignal::new(shown.1.clone());
    let gateway = RwSignal::new(shown.2.clone());
    let agent = RwSignal::new(shown.3.clone());
    // Typed before the page was hydrated (a slow link): kept, not replaced by what was drawn.
    for (id, field) in
        [("ai-gateway-timeout", timeout), ("ai-gateway-url", gateway), ("agent-platform-url", agent)]
    {
        if let Some(typed) = crate::hydration::typed_before_hydration(id, &field.get_untracked()) {
            field.set(typed);
        }
    }
    let changed = {
        let initial = initial.clone();
        move || (beta.get(), timeout.get(), gateway.get(), agent.get()) != initial
    };
    // Before hydration (or with JavaScript off) the button stays usable: only the browser can
    // tell whether something changed.
    let hydrated = crate::hydration::use_hydrated();
    // Leaving with changes asks first; a save under way is not "leaving changes".
    crate::unsaved::warn_before_leaving(Signal::derive({
        let changed = changed.clone();
        move || changed() && !save.pending().get()
    }));
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
    let (initial_timeout, initial_gateway, initial_agent) = (shown.1, shown.2, shown.3);

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
                        checked=shown.0
                        prop:checked=move || beta.get()
                        on:change=move |ev| beta.set(event_target_checked(&ev))
                    />
                    <label for="beta-enabled">"Use beta models and features in GitLab Duo Self-Hosted"</label>
                </div>
                <p class="form-text">
                    "Enabling self-hosted beta models and features is your acceptance of the GitLab Testing Agreement."
                </p>
                {settings.accepted_by.clone().map(|by| view! { <p class="form-text">{format!("Accepted by {by}.")}</p> })}
                // Unchecked but not saved yet: what the save would hide, and the models they use.
                {move || (was_on && !beta.get() && !hidden.is_empty()).then(|| view! {
                    <div class="alert alert-warning" data-testid="beta-off-warning">
                        <p>"Saving with beta off hides these features until beta is turned on again:"</p>
                        <ul>
                            {hidden.iter().map(|feature| {
                                let text = match &feature.model {
                                    Some(model) => format!("{} (uses {model})", feature.title),
                                    None => feature.title.clone(),
                                };
                                view! { <li>{text}</li> }
                            }).collect_view()}
                        </ul>
                    </div>
                })}
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
                // Checks the URL in the field, saved or not (the result names it).
                <button
                    type="button"
                    class="btn"
                    aria-describedby="health-check-help"
                    disabled=move || !hydrated.get()
                    on:click=move |_| {
                        health.dispatch(RunHealthCheck { ai_gateway_url: gateway.get_untracked() });
                    }
                >
                    "Run health check"
                </button>
            </div>
            <p class="form-text" id="health-check-help">"The health check calls the Local AI Gateway URL above, saved or not."</p>
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
