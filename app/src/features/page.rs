//! `/admin/gitlab_duo/self_hosted` and `/features`: the "AI-native features" tab. Each feature's
//! dropdown saves as soon as a model is chosen; the page then shows what the server stored, so
//! a refused choice returns the dropdown to the stored value.

use leptos::prelude::*;
use leptos_meta::Title;

use super::api::{
    ApplyFeatureToAll, ApplyToAll, Assignment, CHOICE_DISABLED, FeatureRow, FeaturesPage, SectionView,
    UNASSIGNED_HINT, UPDATE_ERROR, UpdateFeature, apply_to_all_error, load_features,
};
use crate::chat::panel::{ChatPanel, ChatTarget};
use crate::error::AppError;
use crate::models::ModelConfigurationHeader;

/// The section whose "Apply to all" was pressed last.
#[derive(Clone, Copy)]
struct ApplyingSection(RwSignal<String>);

/// The toast after each save: the text, and whether it reports a failure.
#[derive(Clone, PartialEq)]
struct Toast(String, bool);

#[component]
pub fn AiFeaturesPage() -> impl IntoView {
    let update = ServerAction::<UpdateFeature>::new();
    let apply = ServerAction::<ApplyFeatureToAll>::new();
    let features =
        Resource::new(move || (update.version().get(), apply.version().get()), |_| load_features());
    let toast = RwSignal::new(None::<Toast>);
    // The feature whose chat box is open: its key and title.
    let testing = RwSignal::new(None::<(String, String)>);
    provide_context(testing);
    // The section of the last "Apply to all", for its failure toast.
    let applying = ApplyingSection(RwSignal::new(String::new()));
    provide_context(applying);
    let report = move |result: Option<Result<String, AppError>>, fallback: &str| match result {
        Some(Ok(message)) => toast.set(Some(Toast(message, false))),
        Some(Err(AppError::Validation(errors))) => {
            toast.set(Some(Toast(errors.values().next().cloned().unwrap_or_default(), true)))
        }
        Some(Err(AppError::Conflict(message))) => toast.set(Some(Toast(message, true))),
        Some(Err(AppError::Forbidden)) => toast.set(Some(Toast(AppError::Forbidden.to_string(), true))),
        Some(Err(_)) => toast.set(Some(Toast(fallback.to_owned(), true))),
        None => {}
    };
    Effect::new(move |_| report(update.value().get(), UPDATE_ERROR));
    Effect::new(move |_| report(apply.value().get(), &apply_to_all_error(&applying.0.get_untracked())));

    view! {
        <Title text="Model configuration"/>
        <ModelConfigurationHeader active_tab="features"/>
        <Transition fallback=|| view! { <p class="loading">"Loading AI-native features…"</p> }>
            {move || Suspend::new(async move {
                match features.await {
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                    Ok(page) => view! { <Sections page update apply/> }.into_any(),
                }
            })}
        </Transition>
        {move || testing.get().map(|(key, title)| view! {
            <ChatPanel target=ChatTarget::Feature(key) title=format!("Test {title}") on_close=Callback::new(move |_| testing.set(None))/>
        })}
        {move || toast.get().map(|Toast(text, failed)| view! {
            <div class=if failed { "toast toast-danger" } else { "toast" } role="status">
                {text}
                <button type="button" class="toast-close" aria-label="Dismiss" on:click=move |_| toast.set(None)>"×"</button>
            </div>
        })}
    }
}

#[component]
fn Sections(
    page: FeaturesPage,
    update: ServerAction<UpdateFeature>,
    apply: ServerAction<ApplyFeatureToAll>,
) -> impl IntoView {
    page.sections.into_iter().map(|section| view! { <FeatureSection section update apply/> }).collect_view()
}

#[component]
fn FeatureSection(
    section: SectionView,
    update: ServerAction<UpdateFeature>,
    apply: ServerAction<ApplyFeatureToAll>,
) -> impl IntoView {
    let SectionView { key, title, description, features, more_in_beta } = section;
    // The "assign a model" warning matters where one row's model can be applied to the others.
    let several = features.len() > 1;
    view! {
        <details class="feature-section" open data-section=key>
            <summary>
                <h2>{title.clone()}</h2>
                <p class="section-description">{description}</p>
            </summary>
            {more_in_beta.then(|| view! {
                <p class="form-text">
                    "More features are available in beta. "
                    <a href="/admin/gitlab_duo/configuration">"You can turn on AI-native beta features."</a>
                </p>
            })}
            <table class="table feature-table" aria-label=title>
                <thead>
                    <tr>
                        <th scope="col">"Features"</th>
                        <th scope="col" title="Select the model for the feature">"Model"</th>
                    </tr>
                </thead>
                <tbody>
                    {features
                        .into_iter()
                        .map(|row| view! { <FeatureRowView row update apply section=title.clone() several/> })
                        .collect_view()}
                </tbody>
            </table>
        </details>
    }
}

