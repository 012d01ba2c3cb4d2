//! `/admin/gitlab_duo/self_hosted` and `/features`: the "AI-native features" tab. Each feature's
//! dropdown (GitLab's searchable listbox) saves when a model is clicked or picked with Enter; the
//! page then shows what the server stored, so a refused choice returns the dropdown to the stored
//! value. With JavaScript off, each row is a plain form: a `<select>` and a "Save" button.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;

use super::api::{
    ApplyFeatureToAll, ApplyToAll, Assignment, CHOICE_DISABLED, FeatureRow, FeaturesPage, ModelChoice,
    SectionView, UNASSIGNED_HINT, UPDATE_ERROR, UpdateFeature, apply_to_all_error, load_features,
};
use crate::chat::panel::{ChatPanel, ChatTarget};
use crate::error::AppError;
use crate::models::ModelConfigurationHeader;

/// The section whose "Apply to all" was pressed last.
#[derive(Clone, Copy)]
struct ApplyingSection(RwSignal<String>);

/// Whether the browser bundle runs: the listboxes replace the plain forms then. Both are in the
/// server's HTML, so hydration finds what the server drew and only classes change afterwards.
#[derive(Clone, Copy)]
struct Hydrated(RwSignal<bool>);

/// Whether the signed-in user may add models (the dropdowns' footer link).
#[derive(Clone, Copy)]
struct CanAddModels(bool);

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
    let hydrated = Hydrated(RwSignal::new(false));
    Effect::new(move |_| hydrated.0.set(true));
    provide_context(hydrated);
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
    provide_context(CanAddModels(page.can_add_models));
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
            </summary>
            // Outside the summary: a link may not sit inside the control that folds the section.
            <p class="section-description">
                {description}" "
                <a href="https://docs.gitlab.com/administration/gitlab_duo_self_hosted/">"Learn more."</a>
            </p>
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
    let label_id = format!("feature-{key}-label");
    let hydrated = expect_context::<Hydrated>();
    view! {
        <tr data-feature=key.clone()>
            <td>
                <label for=select_id.clone() id=label_id.clone() class="feature-title">{title.clone()}</label>
                {release.badge().map(|badge| view! { <span class="badge badge-neutral">{badge}</span> })}
            </td>
            <td class="feature-model">
                <div class="model-picker">
                    <form
                        method="post"
                        action=UpdateFeature::url()
                        class="model-fallback"
                        class:js-hidden=move || hydrated.0.get()
                    >
                        <input type="hidden" name="feature" value=key.clone()/>
                        <select
                            id=select_id.clone()
                            name="choice"
                            class="form-control"
                            title="Select the model for the feature"
                            prop:value=stored.clone()
                        >
                            {unassigned.then(|| view! { <option value="" selected>"Select a model"</option> })}
                            <optgroup label="Self-hosted models">
                                {choices
                                    .iter()
                                    .map(|choice| {
                                        let value = choice.id.to_string();
                                        let selected = value == stored;
                                        view! { <option value=value selected=selected>{choice.label.clone()}</option> }
                                    })
                                    .collect_view()}
                            </optgroup>
                            <option value=CHOICE_DISABLED selected=stored == CHOICE_DISABLED>"Disabled"</option>
                        </select>
                        <button type="submit" class="btn btn-sm">"Save"</button>
                    </form>
                    <ModelListbox
                        feature=key.clone()
                        labelled_by=label_id.clone()
                        id=select_id
                        stored=stored.clone()
                        choices
                        update
                        busy=Signal::derive(move || update.pending().get() || apply.pending().get())
                    />
                    {apply_to_all.map(|ApplyToAll { enabled, tooltip }| {
                        let feature = key.clone();
                        // The accessible name starts with the visible text, as speech input users say it.
                        let label = format!("Apply to all: the {title} model to every {section} sub-feature");
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
    .into_any()
}

/// One option of a listbox: the value the server stores and the text shown.
#[derive(Clone, PartialEq)]
struct ListOption {
    value: String,
    label: String,
}

/// GitLab's model dropdown (WAI-ARIA listbox with a search combobox): the header "Compatible
/// models", the group "Self-hosted models" with "Disabled" last in it, type-to-search, and the
/// footer "Add self-hosted model" for admins. Arrow keys only move the active option; a choice is
/// saved on a click or Enter, so browsing the list never reassigns a live feature.
#[component]
fn ModelListbox(
    feature: String,
    labelled_by: String,
    id: String,
    stored: String,
    choices: Vec<ModelChoice>,
    update: ServerAction<UpdateFeature>,
    busy: Signal<bool>,
) -> impl IntoView {
    let hydrated = expect_context::<Hydrated>();
    let CanAddModels(can_add) = expect_context::<CanAddModels>();
    // GitLab offers "Disabled" only beside at least one compatible model.
    let mut options: Vec<ListOption> = choices
        .into_iter()
        .map(|ModelChoice { id, label }| ListOption { value: id.to_string(), label })
        .collect();
    if !options.is_empty() {
        options.push(ListOption { value: CHOICE_DISABLED.to_owned(), label: "Disabled".to_owned() });
    }
    let current = options.iter().find(|option| option.value == stored).map(|option| option.label.clone());
    let trigger_text = current.unwrap_or_else(|| "Select a model".to_owned());
    let trigger_id = format!("{id}-trigger");
    let list_id = format!("{id}-listbox");
    let group_id = format!("{id}-group");
    let option_id = {
        let id = id.clone();
        move |value: &str| format!("{id}-option-{value}")
    };

    let open = RwSignal::new(false);
    let search = RwSignal::new(String::new());
    // Index into the options that match the search.
    let active = RwSignal::new(None::<usize>);
    let trigger_ref = NodeRef::<leptos::html::Button>::new();
    let search_ref = NodeRef::<leptos::html::Input>::new();
    let wrapper_ref = NodeRef::<leptos::html::Div>::new();
    let matching = {
        let options = options.clone();
        Memo::new(move |_| {
            let needle = search.get().to_lowercase();
            options
                .iter()
                .filter(|option| option.label.to_lowercase().contains(&needle))
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let show = move || {
        search.set(String::new());
        active.set(None);
        open.set(true);
    };
    let close = move |refocus: bool| {
        open.set(false);
        if refocus && let Some(trigger) = trigger_ref.get_untracked() {
            let _ = trigger.focus();
        }
    };
    // The search box takes the focus as the list opens.
    Effect::new(move |_| {
        if open.get()
            && let Some(input) = search_ref.get()
        {
            let _ = input.focus();
        }
    });
    let commit = {
        let stored = stored.clone();
        move |value: String| {
            close(true);
            if value != stored {
                update.dispatch(UpdateFeature { feature: feature.clone(), choice: value });
            }
        }
    };
    let on_trigger_key = move |event: leptos::ev::KeyboardEvent| {
        if matches!(event.key().as_str(), "Enter" | " " | "ArrowDown") {
            event.prevent_default();
            show();
        }
    };
    let on_search_key = {
        let commit = commit.clone();
        move |event: leptos::ev::KeyboardEvent| {
            let count = matching.with_untracked(Vec::len);
            match event.key().as_str() {
                "ArrowDown" if count > 0 => {
                    event.prevent_default();
                    active.update(|at| *at = Some(at.map_or(0, |at| (at + 1).min(count - 1))));
                }
                "ArrowUp" if count > 0 => {
                    event.prevent_default();
                    active.update(|at| *at = Some(at.map_or(count - 1, |at| at.saturating_sub(1))));
                }
                "Home" if count > 0 => active.set(Some(0)),
                "End" if count > 0 => active.set(Some(count - 1)),
                "Enter" => {
                    event.prevent_default();
                    let chosen = active.get_untracked().and_then(|at| {
                        matching.with_untracked(|options| options.get(at).map(|o| o.value.clone()))
                    });
                    if let Some(value) = chosen {
                        commit(value);
                    }
                }
                "Escape" => {
                    event.prevent_default();
                    close(true);
                }
                "Tab" => close(false),
                _ => {}
            }
        }
    };
    // Focus leaving the dropdown closes it; a click inside keeps the focus in the search box.
    let on_focus_out = move |event: leptos::ev::FocusEvent| {
        use leptos::wasm_bindgen::JsCast;
        let inside = event
            .related_target()
            .and_then(|target| target.dyn_into::<leptos::web_sys::Node>().ok())
            .zip(wrapper_ref.get_untracked())
            .is_some_and(|(target, wrapper)| wrapper.contains(Some(&target)));
        if !inside {
            open.set(false);
        }
    };
    let active_id = {
        let option_id = option_id.clone();
        move || {
            active.get().and_then(|at| {
                matching.with(|options| options.get(at).map(|option| option_id(&option.value)))
            })
        }
    };
    let has_models = !options.is_empty();

    view! {
        <div class="model-listbox" class:js-hidden=move || !hydrated.0.get() node_ref=wrapper_ref on:focusout=on_focus_out>
            <button
                type="button"
                id=trigger_id.clone()
                node_ref=trigger_ref
                class="form-control listbox-trigger"
                class:placeholder=stored.is_empty()
                aria-haspopup="listbox"
                aria-expanded=move || open.get().to_string()
                aria-labelledby=format!("{labelled_by} {trigger_id}")
                disabled=move || busy.get()
                on:click=move |_| if open.get_untracked() { close(true) } else { show() }
                on:keydown=on_trigger_key
            >
                <span>{trigger_text}</span>
                <span class="listbox-caret" aria-hidden="true">"▾"</span>
            </button>
            {move || open.get().then(|| view! {
                <div class="listbox-panel" on:mousedown=|event| {
                    // Keeps the focus (and so the dropdown) while an option is clicked.
                    if !matches!(event.target(), Some(ref target) if is_link(target)) {
                        event.prevent_default();
                    }
                }>
                    <div class="listbox-header">"Compatible models"</div>
                    <input
                        type="text"
                        class="form-control listbox-search"
                        role="combobox"
                        aria-label="Search"
                        placeholder="Search"
                        aria-autocomplete="list"
                        aria-expanded="true"
                        aria-controls=list_id.clone()
                        aria-activedescendant=active_id.clone()
                        node_ref=search_ref
                        prop:value=move || search.get()
                        on:input=move |event| {
                            search.set(event_target_value(&event));
                            active.set(None);
                        }
                        on:keydown=on_search_key.clone()
                    />
                    <ul role="listbox" id=list_id.clone() class="listbox-items" aria-label="Compatible models">
                        {has_models.then(|| {
                            let option_id = option_id.clone();
                            let commit = commit.clone();
                            let stored = stored.clone();
                            let (group_id, group_label) = (group_id.clone(), group_id.clone());
                            view! {
                                <li role="group" aria-labelledby=group_label>
                                    <div class="listbox-group" id=group_id role="presentation">"Self-hosted models"</div>
                                    <ul role="presentation">
                                        {move || matching.get().into_iter().enumerate().map(|(at, option)| {
                                            let commit = commit.clone();
                                            let selected = option.value == stored;
                                            let value = option.value.clone();
                                            view! {
                                                <li
                                                    role="option"
                                                    id=option_id(&option.value)
                                                    class="listbox-option"
                                                    class:active=move || active.get() == Some(at)
                                                    aria-selected=selected.to_string()
                                                    on:click=move |_| commit(value.clone())
                                                >
                                                    <span class="listbox-check" aria-hidden="true"></span>
                                                    {option.label}
                                                </li>
                                            }
                                        }).collect_view()}
                                    </ul>
                                </li>
                            }
                            .into_any()
                        })}
                        {move || matching.with(Vec::is_empty).then(|| view! {
                            <li class="listbox-empty" role="presentation">"No results found"</li>
                        })}
                    </ul>
                    {can_add.then(|| view! {
                        <div class="listbox-footer">
                            <a class="btn btn-sm" href="/admin/gitlab_duo/self_hosted/models/new">"Add self-hosted model"</a>
                        </div>
                    })}
                </div>
            }.into_any())}
        </div>
    }
    // Erased: the page's type would otherwise outgrow the compiler's depth limit.
    .into_any()
}

/// Whether a mouse press landed on a link (which must keep its default: following it).
fn is_link(target: &leptos::web_sys::EventTarget) -> bool {
    use leptos::wasm_bindgen::JsCast;
    target
        .dyn_ref::<leptos::web_sys::Element>()
        .is_some_and(|element| element.closest("a").ok().flatten().is_some())
}
