//! Configuration as code: the console's models, feature assignments and settings as one JSON
//! file, to keep in git or move between instances. `duo-admin config export` writes it and
//! `duo-admin config import FILE [--dry-run]` (or `/api/v1/configuration`) applies it: a diff
//! first, then every change in one transaction, each audited as the page would audit it.
//!
//! The file never holds a secret: a model's API key is a reference (`{"env": "NAME"}`),
//! resolved when importing (from the command's environment, or the API request's `secrets`).

#[cfg(feature = "ssr")]
pub mod ssr;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The file format's version; a file of another version is refused, not half-understood.
pub const VERSION: u32 = 1;
/// A file with more models is refused: one import is one transaction, and it must stay short.
pub const MAX_MODELS: usize = 1000;

/// The whole file. Unknown fields are refused, so a typo is an error rather than a setting
/// silently left as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub version: u32,
    /// Left out: the settings stay as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsEntry>,
    /// Every model the console should have, by name: a model not listed is removed.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    /// Feature key to what serves it; a feature left out stays as it is.
    #[serde(default)]
    pub features: BTreeMap<String, FeatureEntry>,
}

/// The Configuration page's settings and the schedule of checks, all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SettingsEntry {
    pub beta_enabled: bool,
    pub ai_gateway_timeout_seconds: i32,
    #[serde(default)]
    pub ai_gateway_url: Option<String>,
    #[serde(default)]
    pub duo_agent_platform_service_url: Option<String>,
    /// Minutes between scheduled checks; 0: off.
    pub check_interval_minutes: i32,
}

/// A model as the form has it, without its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// `api`, `bedrock` or `vertex_ai`.
    pub platform: String,
    pub model_family: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_region: Option<String>,
    /// A Google Vertex AI model's Google Cloud project and location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex_project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex_location: Option<String>,
    /// Where the API key comes from; left out: the model has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretRef>,
}

/// A secret named, never written: `{"env": "VLLM_API_KEY"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub env: String,
}

/// What serves a feature: `{"model": "Mixtral"}`, `"disabled"`, or `"unassigned"` (no model of
/// its own: it falls back, if it can, or has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureEntry {
    Model(String),
    Disabled,
    Unassigned,
}

impl FeatureEntry {
    #[cfg(feature = "ssr")]
    fn describe(&self) -> String {
        match self {
            FeatureEntry::Model(name) => name.clone(),
            FeatureEntry::Disabled => "Disabled".to_owned(),
            FeatureEntry::Unassigned => "Unassigned".to_owned(),
        }
    }
}

impl Document {
    /// Reads a file; a file that does not parse is refused with serde's own words (the field,
    /// what it expected, the line and column).
    pub fn parse(text: &str) -> Result<Document, String> {
        serde_json::from_str(text)
            .map_err(|error| format!("The configuration file could not be read: {error}"))
    }

    /// The file's text: stable, so the same configuration always gives the same bytes.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a document always serialises");
        text.push('\n');
        text
    }
}

/// The reference an export writes for a model's key: its name in capitals, `_API_KEY` after,
/// e.g. "Mixtral 8x7B" gives `MIXTRAL_8X7B_API_KEY`.
pub fn key_reference(model_name: &str) -> String {
    let mut name = String::new();
    for c in model_name.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_uppercase());
        } else if !name.is_empty() && !name.ends_with('_') {
            name.push('_');
        }
    }
    let name = name.trim_end_matches('_');
    match name.chars().next() {
        None => "MODEL_API_KEY".to_owned(),
        // An environment variable cannot start with a digit.
        Some(first) if first.is_ascii_digit() => format!("MODEL_{name}_API_KEY"),
        Some(_) => format!("{name}_API_KEY"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Changed,
    Removed,
}

/// One change an import makes (or, in a dry run, would make).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Change {
    pub kind: ChangeKind,
    /// `model`, `feature` or `setting`.
    pub target: String,
    /// The model's name, the feature's key, the setting's name.
    pub name: String,
    /// What changes, in words: "identifier: a → b", "API key replaced (1a2b → 3c4d)".
    pub details: Vec<String>,
}

/// An import's diff: what it changes, and what it found already as the file says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Models, features and settings the file names that are already as it says.
    pub unchanged: usize,
    /// Whether the changes were made (false for a dry run).
    pub applied: bool,
}

