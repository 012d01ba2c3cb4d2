//! `/admin/gitlab_duo/self_hosted` and `/features`: the "AI-native features" tab. Each feature's
//! dropdown (GitLab's searchable listbox) saves when a model is clicked or picked with Enter; the
//! page then shows what the server stored, so a refused choice returns the dropdown to the stored
//! value. Every change is a plain form post: with JavaScript off each row is a `<select>` and a
//! "Save" button, with it the dropdown posts that same form. The server answers with the tab
//! again, its toast under the section concerned and the focus back on that feature's dropdown.
//!
//! The page is drawn on the server; the islands (the browser's part) are each row's dropdown
//! (`ModelPicker`) and "Test" button, the toast, and "Test all".

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;

use super::api::{
    ApplyFeatureToAll, ApplyToAll, Assignment, CHOICE_DISABLED, CHOICE_FALLBACK, FeatureRow, FeatureStatus,
    FeaturesPage, SectionView, UNASSIGNED_HINT, UndoApplyToAll, UpdateFeature, load_features,
};
use crate::chat::panel::{ChatTarget, TestButton};
use crate::flash::{Flash, FlashAlert, Undo};
use crate::hydration::use_hydrated;
use crate::models::ModelConfigurationHeader;
use crate::models::domain::Serving;
use crate::models::test_all::{TestAll, TestAllOf};

/// How long a toast stays, unless the pointer or the focus is on it.
const TOAST_SHOWN_FOR: std::time::Duration = std::time::Duration::from_secs(5);

#[component]
pub fn AiFeaturesPage() -> impl IntoView {
    let features = crate::page_data::once(load_features());
    let flash = crate::page_data::once(crate::flash::take_for_page());
    view! {
        <Title text="Model configuration"/>
        <ModelConfigurationHeader active_tab="features"/>
        // A "Test all" changes the statuses: they are read again when it ends.
        <TestAll of=TestAllOf::Features/>
        <Suspense fallback=|| view! { <p class="loading">"Loading AI-native features…"</p> }>
            {move || Suspend::new(async move {
                let flash = flash.await;
                match features.await {
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                    Ok(FeaturesPage { sections, can_add_models, .. }) => {
                        // A flash about no row shown here (a refusal before any feature was
                        // read) stands at the top.
                        let shown_in_a_section = flash.as_ref().and_then(|flash| flash.about.as_ref()).is_some_and(|about| {
                            sections.iter().flat_map(|section| &section.features).any(|row| &row.key == about)
                        });
                        let on_top = flash.clone().filter(|_| !shown_in_a_section).map(|flash| Flash { about: None, ..flash });
                        view! {
                            <FlashAlert flash=on_top/>
                            {sections
                                .into_iter()
                                .map(|section| view! { <FeatureSection section can_add_models flash=flash.clone()/> })
                                .collect_view()}
                        }
                        .into_any()
                    }
                }
            })}
        </Suspense>
        // The toast's words are announced from here, once the page is interactive (words already
        // in the page as it loads are not announced).
        <div class="sr-only" role="status" data-testid="toast-announcer"></div>
    }
}

#[component]
fn FeatureSection(section: SectionView, can_add_models: bool, flash: Option<Flash>) -> impl IntoView {
    let SectionView { key, title, description, features, more_in_beta } = section;
    // The toast of a change made in this section, under its table.
    let toast = flash.filter(|flash| {
        flash.about.as_ref().is_some_and(|feature| features.iter().any(|row| &row.key == feature))
    });
    let focused = toast.as_ref().and_then(|toast| toast.about.clone());
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
            <table class="table feature-table" aria-label=title.clone()>
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
                        .map(|row| {
                            let focus = focused.as_ref() == Some(&row.key);
                            view! { <FeatureRowView row section=title.clone() several can_add_models focus/> }
                        })
                        .collect_view()}
                </tbody>
            </table>
            {toast.map(|Flash { text, failed, undo, .. }| view! { <SectionToast text failed undo/> })}
        </details>
    }
}

