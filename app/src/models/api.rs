//! The server functions of the self-hosted models screens. Each checks who is asking, parses
//! its input with the domain types (the server is the truth), and writes inside one transaction
//! together with its audit event.
// The form's fields are this module's server-function arguments: one per field, so a plain
// HTML form post (JavaScript off) maps onto them. The macro's browser-side copy of such a
// function cannot carry an attribute, hence the module-wide allowance.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use super::domain::{ModelId, Platform};
use crate::catalog::{Family, Release};
use crate::error::AppError;

pub const MODELS_PER_PAGE: i64 = 20;
pub const MODELS_PATH: &str = "/admin/gitlab_duo/self_hosted/models";

/// One row of the "Self-hosted models" list. Never carries the API key, only whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRow {
    pub id: ModelId,
    pub name: String,
    pub platform: Platform,
    pub family_name: String,
    pub family_release: Release,
    pub endpoint: Option<String>,
    pub identifier: String,
    pub has_api_key: bool,
    /// Titles of the features that use this model.
    pub used_by: Vec<String>,
    pub last_test: Option<crate::chat::api::LastTest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelsPage {
    pub models: Vec<ModelRow>,
    pub page: i64,
    pub has_next_page: bool,
    pub beta_enabled: bool,
}

/// A stored model as the edit form shows it: the key only as its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredModel {
    pub id: ModelId,
    pub name: String,
    pub platform: Platform,
    pub model_family: String,
    pub endpoint: Option<String>,
    pub identifier: String,
    pub api_key_fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFormData {
    pub families: Vec<Family>,
    pub beta_enabled: bool,
    pub model: Option<StoredModel>,
    /// What the admin typed before a refused save posted with JavaScript off (never the API
    /// key), so the form comes back filled in beside its errors.
    pub draft: Option<super::domain::ModelForm>,
}

/// What to do with a stored API key when the edit form is saved.
pub const KEY_KEEP: &str = "keep";
pub const KEY_REPLACE: &str = "replace";
pub const KEY_REMOVE: &str = "remove";

#[server(endpoint = "self_hosted_models", input = GetUrl)]
pub async fn list_models(search: String, page: i64) -> Result<ModelsPage, AppError> {
    ssr::list_models(search, page).await
}

#[server(endpoint = "self_hosted_model_form", input = GetUrl)]
pub async fn load_model_form(id: Option<i64>) -> Result<ModelFormData, AppError> {
    ssr::load_model_form(id).await
}

/// Adds (no `id`) or updates a model. On success the browser is sent back to the list.
#[server(endpoint = "save_self_hosted_model")]
pub async fn save_model(
    id: Option<i64>,
    name: String,
    platform: String,
    model_family: String,
    endpoint: Option<String>,
    identifier: String,
    api_key_action: Option<String>,
    api_key: Option<String>,
) -> Result<(), AppError> {
    let form = super::domain::ModelForm {
        name,
        platform,
        model_family,
        endpoint: endpoint.unwrap_or_default(),
        identifier,
    };
    let saved = ssr::save_model(id, form.clone(), api_key_action, api_key).await;
    if matches!(saved, Err(AppError::Validation(_))) && crate::error::is_plain_form_post() {
        ssr::keep_draft(id, form).await;
    }
    saved
}

