//! The "Hello" chat box: prefilled with "Hello", the reply streams in as the model writes it,
//! and the figures (time to first token, total time, tokens, stop reason) follow. Follow-up
//! messages continue the conversation, which lives in the page only.

use leptos::prelude::*;

use crate::modal::Modal;

use super::api::{chat_with_feature, chat_with_model};
use super::{ChatEvent, ChatMessage, Figures, LineBuffer, Speaker};

/// What the chat box talks to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChatTarget {
    Model(i64),
    /// A feature: its own model, or the one it falls back to, with its prompt.
    Feature(String),
}

/// The island of a row's "Test": the button, usable once hydrated, and the chat box it opens.
/// A test changes the row's last test and status: those parts of the page are read again when
/// the box closes, and the focus goes back to this button.
#[island]
pub fn TestButton(target: ChatTarget, title: String) -> impl IntoView {
    crate::hydration::provide_hydration();
    let hydrated = crate::hydration::use_hydrated();
    let open = RwSignal::new(false);
    let model = match target {
        ChatTarget::Model(id) => Some(id),
        ChatTarget::Feature(_) => None,
    };
    let label = format!("Test {title}");
    view! {
        <button
            type="button"
            class="btn btn-sm"
            data-test-model=model
            aria-label=label.clone()
            disabled=move || !hydrated.get()
            on:click=move |_| open.set(true)
        >
            "Test"
        </button>
        {move || open.get().then(|| view! {
            <ChatPanel target=target.clone() title=label.clone() on_close=Callback::new(move |_| {
                open.set(false);
                crate::refresh::refresh_page_parts();
            })/>
        })}
    }
}

#[component]
pub fn ChatPanel(target: ChatTarget, title: String, on_close: Callback<()>) -> impl IntoView {
    let conversation = RwSignal::new(Vec::<ChatMessage>::new());
    let draft = RwSignal::new("Hello".to_owned());
    let streaming = RwSignal::new(false);
    let figures = RwSignal::new(None::<Figures>);
    let failure = RwSignal::new(None::<String>);
    let answering = RwSignal::new(None::<String>);
    // Replies the admin stopped, by their place in the conversation; and whether the last stop
    // came before the model wrote anything.
    let stopped = RwSignal::new(Vec::<usize>::new());
    let stopped_early = RwSignal::new(false);
    // Browser only: when the running reply was asked for, and the clock since (ticking).
    let asked_at = RwSignal::new(0.0_f64);
    let now = RwSignal::new(0.0_f64);
    let ticking = StoredValue::new(None::<leptos::prelude::IntervalHandle>);
    // Browser only: stops the running reply. Dropping the request's stream cancels its body,
    // which closes the connection: the server sees the reader go and ends the model call.
    let stop_reply = StoredValue::new(None::<futures::future::AbortHandle>);
    let stop = move || {
        if let Some(handle) = stop_reply.try_get_value().flatten() {
            handle.abort();
        }
    };
    // A chat box closed while a reply runs stops it too.
    on_cleanup(stop);

    let send = move || {
        let target = target.clone();
        let text = draft.get_untracked().trim().to_owned();
        if text.is_empty() || streaming.get_untracked() {
            return;
        }
        conversation.update(|messages| {
            messages.push(ChatMessage { speaker: Speaker::User, text });
            messages.push(ChatMessage { speaker: Speaker::Assistant, text: String::new() });
        });
        draft.set(String::new());
        figures.set(None);
        failure.set(None);
        stopped_early.set(false);
        streaming.set(true);
        let started = js_sys::Date::now();
        asked_at.set(started);
        now.set(started);
        let tick = set_interval_with_handle(
            move || now.set(js_sys::Date::now()),
            std::time::Duration::from_millis(100),
        );
        ticking.set_value(tick.ok());
        let (handle, registration) = futures::future::AbortHandle::new_pair();
        stop_reply.set_value(Some(handle));
        // What is sent: the conversation so far, without the empty reply being written.
        let history: Vec<ChatMessage> =
            conversation.get_untracked().into_iter().filter(|m| !m.text.is_empty()).collect();
        let history = serde_json::to_string(&history).unwrap_or_default();
        let exchange = async move {
            use futures::StreamExt;
            let reply = match target {
                ChatTarget::Model(id) => chat_with_model(id, history).await,
                ChatTarget::Feature(feature) => chat_with_feature(feature, history).await,
            };
            match reply {
                Err(error) => failure.set(Some(error.to_string())),
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    let mut lines = LineBuffer::default();
                    while let Some(chunk) = stream.next().await {
                        let chunk = match chunk {
                            Ok(chunk) => chunk,
                            Err(error) => {
                                failure.set(Some(error.to_string()));
                                break;
                            }
                        };
                        for event in lines.push(&chunk) {
                            match event {
                                ChatEvent::Text(text) => conversation.update(|messages| {
                                    if let Some(last) = messages.last_mut() {
                                        last.text.push_str(&text);
                                    }
                                }),
                                ChatEvent::Answering(model) => answering.set(Some(model)),
                                ChatEvent::Done(done) => figures.set(Some(done)),
                                ChatEvent::Failed(message) => failure.set(Some(message)),
                            }
                        }
                    }
                }
            }
        };
        leptos::task::spawn_local(async move {
            let was_stopped = futures::future::Abortable::new(exchange, registration).await.is_err();
            if let Some(tick) = ticking.try_get_value().flatten() {
                tick.clear();
            }
            let _ = ticking.try_set_value(None);
            let _ = stop_reply.try_set_value(None);
            // A reply that never came leaves no empty bubble behind; a stopped one keeps what
            // the model wrote so far, marked as stopped.
            let _ = conversation.try_update(|messages| {
                let empty =
                    messages.last().is_some_and(|m| m.speaker == Speaker::Assistant && m.text.is_empty());
                if empty {
                    messages.pop();
                } else if was_stopped && let Some(at) = messages.len().checked_sub(1) {
                    stopped.update(|stopped| stopped.push(at));
                }
                if was_stopped {
                    stopped_early.set(empty);
                }
            });
            let _ = streaming.try_set(false);
        });
    };
    let elapsed = move || tenths_of_seconds(now.get() - asked_at.get());

    // Copy, for the form's submit and the message's Enter alike.
    let send = Callback::new(move |()| send());

    view! {
        <Modal labelled_by="chat-title" class="chat-panel" on_close>
                <h2 id="chat-title">{title}</h2>
                {move || answering.get().map(|model| view! { <p class="form-text">{format!("Answered by {model}")}</p> })}
                <div class="chat-transcript" aria-live="polite" data-testid="chat-transcript">
                    // Drawn again as the reply grows: each message is updated in its place.
                    {move || {
                        let stopped = stopped.get();
                        conversation
                            .get()
                            .into_iter()
                            .enumerate()
                            .map(|(index, message)| {
                                let class = match message.speaker {
                                    Speaker::User => "chat-message from-user",
                                    Speaker::Assistant => "chat-message from-model",
                                };
                                let badge = stopped.contains(&index).then(|| view! {
                                    <span class="badge badge-neutral chat-stopped">"Stopped"</span>
                                });
                                view! { <div class=class>{message.text}{badge}</div> }
                            })
                            .collect_view()
                    }}
                    {move || (streaming.get() && conversation.with(|m| m.last().is_some_and(|m| m.text.is_empty())))
                        .then(|| view! { <div class="chat-message from-model typing">"…"</div> })}
                </div>
                {move || stopped_early.get().then(|| view! { <p class="form-text">"Stopped before the model answered."</p> })}
                {move || streaming.get().then(|| view! {
                    <div class="chat-running">
                        // A timer (not announced at each tick), beside the way to stop the reply.
                        <span role="timer">"Waiting for the reply: "{elapsed}</span>
                        <button type="button" class="btn btn-sm" on:click=move |_| stop()>"Stop"</button>
                    </div>
                })}
                {move || failure.get().map(|message| view! { <div class="alert alert-danger" role="alert">{message}</div> })}
                {move || figures.get().map(|figures| view! { <FiguresView figures/> })}
                <form
                    class="chat-input"
                    on:submit=move |event| {
                        event.prevent_default();
                        send.run(());
                    }
                >
                    <label for="chat-message" class="sr-only">"Message"</label>
                    <textarea
                        id="chat-message"
                        class="form-control"
                        rows="2"
                        autofocus
                        aria-describedby="chat-keys"
                        prop:value=draft
                        on:input=move |event| draft.set(event_target_value(&event))
                        on:keydown=move |event: leptos::ev::KeyboardEvent| {
                            // Enter sends; Shift+Enter starts a new line.
                            if event.key() == "Enter" && !event.shift_key() && !event.is_composing() {
                                event.prevent_default();
                                send.run(());
                            }
                        }
                    >
                        "Hello"
                    </textarea>
                    <button type="submit" class="btn btn-confirm" disabled=move || streaming.get()>"Send"</button>
                    <p id="chat-keys" class="form-text">"Enter sends; Shift+Enter adds a line."</p>
                </form>
                <div class="modal-footer">
                    <button type="button" class="btn" on:click=move |_| on_close.run(())>"Close"</button>
                </div>
        </Modal>
    }
}

