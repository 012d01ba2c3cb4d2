//! `/admin/gitlab_duo/self_hosted/models/new` and `/models/{id}/edit`: GitLab's self-hosted
//! model form. It is a real HTML form posted to the `save_model` server function, so it works
//! with JavaScript off; with JavaScript on it checks each field as the admin leaves it, with the
//! same domain types the server checks again.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::api::{ModelFormData, SaveModel, load_model_form};
use super::domain::{
    BedrockRegion, DeploymentName, Endpoint, FAMILY_REQUIRED, GoogleProject, KNOWN_BEDROCK_REGIONS,
    KeyAction, ModelForm, ModelIdentifier, Platform, VertexLocation,
};
use crate::catalog::Family;
use crate::chat::api::{NOT_RECORDED, discover_models, test_connection};
use crate::error::{AppError, FieldErrors};
use crate::form_field::FormField;
use crate::page_data::IslandData;

pub const SAVE_ERROR: &str = "There was an error saving the self-hosted model. Please try again.";
use super::AFTER_SAVE_PATH;

#[component]
pub fn NewModelPage() -> impl IntoView {
    view! { <ModelFormPage id=None/> }
}

#[component]
pub fn EditModelPage() -> impl IntoView {
    let params = use_params_map();
    let id = params.read_untracked().get("id").and_then(|id| id.parse::<i64>().ok());
    match id {
        Some(id) => view! { <ModelFormPage id=Some(id)/> }.into_any(),
        None => view! { <crate::layout::NotFound/> }.into_any(),
    }
}

#[component]
fn ModelFormPage(id: Option<i64>) -> impl IntoView {
    let data = crate::page_data::resource(move || id, load_model_form);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => {
                        let editing = data.model.is_some();
                        let title = if editing { "Edit self-hosted model" } else { "Add self-hosted model" };
                        let description = if editing {
                            "Edit the AI model that can be used for GitLab Duo self-hosted features."
                        } else {
                            "Add a new AI model that can be used for GitLab Duo self-hosted features."
                        };
                        // A refused post comes back to this page: its values and field errors
                        // with its draft, any other refusal in the console's own words.
                        let refused = crate::error::refusal_message::<SaveModel>(SAVE_ERROR);
                        view! {
                            <Title text=title/>
                            <h1 class="page-title">{title}</h1>
                            <p class="page-description">{description}</p>
                            {refused.map(|text| view! { <div class="alert alert-danger" role="alert">{text}</div> })}
                            <ModelFormView form=IslandData(FormIsland::of(data))/>
                        }
                        .into_any()
                    }
                    Err(AppError::NotFound) => view! { <crate::layout::NotFound/> }.into_any(),
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// What the form's island is given: only what it shows and checks (the stored model's other
/// details stay on the server, and out of the bundle's decoders).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct FormIsland {
    /// Each family the form offers: its key and its label ("Llama 3 (Beta)").
    families: Vec<(String, String)>,
    beta_enabled: bool,
    /// The region a Bedrock model without one of its own runs in (the console's).
    console_region: String,
    /// The model being edited; none for a new one.
    id: Option<i64>,
    /// The stored API key's fingerprint, if it has one.
    fingerprint: Option<String>,
    /// What the fields show: what the admin typed before a refused save, else what is stored.
    initial: ModelForm,
    /// The refused save's errors, at their fields.
    errors: FieldErrors,
}

