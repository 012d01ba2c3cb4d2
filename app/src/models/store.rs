//! The one owner of the `self_hosted_models` table: every read and write of a model row is
//! here, so a rule about models (what the list shows, how a key is kept, what a test records)
//! has one place. Other modules ask this store; none of them query the table.
//!
//! Reads of `feature_settings` here are limited to "which features use this model" (the list
//! and the delete guard); that table is written only by `features`.

use std::collections::HashMap;

use sqlx::PgExecutor;

use super::domain::{LastTest, ModelId, Platform, Serving, StoredModel, ValidModel, origin_of};
use super::platform::UnknownPlatform;
use super::secrets::{ApiKey, KeyBinding, MasterKeys, SealedKey};
use crate::error::AppError;

/// The constraints of `self_hosted_models` (migrations/), in the form's own words at its field:
/// a rule broken past the form's checks (a race, a direct call) still reads the same.
pub fn constraint_violation(constraint: &str) -> Option<AppError> {
    use super::domain::*;
    let field = AppError::field;
    Some(match constraint {
        "self_hosted_models_name_unique" => field("name", NAME_TAKEN),
        "self_hosted_models_name_length" => field("name", NAME_REQUIRED),
        "self_hosted_models_platform_known" => field("platform", super::platform::PLATFORM_UNKNOWN),
        "self_hosted_models_family_present" => field("model_family", FAMILY_REQUIRED),
        "self_hosted_models_endpoint_for_api" => field("endpoint", ENDPOINT_REQUIRED),
        "self_hosted_models_endpoint_url" => field("endpoint", ENDPOINT_INVALID),
        "self_hosted_models_endpoint_without_credentials" => field("endpoint", ENDPOINT_WITH_CREDENTIALS),
        "self_hosted_models_identifier_length" => field("identifier", IDENTIFIER_REQUIRED),
        "self_hosted_models_bedrock_identifier" => field("identifier", IDENTIFIER_NOT_BEDROCK),
        "self_hosted_models_region_for_bedrock" | "self_hosted_models_bedrock_region_shape" => {
            field("bedrock_region", REGION_INVALID)
        }
        "self_hosted_models_vertex_project_for_vertex" => field("vertex_project", PROJECT_REQUIRED),
        "self_hosted_models_vertex_project_shape" => field("vertex_project", PROJECT_INVALID),
        "self_hosted_models_vertex_location_for_vertex" => field("vertex_location", LOCATION_REQUIRED),
        "self_hosted_models_vertex_location_shape" => field("vertex_location", LOCATION_INVALID),
        "self_hosted_models_vertex_identifier" => field("identifier", IDENTIFIER_VERTEX_MODEL),
        // Deleting a model that a feature still uses: the foreign key of `feature_settings`.
        "feature_settings_model_in_use" => AppError::Conflict(IN_USE_REFUSED.to_owned()),
        _ => return None,
    })
}

/// The delete guard's words when the database refuses past it.
pub const IN_USE_REFUSED: &str =
    "This self-hosted model cannot be deleted: it is in use by an AI-native feature.";

fn db_error(error: sqlx::Error) -> AppError {
    AppError::from_database(error, constraint_violation)
}

impl From<UnknownPlatform> for AppError {
    fn from(error: UnknownPlatform) -> Self {
        tracing::error!(%error, "a stored model names a platform this build does not know");
        AppError::Internal
    }
}

/// One row of the models list.
pub struct ListedModel {
    pub record: StoredModel,
    pub has_api_key: bool,
    /// Keys of the features that use the model.
    pub used_by: Vec<String>,
    pub last_test: Option<LastTest>,
}

/// A model as the features tab offers it.
pub struct ModelSummary {
    pub id: i64,
    pub name: String,
    pub family: String,
}

