//! `/admin/gitlab_duo/configuration`: GitLab Duo's instance settings. Beta models and features
//! (turning them on records the admin's acceptance of the testing agreement), the AI Gateway
//! request timeout and URL, the Agent Platform service address; under them the health block
//! (`health.rs`).

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;

use super::api::{
    ConfigurationDraft, InstanceSettings, SaveConfiguration, load_configuration, run_health_check,
    take_configuration_draft,
};
use super::health::HealthBlock;
use crate::error::FieldErrors;
use crate::features::api::{HiddenFeature, features_hidden_without_beta};
use crate::flash::FlashAlert;
use crate::form_field::FormField;
use crate::page_data::IslandData;

pub use super::rules::{SAVE_FAILED, SAVED};

#[component]
pub fn ConfigurationPage() -> impl IntoView {
    let settings = crate::page_data::once(load_configuration());
    // After a refused save, what was typed.
    let draft = crate::page_data::once(take_configuration_draft());
    // What turning beta off would hide, listed before it is saved.
    let hidden = crate::page_data::once(features_hidden_without_beta());
    let flash = crate::page_data::once(crate::flash::take_for_page());
    view! {
        <Title text="Configuration"/>
        <h1 class="page-title">"Configuration"</h1>
        <p class="page-description">"Configure AI-native GitLab Duo features."</p>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let hidden = hidden.await.unwrap_or_default();
                let draft = draft.await.ok().flatten();
                let flash = flash.await;
                // A refused save comes back to this page: its field errors come with its draft,
                // any other refusal is said in the console's own words.
                let alert = crate::error::refusal_message::<SaveConfiguration>(SAVE_FAILED);
                match settings.await {
                    Ok(settings) => view! {
                        <FlashAlert flash=flash.clone()/>
                        {alert.map(|text| view! { <div class="alert alert-danger" role="alert">{text}</div> })}
                        <ConfigurationForm form=IslandData(FormIsland::of(settings, draft, hidden))/>
                    }
                    .into_any(),
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move { view! { <HealthBlock flash=flash.await/> } })}
        </Suspense>
    }
}

/// The form's fields: beta on, the timeout, the gateway's URL and the Agent Platform's.
type Fields = (bool, String, String, String);

/// What the form's island is given, only what it shows and compares.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct FormIsland {
    /// What "changed" compares with.
    saved: Fields,
    /// What the fields show: what a refused save kept, else the saved values.
    shown: Fields,
    /// Who accepted the testing agreement, while beta is on.
    accepted_by: Option<String>,
    /// What turning beta off would hide: "Root Cause Analysis (uses Claude)".
    hidden: Vec<String>,
    /// A refused save's field errors.
    errors: FieldErrors,
}

impl FormIsland {
    fn of(
        settings: InstanceSettings,
        draft: Option<ConfigurationDraft>,
        hidden: Vec<HiddenFeature>,
    ) -> FormIsland {
        let saved = (
            settings.beta_enabled,
            settings.ai_gateway_timeout_seconds.to_string(),
            settings.ai_gateway_url.unwrap_or_default(),
            settings.duo_agent_platform_service_url.unwrap_or_default(),
        );
        let (shown, errors) = draft.map_or_else(
            || (saved.clone(), FieldErrors::new()),
            |draft| {
                let shown = (
                    draft.beta_enabled,
                    draft.ai_gateway_timeout_seconds,
                    draft.ai_gateway_url,
                    draft.duo_agent_platform_service_url,
                );
                (shown, draft.errors)
            },
        );
        let hidden = hidden
            .into_iter()
            .map(|feature| match feature.model {
                Some(model) => format!("{} (uses {model})", feature.title),
                None => feature.title,
            })
            .collect();
        FormIsland { saved, shown, accepted_by: settings.accepted_by, hidden, errors }
    }
}

