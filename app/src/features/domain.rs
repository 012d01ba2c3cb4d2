//! What the "AI-native features" tab shows and posts: a feature's assignment, its row, its
//! section, with GitLab's texts. Shared by the page (in the browser) and the server.

use serde::{Deserialize, Serialize};

use crate::catalog::Release;

pub const UPDATE_ERROR: &str = "An error occurred while updating the self-hosted model, please try again.";
pub const UNASSIGNED_HINT: &str = "Assign a model to enable this feature";

/// The failure toast of "Apply to all" in a section.
pub fn apply_to_all_error(section: &str) -> String {
    format!("An error occurred while updating the {section} sub-feature settings. Please try again.")
}
pub const CHOOSE_A_MODEL: &str = "Select a model for the feature.";

/// What a feature is set to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Assignment {
    Unassigned,
    Disabled,
    SelfHosted { id: i64, name: String },
}

impl Assignment {
    /// The dropdown's value for this assignment.
    pub fn choice(&self) -> String {
        match self {
            Assignment::Unassigned => String::new(),
            Assignment::Disabled => CHOICE_DISABLED.to_owned(),
            Assignment::SelfHosted { id, .. } => id.to_string(),
        }
    }
}

pub const CHOICE_DISABLED: &str = "disabled";

/// A model the dropdown offers: "NAME (Family)".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChoice {
    pub id: i64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyToAll {
    pub enabled: bool,
    pub tooltip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureRow {
    pub key: String,
    pub title: String,
    pub release: Release,
    pub assignment: Assignment,
    pub choices: Vec<ModelChoice>,
    /// For a feature without a model of its own that borrows another's: which, and its model.
    pub fallback: Option<String>,
    pub apply_to_all: Option<ApplyToAll>,
    /// The model that answers for this feature now, if any (its own or the fallback's).
    pub answered_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionView {
    pub key: String,
    pub title: String,
    pub description: String,
    pub features: Vec<FeatureRow>,
    /// GitLab's "More features are available in beta" note applies.
    pub more_in_beta: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeaturesPage {
    pub sections: Vec<SectionView>,
    pub beta_enabled: bool,
    /// The dropdowns' "Add self-hosted model" footer: only admins may add models.
    pub can_add_models: bool,
}
