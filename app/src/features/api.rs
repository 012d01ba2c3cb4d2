//! The server functions of the "AI-native features" tab: the page's data, choosing a model for
//! one feature, and applying a section's main model to all of its features. The rules live here,
//! not in the browser: compatibility, beta gating, admins only.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;

use crate::error::AppError;

pub use super::domain::*;

#[server(endpoint = "ai_feature_settings", input = GetUrl)]
pub async fn load_features() -> Result<FeaturesPage, AppError> {
    ssr::load_features().await.map_err(AppError::respond)
}

/// Sets one feature to a model (its id), to "disabled", and answers with the toast text.
#[server(endpoint = "update_ai_feature_setting")]
pub async fn update_feature(feature: String, choice: String) -> Result<String, AppError> {
    ssr::update_feature(feature, choice).await.map_err(AppError::respond)
}

/// Gives every visible feature of `feature`'s section the model `feature` has, in one
/// transaction: all change, or none.
#[server(endpoint = "apply_ai_feature_setting_to_all")]
pub async fn apply_feature_to_all(feature: String) -> Result<String, AppError> {
    ssr::apply_to_all(feature).await.map_err(AppError::respond)
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::audit::ssr::{Actor, NewAuditEvent, record};
    use crate::auth::ssr::{current_user, require_admin};
    use crate::catalog::{Catalog, Feature};
    use crate::configuration::api::ssr::beta_enabled;
    use crate::features::sections::{Assignments, effective_model, sections};
    use crate::models::store::{self, ModelSummary};

    fn pool() -> sqlx::PgPool {
        expect_context()
    }

    fn catalog() -> std::sync::Arc<Catalog> {
        expect_context()
    }

    /// The constraints of `feature_settings` (migrations/), in the tab's own words.
    pub fn constraint_violation(constraint: &str) -> Option<AppError> {
        match constraint {
            "feature_settings_model_when_self_hosted" => Some(AppError::field("model", CHOOSE_A_MODEL)),
            _ => None,
        }
    }

    /// Every feature's stored assignment, named from `models`; features without a row are
    /// unassigned.
    async fn assignments(
        db: impl sqlx::PgExecutor<'_>,
        models: &[ModelSummary],
    ) -> Result<Assignments, AppError> {
        let rows = sqlx::query!("SELECT feature, provider, self_hosted_model_id FROM feature_settings")
            .fetch_all(db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let model = row.self_hosted_model_id.and_then(|id| models.iter().find(|m| m.id == id));
                let assignment = match (row.provider.as_str(), model) {
                    ("self_hosted", Some(model)) => {
                        Assignment::SelfHosted { id: model.id, name: model.name.clone() }
                    }
                    ("disabled", _) => Assignment::Disabled,
                    _ => Assignment::Unassigned,
                };
                (row.feature, assignment)
            })
            .collect())
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
        let user = current_user().await?;
        let pool = pool();
        let beta = beta_enabled(&pool).await?;
        let models = store::summaries(&pool).await?;
        let assignments = assignments(&pool, &models).await?;
        Ok(FeaturesPage {
            sections: sections(&catalog(), &models, &assignments, beta),
            beta_enabled: beta,
            can_add_models: user.is_admin(),
        })
    }

    /// The feature, if the admin may configure it now.
    fn configurable<'a>(catalog: &'a Catalog, key: &str, beta: bool) -> Result<&'a Feature, AppError> {
        let feature = catalog.feature(key).ok_or(AppError::NotFound)?;
        if feature.release.needs_beta() && !beta {
            return Err(AppError::Conflict(format!(
                "{} is a beta feature. Turn on beta models and features on the Configuration page to configure it.",
                feature.title
            )));
        }
        Ok(feature)
    }

    pub async fn update_feature(feature_key: String, choice: String) -> Result<String, AppError> {
        let user = require_admin().await?;
        let catalog = catalog();
        let mut tx = pool().begin().await?;
        let beta = beta_enabled(&mut *tx).await?;
        let feature = configurable(&catalog, &feature_key, beta)?;
        let assignment = parse_choice(&mut tx, &catalog, feature, &choice, beta).await?;
        save_assignment(&mut tx, &Actor::signed_in(&user).await, feature, &assignment).await?;
        tx.commit().await?;
        let section = catalog.section(&feature.section).map(|s| s.title.as_str()).unwrap_or_default();
        Ok(format!("Successfully updated {section} / {}", feature.title))
    }

    pub async fn apply_to_all(feature_key: String) -> Result<String, AppError> {
        let actor = Actor::signed_in(&require_admin().await?).await;
        let catalog = catalog();
        let catalog = &catalog;
        let mut tx = pool().begin().await?;
        let beta = beta_enabled(&mut *tx).await?;
        let main = configurable(catalog, &feature_key, beta)?;
        let section = catalog.section(&main.section).map(|s| s.title.clone()).unwrap_or_default();
        // The main feature's stored model, read inside the transaction: the browser only says
        // which section, never which model.
        let stored = sqlx::query!(
            "SELECT provider, self_hosted_model_id FROM feature_settings WHERE feature = $1 FOR SHARE",
            main.key
        )
        .fetch_optional(&mut *tx)
        .await?;
        let model = match stored
            .and_then(|row| (row.provider == "self_hosted").then_some(row.self_hosted_model_id))
        {
            Some(Some(id)) => store::share_for_assignment(&mut tx, id).await?,
            _ => None,
        };
        let Some(model) = model else {
            return Err(AppError::Conflict(format!(
                "Assign a model to {} before applying to all",
                main.title
            )));
        };
        let assignment = Assignment::SelfHosted { id: model.id, name: model.name };
        for feature in catalog.visible_features(&main.section, beta) {
            if feature.key == main.key {
                continue;
            }
            if !feature.accepts(&model.family) {
                return Err(AppError::Conflict(incompatible_message(&model.family, feature)));
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
        let id: i64 = choice.parse().map_err(|_| AppError::field("model", CHOOSE_A_MODEL))?;
        // Shared: the model cannot be deleted until this assignment is saved.
        let model = store::share_for_assignment(tx, id)
            .await?
            .ok_or_else(|| AppError::field("model", "The selected self-hosted model no longer exists."))?;
        if !feature.accepts(&model.family) {
            return Err(AppError::field("model", incompatible_message(&model.family, feature)));
        }
        if catalog.family(&model.family).is_some_and(|family| family.release.needs_beta()) && !beta {
            return Err(AppError::field(
                "model",
                format!("{} is a beta model. Turn on beta models and features to use it.", model.name),
            ));
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
        .await
        .map_err(|error| AppError::from_database(error, constraint_violation))?;
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

    /// Each visible feature with the name of the model that serves it now (its own or its
    /// fallback's), if any: what `/metrics` reports per feature.
    pub async fn served_by(
        db: &sqlx::PgPool,
        catalog: &Catalog,
        beta: bool,
    ) -> Result<Vec<(String, Option<i64>)>, AppError> {
        let models = store::summaries(db).await?;
        let assignments = assignments(db, &models).await?;
        Ok(catalog
            .features
            .iter()
            .filter(|feature| beta || !feature.release.needs_beta())
            .map(|feature| (feature.key.clone(), effective_model(catalog, feature, &assignments).model_id()))
            .collect())
    }

    /// The model that really serves a feature (its own, or the fallback's) and, when borrowed,
    /// the title of the feature it is borrowed from. `None` when disabled or unassigned.
    pub async fn resolve_model(
        db: &sqlx::PgPool,
        catalog: &Catalog,
        feature: &Feature,
    ) -> Result<Option<(i64, Option<String>)>, AppError> {
        let models = store::summaries(db).await?;
        let assignments = assignments(db, &models).await?;
        let effective = effective_model(catalog, feature, &assignments);
        Ok(effective.model_id().map(|id| {
            let from = match effective {
                crate::features::sections::Effective::Borrowed { from, .. } => Some(from.title.clone()),
                _ => None,
            };
            (id, from)
        }))
    }
}
