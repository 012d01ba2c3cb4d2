//! The server functions of the "AI-native features" tab: the page's data, choosing a model for
//! one feature, and applying a section's main model to all of its features. The rules live here,
//! not in the browser: compatibility, beta gating, admins only.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::flash::Flash;

pub use super::domain::*;

#[server(endpoint = "ai_feature_settings", input = GetUrl)]
pub async fn load_features() -> Result<FeaturesPage, AppError> {
    ssr::load_features().await.map_err(AppError::respond)
}

/// "Features ready: 9 of 10", and the features that are not: what the Configuration page and
/// the overview show, from the same rules as the tab.
#[server(endpoint = "ai_feature_readiness", input = GetUrl)]
pub async fn load_readiness() -> Result<Readiness, AppError> {
    ssr::load_readiness().await.map_err(AppError::respond)
}

/// Sets one feature to a model (its id), to "disabled", or (`CHOICE_FALLBACK`, for a feature
/// that falls back to another's model) to no model of its own; answers with the toast text.
#[server(endpoint = "update_ai_feature_setting")]
pub async fn update_feature(feature: String, choice: String) -> Result<String, AppError> {
    let updated = ssr::update_feature(feature.clone(), choice).await;
    let flash = match &updated {
        Ok(message) => Flash::notice(message),
        Err(error) => Flash::refusal(error, UPDATE_ERROR),
    };
    crate::flash::ssr::keep(flash.about(&feature)).await;
    updated.map_err(AppError::respond)
}

/// Gives every visible feature of `feature`'s section the model `feature` has, in one
/// transaction: all change, or none. Answers with what each changed feature had before, for Undo.
#[server(endpoint = "apply_ai_feature_setting_to_all")]
pub async fn apply_feature_to_all(feature: String) -> Result<AppliedToAll, AppError> {
    let applied = ssr::apply_to_all(feature.clone()).await;
    let flash = match &applied {
        Ok(AppliedToAll { message, model_id, previous }) => Flash {
            // Nothing changed (every feature had the model already): nothing to undo.
            undo: (!previous.is_empty()).then(|| crate::flash::Undo {
                feature: feature.clone(),
                model_id: *model_id,
                previous: serde_json::to_string(previous).unwrap_or_default(),
            }),
            ..Flash::notice(message)
        },
        Err(error) => Flash::refusal(error, &apply_to_all_error(&ssr::section_title(&feature))),
    };
    crate::flash::ssr::keep(flash.about(&feature)).await;
    applied.map_err(AppError::respond)
}

/// Undoes an "Apply to all" of model `model_id` from `feature`'s row: each feature of
/// `previous` (JSON of `AppliedToAll::previous`) that still has that model gets its earlier
/// assignment back, all in one transaction; a feature changed since is left as it is.
#[server(endpoint = "undo_apply_ai_feature_setting_to_all")]
pub async fn undo_apply_to_all(feature: String, model_id: i64, previous: String) -> Result<String, AppError> {
    let undone = ssr::undo_apply_to_all(feature.clone(), model_id, previous).await;
    let flash = match &undone {
        Ok(message) => Flash::notice(message),
        Err(error) => Flash::refusal(error, &apply_to_all_error(&ssr::section_title(&feature))),
    };
    crate::flash::ssr::keep(flash.about(&feature)).await;
    undone.map_err(AppError::respond)
}