impl FormIsland {
    fn of(data: ModelFormData) -> FormIsland {
        let ModelFormData { families, beta_enabled, model, console_region, draft, draft_errors } = data;
        let initial = draft.unwrap_or_else(|| {
            model
                .as_ref()
                .map(|m| ModelForm {
                    name: m.name.clone(),
                    platform: m.platform.key().to_owned(),
                    model_family: m.model_family.clone(),
                    endpoint: m.endpoint.clone().unwrap_or_default(),
                    identifier: m.identifier.clone(),
                    bedrock_region: m.bedrock_region.clone().unwrap_or_default(),
                    vertex_project: m.vertex_project.clone().unwrap_or_default(),
                    vertex_location: m.vertex_location.clone().unwrap_or_default(),
                    ..ModelForm::default()
                })
                .unwrap_or_default()
        });
        let families = families
            .into_iter()
            .map(|family: Family| {
                let label = match family.release.badge() {
                    Some(badge) => format!("{} ({badge})", family.name),
                    None => family.name,
                };
                (family.key, label)
            })
            .collect();
        FormIsland {
            families,
            beta_enabled,
            console_region,
            id: model.as_ref().map(|m| m.id.0),
            fingerprint: model.and_then(|m| m.api_key_fingerprint),
            initial,
            errors: draft_errors,
        }
    }
}

