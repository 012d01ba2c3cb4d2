//! What the "AI-native features" tab shows and posts: a feature's assignment, its row, its
//! section, with GitLab's texts. Shared by the page (in the browser) and the server.

use serde::{Deserialize, Serialize};

use crate::catalog::Release;
use crate::models::domain::{Serving, status_time};

pub const UPDATE_ERROR: &str = "An error occurred while updating the self-hosted model, please try again.";
pub const UNASSIGNED_HINT: &str = "Assign a model to enable this feature";

/// The failure toast of "Apply to all" in a section.
pub fn apply_to_all_error(section: &str) -> String {
    format!("An error occurred while updating the {section} sub-feature settings. Please try again.")
}
pub const CHOOSE_A_MODEL: &str = "Select a model for the feature.";

/// What a feature is set to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
/// The dropdown's value for "no model of its own": a Chat sub-feature then uses General Chat's.
pub const CHOICE_FALLBACK: &str = "";

/// The option that returns a feature to the model it falls back to, in GitLab's words.
pub fn fallback_choice_label(target_title: &str) -> String {
    format!("Use {target_title}'s model")
}

/// What "Apply to all" did, so that its toast can name the model and offer to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedToAll {
    /// The toast: the section and the model.
    pub message: String,
    /// The model applied.
    pub model_id: i64,
    /// Each feature that was changed, with its dropdown value before (see `Assignment::choice`).
    pub previous: Vec<(String, String)>,
}

/// A model the dropdown offers: "NAME (Family)".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelChoice {
    pub id: i64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApplyToAll {
    pub enabled: bool,
    pub tooltip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
    /// For a feature that can fall back to another's model: the option that returns it there
    /// ("Use General Chat's model").
    pub fallback_choice: Option<String>,
    pub status: FeatureStatus,
}

/// Whether a feature is served now: the status of the model that answers for it (its own or
/// its fallback's), or that none does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum FeatureStatus {
    /// Turned off on purpose: not counted as unserved.
    Disabled,
    NoModel,
    Model(Serving),
}

impl FeatureStatus {
    /// The status's words on the features tab and the Configuration page.
    pub fn text(&self) -> String {
        match self {
            FeatureStatus::Disabled => "Disabled".to_owned(),
            FeatureStatus::NoModel => "No model".to_owned(),
            FeatureStatus::Model(Serving::NotTested) => "Not tested".to_owned(),
            FeatureStatus::Model(Serving::Ready { .. }) => "Ready".to_owned(),
            FeatureStatus::Model(Serving::Failing { since, .. }) => {
                format!("Failing since {}", status_time(*since))
            }
        }
    }

    /// More about it, for a tooltip and the Configuration page's list: when the model last
    /// answered, or why it fails.
    pub fn detail(&self) -> Option<String> {
        match self {
            FeatureStatus::Model(Serving::Ready { tested_at }) => {
                Some(format!("Last tested {}", status_time(*tested_at)))
            }
            FeatureStatus::Model(Serving::Failing { message, .. }) => Some(message.clone()),
            _ => None,
        }
    }

    /// A class naming the status's colour.
    pub fn class(&self) -> &'static str {
        match self {
            FeatureStatus::Model(Serving::Ready { .. }) => "status status-ready",
            FeatureStatus::Model(Serving::Failing { .. }) | FeatureStatus::NoModel => "status status-failing",
            FeatureStatus::Model(Serving::NotTested) => "status status-untested",
            FeatureStatus::Disabled => "status status-off",
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, FeatureStatus::Model(serving) if serving.is_ready())
    }
}

/// "Features ready: 9 of 10": of the visible features that are not disabled, how many are
/// served by a model whose last test answered; and the others, to name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Readiness {
    pub ready: usize,
    pub total: usize,
    /// Title and status of each counted feature that is not ready.
    pub not_ready: Vec<(String, FeatureStatus)>,
}

impl Readiness {
    pub fn of(sections: &[SectionView]) -> Readiness {
        let counted: Vec<&FeatureRow> = sections
            .iter()
            .flat_map(|section| &section.features)
            .filter(|row| row.status != FeatureStatus::Disabled)
            .collect();
        Readiness {
            ready: counted.iter().filter(|row| row.status.is_ready()).count(),
            total: counted.len(),
            not_ready: counted
                .iter()
                .filter(|row| !row.status.is_ready())
                .map(|row| (row.title.clone(), row.status.clone()))
                .collect(),
        }
    }

    pub fn summary(&self) -> String {
        format!("Features ready: {} of {}", self.ready, self.total)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SectionView {
    pub key: String,
    pub title: String,
    pub description: String,
    pub features: Vec<FeatureRow>,
    /// GitLab's "More features are available in beta" note applies.
    pub more_in_beta: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FeaturesPage {
    pub sections: Vec<SectionView>,
    pub beta_enabled: bool,
    /// The dropdowns' "Add self-hosted model" footer: only admins may add models.
    pub can_add_models: bool,
}

/// A feature that is shown only while beta is on, with the model it uses now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiddenFeature {
    pub title: String,
    pub model: Option<String>,
}