#[server(endpoint = "delete_self_hosted_model")]
pub async fn delete_model(id: i64) -> Result<(), AppError> {
    ssr::delete_model(id).await
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use serde_json::json;

    use super::*;
    use crate::audit::ssr::{Actor, NewAuditEvent, record};
    use crate::auth::ssr::{current_user, require_admin};
    use crate::models::domain::{ModelForm, ValidModel};
    use crate::models::secrets::{ApiKey, SealedKey};
    use crate::state::AppState;

    fn state() -> AppState {
        expect_context::<AppState>()
    }

    pub async fn beta_enabled(db: impl sqlx::PgExecutor<'_>) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar!(r#"SELECT EXISTS(SELECT 1 FROM testing_terms_acceptances) AS "on!""#)
            .fetch_one(db)
            .await
    }

    pub async fn list_models(search: String, page: i64) -> Result<ModelsPage, AppError> {
        current_user().await?;
        let state = state();
        let page = page.max(1);
        let beta_enabled = beta_enabled(&state.pool).await?;
        // While beta is off, beta families are hidden, except for models a feature still uses:
        // hiding those would hide what is serving requests.
        let hidden_families: Vec<String> = if beta_enabled {
            Vec::new()
        } else {
            state.catalog.families.iter().filter(|f| f.release.needs_beta()).map(|f| f.key.clone()).collect()
        };
        let rows = sqlx::query!(
            r#"SELECT m.id, m.name, m.platform, m.model_family, m.endpoint, m.identifier,
                      m.api_key_ciphertext IS NOT NULL AS "has_api_key!",
                      ARRAY(SELECT f.feature FROM feature_settings f
                            WHERE f.self_hosted_model_id = m.id ORDER BY f.feature) AS "used_by!",
                      m.last_test
               FROM self_hosted_models m
               WHERE ($1 = '' OR strpos(lower(m.name), lower($1)) > 0
                              OR strpos(lower(m.identifier), lower($1)) > 0)
                 AND (NOT (m.model_family = ANY($2))
                      OR EXISTS (SELECT 1 FROM feature_settings f WHERE f.self_hosted_model_id = m.id))
               ORDER BY lower(m.name), m.id
               LIMIT $3 OFFSET $4"#,
            search.trim(),
            &hidden_families,
            MODELS_PER_PAGE + 1,
            (page - 1) * MODELS_PER_PAGE,
        )
        .fetch_all(&state.pool)
        .await?;
        let has_next_page = rows.len() as i64 > MODELS_PER_PAGE;
        let models = rows
            .into_iter()
            .take(MODELS_PER_PAGE as usize)
            .map(|row| {
                let family = state.catalog.family(&row.model_family);
                ModelRow {
                    id: ModelId(row.id),
                    name: row.name,
                    platform: Platform::parse(&row.platform).unwrap_or_default(),
                    family_name: family.map(|f| f.name.clone()).unwrap_or_else(|| row.model_family.clone()),
                    family_release: family.map(|f| f.release).unwrap_or(Release::Ga),
                    endpoint: row.endpoint,
                    identifier: row.identifier,
                    has_api_key: row.has_api_key,
                    used_by: row.used_by.iter().map(|key| feature_title(&state.catalog, key)).collect(),
                    last_test: row.last_test.and_then(|value| serde_json::from_value(value).ok()),
                }
            })
            .collect();
        Ok(ModelsPage { models, page, has_next_page, beta_enabled })
    }

    pub async fn load_model_form(id: Option<i64>) -> Result<ModelFormData, AppError> {
        current_user().await?;
        let state = state();
        let beta_enabled = beta_enabled(&state.pool).await?;
        let model = match id {
            None => None,
            Some(id) => {
                Some(stored_model(&state.pool, id).await?.ok_or_else(|| AppError::NotFound.respond())?)
            }
        };
        let mut families = state.catalog.selectable_families(beta_enabled);
        // A stored model of a beta family stays editable while beta is off.
        if let Some(family) = model.as_ref().and_then(|m| state.catalog.family(&m.model_family))
            && !families.contains(family)
        {
            families.push(family.clone());
        }
        let draft = take_draft(id).await;
        Ok(ModelFormData { families, beta_enabled, model, draft })
    }

    /// A refused form, kept in the session until its page is shown again.
    #[derive(Serialize, Deserialize)]
    struct Draft {
        id: Option<i64>,
        form: ModelForm,
    }

    const DRAFT_KEY: &str = "model_form_draft";

    /// Keeps what the admin typed for the form's next rendering. Best effort: without a session
    /// the form only comes back empty.
    pub async fn keep_draft(id: Option<i64>, form: ModelForm) {
        if let Ok(session) = leptos_axum::extract::<tower_sessions::Session>().await
            && let Err(error) = session.insert(DRAFT_KEY, Draft { id, form }).await
        {
            tracing::warn!(%error, "could not keep a refused form's values");
        }
    }

    /// The draft kept for the form of model `id` (or a new one), taken out of the session.
    async fn take_draft(id: Option<i64>) -> Option<ModelForm> {
        let session = leptos_axum::extract::<tower_sessions::Session>().await.ok()?;
        let draft = session.remove::<Draft>(DRAFT_KEY).await.ok().flatten()?;
        // Saved here, not left to the session layer: a streamed page's session is saved when
        // the page starts streaming, which can be before this runs.
        if let Err(error) = session.save().await {
            tracing::warn!(%error, "could not forget a refused form's values");
        }
        (draft.id == id).then_some(draft.form)
    }

    async fn stored_model(
        db: impl sqlx::PgExecutor<'_>,
        id: i64,
    ) -> Result<Option<StoredModel>, sqlx::Error> {
        let row = sqlx::query!(
            "SELECT id, name, platform, model_family, endpoint, identifier, api_key_fingerprint
             FROM self_hosted_models WHERE id = $1",
            id
        )
        .fetch_optional(db)
        .await?;
        Ok(row.map(|row| StoredModel {
            id: ModelId(row.id),
            name: row.name,
            platform: Platform::parse(&row.platform).unwrap_or_default(),
            model_family: row.model_family,
            endpoint: row.endpoint,
            identifier: row.identifier,
            api_key_fingerprint: row.api_key_fingerprint,
        }))
    }

    /// Locks a model's row for the rest of the transaction and reads it; `NotFound` if it is gone.
    async fn lock_model(tx: &mut sqlx::PgConnection, id: i64) -> Result<StoredModel, AppError> {
        let locked = sqlx::query_scalar!("SELECT id FROM self_hosted_models WHERE id = $1 FOR UPDATE", id)
            .fetch_optional(&mut *tx)
            .await?;
        match locked {
            Some(_) => stored_model(&mut *tx, id).await?.ok_or(AppError::NotFound),
            None => Err(AppError::NotFound.respond()),
        }
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
            "api_key_fingerprint": model.api_key_fingerprint,
        })
    }

    fn audit_label(model: &StoredModel) -> String {
        format!("{}/{}/{}", model.name, model.identifier, model.endpoint.as_deref().unwrap_or("--"))
    }

    pub async fn save_model(
        id: Option<i64>,
        form: ModelForm,
        api_key_action: Option<String>,
        api_key: Option<String>,
    ) -> Result<(), AppError> {
        let user = require_admin().await?;
        let state = state();
        let mut tx = state.pool.begin().await?;
        let before = match id {
            Some(id) => Some(lock_model(&mut tx, id).await?),
            None => None,
        };

        let beta_enabled = beta_enabled(&mut *tx).await?;
        let unchanged_family = before.as_ref().map(|model| model.model_family.as_str());
        let selectable = |key: &str| {
            state.catalog.family(key).is_some_and(|family| {
                beta_enabled || !family.release.needs_beta() || Some(key) == unchanged_family
            })
        };
        let valid: ValidModel =
            form.parse(selectable).map_err(|errors| AppError::Validation(errors).respond())?;

        let sealed = sealed_key_for(&state, &valid, before.as_ref(), api_key_action.as_deref(), api_key);
        let saved_id = write_model(&mut tx, id, &valid, sealed).await?;
        let after = stored_model(&mut *tx, saved_id).await?.ok_or(AppError::Internal)?;
        let (action, verb) =
            if before.is_some() { ("model_updated", "updated") } else { ("model_created", "created") };
        let actor = Actor::signed_in(&user).await;
        record(
            &mut *tx,
            &actor,
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
        tx.commit().await?;
        let notice = if before.is_some() { "saved" } else { "created" };
        leptos_axum::redirect(&format!("{MODELS_PATH}?notice={notice}"));
        Ok(())
    }

    /// The key the saved model should hold: `None` for none, `Some(None)` to keep what is
    /// stored, `Some(Some(..))` for a new one. Bedrock models never hold one.
    fn sealed_key_for(
        state: &AppState,
        model: &ValidModel,
        before: Option<&StoredModel>,
        action: Option<&str>,
        api_key: Option<String>,
    ) -> KeyChange {
        let typed = api_key.map(|key| key.trim().to_owned()).filter(|key| !key.is_empty());
        if model.platform == Platform::Bedrock {
            return KeyChange::Clear;
        }
        let had_key = before.is_some_and(|model| model.api_key_fingerprint.is_some());
        match (action.unwrap_or(KEY_REPLACE), typed) {
            (KEY_REMOVE, _) => KeyChange::Clear,
            (KEY_KEEP, _) if had_key => KeyChange::Keep,
            (_, Some(key)) => KeyChange::Set(state.master_keys.seal(&ApiKey::new(key))),
            // Replace chosen but left blank, on a model that had a key: keep it rather than
            // silently dropping a working key.
            (_, None) if had_key => KeyChange::Keep,
            (_, None) => KeyChange::Clear,
        }
    }

    enum KeyChange {
        Keep,
        Clear,
        Set(SealedKey),
    }

    async fn write_model(
        tx: &mut sqlx::PgConnection,
        id: Option<i64>,
        model: &ValidModel,
        key: KeyChange,
    ) -> Result<i64, AppError> {
        let endpoint = model.endpoint.as_ref().map(|e| e.as_str());
        let keep_key = matches!(key, KeyChange::Keep);
        let sealed = match key {
            KeyChange::Set(sealed) => Some(sealed),
            _ => None,
        };
        let (ciphertext, nonce, key_id, fingerprint) = match &sealed {
            Some(s) => {
                (Some(&s.ciphertext), Some(&s.nonce), Some(s.key_id.as_str()), Some(s.fingerprint.as_str()))
            }
            None => (None, None, None, None),
        };
        let saved = match id {
            None => {
                sqlx::query_scalar!(
                    r#"INSERT INTO self_hosted_models
                         (name, platform, model_family, endpoint, identifier,
                          api_key_ciphertext, api_key_nonce, api_key_key_id, api_key_fingerprint)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"#,
                    model.name.as_str(),
                    model.platform.key(),
                    model.model_family,
                    endpoint,
                    model.identifier.as_str(),
                    ciphertext.map(|c| c.as_slice()),
                    nonce.map(|n| n.as_slice()),
                    key_id,
                    fingerprint,
                )
                .fetch_one(&mut *tx)
                .await?
            }
            Some(id) => {
                sqlx::query_scalar!(
                    r#"UPDATE self_hosted_models SET
                         name = $2, platform = $3, model_family = $4, endpoint = $5, identifier = $6,
                         api_key_ciphertext = CASE WHEN $10 THEN api_key_ciphertext ELSE $7 END,
                         api_key_nonce = CASE WHEN $10 THEN api_key_nonce ELSE $8 END,
                         api_key_key_id = CASE WHEN $10 THEN api_key_key_id ELSE $9 END,
                         api_key_fingerprint = CASE WHEN $10 THEN api_key_fingerprint ELSE $11 END,
                         updated_at = now()
                       WHERE id = $1 RETURNING id"#,
                    id,
                    model.name.as_str(),
                    model.platform.key(),
                    model.model_family,
                    endpoint,
                    model.identifier.as_str(),
                    ciphertext.map(|c| c.as_slice()),
                    nonce.map(|n| n.as_slice()),
                    key_id,
                    keep_key,
                    fingerprint,
                )
                .fetch_one(&mut *tx)
                .await?
            }
        };
        Ok(saved)
    }

    pub async fn delete_model(id: i64) -> Result<(), AppError> {
        let user = require_admin().await?;
        let state = state();
        let mut tx = state.pool.begin().await?;
        // Locking the row makes "in use?" and "delete" one step for concurrent requests; the
        // foreign key refuses the delete anyway if a feature slips in between.
        let model = lock_model(&mut tx, id).await?;
        let used_by = sqlx::query_scalar!(
            "SELECT feature FROM feature_settings WHERE self_hosted_model_id = $1 ORDER BY feature",
            id
        )
        .fetch_all(&mut *tx)
        .await?;
        if !used_by.is_empty() {
            let titles: Vec<String> = used_by.iter().map(|key| feature_title(&state.catalog, key)).collect();
            return Err(AppError::Conflict(in_use_message(&model.name, &titles)).respond());
        }
        sqlx::query!("DELETE FROM self_hosted_models WHERE id = $1", id).execute(&mut *tx).await?;
        let actor = Actor::signed_in(&user).await;
        record(
            &mut *tx,
            &actor,
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
        tx.commit().await?;
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