/// The island: the form, which checks each field as it is left, follows the platform chosen,
/// loads the models an endpoint serves, and tests the connection. It is posted as a plain form
/// once every field passes: the server answers with the features tab, or with this page again,
/// as typed, with its errors.
#[island]
fn ModelFormView(form: IslandData<FormIsland>) -> impl IntoView {
    crate::hydration::provide_hydration();
    let FormIsland { families, beta_enabled, console_region, id, fingerprint, initial, errors } = form.0;
    let editing = id.is_some();

    let name = RwSignal::new(initial.name);
    let platform = RwSignal::new(Platform::parse(&initial.platform).unwrap_or(Platform::OpenAiCompatible));
    let family = RwSignal::new(initial.model_family);
    let endpoint = RwSignal::new(initial.endpoint);
    let identifier = RwSignal::new(initial.identifier);
    let bedrock_region = RwSignal::new(initial.bedrock_region);
    let vertex_project = RwSignal::new(initial.vertex_project);
    let vertex_location = RwSignal::new(initial.vertex_location);
    let api_key = RwSignal::new(String::new());
    let key_action = RwSignal::new(if fingerprint.is_some() { KeyAction::Keep } else { KeyAction::Replace });
    let show_key = RwSignal::new(false);

    // Posted: the browser is leaving for the server's answer.
    let submitting = RwSignal::new(false);
    let test = crate::hydration::Call::new();
    let discover = crate::hydration::Call::new();
    // A list speaks for the endpoint (or region) and key it was loaded from: a change of any
    // of them clears it.
    Effect::new(move |first: Option<()>| {
        platform.track();
        endpoint.track();
        bedrock_region.track();
        api_key.track();
        if first.is_some() {
            discover.value().set(None);
        }
    });
    // A test's result speaks for the values it tested: any change clears it.
    Effect::new(move |first: Option<()>| {
        name.track();
        platform.track();
        family.track();
        endpoint.track();
        identifier.track();
        bedrock_region.track();
        vertex_project.track();
        vertex_location.track();
        api_key.track();
        if first.is_some() {
            test.value().set(None);
        }
    });
    // Errors from the server: a refused post comes back with the page.
    let errors = RwSignal::new(errors);
    // "Load models" failures belong to the field to fix (endpoint, key, region).
    Effect::new(move |_| {
        if let Some(Err(AppError::Validation(found))) = discover.value().get() {
            errors.update(|errors| errors.extend(found));
        }
    });

    let known_families: Vec<String> = families.iter().map(|(key, _)| key.clone()).collect();
    let known_families_for_pick = known_families.clone();
    // The one place the form's fields are gathered: what Save posts and Test connection sends.
    // Fields the platform does not use go out blank.
    let current_form = move || {
        let chosen = platform.get();
        ModelForm {
            name: name.get(),
            platform: chosen.key().to_owned(),
            model_family: family.get(),
            endpoint: if chosen.uses_endpoint() { endpoint.get() } else { String::new() },
            identifier: identifier.get(),
            bedrock_region: if chosen.uses_region() { bedrock_region.get() } else { String::new() },
            vertex_project: if chosen.uses_google_project() { vertex_project.get() } else { String::new() },
            vertex_location: if chosen.uses_google_project() { vertex_location.get() } else { String::new() },
            api_key_action: key_action.get().key().to_owned(),
            api_key: if chosen.uses_api_key() { api_key.get() } else { String::new() },
        }
    };
    let submission = move || SaveModel { id, form: current_form() };
    // Leaving with changes asks first; a save under way or done is not "leaving changes".
    let as_loaded = untrack(current_form);
    // Typed before the page was hydrated (a slow link): kept, not replaced by what was drawn.
    for (id, field) in [
        ("model-name", name),
        ("model-endpoint", endpoint),
        ("model-identifier", identifier),
        ("model-api-key", api_key),
        ("model-vertex-project", vertex_project),
        ("model-vertex-location", vertex_location),
        ("model-family", family),
    ] {
        if let Some(typed) = crate::hydration::typed_before_hydration(id, &field.get_untracked()) {
            field.set(typed);
        }
    }
    // A platform chosen before then is applied once the page is hydrated: it changes which fields
    // are drawn, and hydration must first meet the fields the server drew.
    let chosen_early =
        crate::hydration::typed_before_hydration("model-platform", platform.get_untracked().key())
            .and_then(|key| Platform::parse(&key).ok());
    Effect::new(move |_| {
        if let Some(chosen) = chosen_early {
            platform.set(chosen);
        }
    });
    crate::unsaved::warn_before_leaving(Signal::derive(move || {
        current_form() != as_loaded && !submitting.get()
    }));
    // Checks one field as the admin leaves it, with the same rule the server applies.
    let check = move |field: &'static str| {
        let form = untrack(current_form);
        let result: Result<(), &'static str> = match field {
            "name" => DeploymentName::parse(&form.name).map(|_| ()),
            "endpoint" => Endpoint::parse(&form.endpoint).map(|_| ()),
            "identifier" => ModelIdentifier::parse(platform.get_untracked(), &form.identifier).map(|_| ()),
            "bedrock_region" => BedrockRegion::parse(&form.bedrock_region).map(|_| ()),
            "vertex_project" => GoogleProject::parse(&form.vertex_project).map(|_| ()),
            "vertex_location" => VertexLocation::parse(&form.vertex_location).map(|_| ()),
            _ => {
                if form.model_family.is_empty() {
                    Err(FAMILY_REQUIRED)
                } else {
                    Ok(())
                }
            }
        };
        errors.update(|errors| match result {
            Ok(()) => {
                errors.remove(field);
            }
            Err(message) => {
                errors.insert(field.to_owned(), message.to_owned());
            }
        });
    };
    // Leaving a field for the submit button skips the check: showing or hiding a message then
    // would move the button away between mouse-down and mouse-up, and swallow the click. The
    // submit checks every field anyway.
    let check_on_blur = move |field: &'static str| {
        move |event: leptos::ev::FocusEvent| {
            use leptos::wasm_bindgen::JsCast;
            let to_submit = event
                .related_target()
                .and_then(|target| target.dyn_into::<leptos::web_sys::Element>().ok())
                .is_some_and(|element| element.get_attribute("type").as_deref() == Some("submit"));
            if !to_submit {
                check(field);
            }
        }
    };
    let form_is_valid = {
        let known_families = known_families.clone();
        move || current_form().parse(|key| known_families.iter().any(|k| k == key)).is_ok()
    };
    let run_test = move || {
        let SaveModel { id, form } = untrack(submission);
        test.run(test_connection(id, form));
    };
    let on_submit = {
        let known_families = known_families.clone();
        move |event: leptos::ev::SubmitEvent| {
            if submitting.get_untracked() {
                event.prevent_default();
                return;
            }
            match untrack(current_form).parse(|key| known_families.iter().any(|k| k == key)) {
                Err(found) => {
                    event.prevent_default();
                    errors.set(found);
                    // Focus goes to the first field in error, once the fields are marked.
                    request_animation_frame(|| {
                        use leptos::wasm_bindgen::JsCast;
                        if let Some(field) = leptos::prelude::document()
                            .query_selector(".model-form [aria-invalid='true']")
                            .ok()
                            .flatten()
                            .and_then(|field| field.dyn_into::<leptos::web_sys::HtmlElement>().ok())
                        {
                            let _ = field.focus();
                        }
                    });
                }
                // Posted as it is: the fields a platform does not use are not in the form.
                Ok(_) => submitting.set(true),
            }
        }
    };
    let error_for = move |field: &'static str| Signal::derive(move || errors.read().get(field).cloned());
    let invalid_class = move |field: &'static str| {
        move || if errors.read().contains_key(field) { "form-control is-invalid" } else { "form-control" }
    };
    let switch_platform = move |value: String| {
        let Ok(chosen) = Platform::parse(&value) else { return };
        if chosen != platform.get_untracked() {
            platform.set(chosen);
            // What was typed stays (switching back brings it back); a platform's unused fields
            // are left out of what is sent (`current_form`).
            errors.update(|errors| {
                errors.remove("endpoint");
                errors.remove("identifier");
                errors.remove("bedrock_region");
                errors.remove("vertex_project");
                errors.remove("vertex_location");
            });
        }
    };
    // A platform's own fields: hidden, and left out of the post, on the others (what was typed
    // there stays, for a switch back).
    let not_for = move |uses: fn(Platform) -> bool| Signal::derive(move || !uses(platform.get()));
    // Test connection and the key's buttons are the bundle's: usable once the page is hydrated.
    let hydrated = crate::hydration::use_hydrated();
    let submit_label = if editing { "Save changes" } else { "Add self-hosted model" };
    let initial_name = name.get_untracked();
    // Copy, so the endpoint field can be built again each time the API platform is chosen.
    let initial_endpoint = StoredValue::new(endpoint.get_untracked());
    let initial_identifier = identifier.get_untracked();
    let initial_region = StoredValue::new(bedrock_region.get_untracked());
    let initial_project = StoredValue::new(vertex_project.get_untracked());
    let initial_location = StoredValue::new(vertex_location.get_untracked());
    // The region the model will run in: its own when well-formed, else the console's.
    let console_region = StoredValue::new(console_region);
    let effective_region = move || {
        BedrockRegion::parse(&bedrock_region.get())
            .ok()
            .flatten()
            .or_else(|| BedrockRegion::parse(&console_region.get_value()).ok().flatten())
    };
    let region_help = move || {
        let region = effective_region();
        let name = region.as_ref().map(|r| r.as_str().to_owned()).unwrap_or_default();
        let mut help = format!(
            "The AWS region this model runs in. Leave it blank to use the console's region ({}).",
            console_region.get_value()
        );
        if let Some(prefix) = region.as_ref().and_then(BedrockRegion::inference_profile_prefix) {
            help.push_str(&format!(
                " In {name}, models are called through inference profiles that start with \"{prefix}.\", for example {}{prefix}.anthropic.claude-3-5-sonnet-20240620-v1:0.",
                super::domain::BEDROCK_PREFIX
            ));
        }
        help
    };
    // A Bedrock id typed without this region's inference-profile prefix: offer the one to use.
    let suggestion = move || {
        if !platform.get().uses_region() {
            return None;
        }
        let region = effective_region()?;
        region.suggest_identifier(&identifier.get()).map(|suggested| (region.as_str().to_owned(), suggested))
    };

    view! {
        <form class="model-form" method="post" action=SaveModel::url() on:submit=on_submit novalidate>
            {id.map(|id| view! { <input type="hidden" name="id" value=id.to_string()/> })}
            <FormField id="model-name" label="Deployment name" error=error_for("name") help="A unique and descriptive name for your deployment.">
                <input
                    id="model-name"
                    name="name"
                    type="text"
                    class=invalid_class("name")
                    value=initial_name
                    prop:value=name
                    on:input=move |ev| name.set(event_target_value(&ev))
                    on:blur=check_on_blur("name")
                />
            </FormField>
            <FormField id="model-platform" label="Platform">
                <select
                    id="model-platform"
                    name="platform"
                    class="form-control"
                    on:change=move |ev| switch_platform(event_target_value(&ev))
                >
                    {Platform::ALL
                        .into_iter()
                        .map(|option| view! {
                            <option value=option.key() selected=move || platform.get() == option>{option.label()}</option>
                        })
                        .collect_view()}
                </select>
            </FormField>
            <FormField
                id="model-family"
                label="Model family"
                error=error_for("model_family")
                help="Select an appropriate model family from the list of approved GitLab models."
            >
                <select
                    id="model-family"
                    name="model_family"
                    class=invalid_class("model_family")
                    on:change=move |ev| {
                        family.set(event_target_value(&ev));
                        check("model_family");
                    }
                    on:blur=check_on_blur("model_family")
                >
                    <option value="" selected=move || family.get().is_empty()>"Select model"</option>
                    {families
                        .into_iter()
                        .map(|(key, label)| {
                            view! {
                                <option value=key.clone() selected=move || family.get() == key>{label}</option>
                            }
                        })
                        .collect_view()}
                </select>
            </FormField>
            {(!beta_enabled).then(|| view! {
                <p class="form-text">
                    "More models are available in beta. "
                    <a href="/admin/gitlab_duo/configuration">"You can turn on self-hosted model beta features."</a>
                </p>
            })}
            <fieldset class="platform-fields" hidden=not_for(Platform::uses_endpoint) disabled=not_for(Platform::uses_endpoint)>
                <FormField
                    id="model-endpoint"
                    label="Endpoint"
                    error=error_for("endpoint")
                    help="Specify the URL endpoint where your self-hosted model is accessible"
                >
                    <input
                        id="model-endpoint"
                        name="endpoint"
                        type="url"
                        class=invalid_class("endpoint")
                        value=initial_endpoint.get_value()
                        prop:value=endpoint
                        on:input=move |ev| endpoint.set(event_target_value(&ev))
                        on:blur=check_on_blur("endpoint")
                    />
                </FormField>
            </fieldset>
            <fieldset class="platform-fields" hidden=not_for(Platform::uses_region) disabled=not_for(Platform::uses_region)>
                <FormField
                    id="model-region"
                    label="AWS region (optional)"
                    error=error_for("bedrock_region")
                    help=Signal::derive(region_help)
                >
                    <input
                        id="model-region"
                        name="bedrock_region"
                        type="text"
                        list="model-region-choices"
                        autocomplete="off"
                        class=invalid_class("bedrock_region")
                        placeholder=move || console_region.get_value()
                        value=initial_region.get_value()
                        prop:value=bedrock_region
                        on:input=move |ev| bedrock_region.set(event_target_value(&ev))
                        on:blur=check_on_blur("bedrock_region")
                    />
                    <datalist id="model-region-choices">
                        {KNOWN_BEDROCK_REGIONS.into_iter().map(|region| view! { <option value=region></option> }).collect_view()}
                    </datalist>
                </FormField>
            </fieldset>
            <fieldset class="platform-fields" hidden=not_for(Platform::uses_google_project) disabled=not_for(Platform::uses_google_project)>
                <FormField
                    id="model-vertex-project"
                    label="Google Cloud project"
                    error=error_for("vertex_project")
                    help="The ID of the Google Cloud project whose Vertex AI serves this model, for example my-project-123."
                >
                    <input
                        id="model-vertex-project"
                        name="vertex_project"
                        type="text"
                        autocomplete="off"
                        class=invalid_class("vertex_project")
                        value=initial_project.get_value()
                        prop:value=vertex_project
                        on:input=move |ev| vertex_project.set(event_target_value(&ev))
                        on:blur=check_on_blur("vertex_project")
                    />
                </FormField>
                <FormField
                    id="model-vertex-location"
                    label="Location"
                    error=error_for("vertex_location")
                    help="The Vertex AI location the model is offered in, such as us-central1 or europe-west4, or global."
                >
                    <input
                        id="model-vertex-location"
                        name="vertex_location"
                        type="text"
                        autocomplete="off"
                        placeholder="us-central1"
                        class=invalid_class("vertex_location")
                        value=initial_location.get_value()
                        prop:value=vertex_location
                        on:input=move |ev| vertex_location.set(event_target_value(&ev))
                        on:blur=check_on_blur("vertex_location")
                    />
                </FormField>
            </fieldset>
            <FormField
                id="model-identifier"
                label="Model identifier"
                error=error_for("identifier")
                help=Signal::derive(move || platform.get().identifier_help(&family.get()).to_owned())
            >
                <input
                    id="model-identifier"
                    name="identifier"
                    type="text"
                    class=invalid_class("identifier")
                    placeholder=move || platform.get().identifier_placeholder(&family.get())
                    value=initial_identifier
                    prop:value=identifier
                    on:input=move |ev| identifier.set(event_target_value(&ev))
                    on:blur=check_on_blur("identifier")
                />
            </FormField>
            {move || suggestion().map(|(region, suggested)| {
                let label = format!("Use {suggested}");
                view! {
                    <p class="form-text identifier-suggestion" role="status">
                        {format!("In {region}, Bedrock serves this model through a cross-region inference profile. ")}
                        <button type="button" class="btn btn-sm" on:click=move |_| {
                            identifier.set(suggested.clone());
                            check("identifier");
                        }>{label}</button>
                    </p>
                }
            })}
            <fieldset class="platform-fields" hidden=not_for(Platform::lists_models) disabled=not_for(Platform::lists_models)>
            <div class="discover">
                <button
                    type="button"
                    class="btn"
                    disabled=move || discover.pending().get() || (platform.get().uses_endpoint() && endpoint.get().trim().is_empty())
                    on:click=move |_| {
                        errors.update(|errors| {
                            for field in ["endpoint", "api_key", "bedrock_region", "vertex_project", "vertex_location", "identifier"] {
                                errors.remove(field);
                            }
                        });
                        let SaveModel { id, form } = untrack(submission);
                        discover.run(discover_models(id, form));
                    }
                >
                    "Load models"
                </button>
                {move || discover.pending().get().then(|| view! { <span class="loading" role="status">"Loading models…"</span> })}
            </div>
            </fieldset>
            {move || match discover.value().get() {
                Some(Ok(models)) => {
                    let count = models.len();
                    let found = if count == 1 { "1 model found.".to_owned() } else { format!("{count} models found.") };
                    let known_families = known_families_for_pick.clone();
                    let guesses: Vec<(String, Option<String>)> =
                        models.iter().map(|model| (model.identifier.clone(), model.family.clone())).collect();
                    Some(view! {
                        <FormField
                            id="model-discovered"
                            label="Discovered models"
                            help=Signal::derive(move || format!("{found} Picking one fills in the model identifier (and the family its name suggests); the identifier stays editable."))
                        >
                            <select
                                id="model-discovered"
                                class="form-control"
                                on:change=move |ev| {
                                    let picked = event_target_value(&ev);
                                    if picked.is_empty() {
                                        return;
                                    }
                                    let guess = guesses.iter().find(|(id, _)| *id == picked).and_then(|(_, family)| family.clone());
                                    if let Some(guess) = guess.filter(|guess| known_families.contains(guess)) {
                                        family.set(guess);
                                        check("model_family");
                                    }
                                    identifier.set(picked);
                                    check("identifier");
                                }
                            >
                                <option value="">"Select a discovered model"</option>
                                {models
                                    .into_iter()
                                    .map(|model| view! { <option value=model.identifier.clone() selected=move || identifier.get() == model.identifier>{model.label}</option> })
                                    .collect_view()}
                            </select>
                        </FormField>
                    }
                    .into_any())
                }
                Some(Err(AppError::Validation(_))) | None => None,
                Some(Err(error)) => Some(view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any()),
            }}
            <fieldset class="platform-fields" hidden=not_for(Platform::uses_api_key) disabled=not_for(Platform::uses_api_key)>
                <ApiKeyField api_key key_action show_key fingerprint=fingerprint.clone() error=error_for("api_key")/>
            </fieldset>
            {move || platform.get().credentials_note().map(|note| view! {
                <p class="form-text credentials-note">{note.text}<a href=note.href>{note.link_text}</a></p>
            })}
            {move || test.pending().get().then(|| view! { <p class="loading" role="status">"Testing the connection…"</p> })}
            {move || test.value().get().map(|outcome| {
                let (answered, text, unrecorded) = match outcome {
                    Ok(result) if result.ok => {
                        (true, format!("{} ({} ms).", result.message, result.figures.total_ms), !result.recorded)
                    }
                    Ok(result) => (false, result.message, !result.recorded),
                    Err(error) => (false, error.to_string(), false),
                };
                view! {
                    <div
                        class=if answered { "alert alert-success" } else { "alert alert-danger" }
                        role=if answered { "status" } else { "alert" }
                    >
                        {text}
                        {(editing && unrecorded).then(|| view! { <p class="form-text">{NOT_RECORDED}</p> })}
                    </div>
                }
            })}
            <div class="form-actions">
                <button type="submit" class="btn btn-confirm">{submit_label}</button>
                <button
                    type="button"
                    class="btn"
                    disabled=move || !hydrated.get() || !form_is_valid() || test.pending().get()
                    on:click=move |_| run_test()
                >
                    "Test connection"
                </button>
                <a class="btn" href=AFTER_SAVE_PATH>"Cancel"</a>
            </div>
        </form>
    }
}