/// Everything needed to call a stored model, its key still sealed.
pub struct CallableModel {
    pub id: i64,
    pub name: String,
    pub family: String,
    pub platform: Platform,
    pub endpoint: Option<String>,
    pub identifier: String,
    pub bedrock_region: Option<String>,
    pub vertex_project: Option<String>,
    pub vertex_location: Option<String>,
    pub sealed_key: Option<SealedKey>,
}

impl CallableModel {
    /// The stored key, opened for this model at its stored endpoint.
    pub fn open_key(&self, master_keys: &MasterKeys) -> Result<Option<ApiKey>, String> {
        let Some(sealed) = &self.sealed_key else { return Ok(None) };
        let origin = self.endpoint.as_deref().and_then(origin_of).unwrap_or_default();
        master_keys.open(sealed, KeyBinding { model_id: self.id, origin: &origin }).map(Some)
    }
}

/// What a save does with the stored key.
pub enum KeyChange<'a> {
    Keep,
    Clear,
    /// Seal this key, bound to the saved model and its endpoint.
    Set(ApiKey, &'a MasterKeys),
}

/// One page of the list: models whose name or identifier contains `search`, without those of
/// `hidden_families` that no feature uses. One row more than `limit` says a next page exists.
pub async fn list(
    db: impl PgExecutor<'_>,
    search: &str,
    hidden_families: &[String],
    limit: i64,
    offset: i64,
) -> Result<Vec<ListedModel>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT m.id, m.name, m.platform, m.model_family, m.endpoint, m.identifier, m.bedrock_region,
                  m.vertex_project, m.vertex_location,
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
        search,
        hidden_families,
        limit,
        offset,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(ListedModel {
                record: StoredModel {
                    id: ModelId(row.id),
                    name: row.name,
                    platform: Platform::try_from(row.platform)?,
                    model_family: row.model_family,
                    endpoint: row.endpoint,
                    identifier: row.identifier,
                    bedrock_region: row.bedrock_region,
                    vertex_project: row.vertex_project,
                    vertex_location: row.vertex_location,
                    api_key_fingerprint: None,
                },
                has_api_key: row.has_api_key,
                used_by: row.used_by,
                last_test: row.last_test.and_then(|value| serde_json::from_value(value).ok()),
            })
        })
        .collect()
}

/// A model's row as `find` and `all` read it, before its platform is parsed.
struct StoredRow {
    id: i64,
    name: String,
    platform: String,
    model_family: String,
    endpoint: Option<String>,
    identifier: String,
    bedrock_region: Option<String>,
    vertex_project: Option<String>,
    vertex_location: Option<String>,
    api_key_fingerprint: Option<String>,
}

impl StoredRow {
    fn into_model(self) -> Result<StoredModel, AppError> {
        Ok(StoredModel {
            id: ModelId(self.id),
            name: self.name,
            platform: Platform::try_from(self.platform)?,
            model_family: self.model_family,
            endpoint: self.endpoint,
            identifier: self.identifier,
            bedrock_region: self.bedrock_region,
            vertex_project: self.vertex_project,
            vertex_location: self.vertex_location,
            api_key_fingerprint: self.api_key_fingerprint,
        })
    }
}