/// The island: the settings form, posted as a plain form; the server answers with this page,
/// saved, or as typed with the errors. The timeout is checked as it is typed, what turning beta
/// off would hide is listed before it is saved, leaving with changes asks first, and "Run health
/// check" checks the URL in the field in the page.
#[island]
fn ConfigurationForm(form: IslandData<FormIsland>) -> impl IntoView {
    crate::hydration::provide_hydration();
    let FormIsland { saved: initial, shown, accepted_by, hidden, errors: refused_fields } = form.0;
    let was_on = initial.0;
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
    // Posted: the browser is leaving for the server's answer.
    let submitting = RwSignal::new(false);
    // Leaving with changes asks first; a save under way is not "leaving changes".
    crate::unsaved::warn_before_leaving(Signal::derive({
        let changed = changed.clone();
        move || changed() && !submitting.get()
    }));
    // After a refused save, focus goes to the first field in error, once the page can take it.
    let was_refused = !refused_fields.is_empty();
    let errors = StoredValue::new(refused_fields);
    // The timeout is checked as it is typed (the rule the server applies); the URLs on save.
    let timeout_error = move || super::rules::parse_timeout(&timeout.get()).err().map(str::to_owned);
    let error_for = move |field: &'static str| {
        Signal::derive(move || {
            let typed =
                (field == "ai_gateway_timeout_seconds" && hydrated.get()).then(timeout_error).flatten();
            typed.or_else(|| errors.with_value(|errors| errors.get(field).cloned()))
        })
    };
    Effect::new(move |_| {
        if was_refused {
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
    let health = crate::hydration::Call::new();
    // A check of the saved URL is stored: the health block's last check is read again.
    Effect::new(move |_| {
        if health.value().with(|result| matches!(result, Some(Ok(_)))) {
            crate::refresh::refresh_page_parts();
        }
    });
    let (initial_timeout, initial_gateway, initial_agent) = (shown.1, shown.2, shown.3);

    let on_submit = move |event: leptos::ev::SubmitEvent| {
        if submitting.get_untracked() || timeout_error().is_some() {
            event.prevent_default();
        } else {
            submitting.set(true);
        }
    };

    view! {
        <form method="post" action=SaveConfiguration::url() class="settings-form" on:submit=on_submit>
            <section class="settings-section">
                <h2>"Self-hosted beta models and features"</h2>
                <div class="form-check">
                    <input
                        id="beta-enabled"
                        type="checkbox"
                        name="beta_enabled"
                        value="on"
                        checked=shown.0
                        prop:checked=beta
                        on:change=move |ev| beta.set(event_target_checked(&ev))
                    />
                    <label for="beta-enabled">"Use beta models and features in GitLab Duo Self-Hosted"</label>
                </div>
                <p class="form-text">
                    "Enabling self-hosted beta models and features is your acceptance of the GitLab Testing Agreement."
                </p>
                {accepted_by.map(|by| view! { <p class="form-text">{format!("Accepted by {by}.")}</p> })}
                // Unchecked but not saved yet: what the save would hide, and the models they use.
                {move || (was_on && !beta.get() && !hidden.is_empty()).then(|| view! {
                    <div class="alert alert-warning" data-testid="beta-off-warning">
                        <p>"Saving with beta off hides these features until beta is turned on again:"</p>
                        <ul>
                            {hidden.iter().map(|feature| view! { <li>{feature.clone()}</li> }).collect_view()}
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
                            prop:value=timeout
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
                        prop:value=gateway
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
                        prop:value=agent
                        on:input=move |ev| agent.set(event_target_value(&ev))
                    />
                </FormField>
            </section>
            <div class="form-actions">
                <button
                    type="submit"
                    class="btn btn-confirm"
                    disabled=move || hydrated.get() && (!changed() || submitting.get() || timeout_error().is_some())
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
                        health.run(run_health_check(gateway.get_untracked()));
                    }
                >
                    "Run health check"
                </button>
            </div>
            <p class="form-text" id="health-check-help">"The health check calls the Local AI Gateway URL above, saved or not."</p>
        </form>
        {move || health.pending().get().then(|| view! { <p class="loading" role="status">"Checking the AI Gateway…"</p> })}
        {move || health.value().get().map(|result| match result {
            Ok(check) => view! {
                <div class=if check.healthy { "alert alert-success" } else { "alert alert-danger" } role="status">{check.message}</div>
            }.into_any(),
            Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
        })}
    }
}