/// The toast of a change made in this section, under its table: in the page's flow, so it
/// covers no row. It stays while hovered or focused, and closes by itself otherwise. "Undo"
/// (after "Apply to all") is a plain form too.
#[island]
fn SectionToast(text: String, failed: bool, undo: Option<Undo>) -> impl IntoView {
    let open = RwSignal::new(true);
    let held = RwSignal::new(false);
    // Announced once the page is interactive: the region exists from the start, and a change
    // of its words is what assistive technology reads out.
    Effect::new({
        let text = text.clone();
        move |_| {
            if let Ok(Some(announcer)) = document().query_selector("[data-testid=toast-announcer]") {
                announcer.set_text_content(Some(&text));
            }
        }
    });
    // Closes after a while, counted again from when it is let go.
    let timer = StoredValue::new(None::<TimeoutHandle>);
    Effect::new(move |_| {
        let held = held.get();
        if let Some(running) = timer.get_value() {
            running.clear();
        }
        timer.set_value(None);
        if !held {
            timer.set_value(set_timeout_with_handle(move || open.set(false), TOAST_SHOWN_FOR).ok());
        }
    });
    move || {
        open.get().then(|| {
            let undo = undo.clone().map(|Undo { feature, model_id, previous }| view! {
                <form method="post" action=UndoApplyToAll::url() class="toast-undo">
                    <input type="hidden" name="feature" value=feature/>
                    <input type="hidden" name="model_id" value=model_id.to_string()/>
                    <input type="hidden" name="previous" value=previous/>
                    <button type="submit" class="btn btn-sm toast-action">"Undo"</button>
                </form>
            });
            view! {
                <div
                    class=if failed { "toast toast-danger" } else { "toast" }
                    data-testid="toast"
                    on:mouseenter=move |_| held.set(true)
                    on:mouseleave=move |_| held.set(false)
                    on:focusin=move |_| held.set(true)
                    on:focusout=move |_| held.set(false)
                >
                    <span>{text.clone()}</span>
                    {undo}
                    <button type="button" class="toast-close" aria-label="Dismiss" on:click=move |_| open.set(false)>"×"</button>
                </div>
            }
        })
    }
}

