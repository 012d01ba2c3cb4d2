//! "Test all", on the models tab (every model) and on the features tab (every feature a model
//! serves, with its own prompt): each is asked GitLab's probe, several at once; each outcome
//! appears as it comes in, then the summary ("18 of 20 answered"). An island.

use leptos::prelude::*;

use crate::chat::api::{test_all_features, test_all_models};
use crate::chat::{LineBuffer, TestAllEvent};

/// What a "Test all" button tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TestAllOf {
    Models,
    Features,
}

impl TestAllOf {
    fn noun(self) -> &'static str {
        match self {
            TestAllOf::Models => "models",
            TestAllOf::Features => "features",
        }
    }
}

#[derive(Clone, Default)]
struct Progress {
    total: Option<usize>,
    results: Vec<(String, bool, String, u64)>,
    summary: Option<String>,
    failure: Option<String>,
}

/// The island: the button and the outcomes as they come in. When the run ends, the parts of the
/// page that show tests (statuses, last tests) are read again.
#[island]
pub fn TestAll(of: TestAllOf) -> impl IntoView {
    crate::hydration::provide_hydration();
    let progress = RwSignal::new(None::<Progress>);
    let running = RwSignal::new(false);
    let start = move |_| {
        if running.get_untracked() {
            return;
        }
        running.set(true);
        progress.set(Some(Progress::default()));
        leptos::task::spawn_local(async move {
            use futures::StreamExt;
            let started = match of {
                TestAllOf::Models => test_all_models().await,
                TestAllOf::Features => test_all_features().await,
            };
            match started {
                Err(error) => {
                    progress.update(|p| p.get_or_insert_default().failure = Some(error.to_string()))
                }
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    let mut lines = LineBuffer::default();
                    while let Some(chunk) = stream.next().await {
                        let Ok(chunk) = chunk else { break };
                        for event in lines.push_as::<TestAllEvent>(&chunk) {
                            progress.update(|p| {
                                let p = p.get_or_insert_default();
                                match event {
                                    TestAllEvent::Started(total) => p.total = Some(total),
                                    TestAllEvent::Tested { subject, ok, message, total_ms } => {
                                        p.results.push((subject, ok, message, total_ms))
                                    }
                                    TestAllEvent::Finished { answered, total } => {
                                        p.summary = Some(TestAllEvent::summary(answered, total))
                                    }
                                }
                            });
                        }
                    }
                }
            }
            running.set(false);
            crate::refresh::refresh_page_parts();
        });
    };
    let hydrated = crate::hydration::use_hydrated();
    view! {
        <div class="test-all">
        <button type="button" class="btn" disabled=move || !hydrated.get() || running.get() on:click=start>"Test all"</button>
        {move || progress.get().map(|p| view! {
            <section class="test-all-progress" aria-label="Test all" aria-live="polite">
                {p.total.map(|total| view! {
                    <p class="form-text">{format!("Tested {} of {total} {}", p.results.len(), of.noun())}</p>
                })}
                <ul class="test-all-results">
                    {p.results.into_iter().map(|(model, ok, message, total_ms)| view! {
                        <li class=if ok { "test-ok" } else { "test-failed" }>
                            <strong>{model}</strong>": "
                            {if ok { format!("{message} ({total_ms} ms)") } else { message }}
                        </li>
                    }).collect_view()}
                </ul>
                {p.summary.map(|summary| view! { <p class="test-all-summary" role="status">{summary}</p> })}
                {p.failure.map(|failure| view! { <div class="alert alert-danger" role="alert">{failure}</div> })}
            </section>
        })}
        </div>
    }
}