/// "1.5 s" for 1,520 ms, in whole numbers: formatting a float would add its formatter (about
/// 10 KB) to the browser bundle for this one line.
fn tenths_of_seconds(milliseconds: f64) -> String {
    let tenths = (milliseconds.max(0.0) / 100.0) as u64;
    format!("{}.{} s", tenths / 10, tenths % 10)
}

#[component]
pub fn FiguresView(figures: Figures) -> impl IntoView {
    let tokens = |value: Option<i64>| value.map(|n| n.to_string()).unwrap_or_else(|| "--".to_owned());
    view! {
        <dl class="chat-figures" data-testid="chat-figures">
            <div><dt>"Time to first token"</dt><dd>{figures.first_token_ms.map(|ms| format!("{ms} ms")).unwrap_or_else(|| "--".to_owned())}</dd></div>
            <div><dt>"Total latency"</dt><dd>{format!("{} ms", figures.total_ms)}</dd></div>
            <div><dt>"Input tokens"</dt><dd>{tokens(figures.input_tokens)}</dd></div>
            <div><dt>"Output tokens"</dt><dd>{tokens(figures.output_tokens)}</dd></div>
            <div><dt>"Stop reason"</dt><dd>{figures.stop_reason.unwrap_or_else(|| "--".to_owned())}</dd></div>
        </dl>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_waiting_time_reads_in_tenths_of_a_second() {
        assert_eq!(super::tenths_of_seconds(0.0), "0.0 s");
        assert_eq!(super::tenths_of_seconds(-5.0), "0.0 s");
        assert_eq!(super::tenths_of_seconds(1520.0), "1.5 s");
        assert_eq!(super::tenths_of_seconds(99.9), "0.0 s");
        assert_eq!(super::tenths_of_seconds(61_000.0), "61.0 s");
    }
}
