//! Talking to a model: "Test connection" on the model form, and the "Hello" chat box whose
//! reply streams into the page. The clients themselves are in `client.rs` (server only).

pub mod api;
#[cfg(feature = "ssr")]
pub mod client;
pub mod panel;
#[cfg(feature = "ssr")]
pub mod prompts;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Speaker {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub speaker: Speaker,
    pub text: String,
}

/// What an exchange measured (a model's last test keeps it, so it lives with the models).
pub use crate::models::domain::Figures;

/// One line of a streamed chat reply, as the browser receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatEvent {
    /// Which model answers (for a feature: the one it resolves to, perhaps by fallback).
    Answering(String),
    Text(String),
    Done(Figures),
    Failed(String),
}

impl ChatEvent {
    /// One line of JSON in plain ASCII: a line may be split anywhere on its way to the browser,
    /// and ASCII can never be split inside a character.
    pub fn to_line(&self) -> String {
        ascii_line(self)
    }
}

/// One line of "Test all", as the browser receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TestAllEvent {
    /// How many models (or features) are being tested.
    Started(usize),
    /// One outcome: the model's name, or the feature's title and its model's.
    Tested {
        subject: String,
        ok: bool,
        message: String,
        total_ms: u64,
    },
    Finished {
        answered: usize,
        total: usize,
    },
}

impl TestAllEvent {
    pub fn summary(answered: usize, total: usize) -> String {
        format!("{answered} of {total} answered")
    }
}

/// `value` as one line of JSON in plain ASCII: a line may be split anywhere on its way to the
/// browser, and ASCII can never be split inside a character.
pub fn ascii_line(value: &impl Serialize) -> String {
    let json = serde_json::to_string(value).unwrap_or_default();
    let mut line = String::with_capacity(json.len() + 1);
    for c in json.chars() {
        if c.is_ascii() {
            line.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                line.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    line.push('\n');
    line
}

/// Reassembles lines from chunks that may split them anywhere.
#[derive(Default)]
pub struct LineBuffer(String);

impl LineBuffer {
    pub fn push(&mut self, chunk: &str) -> Vec<ChatEvent> {
        self.push_as(chunk)
    }

    /// The complete lines so far, read as `T`.
    pub fn push_as<T: serde::de::DeserializeOwned>(&mut self, chunk: &str) -> Vec<T> {
        self.0.push_str(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.0.find('\n') {
            let line: String = self.0.drain(..=end).collect();
            // Read as bytes, as server functions' replies are: one decoder per type in the bundle.
            if let Ok(event) = serde_json::from_slice(line.trim_end().as_bytes()) {
                events.push(event);
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_split_of_their_lines() {
        let events = vec![
            ChatEvent::Text("Hello, 世界 👋".into()),
            ChatEvent::Done(Figures {
                total_ms: 12,
                stop_reason: Some("end_turn".into()),
                ..Figures::default()
            }),
        ];
        let wire: String = events.iter().map(ChatEvent::to_line).collect();
        assert!(wire.is_ascii());
        for split in 1..wire.len() {
            let mut buffer = LineBuffer::default();
            let mut seen = buffer.push(&wire[..split]);
            seen.extend(buffer.push(&wire[split..]));
            assert_eq!(seen, events, "split at {split}");
        }
    }
}
