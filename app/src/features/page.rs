//! `/admin/gitlab_duo/self_hosted` and `/features`: the "AI-native features" tab. Each feature's
//! dropdown (GitLab's searchable listbox) saves when a model is clicked or picked with Enter; the
//! page then shows what the server stored, so a refused choice returns the dropdown to the stored
//! value. With JavaScript off, each row is a plain form: a `<select>` and a "Save" button.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;

use super::api::{
    AppliedToAll, ApplyFeatureToAll, ApplyToAll, Assignment, CHOICE_DISABLED, CHOICE_FALLBACK, FeatureRow,
    FeatureStatus, FeaturesPage, ModelChoice, SectionView, UNASSIGNED_HINT, UPDATE_ERROR, UndoApplyToAll,
    UpdateFeature, apply_to_all_error, load_features,
};
use crate::chat::panel::{ChatPanel, ChatTarget};
use crate::error::AppError;
use crate::models::ModelConfigurationHeader;
use crate::models::domain::Serving;
use crate::models::test_all::{TestAll, TestAllOf};

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

/// The toast after each save: its text, whether it reports a failure, the feature whose row
/// caused it (it shows under that feature's section, in the page's flow, so it never covers a
/// row), and for "Apply to all" what Undo sends.
#[derive(Clone)]
struct Toast {
    id: u64,
    text: String,
    failed: bool,
    feature: String,
    undo: Option<UndoApplyToAll>,
}

/// How long a toast stays, unless the pointer or the focus is on it.
const TOAST_SHOWN_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// The page's one toast, whether it is held open (hovered or focused), and the Undo action.
#[derive(Clone, Copy)]
struct Toasts {
    toast: RwSignal<Option<Toast>>,
    held: RwSignal<bool>,
    undo: ServerAction<UndoApplyToAll>,
}

/// The feature whose row last asked for a change: its section shows the toast.
#[derive(Clone, Copy)]
struct Acting(RwSignal<String>);