#[component]
fn FeatureRowView(
    row: FeatureRow,
    update: ServerAction<UpdateFeature>,
    apply: ServerAction<ApplyFeatureToAll>,
    section: String,
    several: bool,
) -> impl IntoView {
    let applying = expect_context::<ApplyingSection>();
    let FeatureRow { key, title, release, assignment, choices, fallback, apply_to_all, answered_by } = row;
    let testing = expect_context::<RwSignal<Option<(String, String)>>>();
    let test_button = answered_by.map(|_| {
        let (key, title) = (key.clone(), title.clone());
        view! {
            <button
                type="button"
                class="btn btn-sm"
                aria-label=format!("Test {title}")
                on:click=move |_| testing.set(Some((key.clone(), title.clone())))
            >
                "Test"
            </button>
        }
    });
    let stored = assignment.choice();
    let unassigned = assignment == Assignment::Unassigned;
    let select_id = format!("feature-{key}");
    let feature_key = key.clone();
    let on_change = move |event: leptos::ev::Event| {
        let choice = event_target_value(&event);
        if !choice.is_empty() {
            update.dispatch(UpdateFeature { feature: feature_key.clone(), choice });
        }
    };
    view! {
        <tr data-feature=key.clone()>
            <td>
                <label for=select_id.clone() class="feature-title">{title.clone()}</label>
                {release.badge().map(|badge| view! { <span class="badge badge-neutral">{badge}</span> })}
            </td>
            <td class="feature-model">
                <div class="model-picker">
                    <select
                        id=select_id
                        class="form-control"
                        title="Select the model for the feature"
                        prop:value=stored.clone()
                        on:change=on_change
                        disabled=move || update.pending().get() || apply.pending().get()
                    >
                        {unassigned.then(|| view! { <option value="" selected>"Select a model"</option> })}
                        <optgroup label="Self-hosted models">
                            {choices
                                .into_iter()
                                .map(|choice| {
                                    let value = choice.id.to_string();
                                    let selected = value == stored;
                                    view! { <option value=value selected=selected>{choice.label}</option> }
                                })
                                .collect_view()}
                        </optgroup>
                        <option value=CHOICE_DISABLED selected=stored == CHOICE_DISABLED>"Disabled"</option>
                    </select>
                    {apply_to_all.map(|ApplyToAll { enabled, tooltip }| {
                        let feature = key.clone();
                        let label = format!("Apply the {title} model to all {section} sub-features");
                        view! {
                            <button
                                type="button"
                                class="btn btn-sm btn-icon"
                                title=tooltip
                                aria-label=label
                                disabled=move || !enabled || apply.pending().get()
                                on:click=move |_| {
                                    applying.0.set(section.clone());
                                    apply.dispatch(ApplyFeatureToAll { feature: feature.clone() });
                                }
                            >
                                <svg viewBox="0 0 16 16" aria-hidden="true" fill="currentColor">
                                    <path d="M5 1h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V3a2 2 0 0 1 2-2zm0 1.5a.5.5 0 0 0-.5.5v8a.5.5 0 0 0 .5.5h8a.5.5 0 0 0 .5-.5V3a.5.5 0 0 0-.5-.5H5zM1 5.5a.75.75 0 0 1 1.5 0V13a.5.5 0 0 0 .5.5h7.5a.75.75 0 0 1 0 1.5H3a2 2 0 0 1-2-2V5.5z"/>
                                </svg>
                                "Apply to all"
                            </button>
                        }
                    })}
                    {test_button}
                </div>
                {(several && unassigned && fallback.is_none()).then(|| view! {
                    <p class="form-text warning"><span aria-hidden="true">"⚠ "</span>{UNASSIGNED_HINT}</p>
                })}
                {fallback.map(|text| view! { <p class="form-text">{text}</p> })}
            </td>
        </tr>
    }
}
