//! The server functions of the self-hosted models screens. Each checks who is asking, parses
//! its input with the domain types (the server is the truth), and writes through the models
//! store inside one transaction together with its audit event.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

pub use super::domain::StoredModel;
use super::domain::{LastTest, ModelForm, ModelId, Platform};
use crate::catalog::{Family, Release};
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::flash::Flash;

pub const MODELS_PER_PAGE: i64 = 20;
/// Pages past this are clamped to it: a huge `page` must not overflow the offset.
pub const MAX_PAGE: i64 = 1_000_000;
pub const MODELS_PATH: &str = "/admin/gitlab_duo/self_hosted/models";

/// One row of the "Self-hosted models" list. Never carries the API key, only whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelRow {
    pub id: ModelId,
    pub name: String,
    pub platform: Platform,
    pub family_name: String,
    pub family_release: Release,
    pub endpoint: Option<String>,
    pub identifier: String,
    /// A Bedrock model's own region; `None`: the console's.
    pub bedrock_region: Option<String>,
    /// A Vertex AI model's Google Cloud project and location.
    pub vertex_project: Option<String>,
    pub vertex_location: Option<String>,
    pub has_api_key: bool,
    /// Titles of the features that use this model.
    pub used_by: Vec<String>,
    pub last_test: Option<LastTest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelsPage {
    pub models: Vec<ModelRow>,
    pub page: i64,
    pub has_next_page: bool,
    pub beta_enabled: bool,
    /// When the list was read: what "Last test ... ago" counts from.
    pub now: chrono::DateTime<chrono::Utc>,
    /// Where Bedrock models without a region of their own run.
    pub console_region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFormData {
    pub families: Vec<Family>,
    pub beta_enabled: bool,
    pub model: Option<StoredModel>,
    /// The region a Bedrock model without one of its own runs in (the console's).
    pub console_region: String,
    /// What the admin typed before a refused save posted with JavaScript off (never the API
    /// key), so the form comes back filled in beside its errors.
    pub draft: Option<ModelForm>,
    /// The refused save's errors at each field, kept with the draft in the session (never read
    /// from the address, which anyone could forge into a link).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub draft_errors: crate::error::FieldErrors,
}

#[server(endpoint = "self_hosted_models", input = GetUrl)]
pub async fn list_models(search: String, page: i64) -> Result<ModelsPage, AppError> {
    ssr::list_models(search, page).await.map_err(AppError::respond)
}

#[server(endpoint = "self_hosted_model_form", input = GetUrl)]
pub async fn load_model_form(id: Option<i64>) -> Result<ModelFormData, AppError> {
    ssr::load_model_form(id).await.map_err(AppError::respond)
}

/// Adds (no `id`) or updates a model. On success the browser is sent back to the list.
#[server(endpoint = "save_self_hosted_model")]
pub async fn save_model(id: Option<i64>, #[server(flatten)] form: ModelForm) -> Result<(), AppError> {
    let saved = ssr::save_model(id, form.clone()).await;
    if let Err(AppError::Validation(errors)) = &saved
        && crate::error::is_plain_form_post()
    {
        ssr::keep_draft(id, form, errors.clone()).await;
    }
    saved.map(|_| ()).map_err(AppError::respond)
}

pub const DELETED_NOTICE: &str = "Your self-hosted model was successfully deleted.";
pub const DELETE_ERROR: &str = "An error occurred while deleting your self-hosted model. Please try again.";

#[server(endpoint = "delete_self_hosted_model")]
pub async fn delete_model(id: i64) -> Result<(), AppError> {
    let deleted = ssr::delete_model(id).await;
    let flash = match &deleted {
        Ok(()) => Flash::notice(DELETED_NOTICE),
        // The server's reason when it gives one (a model that came into use meanwhile).
        Err(error) => Flash::refusal(error, DELETE_ERROR),
    };
    crate::flash::ssr::keep(flash).await;
    deleted.map_err(AppError::respond)
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use serde_json::json;

    use super::*;
    use crate::audit::ssr::{Actor, NewAuditEvent, record};
    use crate::auth::ssr::{current_user, require_admin};
    use crate::catalog::Catalog;
    use crate::configuration::api::ssr::beta_enabled;
    use crate::models::domain::{
        ConsoleRegion, KEY_NEEDED_FOR_NEW_ENDPOINT, KeyAction, ValidModel, origin_of,
    };
    use crate::models::secrets::ApiKey;
    use crate::models::secrets::MasterKeys;
    use crate::models::store::{self, KeyChange};

    fn pool() -> sqlx::PgPool {
        expect_context()
    }

    fn catalog() -> std::sync::Arc<Catalog> {
        expect_context()
    }

    pub async fn list_models(search: String, page: i64) -> Result<ModelsPage, AppError> {
        current_user().await?;
        let (pool, catalog) = (pool(), catalog());
        let page = page.clamp(1, MAX_PAGE);
        let beta_enabled = beta_enabled(&pool).await?;
        // While beta is off, beta families are hidden, except for models a feature still uses:
        // hiding those would hide what is serving requests.
        let hidden_families: Vec<String> = if beta_enabled {
            Vec::new()
        } else {
            catalog.families.iter().filter(|f| f.release.needs_beta()).map(|f| f.key.clone()).collect()
        };
        let rows = store::list(
            &pool,
            search.trim(),
            &hidden_families,
            MODELS_PER_PAGE + 1,
            (page - 1) * MODELS_PER_PAGE,
        )
        .await?;
        let has_next_page = rows.len() as i64 > MODELS_PER_PAGE;
        let models = rows
            .into_iter()
            .take(MODELS_PER_PAGE as usize)
            .map(|row| {
                let model = row.record;
                let family = catalog.family(&model.model_family);
                ModelRow {
                    id: model.id,
                    family_name: family.map(|f| f.name.clone()).unwrap_or_else(|| model.model_family.clone()),
                    family_release: family.map(|f| f.release).unwrap_or(Release::Ga),
                    name: model.name,
                    platform: model.platform,
                    endpoint: model.endpoint,
                    identifier: model.identifier,
                    bedrock_region: model.bedrock_region,
                    vertex_project: model.vertex_project,
                    vertex_location: model.vertex_location,
                    has_api_key: row.has_api_key,
                    used_by: row.used_by.iter().map(|key| feature_title(&catalog, key)).collect(),
                    last_test: row.last_test,
                }
            })
            .collect();
        let console_region = expect_context::<ConsoleRegion>().0;
        Ok(ModelsPage { models, page, has_next_page, beta_enabled, now: chrono::Utc::now(), console_region })
    }

    pub async fn load_model_form(id: Option<i64>) -> Result<ModelFormData, AppError> {
        current_user().await?;
        let (pool, catalog) = (pool(), catalog());
        let beta_enabled = beta_enabled(&pool).await?;
        let model = match id {
            None => None,
            Some(id) => Some(store::find(&pool, id).await?.ok_or(AppError::NotFound)?),
        };
        let mut families = catalog.selectable_families(beta_enabled);
        // A stored model of a beta family stays editable while beta is off.
        if let Some(family) = model.as_ref().and_then(|m| catalog.family(&m.model_family))
            && !families.contains(family)
        {
            families.push(family.clone());
        }
        let (draft, draft_errors) = take_draft(id).await.unzip();
        let console_region = expect_context::<ConsoleRegion>().0;
        Ok(ModelFormData {
            families,
            beta_enabled,
            model,
            console_region,
            draft,
            draft_errors: draft_errors.unwrap_or_default(),
        })
    }

    /// A refused form, kept in the session until its page is shown again.
    #[derive(Serialize, Deserialize)]
    struct Draft {
        id: Option<i64>,
        form: ModelForm,
        #[serde(default)]
        errors: crate::error::FieldErrors,
    }

    const DRAFT_KEY: &str = "model_form_draft";

    /// Keeps what the admin typed (without the key) for the form's next rendering.
    pub async fn keep_draft(id: Option<i64>, form: ModelForm, errors: crate::error::FieldErrors) {
        crate::drafts::ssr::keep(DRAFT_KEY, Draft { id, form: form.without_key(), errors }).await;
    }

    /// The draft kept for the form of model `id` (or a new one), with its errors, taken out of
    /// the session.
    async fn take_draft(id: Option<i64>) -> Option<(ModelForm, crate::error::FieldErrors)> {
        let draft: Draft = crate::drafts::ssr::take(DRAFT_KEY).await?;
        (draft.id == id).then_some((draft.form, draft.errors))
    }

    /// The audit trail's view of a model: everything but the key, which appears as its
    /// fingerprint.
    fn audit_view(model: &StoredModel) -> serde_json::Value {
        json!({
            "name": model.name,
            "platform": model.platform.key(),
            "model_family": model.model_family,
            "endpoint": model.endpoint,
            "identifier": model.identifier,
            "bedrock_region": model.bedrock_region,
            "vertex_project": model.vertex_project,
            "vertex_location": model.vertex_location,
            "api_key_fingerprint": model.api_key_fingerprint,
        })
    }

    fn audit_label(model: &StoredModel) -> String {
        format!("{}/{}/{}", model.name, model.model_family, model.endpoint.as_deref().unwrap_or("--"))
    }

    /// Adds or updates a model; answers with its id (the JSON API shows the saved model).
    pub async fn save_model(id: Option<i64>, form: ModelForm) -> Result<ModelId, AppError> {
        let actor = Actor::signed_in(&require_admin().await?).await;
        let master_keys = expect_context::<std::sync::Arc<MasterKeys>>();
        let mut tx = pool().begin().await?;
        let saved = save_model_in(&mut tx, &actor, &catalog(), &master_keys, id, &form).await?;
        tx.commit().await?;
        let notice = if id.is_some() { "saved" } else { "created" };
        leptos_axum::redirect(&format!("{}?notice={notice}", super::super::AFTER_SAVE_PATH));
        Ok(saved)
    }

    /// The save itself, with its audit event, inside the caller's transaction: the form's and
    /// the API's one request, or a configuration import's many changes committed as one.
    pub async fn save_model_in(
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        catalog: &Catalog,
        master_keys: &MasterKeys,
        id: Option<i64>,
        form: &ModelForm,
    ) -> Result<ModelId, AppError> {
        let before = match id {
            Some(id) => Some(store::lock(tx, id).await?),
            None => None,
        };

        let beta_enabled = beta_enabled(&mut *tx).await?;
        let unchanged_family = before.as_ref().map(|model| model.model_family.as_str());
        let selectable = |key: &str| {
            catalog.family(key).is_some_and(|family| {
                beta_enabled || !family.release.needs_beta() || Some(key) == unchanged_family
            })
        };
        let valid: ValidModel = form.parse(selectable).map_err(AppError::Validation)?;

        let key = key_change(master_keys, &valid, before.as_ref(), form)?;
        let saved_id = store::write(tx, id, &valid, key).await?;
        let after = store::find(&mut *tx, saved_id).await?.ok_or(AppError::Internal)?;
        let (action, verb) =
            if before.is_some() { ("model_updated", "updated") } else { ("model_created", "created") };
        record(
            &mut *tx,
            actor,
            NewAuditEvent {
                action,
                target_type: "SelfHostedModel",
                target_id: Some(saved_id.to_string()),
                target_name: Some(&after.name),
                message: format!("Self-hosted model {} {verb}", audit_label(&after)),
                before: before.as_ref().map(audit_view),
                after: Some(audit_view(&after)),
            },
        )
        .await?;
        Ok(ModelId(saved_id))
    }

    /// What the save does with the key. Platforms without keys never hold one; a stored key
    /// is kept only while the endpoint keeps its origin, since it is bound to it.
    fn key_change<'a>(
        master_keys: &'a MasterKeys,
        model: &ValidModel,
        before: Option<&StoredModel>,
        form: &ModelForm,
    ) -> Result<KeyChange<'a>, AppError> {
        if !model.platform.uses_api_key() {
            return Ok(KeyChange::Clear);
        }
        let had_key = before.is_some_and(|model| model.api_key_fingerprint.is_some());
        let keep = || {
            let stored_origin = before.and_then(|m| m.endpoint.as_deref()).and_then(origin_of);
            if stored_origin == model.endpoint.as_ref().map(|e| e.origin()) {
                Ok(KeyChange::Keep)
            } else {
                Err(AppError::field("api_key", KEY_NEEDED_FOR_NEW_ENDPOINT))
            }
        };
        match (form.key_action(), form.typed_key()) {
            (KeyAction::Remove, _) => Ok(KeyChange::Clear),
            (KeyAction::Keep, _) if had_key => keep(),
            (_, Some(key)) => Ok(KeyChange::Set(ApiKey::new(key.to_owned()), master_keys)),
            // Replace chosen but left blank, on a model that had a key: keep it rather than
            // silently dropping a working key.
            (_, None) if had_key => keep(),
            (_, None) => Ok(KeyChange::Clear),
        }
    }

    pub async fn delete_model(id: i64) -> Result<(), AppError> {
        let actor = Actor::signed_in(&require_admin().await?).await;
        let mut tx = pool().begin().await?;
        delete_model_in(&mut tx, &actor, &catalog(), id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a model no feature uses, with its audit event, inside the caller's transaction.
    pub async fn delete_model_in(
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        catalog: &Catalog,
        id: i64,
    ) -> Result<(), AppError> {
        // Locking the row makes "in use?" and "delete" one step for concurrent requests; the
        // foreign key refuses the delete anyway if a feature slips in between.
        let model = store::lock(tx, id).await?;
        let used_by = store::used_by(&mut *tx, id).await?;
        if !used_by.is_empty() {
            let titles: Vec<String> = used_by.iter().map(|key| feature_title(catalog, key)).collect();
            return Err(AppError::Conflict(in_use_message(&model.name, &titles)));
        }
        store::delete(&mut *tx, id).await?;
        record(
            &mut *tx,
            actor,
            NewAuditEvent {
                action: "model_destroyed",
                target_type: "SelfHostedModel",
                target_id: Some(id.to_string()),
                target_name: Some(&model.name),
                message: format!("Self-hosted model {} destroyed", audit_label(&model)),
                before: Some(audit_view(&model)),
                after: None,
            },
        )
        .await?;
        Ok(())
    }

    fn feature_title(catalog: &crate::catalog::Catalog, key: &str) -> String {
        catalog.feature(key).map(|feature| feature.title.clone()).unwrap_or_else(|| key.to_owned())
    }

    pub fn in_use_message(name: &str, features: &[String]) -> String {
        format!(
            "To remove {name}, you must first remove it from the following AI Feature(s): {}",
            features.join(", ")
        )
    }
}
