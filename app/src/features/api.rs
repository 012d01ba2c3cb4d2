//! The server functions of the "AI-native features" tab: the page's data, choosing a model for
//! one feature, and applying a section's main model to all of its features. The rules live here,
//! not in the browser: compatibility, beta gating, admins only.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::catalog::Release;
use crate::error::AppError;

pub const UPDATE_ERROR: &str = "An error occurred while updating the self-hosted model, please try again.";
pub const UNASSIGNED_HINT: &str = "Assign a model to enable this feature";

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
}

#[server(endpoint = "ai_feature_settings", input = GetUrl)]
pub async fn load_features() -> Result<FeaturesPage, AppError> {
    ssr::load_features().await
}

/// Sets one feature to a model (its id), to "disabled", and answers with the toast text.
#[server(endpoint = "update_ai_feature_setting")]
pub async fn update_feature(feature: String, choice: String) -> Result<String, AppError> {
    ssr::update_feature(feature, choice).await
}

/// Gives every visible feature of `feature`'s section the model `feature` has, in one
/// transaction: all change, or none.
#[server(endpoint = "apply_ai_feature_setting_to_all")]
pub async fn apply_feature_to_all(feature: String) -> Result<String, AppError> {
    ssr::apply_to_all(feature).await
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::collections::HashMap;

    use super::*;
    use crate::audit::ssr::{Actor, NewAuditEvent, record};
    use crate::auth::ssr::{current_user, require_admin};
    use crate::catalog::{Catalog, Feature};
    use crate::models::api::ssr::beta_enabled;
    use crate::state::AppState;

    struct ModelInfo {
        id: i64,
        name: String,
        family: String,
    }

    async fn models(db: impl sqlx::PgExecutor<'_>) -> Result<Vec<ModelInfo>, sqlx::Error> {
        let rows =
            sqlx::query!("SELECT id, name, model_family FROM self_hosted_models ORDER BY lower(name), id")
                .fetch_all(db)
                .await?;
        Ok(rows.into_iter().map(|r| ModelInfo { id: r.id, name: r.name, family: r.model_family }).collect())
    }

    /// Every feature's stored assignment; features without a row are unassigned.
    async fn assignments(db: impl sqlx::PgExecutor<'_>) -> Result<HashMap<String, Assignment>, sqlx::Error> {
        let rows = sqlx::query!(
            r#"SELECT f.feature, f.provider, m.id AS "model_id?", m.name AS "model_name?"
               FROM feature_settings f LEFT JOIN self_hosted_models m ON m.id = f.self_hosted_model_id"#
        )
        .fetch_all(db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let assignment = match (row.provider.as_str(), row.model_id, row.model_name) {
                    ("self_hosted", Some(id), Some(name)) => Assignment::SelfHosted { id, name },
                    ("disabled", _, _) => Assignment::Disabled,
                    _ => Assignment::Unassigned,
                };
                (row.feature, assignment)
            })
            .collect())
    }

    fn family_label(catalog: &Catalog, key: &str) -> (String, Release) {
        catalog
            .family(key)
            .map(|f| (f.name.clone(), f.release))
            .unwrap_or_else(|| (key.to_owned(), Release::Ga))
    }

    /// GitLab writes the family's key with a capital: "Codegemma is incompatible with ...".
    fn capitalised(key: &str) -> String {
        let mut chars = key.chars();
        chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
    }

    pub fn incompatible_message(family: &str, feature: &Feature) -> String {
        format!("{} is incompatible with the {} feature", capitalised(family), feature.title)
    }

    pub async fn load_features() -> Result<FeaturesPage, AppError> {
        current_user().await?;
        let state = expect_context::<AppState>();
        let catalog = &state.catalog;
        let beta = beta_enabled(&state.pool).await?;
        let models = models(&state.pool).await?;
        let assignments = assignments(&state.pool).await?;
        let assignment_of = |key: &str| assignments.get(key).cloned().unwrap_or(Assignment::Unassigned);

        let sections = catalog
            .sections
            .iter()
            .filter_map(|section| {
                let visible = catalog.visible_features(&section.key, beta);
                if visible.is_empty() {
                    return None;
                }
                let hidden_beta = catalog.features.iter().any(|f| f.section == section.key && f.release.needs_beta());
                let main = visible[0];
                let rows = visible
                    .iter()
                    .enumerate()
                    .map(|(position, feature)| {
                        let assignment = assignment_of(&feature.key);
                        let mut choices: Vec<(Release, ModelChoice)> = models
                            .iter()
                            .filter(|model| feature.accepts(&model.family))
                            .filter_map(|model| {
                                let (family, release) = family_label(catalog, &model.family);
                                let current = matches!(&assignment, Assignment::SelfHosted { id, .. } if *id == model.id);
                                (beta || !release.needs_beta() || current).then(|| {
                                    (release, ModelChoice { id: model.id, label: format!("{} ({family})", model.name) })
                                })
                            })
                            .collect();
                        choices.sort_by_key(|(release, _)| *release);
                        let fallback = match (&assignment, &feature.falls_back_to) {
                            (Assignment::Unassigned, Some(target)) => catalog.feature(target).map(|target| {
                                match assignment_of(&target.key) {
                                    Assignment::SelfHosted { name, .. } => {
                                        format!("Uses the {} model: {name}", target.title)
                                    }
                                    _ => format!("Uses the {} model once one is assigned", target.title),
                                }
                            }),
                            _ => None,
                        };
                        let answered_by = match (&assignment, &feature.falls_back_to) {
                            (Assignment::SelfHosted { name, .. }, _) => Some(name.clone()),
                            (Assignment::Unassigned, Some(target)) => match assignment_of(target) {
                                Assignment::SelfHosted { name, .. } => Some(name),
                                _ => None,
                            },
                            _ => None,
                        };
                        let apply_to_all = (position == 0 && visible.len() > 1).then(|| {
                            apply_to_all_state(&section.title, main, &assignment, &visible, &models)
                        });
                        FeatureRow {
                            key: feature.key.clone(),
                            title: feature.title.clone(),
                            release: feature.release,
                            assignment,
                            choices: choices.into_iter().map(|(_, choice)| choice).collect(),
                            fallback,
                            apply_to_all,
                            answered_by,
                        }
                    })
                    .collect();
                Some(SectionView {
                    key: section.key.clone(),
                    title: section.title.clone(),
                    description: section.description.clone(),
                    features: rows,
                    more_in_beta: !beta && hidden_beta,
                })
            })
            .collect();
        Ok(FeaturesPage { sections, beta_enabled: beta })
    }

    fn apply_to_all_state(
        section_title: &str,
        main: &Feature,
        assignment: &Assignment,
        features: &[&Feature],
        models: &[ModelInfo],
    ) -> ApplyToAll {
        match assignment {
            Assignment::SelfHosted { id, .. } => {
                let family =
                    models.iter().find(|m| m.id == *id).map(|m| m.family.as_str()).unwrap_or_default();
                if features.iter().all(|feature| feature.accepts(family)) {
                    ApplyToAll {
                        enabled: true,
                        tooltip: format!("Apply to all {section_title} sub-features"),
                    }
                } else {
                    ApplyToAll {
                        enabled: false,
                        tooltip: format!("This model cannot be applied to all {section_title} sub-features"),
                    }
                }
            }
            _ => ApplyToAll {
                enabled: false,
                tooltip: format!("Assign a model to {} before applying to all", main.title),
            },
        }
    }

    /// The feature, if the admin may configure it now.
    fn configurable<'a>(catalog: &'a Catalog, key: &str, beta: bool) -> Result<&'a Feature, AppError> {
        let feature = catalog.feature(key).ok_or_else(|| AppError::NotFound.respond())?;
        if feature.release.needs_beta() && !beta {
            return Err(AppError::Conflict(format!(
                "{} is a beta feature. Turn on beta models and features on the Configuration page to configure it.",
                feature.title
            ))
            .respond());
        }
        Ok(feature)
    }

    pub async fn update_feature(feature_key: String, choice: String) -> Result<String, AppError> {
        let user = require_admin().await?;
        let state = expect_context::<AppState>();
        let mut tx = state.pool.begin().await?;
        let beta = beta_enabled(&mut *tx).await?;
        let feature = configurable(&state.catalog, &feature_key, beta)?;
        let assignment = parse_choice(&mut tx, &state.catalog, feature, &choice, beta).await?;
        save_assignment(&mut tx, &Actor::signed_in(&user).await, feature, &assignment).await?;
        tx.commit().await?;
        let section = state.catalog.section(&feature.section).map(|s| s.title.as_str()).unwrap_or_default();
        Ok(format!("Successfully updated {section} / {}", feature.title))
    }

    pub async fn apply_to_all(feature_key: String) -> Result<String, AppError> {
        let actor = Actor::signed_in(&require_admin().await?).await;
        let state = expect_context::<AppState>();
        let catalog = &state.catalog;
        let mut tx = state.pool.begin().await?;
        let beta = beta_enabled(&mut *tx).await?;
        let main = configurable(catalog, &feature_key, beta)?;
        let section = catalog.section(&main.section).map(|s| s.title.clone()).unwrap_or_default();
        // The main feature's stored model, read inside the transaction: the browser only says
        // which section, never which model.
        let stored = sqlx::query!(
            r#"SELECT f.provider, m.id AS "id?", m.name AS "name?", m.model_family AS "family?"
               FROM feature_settings f LEFT JOIN self_hosted_models m ON m.id = f.self_hosted_model_id
               WHERE f.feature = $1 FOR SHARE OF f"#,
            main.key
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, name, family)) = stored.and_then(|row| Some((row.id?, row.name?, row.family?))) else {
            return Err(AppError::Conflict(format!(
                "Assign a model to {} before applying to all",
                main.title
            ))
            .respond());
        };
        let assignment = Assignment::SelfHosted { id, name };
        for feature in catalog.visible_features(&main.section, beta) {
            if feature.key == main.key {
                continue;
            }
            if !feature.accepts(&family) {
                return Err(AppError::Conflict(incompatible_message(&family, feature)).respond());
            }
            save_assignment(&mut tx, &actor, feature, &assignment).await?;
        }
        tx.commit().await?;
        Ok(format!("Successfully updated all {section} features"))
    }

    async fn parse_choice(
        tx: &mut sqlx::PgConnection,
        catalog: &Catalog,
        feature: &Feature,
        choice: &str,
        beta: bool,
    ) -> Result<Assignment, AppError> {
        if choice == CHOICE_DISABLED {
            return Ok(Assignment::Disabled);
        }
        let id: i64 = choice
            .parse()
            .map_err(|_| AppError::field("model", "Select a model for the feature.").respond())?;
        // FOR SHARE: the model cannot be deleted until this assignment is saved.
        let model =
            sqlx::query!("SELECT id, name, model_family FROM self_hosted_models WHERE id = $1 FOR SHARE", id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| {
                    AppError::field("model", "The selected self-hosted model no longer exists.").respond()
                })?;
        if !feature.accepts(&model.model_family) {
            return Err(
                AppError::field("model", incompatible_message(&model.model_family, feature)).respond()
            );
        }
        let (_, release) = family_label(catalog, &model.model_family);
        if release.needs_beta() && !beta {
            return Err(AppError::field(
                "model",
                format!("{} is a beta model. Turn on beta models and features to use it.", model.name),
            )
            .respond());
        }
        Ok(Assignment::SelfHosted { id: model.id, name: model.name })
    }

    async fn save_assignment(
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        feature: &Feature,
        assignment: &Assignment,
    ) -> Result<(), AppError> {
        let (provider, model_id, described) = match assignment {
            Assignment::Disabled => ("disabled", None, "Disabled".to_owned()),
            Assignment::SelfHosted { id, name } => {
                ("self_hosted", Some(*id), format!("Self-hosted model ({name})"))
            }
            Assignment::Unassigned => ("unassigned", None, "Unassigned".to_owned()),
        };
        let before = sqlx::query!(
            "SELECT provider, self_hosted_model_id FROM feature_settings WHERE feature = $1 FOR UPDATE",
            feature.key
        )
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query!(
            r#"INSERT INTO feature_settings (feature, provider, self_hosted_model_id, updated_at)
               VALUES ($1, $2, $3, now())
               ON CONFLICT (feature) DO UPDATE
                 SET provider = EXCLUDED.provider, self_hosted_model_id = EXCLUDED.self_hosted_model_id,
                     updated_at = now()"#,
            feature.key,
            provider,
            model_id
        )
        .execute(&mut *tx)
        .await?;
        record(
            &mut *tx,
            actor,
            NewAuditEvent {
                action: "feature_setting_updated",
                target_type: "AiFeatureSetting",
                target_id: Some(feature.key.clone()),
                target_name: Some(&feature.title),
                message: format!("Feature {} changed to {described}", feature.key),
                before: before.map(|b| serde_json::json!({ "provider": b.provider, "self_hosted_model_id": b.self_hosted_model_id })),
                after: Some(serde_json::json!({ "provider": provider, "self_hosted_model_id": model_id })),
            },
        )
        .await?;
        Ok(())
    }

    /// The model that really serves a feature: its own, else (for a feature that falls back)
    /// the one of the feature it falls back to. `None` when disabled or unassigned.
    pub async fn resolve_model(
        db: &sqlx::PgPool,
        catalog: &Catalog,
        feature: &Feature,
    ) -> Result<Option<(i64, Option<String>)>, AppError> {
        let assignments = assignments(db).await?;
        Ok(match assignments.get(&feature.key) {
            Some(Assignment::SelfHosted { id, .. }) => Some((*id, None)),
            Some(Assignment::Disabled) => None,
            _ => feature.falls_back_to.as_deref().and_then(|target| match assignments.get(target) {
                Some(Assignment::SelfHosted { id, .. }) => {
                    Some((*id, catalog.feature(target).map(|f| f.title.clone())))
                }
                _ => None,
            }),
        })
    }
}
