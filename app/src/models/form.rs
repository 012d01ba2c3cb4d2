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
    DeploymentName, Endpoint, FAMILY_REQUIRED, KeyAction, ModelForm, ModelIdentifier, Platform,
};
use crate::chat::api::TestConnection;
use crate::error::{AppError, FieldErrors};
use crate::form_field::FormField;

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
    let data = Resource::new(move || id, load_model_form);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => view! { <ModelFormView data/> }.into_any(),
                    Err(AppError::NotFound) => view! { <crate::layout::NotFound/> }.into_any(),
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ModelFormView(data: ModelFormData) -> impl IntoView {
    let ModelFormData { families, beta_enabled, model, draft } = data;
    let editing = model.is_some();
    let id = model.as_ref().map(|m| m.id.0);
    let fingerprint = model.as_ref().and_then(|m| m.api_key_fingerprint.clone());
    // What the admin typed before a refused save (JavaScript off), else what is stored.
    let initial = draft.unwrap_or_else(|| {
        model
            .as_ref()
            .map(|m| ModelForm {
                name: m.name.clone(),
                platform: m.platform.key().to_owned(),
                model_family: m.model_family.clone(),
                endpoint: m.endpoint.clone().unwrap_or_default(),
                identifier: m.identifier.clone(),
                ..ModelForm::default()
            })
            .unwrap_or_default()
    });

    let name = RwSignal::new(initial.name);
    let platform = RwSignal::new(Platform::parse(&initial.platform).unwrap_or(Platform::OpenAiCompatible));
    let family = RwSignal::new(initial.model_family);
    let endpoint = RwSignal::new(initial.endpoint);
    let identifier = RwSignal::new(initial.identifier);
    let api_key = RwSignal::new(String::new());
    let key_action = RwSignal::new(if fingerprint.is_some() { KeyAction::Keep } else { KeyAction::Replace });
    let show_key = RwSignal::new(false);

    let save = ServerAction::<SaveModel>::new();
    let test = ServerAction::<TestConnection>::new();
    // A test's result speaks for the values it tested: any change clears it.
    Effect::new(move |first: Option<()>| {
        name.track();
        platform.track();
        family.track();
        endpoint.track();
        identifier.track();
        api_key.track();
        if first.is_some() {
            test.value().set(None);
        }
    });
    // Errors from the server (after a post with JavaScript off they arrive with the page).
    let server_errors = move || match save.value().get() {
        Some(Err(AppError::Validation(errors))) => Some(errors),
        _ => None,
    };
    let errors = RwSignal::new(match save.value().get_untracked() {
        Some(Err(AppError::Validation(errors))) => errors,
        _ => FieldErrors::new(),
    });
    Effect::new(move |_| {
        if let Some(found) = server_errors() {
            errors.set(found);
        }
    });
    let form_error = move || match save.value().get() {
        Some(Err(AppError::Validation(_))) | Some(Ok(())) | None => None,
        Some(Err(AppError::Forbidden)) => Some(AppError::Forbidden.to_string()),
        Some(Err(_)) => Some(SAVE_ERROR.to_owned()),
    };

    let known_families: Vec<String> = families.iter().map(|f| f.key.clone()).collect();
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
            api_key_action: key_action.get().key().to_owned(),
            api_key: if chosen.uses_api_key() { api_key.get() } else { String::new() },
        }
    };
    let submission = move || SaveModel { id, form: current_form() };
    // Checks one field as the admin leaves it, with the same rule the server applies.
    let check = move |field: &'static str| {
        let form = untrack(current_form);
        let result: Result<(), &'static str> = match field {
            "name" => DeploymentName::parse(&form.name).map(|_| ()),
            "endpoint" => Endpoint::parse(&form.endpoint).map(|_| ()),
            "identifier" => ModelIdentifier::parse(platform.get_untracked(), &form.identifier).map(|_| ()),
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
        test.dispatch(TestConnection::from(untrack(submission)));
    };
    let on_submit = {
        let known_families = known_families.clone();
        move |event: leptos::ev::SubmitEvent| {
            event.prevent_default();
            match untrack(current_form).parse(|key| known_families.iter().any(|k| k == key)) {
                Err(found) => {
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
                Ok(_) => {
                    errors.set(FieldErrors::new());
                    save.dispatch(untrack(submission));
                }
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
            // Fields of the other platform no longer apply.
            endpoint.set(String::new());
            api_key.set(String::new());
            errors.update(|errors| {
                errors.remove("endpoint");
                errors.remove("identifier");
            });
        }
    };
    let title = if editing { "Edit self-hosted model" } else { "Add self-hosted model" };
    let description = if editing {
        "Edit the AI model that can be used for GitLab Duo self-hosted features."
    } else {
        "Add a new AI model that can be used for GitLab Duo self-hosted features."
    };
    let submit_label = if editing { "Save changes" } else { "Add self-hosted model" };
    let initial_name = name.get_untracked();
    // Copy, so the endpoint field can be built again each time the API platform is chosen.
    let initial_endpoint = StoredValue::new(endpoint.get_untracked());
    let initial_identifier = identifier.get_untracked();

    view! {
        <Title text=title/>
        <h1 class="page-title">{title}</h1>
        <p class="page-description">{description}</p>
        {move || form_error().map(|text| view! { <div class="alert alert-danger" role="alert">{text}</div> })}
        <form class="model-form" method="post" action=SaveModel::url() on:submit=on_submit novalidate>
            {id.map(|id| view! { <input type="hidden" name="id" value=id.to_string()/> })}
            <FormField id="model-name" label="Deployment name" error=error_for("name") help="A unique and descriptive name for your deployment.">
                <input
                    id="model-name"
                    name="name"
                    type="text"
                    class=invalid_class("name")
                    value=initial_name
                    prop:value=move || name.get()
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
                        .iter()
                        .map(|option| {
                            let key = option.key.clone();
                            let label = match option.release.badge() {
                                Some(badge) => format!("{} ({badge})", option.name),
                                None => option.name.clone(),
                            };
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
            <Show when=move || platform.get().uses_endpoint()>
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
                        prop:value=move || endpoint.get()
                        on:input=move |ev| endpoint.set(event_target_value(&ev))
                        on:blur=check_on_blur("endpoint")
                    />
                </FormField>
            </Show>
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
                    prop:value=move || identifier.get()
                    on:input=move |ev| identifier.set(event_target_value(&ev))
                    on:blur=check_on_blur("identifier")
                />
            </FormField>
            <Show when=move || platform.get().uses_api_key()>
                <ApiKeyField api_key key_action show_key fingerprint=fingerprint.clone() error=error_for("api_key")/>
            </Show>
            {move || platform.get().credentials_note().map(|note| view! {
                <p class="form-text credentials-note">{note.text}<a href=note.href>{note.link_text}</a></p>
            })}
            {move || test.pending().get().then(|| view! { <p class="loading" role="status">"Testing the connection…"</p> })}
            {move || test.value().get().map(|outcome| match outcome {
                Ok(result) if result.ok => view! {
                    <div class="alert alert-success" role="status">
                        {format!("{} ({} ms).", result.message, result.figures.total_ms)}
                    </div>
                }.into_any(),
                Ok(result) => view! { <div class="alert alert-danger" role="alert">{result.message}</div> }.into_any(),
                Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
            })}
            <div class="form-actions">
                <button type="submit" class="btn btn-confirm" disabled=move || save.pending().get()>{submit_label}</button>
                <button
                    type="button"
                    class="btn"
                    disabled=move || !form_is_valid() || test.pending().get()
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
                        <button type="button" class="btn btn-sm" on:click=move |_| key_action.set(KeyAction::Replace)>"Replace key"</button>
                        <button type="button" class="btn btn-sm" on:click=move |_| key_action.set(KeyAction::Remove)>"Remove key"</button>
                    </div>
                }
                .into_any(),
                KeyAction::Remove => view! {
                    <div class="key-set">
                        <span>"The API key will be removed when you save."</span>
                        <button type="button" class="btn btn-sm" on:click=move |_| key_action.set(KeyAction::Keep)>"Keep key"</button>
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
                            prop:value=move || api_key.get()
                            on:input=move |ev| api_key.set(event_target_value(&ev))
                        />
                        <button
                            type="button"
                            class="btn"
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