pub async fn find(db: impl PgExecutor<'_>, id: i64) -> Result<Option<StoredModel>, AppError> {
    let row = sqlx::query_as!(
        StoredRow,
        "SELECT id, name, platform, model_family, endpoint, identifier, bedrock_region,
                vertex_project, vertex_location, api_key_fingerprint
         FROM self_hosted_models WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await?;
    row.map(StoredRow::into_model).transpose()
}

/// Every model, by name: what a configuration export lists.
pub async fn all(db: impl PgExecutor<'_>) -> Result<Vec<StoredModel>, AppError> {
    let rows = sqlx::query_as!(
        StoredRow,
        "SELECT id, name, platform, model_family, endpoint, identifier, bedrock_region, vertex_project,
                vertex_location, api_key_fingerprint
         FROM self_hosted_models ORDER BY name, id"
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(StoredRow::into_model).collect()
}

/// Locks a model's row for the rest of the transaction and reads it; `NotFound` if it is gone.
pub async fn lock(tx: &mut sqlx::PgConnection, id: i64) -> Result<StoredModel, AppError> {
    let locked = sqlx::query_scalar!("SELECT id FROM self_hosted_models WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(&mut *tx)
        .await?;
    match locked {
        Some(_) => find(&mut *tx, id).await?.ok_or(AppError::NotFound),
        None => Err(AppError::NotFound),
    }
}

/// Adds (no `id`) or updates a model; the key as `key` says. Returns the model's id.
pub async fn write(
    tx: &mut sqlx::PgConnection,
    id: Option<i64>,
    model: &ValidModel,
    key: KeyChange<'_>,
) -> Result<i64, AppError> {
    let endpoint = model.endpoint.as_ref().map(|e| e.as_str());
    let region = model.bedrock_region.as_ref().map(|r| r.as_str());
    let project = model.google.as_ref().map(|(project, _)| project.as_str());
    let location = model.google.as_ref().map(|(_, location)| location.as_str());
    let origin = model.endpoint.as_ref().map(|e| e.origin()).unwrap_or_default();
    // A key is bound to its model's id, so a new model's key is sealed once the row has one.
    let seal = |key: &ApiKey, master_keys: &MasterKeys, model_id: i64| {
        master_keys.seal(key, KeyBinding { model_id, origin: &origin })
    };
    let Some(id) = id else {
        let saved = sqlx::query_scalar!(
            r#"INSERT INTO self_hosted_models
                 (name, platform, model_family, endpoint, identifier, bedrock_region, vertex_project, vertex_location)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id"#,
            model.name.as_str(),
            model.platform.key(),
            model.model_family,
            endpoint,
            model.identifier.as_str(),
            region,
            project,
            location,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if let KeyChange::Set(key, master_keys) = key {
            store_key(&mut *tx, saved, Some(&seal(&key, master_keys, saved))).await?;
        }
        return Ok(saved);
    };
    let keep_key = matches!(key, KeyChange::Keep);
    let sealed = match key {
        KeyChange::Set(key, master_keys) => Some(seal(&key, master_keys, id)),
        KeyChange::Keep | KeyChange::Clear => None,
    };
    // One statement: the row's rules (no key or endpoint on a platform without them) hold
    // for the row as a whole, key included.
    sqlx::query_scalar!(
        r#"UPDATE self_hosted_models SET
             name = $2, platform = $3, model_family = $4, endpoint = $5, identifier = $6,
             api_key_ciphertext = CASE WHEN $10 THEN api_key_ciphertext ELSE $7 END,
             api_key_nonce = CASE WHEN $10 THEN api_key_nonce ELSE $8 END,
             api_key_key_id = CASE WHEN $10 THEN api_key_key_id ELSE $9 END,
             api_key_fingerprint = CASE WHEN $10 THEN api_key_fingerprint ELSE $11 END,
             api_key_bound = CASE WHEN $10 THEN api_key_bound ELSE $12 END,
             bedrock_region = $13,
             vertex_project = $14,
             vertex_location = $15,
             updated_at = now()
           WHERE id = $1 RETURNING id"#,
        id,
        model.name.as_str(),
        model.platform.key(),
        model.model_family,
        endpoint,
        model.identifier.as_str(),
        sealed.as_ref().map(|s| s.ciphertext.as_slice()),
        sealed.as_ref().map(|s| s.nonce.as_slice()),
        sealed.as_ref().map(|s| s.key_id.as_str()),
        keep_key,
        sealed.as_ref().map(|s| s.fingerprint.as_str()),
        sealed.as_ref().is_some_and(|s| s.bound),
        region,
        project,
        location,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)
}

async fn store_key(db: impl PgExecutor<'_>, id: i64, sealed: Option<&SealedKey>) -> Result<(), AppError> {
    sqlx::query!(
        r#"UPDATE self_hosted_models SET
             api_key_ciphertext = $2, api_key_nonce = $3, api_key_key_id = $4,
             api_key_fingerprint = $5, api_key_bound = $6
           WHERE id = $1"#,
        id,
        sealed.map(|s| s.ciphertext.as_slice()),
        sealed.map(|s| s.nonce.as_slice()),
        sealed.map(|s| s.key_id.as_str()),
        sealed.map(|s| s.fingerprint.as_str()),
        sealed.is_some_and(|s| s.bound),
    )
    .execute(db)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Seals again, bound to their model and endpoint, the keys sealed before keys were bound
/// (run at start; several replicas starting at once each take different rows). Returns how
/// many were bound.
pub async fn bind_unbound_keys(pool: &sqlx::PgPool, master_keys: &MasterKeys) -> Result<usize, AppError> {
    let mut bound = 0;
    loop {
        let mut tx = pool.begin().await?;
        let row = sqlx::query!(
            r#"SELECT id, endpoint, api_key_ciphertext AS "ciphertext!", api_key_nonce AS "nonce!",
                      api_key_key_id AS "key_id!", api_key_fingerprint AS "fingerprint!"
               FROM self_hosted_models
               WHERE api_key_ciphertext IS NOT NULL AND NOT api_key_bound
               LIMIT 1 FOR UPDATE SKIP LOCKED"#
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(bound) };
        let legacy = SealedKey {
            ciphertext: row.ciphertext,
            nonce: row.nonce,
            key_id: row.key_id,
            fingerprint: row.fingerprint,
            bound: false,
        };
        let origin = row.endpoint.as_deref().and_then(origin_of).unwrap_or_default();
        let binding = KeyBinding { model_id: row.id, origin: &origin };
        let api_key = master_keys.open(&legacy, binding).map_err(|error| {
            tracing::error!(model = row.id, %error, "a stored API key could not be opened to bind it");
            AppError::Internal
        })?;
        store_key(&mut *tx, row.id, Some(&master_keys.seal(&api_key, binding))).await?;
        tx.commit().await?;
        bound += 1;
    }
}

/// Keys of the features that use a model.
pub async fn used_by(db: impl PgExecutor<'_>, id: i64) -> Result<Vec<String>, AppError> {
    Ok(sqlx::query_scalar!(
        "SELECT feature FROM feature_settings WHERE self_hosted_model_id = $1 ORDER BY feature",
        id
    )
    .fetch_all(db)
    .await?)
}

pub async fn delete(db: impl PgExecutor<'_>, id: i64) -> Result<(), AppError> {
    sqlx::query!("DELETE FROM self_hosted_models WHERE id = $1", id).execute(db).await.map_err(db_error)?;
    Ok(())
}

/// Every model, by name: what the features tab offers.
pub async fn summaries(db: impl PgExecutor<'_>) -> Result<Vec<ModelSummary>, AppError> {
    let rows = sqlx::query!("SELECT id, name, model_family FROM self_hosted_models ORDER BY lower(name), id")
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| ModelSummary { id: r.id, name: r.name, family: r.model_family }).collect())
}

/// Whether each model serves, from its last test and its history: the first failure after its
/// last answer is when it started failing.
pub async fn serving(db: impl PgExecutor<'_>) -> Result<HashMap<i64, Serving>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT m.id, m.last_test,
                  (SELECT min(f.ran_at) FROM model_tests f
                   WHERE f.model_id = m.id AND NOT f.ok
                     AND f.ran_at > coalesce((SELECT max(a.ran_at) FROM model_tests a
                                              WHERE a.model_id = m.id AND a.ok), '-infinity'))
                    AS "failing_since: chrono::DateTime<chrono::Utc>"
           FROM self_hosted_models m"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let last: Option<LastTest> = row.last_test.and_then(|value| serde_json::from_value(value).ok());
            (row.id, Serving::from_last_test(last.as_ref(), row.failing_since))
        })
        .collect())
}