impl Plan {
    #[cfg(feature = "ssr")]
    fn push(&mut self, kind: ChangeKind, target: &str, name: &str, details: Vec<String>) {
        self.changes.push(Change { kind, target: target.to_owned(), name: name.to_owned(), details });
    }

    fn count(&self, kind: ChangeKind) -> usize {
        self.changes.iter().filter(|change| change.kind == kind).count()
    }

    /// The diff as the command prints it: one line a change (`+` added, `~` changed, `-`
    /// removed), then the totals.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for change in &self.changes {
            let sign = match change.kind {
                ChangeKind::Added => '+',
                ChangeKind::Changed => '~',
                ChangeKind::Removed => '-',
            };
            text.push_str(&format!("{sign} {} {}", change.target, change.name));
            if !change.details.is_empty() {
                text.push_str(&format!(": {}", change.details.join("; ")));
            }
            text.push('\n');
        }
        text.push_str(&format!(
            "{} added, {} changed, {} removed, {} unchanged.\n",
            self.count(ChangeKind::Added),
            self.count(ChangeKind::Changed),
            self.count(ChangeKind::Removed),
            self.unchanged
        ));
        text.push_str(match (self.applied, self.changes.is_empty()) {
            (_, true) => "Nothing to change.\n",
            (true, false) => "Applied in one transaction.\n",
            (false, false) => "Dry run: nothing was changed.\n",
        });
        text
    }
}

/// "old → new" for a detail line; `none` for nothing.
#[cfg(feature = "ssr")]
fn from_to(field: &str, before: Option<&str>, after: Option<&str>) -> String {
    format!("{field}: {} → {}", before.unwrap_or("none"), after.unwrap_or("none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_references_are_environment_variable_names() {
        assert_eq!(key_reference("Mixtral 8x7B"), "MIXTRAL_8X7B_API_KEY");
        assert_eq!(key_reference("  claude--sonnet / eu "), "CLAUDE_SONNET_EU_API_KEY");
        assert_eq!(key_reference("7b-chat"), "MODEL_7B_CHAT_API_KEY");
        assert_eq!(key_reference("日本"), "MODEL_API_KEY");
    }

    #[test]
    fn a_file_round_trips_through_its_text_and_refuses_typos() {
        let document = Document {
            version: VERSION,
            settings: None,
            models: vec![ModelEntry {
                name: "Mixtral".into(),
                platform: "api".into(),
                model_family: "mixtral".into(),
                endpoint: Some("http://vllm:8000/v1".into()),
                identifier: "custom_openai/Mixtral".into(),
                bedrock_region: None,
                vertex_project: None,
                vertex_location: None,
                api_key: Some(SecretRef { env: "MIXTRAL_API_KEY".into() }),
            }],
            features: BTreeMap::from([
                ("code_generations".to_owned(), FeatureEntry::Model("Mixtral".into())),
                ("duo_chat".to_owned(), FeatureEntry::Disabled),
            ]),
        };
        let text = document.to_text();
        assert!(text.contains(r#""api_key": {"#) && text.contains(r#""env": "MIXTRAL_API_KEY""#), "{text}");
        assert!(text.contains(r#""duo_chat": "disabled""#), "{text}");
        assert_eq!(Document::parse(&text).unwrap(), document);

        let typo = text.replace("\"identifier\"", "\"identifer\"");
        let refused = Document::parse(&typo).unwrap_err();
        assert!(refused.contains("identifer"), "{refused}");
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn a_plan_renders_one_line_a_change_and_says_whether_it_was_applied() {
        let mut plan = Plan::default();
        plan.push(ChangeKind::Added, "model", "Mixtral", vec!["api, mixtral".into()]);
        plan.push(ChangeKind::Changed, "setting", "ai_gateway_timeout_seconds", vec!["60 → 120".into()]);
        plan.push(ChangeKind::Removed, "model", "Old", vec![]);
        plan.unchanged = 4;
        let text = plan.render();
        assert_eq!(
            text,
            "+ model Mixtral: api, mixtral\n~ setting ai_gateway_timeout_seconds: 60 → 120\n- model Old\n\
             1 added, 1 changed, 1 removed, 4 unchanged.\nDry run: nothing was changed.\n"
        );
        plan.applied = true;
        assert!(plan.render().ends_with("Applied in one transaction.\n"));
        assert!(Plan::default().render().ends_with("Nothing to change.\n"));
    }
}