/// The features that turning beta off would hide (beta and experiment ones), each with the
/// model it uses now, if any: what the Configuration page lists before beta is turned off.
#[server(endpoint = "ai_features_hidden_without_beta", input = GetUrl)]
pub async fn features_hidden_without_beta() -> Result<Vec<HiddenFeature>, AppError> {
    ssr::hidden_without_beta().await.map_err(AppError::respond)
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::sync::Arc;

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

    /// The title of `feature`'s section ("GitLab Duo Chat"), for the messages about it.
    pub fn section_title(feature: &str) -> String {
        let catalog = catalog();
        catalog
            .feature(feature)
            .and_then(|feature| catalog.section(&feature.section))
            .map(|section| section.title.clone())
            .unwrap_or_default()
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

    /// Every feature's stored assignment, as a configuration export writes it.
    pub async fn stored_assignments(db: &mut sqlx::PgConnection) -> Result<Assignments, AppError> {
        let models = store::summaries(&mut *db).await?;
        assignments(&mut *db, &models).await
    }

    /// GitLab writes the family's key with a capital: "Codegemma is incompatible with ...".
    fn capitalised(key: &str) -> String {
        let mut chars = key.chars();
        chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
    }

    pub fn incompatible_message(family: &str, feature: &Feature) -> String {
        format!("{} is incompatible with the {} feature", capitalised(family), feature.title)
    }

    pub async fn hidden_without_beta() -> Result<Vec<HiddenFeature>, AppError> {
        current_user().await?;
        let (pool, catalog) = (pool(), catalog());
        let models = store::summaries(&pool).await?;
        let assignments = assignments(&pool, &models).await?;
        Ok(catalog
            .features
            .iter()
            .filter(|feature| feature.release.needs_beta())
            .map(|feature| HiddenFeature {
                title: feature.title.clone(),
                model: match effective_model(&catalog, feature, &assignments) {
                    crate::features::sections::Effective::Own { name, .. }
                    | crate::features::sections::Effective::Borrowed { name, .. } => Some(name.to_owned()),
                    crate::features::sections::Effective::Nothing => None,
                },
            })
            .collect())
    }

    pub async fn load_features() -> Result<FeaturesPage, AppError> {
        let user = current_user().await?;
        let tab = tab(&pool(), &catalog()).await?;
        Ok(FeaturesPage {
            sections: tab.sections.clone(),
            beta_enabled: tab.beta,
            can_add_models: user.is_admin(),
        })
    }

    /// The tab's data, the same for every user: whether beta is on, and the visible sections.
    pub struct Tab {
        beta: bool,
        sections: Vec<SectionView>,
    }

    /// The tab's data as of one generation of `features_generation`, kept by this replica and
    /// used for as long as that generation stands. Every change to what the tab shows moves the
    /// generation, in the change's own transaction and whichever replica or command made it
    /// (see the table's migration), so one tiny query tells whether what is kept is current.
    #[derive(Default)]
    pub struct TabCache(std::sync::Mutex<Option<(i64, Arc<Tab>)>>);

    impl TabCache {
        fn get(&self, generation: i64) -> Option<Arc<Tab>> {
            let kept = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            kept.as_ref().filter(|(kept, _)| *kept == generation).map(|(_, tab)| tab.clone())
        }

        fn keep(&self, generation: i64, tab: Arc<Tab>) {
            let mut kept = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Requests finish in any order: an older generation never replaces a newer one.
            if kept.as_ref().is_none_or(|(kept, _)| *kept <= generation) {
                *kept = Some((generation, tab));
            }
        }
    }

    /// The features tab's data version: moved by every change to what the tab shows.
    async fn generation(pool: &sqlx::PgPool) -> Result<i64, AppError> {
        Ok(sqlx::query_scalar!("SELECT generation FROM features_generation").fetch_one(pool).await?)
    }

    async fn tab(pool: &sqlx::PgPool, catalog: &Catalog) -> Result<Arc<Tab>, AppError> {
        let cache = use_context::<Arc<TabCache>>();
        // Read before the data: data read after it are at least as new, so what is kept under
        // this generation is never older than the generation says.
        let generation = generation(pool).await?;
        if let Some(kept) = cache.as_ref().and_then(|cache| cache.get(generation)) {
            return Ok(kept);
        }
        let beta = beta_enabled(pool).await?;
        let tab = Arc::new(Tab { beta, sections: visible_sections(pool, catalog, beta).await? });
        if let Some(cache) = cache {
            cache.keep(generation, tab.clone());
        }
        Ok(tab)
    }

    /// The tab's sections with each feature's assignment and status (the status of the model
    /// that answers for it).
    async fn visible_sections(
        pool: &sqlx::PgPool,
        catalog: &Catalog,
        beta: bool,
    ) -> Result<Vec<SectionView>, AppError> {
        let models = store::summaries(pool).await?;
        let assignments = assignments(pool, &models).await?;
        let serving = store::serving(pool).await?;
        Ok(sections(catalog, &models, &assignments, &serving, beta))
    }

    pub async fn readiness(pool: &sqlx::PgPool, catalog: &Catalog) -> Result<Readiness, AppError> {
        Ok(Readiness::of(&tab(pool, catalog).await?.sections))
    }

    pub async fn load_readiness() -> Result<Readiness, AppError> {
        current_user().await?;
        readiness(&pool(), &catalog()).await
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
        let actor = Actor::signed_in(&require_admin().await?).await;
        let mut tx = pool().begin().await?;
        let message = assign_in(&mut tx, &actor, &catalog(), &feature_key, &choice).await?;
        tx.commit().await?;
        Ok(message)
    }

    /// Assigns a feature (a model's id, `CHOICE_DISABLED`, or `CHOICE_FALLBACK` for a feature
    /// that falls back) with its audit event, inside the caller's transaction: the dropdown's
    /// and the API's one request, or one change of a configuration import.
    pub async fn assign_in(
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        catalog: &Catalog,
        feature_key: &str,
        choice: &str,
    ) -> Result<String, AppError> {
        let beta = beta_enabled(&mut *tx).await?;
        let feature = configurable(catalog, feature_key, beta)?;
        let assignment = if choice == CHOICE_FALLBACK && feature.falls_back_to.is_some() {
            Assignment::Unassigned
        } else {
            parse_choice(tx, catalog, feature, choice, beta).await?
        };
        save_assignment(tx, actor, catalog, feature, &assignment).await?;
        let section = catalog.section(&feature.section).map(|s| s.title.as_str()).unwrap_or_default();
        Ok(format!("Successfully updated {section} / {}", feature.title))
    }

    /// Takes a feature's own model away (it falls back, or has none, as before its first
    /// assignment): what a configuration import does for a feature its file leaves unassigned.
    pub async fn unassign_in(
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        catalog: &Catalog,
        feature_key: &str,
    ) -> Result<(), AppError> {
        let beta = beta_enabled(&mut *tx).await?;
        let feature = configurable(catalog, feature_key, beta)?;
        save_assignment(tx, actor, catalog, feature, &Assignment::Unassigned).await?;
        Ok(())
    }

    pub async fn apply_to_all(feature_key: String) -> Result<AppliedToAll, AppError> {
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
        let model_id = model.id;
        let assignment = Assignment::SelfHosted { id: model.id, name: model.name.clone() };
        let mut previous = Vec::new();
        for feature in catalog.visible_features(&main.section, beta) {
            if feature.key == main.key {
                continue;
            }
            if !feature.accepts(&model.family) {
                return Err(AppError::Conflict(incompatible_message(&model.family, feature)));
            }
            let before = save_assignment(&mut tx, &actor, catalog, feature, &assignment).await?;
            if before != assignment.choice() {
                previous.push((feature.key.clone(), before));
            }
        }
        tx.commit().await?;
        Ok(AppliedToAll {
            message: format!("Successfully updated all {section} features to {}", model.name),
            model_id,
            previous,
        })
    }

    pub async fn undo_apply_to_all(
        feature_key: String,
        model_id: i64,
        previous: String,
    ) -> Result<String, AppError> {
        let actor = Actor::signed_in(&require_admin().await?).await;
        let catalog = catalog();
        let catalog = &catalog;
        let previous: Vec<(String, String)> = serde_json::from_str(&previous)
            .map_err(|_| AppError::field("previous", "The previous settings could not be read."))?;
        let mut tx = pool().begin().await?;
        let beta = beta_enabled(&mut *tx).await?;
        let main = configurable(catalog, &feature_key, beta)?;
        let section = catalog.section(&main.section).map(|s| s.title.clone()).unwrap_or_default();
        let features = catalog.visible_features(&main.section, beta);
        // Only the section's own features, each once: the list is the browser's to send.
        if previous.len() > features.len() {
            return Err(AppError::field("previous", "The previous settings could not be read."));
        }
        let mut restored = Vec::new();
        let mut left = 0;
        for (key, choice) in &previous {
            let feature = features
                .iter()
                .find(|feature| &feature.key == key && feature.key != main.key)
                .filter(|feature| !restored.contains(&feature.key))
                .ok_or_else(|| AppError::field("previous", "The previous settings could not be read."))?;
            let current = sqlx::query!(
                "SELECT provider, self_hosted_model_id FROM feature_settings WHERE feature = $1 FOR UPDATE",
                feature.key
            )
            .fetch_optional(&mut *tx)
            .await?;
            // Changed by someone since: theirs stands.
            if !current.is_some_and(|row| {
                row.provider == "self_hosted" && row.self_hosted_model_id == Some(model_id)
            }) {
                left += 1;
                continue;
            }
            let assignment = if choice == CHOICE_FALLBACK {
                Assignment::Unassigned
            } else {
                parse_choice(&mut tx, catalog, feature, choice, beta).await?
            };
            save_assignment(&mut tx, &actor, catalog, feature, &assignment).await?;
            restored.push(feature.key.clone());
        }
        let model = store::share_for_assignment(&mut tx, model_id).await?.map(|m| m.name);
        let model = model.as_deref().unwrap_or("the model");
        record(
            &mut *tx,
            &actor,
            NewAuditEvent {
                action: "feature_settings_apply_to_all_undone",
                target_type: "AiFeatureSetting",
                target_id: Some(main.key.clone()),
                target_name: Some(&section),
                message: format!(
                    "Undid applying {model} to all {section} features: {} restored, {left} changed since and kept",
                    restored.len()
                ),
                before: None,
                after: Some(serde_json::json!({ "restored": restored, "kept": left })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(match left {
            0 => format!("Restored the previous models of the {section} features"),
            _ => {
                format!("Restored the previous models of the {section} features, except {left} changed since")
            }
        })
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

    /// Saves a feature's assignment with its audit event; returns the dropdown value it had.
    async fn save_assignment(
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        catalog: &Catalog,
        feature: &Feature,
        assignment: &Assignment,
    ) -> Result<String, AppError> {
        let (provider, model_id, described) = match assignment {
            Assignment::Disabled => ("disabled", None, "Disabled".to_owned()),
            Assignment::SelfHosted { id, name } => {
                ("self_hosted", Some(*id), format!("Self-hosted model ({name})"))
            }
            Assignment::Unassigned => {
                match feature.falls_back_to.as_deref().and_then(|key| catalog.feature(key)) {
                    Some(target) => {
                        ("unassigned", None, format!("Unassigned (uses the {} model)", target.title))
                    }
                    None => ("unassigned", None, "Unassigned".to_owned()),
                }
            }
        };
        let before = sqlx::query!(
            "SELECT provider, self_hosted_model_id FROM feature_settings WHERE feature = $1 FOR UPDATE",
            feature.key
        )
        .fetch_optional(&mut *tx)
        .await?;
        let before_choice = match before.as_ref().map(|b| (b.provider.as_str(), b.self_hosted_model_id)) {
            Some(("self_hosted", Some(id))) => id.to_string(),
            Some(("disabled", _)) => CHOICE_DISABLED.to_owned(),
            _ => CHOICE_FALLBACK.to_owned(),
        };
        // The audit trail names the models, before and after, as the dropdown does.
        let before_model = match before.as_ref().and_then(|b| b.self_hosted_model_id) {
            Some(id) => store::find(&mut *tx, id).await?.map(|model| model.name),
            None if before.as_ref().is_some_and(|b| b.provider == "disabled") => Some("Disabled".to_owned()),
            None => Some("Unassigned".to_owned()),
        };
        let after_model = match assignment {
            Assignment::SelfHosted { name, .. } => name.clone(),
            Assignment::Disabled => "Disabled".to_owned(),
            Assignment::Unassigned => "Unassigned".to_owned(),
        };
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
                before: before.map(|b| serde_json::json!({ "provider": b.provider, "self_hosted_model_id": b.self_hosted_model_id, "model": before_model })),
                after: Some(serde_json::json!({ "provider": provider, "self_hosted_model_id": model_id, "model": after_model })),
            },
        )
        .await?;
        Ok(before_choice)
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