/// Reads a model that is about to be assigned to a feature, and keeps it from being deleted
/// until the transaction ends (FOR SHARE).
pub async fn share_for_assignment(
    tx: &mut sqlx::PgConnection,
    id: i64,
) -> Result<Option<ModelSummary>, AppError> {
    let row =
        sqlx::query!("SELECT id, name, model_family FROM self_hosted_models WHERE id = $1 FOR SHARE", id)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(row.map(|r| ModelSummary { id: r.id, name: r.name, family: r.model_family }))
}

/// A stored model with what it takes to call it; `NotFound` if there is none.
pub async fn callable(db: impl PgExecutor<'_>, id: i64) -> Result<CallableModel, AppError> {
    let row = sqlx::query!(
        "SELECT id, name, model_family, platform, endpoint, identifier, bedrock_region,
                vertex_project, vertex_location,
                api_key_ciphertext, api_key_nonce, api_key_key_id, api_key_fingerprint, api_key_bound
         FROM self_hosted_models WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::NotFound)?;
    let sealed_key =
        match (row.api_key_ciphertext, row.api_key_nonce, row.api_key_key_id, row.api_key_fingerprint) {
            (Some(ciphertext), Some(nonce), Some(key_id), Some(fingerprint)) => {
                Some(SealedKey { ciphertext, nonce, key_id, fingerprint, bound: row.api_key_bound })
            }
            _ => None,
        };
    Ok(CallableModel {
        id: row.id,
        name: row.name,
        family: row.model_family,
        platform: Platform::try_from(row.platform)?,
        endpoint: row.endpoint,
        identifier: row.identifier,
        bedrock_region: row.bedrock_region,
        vertex_project: row.vertex_project,
        vertex_location: row.vertex_location,
        sealed_key,
    })
}