/// "API Key (optional)". The stored key never comes back: the form shows "Key set" with a
/// fingerprint, and offers to replace or remove it; leaving it alone keeps it.
#[component]
fn ApiKeyField(
    api_key: RwSignal<String>,
    key_action: RwSignal<KeyAction>,
    show_key: RwSignal<bool>,
    fingerprint: Option<String>,
    error: Signal<Option<String>>,
) -> impl IntoView {
    let has_stored_key = fingerprint.is_some();
    let hydrated = crate::hydration::use_hydrated();
    let inert = move || !hydrated.get();
    let fingerprint = fingerprint.unwrap_or_default();
    view! {
        <FormField
            id="model-api-key"
            label="API Key (optional)"
            error
            help="If required, provide the API token that grants access to your self-hosted model deployment."
        >
            <input type="hidden" name="api_key_action" value=move || key_action.get().key()/>
            {move || match key_action.get() {
                KeyAction::Keep => view! {
                    <div class="key-set">
                        <span class="badge badge-success">"Key set"</span>
                        <code title="Fingerprint of the stored key">{fingerprint.clone()}</code>
                        <button type="button" class="btn btn-sm" disabled=inert on:click=move |_| key_action.set(KeyAction::Replace)>"Replace key"</button>
                        <button type="button" class="btn btn-sm" disabled=inert on:click=move |_| key_action.set(KeyAction::Remove)>"Remove key"</button>
                    </div>
                }
                .into_any(),
                KeyAction::Remove => view! {
                    <div class="key-set">
                        <span>"The API key will be removed when you save."</span>
                        <button type="button" class="btn btn-sm" disabled=inert on:click=move |_| key_action.set(KeyAction::Keep)>"Keep key"</button>
                    </div>
                }
                .into_any(),
                KeyAction::Replace => view! {
                    <div class="input-group">
                        <input
                            id="model-api-key"
                            name="api_key"
                            class="form-control"
                            autocomplete="off"
                            type=move || if show_key.get() { "text" } else { "password" }
                            prop:value=api_key
                            on:input=move |ev| api_key.set(event_target_value(&ev))
                        />
                        <button
                            type="button"
                            class="btn"
                            disabled=inert
                            aria-label=move || if show_key.get() { "Hide API key" } else { "Show API key" }
                            on:click=move |_| show_key.update(|shown| *shown = !*shown)
                        >
                            {move || if show_key.get() { "Hide" } else { "Show" }}
                        </button>
                        {has_stored_key.then(|| view! {
                            <button type="button" class="btn" on:click=move |_| { api_key.set(String::new()); key_action.set(KeyAction::Keep) }>
                                "Keep current key"
                            </button>
                        })}
                    </div>
                }
                .into_any(),
            }}
        </FormField>
    }
}
