//! Prompts per feature and model family, as data (`app/prompts/<feature>.toml`): a `[base]`
//! prompt and optional `[families.<family>]` replacements, resolved family first, then base,
//! as GitLab's AI gateway does. Checked at start with the catalog: every feature has a base
//! prompt, and every prompt belongs to a known feature and family.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::catalog::Catalog;

/// Every prompt file, by feature. A new feature needs its file here too; start-up says so.
const FILES: &[(&str, &str)] = &[
    ("code_generations", include_str!("../../prompts/code_generations.toml")),
    ("code_completions", include_str!("../../prompts/code_completions.toml")),
    ("duo_chat", include_str!("../../prompts/duo_chat.toml")),
    ("duo_chat_explain_code", include_str!("../../prompts/duo_chat_explain_code.toml")),
    ("duo_chat_write_tests", include_str!("../../prompts/duo_chat_write_tests.toml")),
    ("duo_chat_refactor_code", include_str!("../../prompts/duo_chat_refactor_code.toml")),
    ("duo_chat_fix_code", include_str!("../../prompts/duo_chat_fix_code.toml")),
    ("duo_chat_troubleshoot_job", include_str!("../../prompts/duo_chat_troubleshoot_job.toml")),
    ("generate_commit_message", include_str!("../../prompts/generate_commit_message.toml")),
    ("summarize_new_merge_request", include_str!("../../prompts/summarize_new_merge_request.toml")),
    ("summarize_review", include_str!("../../prompts/summarize_review.toml")),
    ("review_merge_request", include_str!("../../prompts/review_merge_request.toml")),
    ("duo_chat_summarize_comments", include_str!("../../prompts/duo_chat_summarize_comments.toml")),
    ("duo_agent_platform", include_str!("../../prompts/duo_agent_platform.toml")),
    ("duo_agent_platform_agentic_chat", include_str!("../../prompts/duo_agent_platform_agentic_chat.toml")),
    ("duo_chat_explain_vulnerability", include_str!("../../prompts/duo_chat_explain_vulnerability.toml")),
    ("resolve_vulnerability", include_str!("../../prompts/resolve_vulnerability.toml")),
    ("glab_ask_git_command", include_str!("../../prompts/glab_ask_git_command.toml")),
    (
        "duo_agent_platform_sast_fp_detection",
        include_str!("../../prompts/duo_agent_platform_sast_fp_detection.toml"),
    ),
    (
        "duo_agent_platform_secrets_fp_detection",
        include_str!("../../prompts/duo_agent_platform_secrets_fp_detection.toml"),
    ),
    (
        "duo_agent_platform_sast_vulnerability_resolution",
        include_str!("../../prompts/duo_agent_platform_sast_vulnerability_resolution.toml"),
    ),
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    pub system: String,
    pub max_tokens: i32,
    #[serde(default)]
    pub temperature: Option<f32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptFile {
    base: Prompt,
    #[serde(default)]
    families: BTreeMap<String, Prompt>,
}

#[derive(Debug, Clone, Default)]
pub struct Prompts {
    by_feature: HashMap<String, PromptFile>,
}

impl Prompts {
    /// The shipped prompt files, checked against the catalog.
    pub fn load(catalog: &Catalog) -> Result<Prompts, String> {
        Prompts::parse(FILES, catalog)
    }

    pub fn parse(files: &[(&str, &str)], catalog: &Catalog) -> Result<Prompts, String> {
        let mut by_feature = HashMap::new();
        for (feature, text) in files {
            let path = format!("app/prompts/{feature}.toml");
            let file: PromptFile =
                toml::from_str(text).map_err(|error| format!("{path} cannot be read: {error}"))?;
            if catalog.feature(feature).is_none() {
                return Err(format!(
                    "{path} is for \"{feature}\", which is not a feature in app/features.toml. Rename or remove it."
                ));
            }
            for (family, prompt) in std::iter::once(("base", &file.base))
                .chain(file.families.iter().map(|(f, p)| (f.as_str(), p)))
            {
                if family != "base" && catalog.family(family).is_none() {
                    return Err(format!(
                        "{path}: [families.{family}] names an unknown model family. Use a key from app/features.toml."
                    ));
                }
                if !(1..=8192).contains(&prompt.max_tokens) || prompt.system.trim().is_empty() {
                    return Err(format!(
                        "{path}: the {family} prompt needs a system text and max_tokens from 1 to 8192."
                    ));
                }
            }
            by_feature.insert((*feature).to_owned(), file);
        }
        if let Some(missing) = catalog.features.iter().find(|feature| !by_feature.contains_key(&feature.key))
        {
            return Err(format!(
                "the feature \"{}\" has no prompt. Add app/prompts/{}.toml with a [base] table, and list it in app/src/chat/prompts.rs.",
                missing.key, missing.key
            ));
        }
        Ok(Prompts { by_feature })
    }

    /// The family's own prompt if it has one, else the base prompt.
    pub fn resolve(&self, feature: &str, family: &str) -> Option<&Prompt> {
        self.by_feature.get(feature).map(|file| file.families.get(family).unwrap_or(&file.base))
    }
}