/// How a test came about, as its history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKind {
    TestConnection,
    Chat,
    Scheduled,
    TestAll,
}

impl TestKind {
    pub fn key(self) -> &'static str {
        match self {
            TestKind::TestConnection => "test_connection",
            TestKind::Chat => "chat",
            TestKind::Scheduled => "scheduled",
            TestKind::TestAll => "test_all",
        }
    }
}

/// Records a test: it becomes the model's last test, and a row of its history. Best effort: a
/// failure to record must not hide the test's own outcome.
pub async fn record_test(db: &sqlx::PgPool, id: i64, last: &LastTest, ran_by: &str, kind: TestKind) {
    let Ok(value) = serde_json::to_value(last) else { return };
    let figures = &last.figures;
    let recorded = sqlx::query!(
        r#"WITH last AS (UPDATE self_hosted_models SET last_test = $2 WHERE id = $1 RETURNING id)
           INSERT INTO model_tests
             (model_id, ran_by, kind, ok, message, total_ms, first_token_ms, input_tokens, output_tokens)
           SELECT id, $3, $4, $5, $6, $7, $8, $9, $10 FROM last"#,
        id,
        value,
        ran_by,
        kind.key(),
        last.ok,
        last.message,
        figures.total_ms as i64,
        figures.first_token_ms.map(|ms| ms as i64),
        figures.input_tokens,
        figures.output_tokens,
    )
    .execute(db)
    .await;
    if let Err(error) = recorded {
        tracing::warn!(%error, "could not record a model's test");
    }
}

/// Ids of the models some feature uses: what the scheduled checks test.
pub async fn in_use(db: impl PgExecutor<'_>) -> Result<Vec<i64>, AppError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT DISTINCT self_hosted_model_id AS "id!" FROM feature_settings
           WHERE provider = 'self_hosted' AND self_hosted_model_id IS NOT NULL ORDER BY 1"#
    )
    .fetch_all(db)
    .await?)
}

/// Forgets tests older than `days`. Returns how many were removed.
pub async fn prune_tests(db: impl PgExecutor<'_>, days: i32) -> Result<u64, AppError> {
    let removed =
        sqlx::query!("DELETE FROM model_tests WHERE ran_at < now() - make_interval(days => $1)", days)
            .execute(db)
            .await?;
    Ok(removed.rows_affected())
}