#[component]
pub fn AiFeaturesPage() -> impl IntoView {
    let update = ServerAction::<UpdateFeature>::new();
    let apply = ServerAction::<ApplyFeatureToAll>::new();
    let undo = ServerAction::<UndoApplyToAll>::new();
    // Bumped when a "Test all" ends: the statuses changed.
    let tested = RwSignal::new(0_u32);
    let features = crate::page_data::resource(
        move || (update.version().get(), apply.version().get(), undo.version().get(), tested.get()),
        |_| load_features(),
    );
    let toast = RwSignal::new(None::<Toast>);
    let held = RwSignal::new(false);
    provide_context(Toasts { toast, held, undo });
    let acting = Acting(RwSignal::new(String::new()));
    provide_context(acting);
    let shown = StoredValue::new(0u64);
    let show = move |text: String, failed: bool, undo: Option<UndoApplyToAll>| {
        shown.update_value(|count| *count += 1);
        held.set(false);
        let feature = acting.0.get_untracked();
        toast.set(Some(Toast { id: shown.get_value(), text, failed, feature, undo }));
    };
    // Each toast closes after a while, counted again from when it is let go.
    // (A plain stored value: this page is also drawn on the server, where a browser-only
    // `new_local` value dropped on another thread would panic.)
    let timer = StoredValue::new(None::<leptos::prelude::TimeoutHandle>);
    Effect::new(move |_| {
        let showing = toast.with(|toast| toast.as_ref().map(|toast| toast.id));
        let held = held.get();
        if let Some(running) = timer.get_value() {
            running.clear();
        }
        timer.set_value(None);
        if let (Some(id), false) = (showing, held) {
            let closing = set_timeout_with_handle(
                move || {
                    if toast.with_untracked(|toast| toast.as_ref().map(|toast| toast.id)) == Some(id) {
                        toast.set(None);
                    }
                },
                TOAST_SHOWN_FOR,
            );
            timer.set_value(closing.ok());
        }
    });
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
        Some(Ok(message)) => show(message, false, None),
        Some(Err(AppError::Validation(errors))) => {
            show(errors.values().next().cloned().unwrap_or_default(), true, None)
        }
        Some(Err(AppError::Conflict(message))) => show(message, true, None),
        Some(Err(AppError::Forbidden)) => show(AppError::Forbidden.to_string(), true, None),
        Some(Err(_)) => show(fallback.to_owned(), true, None),
        None => {}
    };
    Effect::new(move |_| report(update.value().get(), UPDATE_ERROR));
    Effect::new(move |_| {
        let section = applying.0.get_untracked();
        match apply.value().get() {
            Some(Ok(AppliedToAll { message, model_id, previous })) => {
                // Nothing changed (every feature had the model already): nothing to undo.
                let undo = (!previous.is_empty()).then(|| UndoApplyToAll {
                    feature: acting.0.get_untracked(),
                    model_id,
                    previous: serde_json::to_string(&previous).unwrap_or_default(),
                });
                show(message, false, undo)
            }
            other => report(other.map(|result| result.map(|_| String::new())), &apply_to_all_error(&section)),
        }
    });
    Effect::new(move |_| report(undo.value().get(), &apply_to_all_error(&applying.0.get_untracked())));

    view! {
        <Title text="Model configuration"/>
        <ModelConfigurationHeader active_tab="features"/>
        <TestAll of=TestAllOf::Features on_done=Callback::new(move |_| tested.update(|n| *n += 1))/>
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
        // Announced from here, a region that stays while the sections are drawn again; shown
        // under the section concerned (`SectionToast`).
        <div class="sr-only" role="status" data-testid="toast-announcer">{move || toast.get().map(|toast| toast.text)}</div>
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
    let keys: Vec<String> = features.iter().map(|row| row.key.clone()).collect();
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
                        <th scope="col">"Status"</th>
                    </tr>
                </thead>
                <tbody>
                    {features
                        .into_iter()
                        .map(|row| view! { <FeatureRowView row update apply section=title.clone() several/> })
                        .collect_view()}
                </tbody>
            </table>
            <SectionToast features=keys/>
        </details>
    }
}