#[component]
fn FeatureRowView(
    row: FeatureRow,
    section: String,
    several: bool,
    can_add_models: bool,
    focus: bool,
) -> impl IntoView {
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
    let stored = assignment.choice();
    let unassigned = assignment == Assignment::Unassigned;
    let (select_id, label_id) = field_ids(&key);
    // GitLab offers "Disabled" only beside at least one compatible model.
    let mut options: Vec<ListOption> = choices
        .into_iter()
        .map(|choice| ListOption { value: choice.id.to_string(), label: choice.label })
        .collect();
    if !options.is_empty() {
        options.push(ListOption { value: CHOICE_DISABLED.to_owned(), label: "Disabled".to_owned() });
        if let Some(label) = fallback_choice.clone() {
            options.push(ListOption { value: CHOICE_FALLBACK.to_owned(), label });
        }
    }
    let placeholder = match fallback_choice {
        Some(label) => Some((CHOICE_FALLBACK.to_owned(), label)),
        None => unassigned.then(|| (String::new(), "Select a model".to_owned())),
    };
    let test_button = answered_by
        .map(|_| view! { <TestButton target=ChatTarget::Feature(key.clone()) title=title.clone()/> });
    view! {
        <tr data-feature=key.clone()>
            <td>
                <label for=select_id.clone() id=label_id.clone() class="feature-title">{title.clone()}</label>
                {release.badge().map(|badge| view! { <span class="badge badge-neutral">{badge}</span> })}
            </td>
            <td class="feature-model">
                <div class="model-picker">
                    <FallbackForm feature=key.clone() id=select_id.clone() stored=stored.clone() options=options.clone() placeholder focus/>
                    <ModelPicker feature=key.clone() stored options can_add=can_add_models focus/>
                    {apply_to_all.map(|ApplyToAll { enabled, tooltip }| {
                        // The accessible name starts with the visible text, as speech input users say it.
                        let label = format!("Apply to all: the {title} model to every {section} sub-feature");
                        view! {
                            <form method="post" action=ApplyFeatureToAll::url() class="apply-to-all">
                                <input type="hidden" name="feature" value=key.clone()/>
                                <button type="submit" class="btn btn-sm btn-icon" title=tooltip aria-label=label disabled=!enabled>
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
            // Read again after a test or "Test all" (`refresh.rs`).
            <td class="feature-status" data-refresh=format!("status-{key}")>
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

/// A row's plain form: a `<select>` and "Save", what the row is until the page is hydrated and
/// with JavaScript off. The dropdown posts it too.
#[component]
fn FallbackForm(
    feature: String,
    id: String,
    stored: String,
    options: Vec<ListOption>,
    /// The first option when the feature has no model of its own: "Use General Chat's model"
    /// for one that falls back, else "Select a model".
    placeholder: Option<(String, String)>,
    /// The row just changed (without JavaScript, the focus comes back here).
    focus: bool,
) -> impl IntoView {
    let models = options.into_iter().filter(|option| option.value.parse::<i64>().is_ok());
    view! {
            <form
                method="post"
                action=UpdateFeature::url()
                class="model-fallback"
            >
                <input type="hidden" name="feature" value=feature.clone()/>
                <select
                    id=id.clone()
                    name="choice"
                    class="form-control"
                    title="Select the model for the feature"
                    autofocus=focus
                >
                    {placeholder.map(|(value, label)| {
                        let selected = value == stored;
                        view! { <option value=value selected=selected>{label}</option> }
                    })}
                    <optgroup label="Self-hosted models">
                        {models
                            .into_iter()
                            .map(|option| {
                                let selected = option.value == stored;
                                view! { <option value=option.value selected=selected>{option.label}</option> }
                            })
                            .collect_view()}
                    </optgroup>
                    <option value=CHOICE_DISABLED selected=stored == CHOICE_DISABLED>"Disabled"</option>
                </select>
                <button type="submit" class="btn btn-sm">"Save"</button>
            </form>
    }
}

/// The ids of a feature's `<select>` (the plain form's, which the dropdown's parts are named
/// after) and of its label.
fn field_ids(feature: &str) -> (String, String) {
    (format!("feature-{feature}"), format!("feature-{feature}-label"))
}

/// One option of a listbox: the value the server stores and the text shown.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListOption {
    value: String,
    label: String,
}

/// GitLab's model dropdown (WAI-ARIA listbox with a search combobox): the header "Compatible
/// models", the group "Self-hosted models" with "Disabled" last in it, type-to-search, and the
/// footer "Add self-hosted model" for admins. Arrow keys only move the active option; a choice is
/// saved on a click or Enter, so browsing the list never reassigns a live feature.
///
/// Until the page is hydrated (and with JavaScript off) the row's plain form shows instead
/// (`FallbackForm`). A choice in the dropdown is posted by that same form.
#[island]
fn ModelPicker(
    feature: String,
    stored: String,
    /// What the dropdown offers, the models first.
    options: Vec<ListOption>,
    /// Whether the signed-in user may add models (the footer link).
    can_add: bool,
    /// The row just changed: the focus comes back here.
    focus: bool,
) -> impl IntoView {
    crate::hydration::provide_hydration();
    let hydrated = use_hydrated();
    let (id, labelled_by) = field_ids(&feature);
    // A choice is being posted: the page is about to be drawn again.
    let posting = RwSignal::new(false);
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
            let needle = lowercase(&search.get());
            options
                .iter()
                .filter(|option| lowercase(&option.label).contains(&needle))
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
    // Back on the dropdown of the feature just changed, once it can take the focus.
    Effect::new(move |_| {
        if focus && let Some(trigger) = trigger_ref.get() {
            let _ = trigger.focus();
        }
    });
    let commit = {
        let stored = stored.clone();
        let select_id = id.clone();
        move |value: String| {
            close(true);
            if value == stored || posting.get_untracked() {
                return;
            }
            // The row's plain form (`FallbackForm`), posted with the choice in its `<select>`.
            use leptos::wasm_bindgen::JsCast;
            let select = document()
                .get_element_by_id(&select_id)
                .and_then(|select| select.dyn_into::<leptos::web_sys::HtmlSelectElement>().ok());
            if let Some((select, form)) = select.and_then(|select| select.form().map(|form| (select, form))) {
                posting.set(true);
                select.set_value(&value);
                let _ = form.request_submit();
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
        <div class="model-listbox" class:js-hidden=move || !hydrated.get() node_ref=wrapper_ref on:focusout=on_focus_out>
            <button
                type="button"
                id=trigger_id.clone()
                node_ref=trigger_ref
                class="form-control listbox-trigger"
                class:placeholder=stored.is_empty()
                aria-haspopup="listbox"
                aria-expanded=move || open.get().to_string()
                aria-labelledby=format!("{labelled_by} {trigger_id}")
                disabled=posting
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
                        prop:value=search
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

/// `text` in lower case, for a search that ignores case. In the browser by its own (JavaScript's
/// `toLowerCase`): Rust's would bring its Unicode case tables into the bundle.
fn lowercase(text: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        js_sys::JsString::from(text).to_lower_case().into()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        text.to_lowercase()
    }
}

/// Whether a mouse press landed on a link (which must keep its default: following it).
fn is_link(target: &leptos::web_sys::EventTarget) -> bool {
    use leptos::wasm_bindgen::JsCast;
    target
        .dyn_ref::<leptos::web_sys::Element>()
        .is_some_and(|element| element.closest("a").ok().flatten().is_some())
}