/// A model's health as `/metrics` reports it, from its last test and its history.
pub struct ModelHealth {
    pub id: i64,
    pub name: String,
    pub last_ok: Option<bool>,
    pub last_total_ms: Option<i64>,
    pub answered: i64,
    pub failed: i64,
    /// Answered tests by bucket: how many took at most each of `bucket_ms` (cumulative).
    pub latency_buckets: Vec<i64>,
    pub latency_sum_ms: i64,
    pub first_token_buckets: Vec<i64>,
    pub first_token_sum_ms: i64,
    pub first_token_count: i64,
}

/// Every model's health, with cumulative counts of answered tests under each of `bucket_ms`.
pub async fn health(db: impl PgExecutor<'_>, bucket_ms: &[i64]) -> Result<Vec<ModelHealth>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT m.id, m.name,
                  (m.last_test->>'ok')::boolean AS last_ok,
                  (m.last_test->'figures'->>'total_ms')::bigint AS last_total_ms,
                  count(t.id) FILTER (WHERE t.ok) AS "answered!",
                  count(t.id) FILTER (WHERE NOT t.ok) AS "failed!",
                  ARRAY(SELECT count(a.id) FROM unnest($1::bigint[]) AS b(le)
                        LEFT JOIN model_tests a ON a.model_id = m.id AND a.ok AND a.total_ms <= b.le
                        GROUP BY b.le ORDER BY b.le) AS "latency_buckets!",
                  coalesce(sum(t.total_ms) FILTER (WHERE t.ok), 0)::bigint AS "latency_sum!",
                  ARRAY(SELECT count(a.id) FROM unnest($1::bigint[]) AS b(le)
                        LEFT JOIN model_tests a ON a.model_id = m.id AND a.ok AND a.first_token_ms <= b.le
                        GROUP BY b.le ORDER BY b.le) AS "first_token_buckets!",
                  coalesce(sum(t.first_token_ms) FILTER (WHERE t.ok), 0)::bigint AS "first_token_sum!",
                  count(t.first_token_ms) FILTER (WHERE t.ok) AS "first_token_count!"
           FROM self_hosted_models m LEFT JOIN model_tests t ON t.model_id = m.id
           GROUP BY m.id ORDER BY lower(m.name), m.id"#,
        bucket_ms
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| ModelHealth {
            id: row.id,
            name: row.name,
            last_ok: row.last_ok,
            last_total_ms: row.last_total_ms,
            answered: row.answered,
            failed: row.failed,
            latency_buckets: row.latency_buckets,
            latency_sum_ms: row.latency_sum,
            first_token_buckets: row.first_token_buckets,
            first_token_sum_ms: row.first_token_sum,
            first_token_count: row.first_token_count,
        })
        .collect())
}

/// One test of a model's history.
pub struct HistoryRow {
    pub ran_at: chrono::DateTime<chrono::Utc>,
    pub ran_by: String,
    pub kind: String,
    pub ok: bool,
    pub message: String,
    pub total_ms: i64,
    pub first_token_ms: Option<i64>,
}

/// A model's latest `limit` tests, newest first.
pub async fn history(db: impl PgExecutor<'_>, id: i64, limit: i64) -> Result<Vec<HistoryRow>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT ran_at AS "ran_at: chrono::DateTime<chrono::Utc>", ran_by, kind, ok, message, total_ms, first_token_ms FROM model_tests
         WHERE model_id = $1 ORDER BY ran_at DESC, id DESC LIMIT $2"#,
        id,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| HistoryRow {
            ran_at: r.ran_at,
            ran_by: r.ran_by,
            kind: r.kind,
            ok: r.ok,
            message: r.message,
            total_ms: r.total_ms,
            first_token_ms: r.first_token_ms,
        })
        .collect())
}