/// The toast of a change made in this section, under its table: in the page's flow, so it
/// covers no row. It stays while hovered or focused, and closes by itself otherwise.
#[component]
fn SectionToast(features: Vec<String>) -> impl IntoView {
    let Toasts { toast, held, undo } = expect_context::<Toasts>();
    move || {
        toast.get().filter(|toast| features.contains(&toast.feature)).map(|shown| {
            let undo_input = shown.undo.clone();
            view! {
                <div
                    class=if shown.failed { "toast toast-danger" } else { "toast" }
                    data-testid="toast"
                    on:mouseenter=move |_| held.set(true)
                    on:mouseleave=move |_| held.set(false)
                    on:focusin=move |_| held.set(true)
                    on:focusout=move |_| held.set(false)
                >
                    <span>{shown.text}</span>
                    {undo_input.map(|input| view! {
                        <button
                            type="button"
                            class="btn btn-sm toast-action"
                            disabled=move || undo.pending().get()
                            on:click=move |_| {
                                undo.dispatch(input.clone());
                            }
                        >
                            "Undo"
                        </button>
                    })}
                    <button type="button" class="toast-close" aria-label="Dismiss" on:click=move |_| toast.set(None)>"×"</button>
                </div>
            }
        })
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
    let FeatureRow {
        key,
        title,
        release,
        assignment,
        choices,
        fallback,
        apply_to_all,
        answered_by,
        fallback_choice,
        status,
    } = row;
    let acting = expect_context::<Acting>();
    let testing = expect_context::<RwSignal<Option<(String, String)>>>();
    let hydrated = expect_context::<Hydrated>();
    let test_button = answered_by.map(|_| {
        let (key, title) = (key.clone(), title.clone());
        view! {
            // The chat box is the browser bundle's: usable once the page is hydrated.
            <button
                type="button"
                class="btn btn-sm"
                disabled=move || !hydrated.0.get()
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
                            {match fallback_choice.clone() {
                                Some(label) => Some(view! { <option value=CHOICE_FALLBACK selected=unassigned>{label}</option> }.into_any()),
                                None => unassigned.then(|| view! { <option value="" selected>"Select a model"</option> }.into_any()),
                            }}
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
                        fallback_choice
                        update
                        busy=Signal::derive(move || update.pending().get() || apply.pending().get())
                    />
                    {apply_to_all.map(|ApplyToAll { enabled, tooltip }| {
                        let feature = key.clone();
                        // The accessible name starts with the visible text, as speech input users say it.
                        let label = format!("Apply to all: the {title} model to every {section} sub-feature");
                        // A plain form: a click before the page is hydrated (or with JavaScript
                        // off) posts it, and the server applies it; once hydrated it is sent in
                        // the page, with a toast.
                        view! {
                            <form
                                method="post"
                                action=ApplyFeatureToAll::url()
                                class="apply-to-all"
                                on:submit=move |event| {
                                    event.prevent_default();
                                    if !enabled || apply.pending().get_untracked() {
                                        return;
                                    }
                                    applying.0.set(section.clone());
                                    acting.0.set(feature.clone());
                                    apply.dispatch(ApplyFeatureToAll { feature: feature.clone() });
                                }
                            >
                            <input type="hidden" name="feature" value=key.clone()/>
                            <button
                                type="submit"
                                class="btn btn-sm btn-icon"
                                title=tooltip
                                aria-label=label
                                disabled=move || !enabled || apply.pending().get()
                            >
                                <svg viewBox="0 0 16 16" aria-hidden="true" fill="currentColor">
                                    <path d="M5 1h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V3a2 2 0 0 1 2-2zm0 1.5a.5.5 0 0 0-.5.5v8a.5.5 0 0 0 .5.5h8a.5.5 0 0 0 .5-.5V3a.5.5 0 0 0-.5-.5H5zM1 5.5a.75.75 0 0 1 1.5 0V13a.5.5 0 0 0 .5.5h7.5a.75.75 0 0 1 0 1.5H3a2 2 0 0 1-2-2V5.5z"/>
                                </svg>
                                "Apply to all"
                            </button>
                            </form>
                        }
                    })}
                    {test_button}
                </div>
                {(several && unassigned && fallback.is_none()).then(|| view! {
                    <p class="form-text warning"><span aria-hidden="true">"⚠ "</span>{UNASSIGNED_HINT}</p>
                })}
                {fallback.map(|text| view! { <p class="form-text">{text}</p> })}
            </td>
            <td class="feature-status">
                <span class=status.class() title=status.detail()>{status.text()}</span>
                {matches!(status, FeatureStatus::Model(Serving::Failing { .. }))
                    .then(|| status.detail())
                    .flatten()
                    .map(|reason| view! { <p class="form-text status-reason">{reason}</p> })}
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
    /// "Use General Chat's model", for a feature that can fall back to another's model.
    fallback_choice: Option<String>,
    update: ServerAction<UpdateFeature>,
    busy: Signal<bool>,
) -> impl IntoView {
    let hydrated = expect_context::<Hydrated>();
    let acting = expect_context::<Acting>();
    let CanAddModels(can_add) = expect_context::<CanAddModels>();
    // GitLab offers "Disabled" only beside at least one compatible model.
    let mut options: Vec<ListOption> = choices
        .into_iter()
        .map(|ModelChoice { id, label }| ListOption { value: id.to_string(), label })
        .collect();
    if !options.is_empty() {
        options.push(ListOption { value: CHOICE_DISABLED.to_owned(), label: "Disabled".to_owned() });
        if let Some(label) = fallback_choice {
            options.push(ListOption { value: CHOICE_FALLBACK.to_owned(), label });
        }
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
                acting.0.set(feature.clone());
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
