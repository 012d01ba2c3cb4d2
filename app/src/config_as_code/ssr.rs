//! Export and import. Both go through the owners of each table (`models::store` and the
//! models' server functions, `features::api`, `configuration::api`, `checks`): an import makes
//! the same writes, with the same rules, messages and audit events, as the pages would, only
//! all of them in one transaction. A dry run makes them too and rolls back, so what it reports
//! is exactly what the import would do, refusals included.

use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::audit::ssr::{Actor, NewAuditEvent, record};
use crate::auth::CurrentUser;
use crate::catalog::Catalog;
use crate::checks::ssr::{save_schedule_in, schedule};
use crate::configuration::api::ssr::{load_in as load_settings, save_in as save_settings};
use crate::error::{AppError, FieldErrors};
use crate::features::api::ssr::{assign_in, stored_assignments, unassign_in};
use crate::features::domain::{Assignment, CHOICE_DISABLED};
use crate::models::api::ssr::{delete_model_in, save_model_in};
use crate::models::domain::{KeyAction, ModelForm, StoredModel};
use crate::models::secrets::{ApiKey, MasterKeys};
use crate::models::store;

/// Where an import finds the secrets its file names.
pub trait Secrets: Sync {
    fn get(&self, name: &str) -> Option<String>;
    /// What to tell the admin when `name` is not there.
    fn missing(&self, name: &str) -> String;
}

/// The command's own environment: `duo-admin config import` is run by someone who has the
/// secrets already.
pub struct FromEnvironment;

impl Secrets for FromEnvironment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.trim().is_empty())
    }

    fn missing(&self, name: &str) -> String {
        format!("Set the environment variable {name} to this model's API key.")
    }
}

/// The API request's `secrets`. Never the server's environment: an API caller must not be able
/// to send the console's own secrets (its AWS keys, its master keys) to an endpoint of theirs.
pub struct Given(pub BTreeMap<String, String>);

impl Secrets for Given {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|value| !value.trim().is_empty()).cloned()
    }

    fn missing(&self, name: &str) -> String {
        format!("Send this model's API key as secrets.{name}.")
    }
}

/// Imports on different replicas wait for each other, each planning against what the one
/// before left.
const IMPORT_LOCK: i64 = 0x6475_6f5f_696d_7074; // "duo_impt"

/// The configuration now, as a file.
pub async fn export(pool: &sqlx::PgPool, catalog: &Catalog) -> Result<Document, AppError> {
    let mut tx = pool.begin().await?;
    let document = read(&mut tx, catalog).await?.0;
    tx.rollback().await?;
    Ok(document)
}

/// What `read` found: the file, and the stored models it was made from.
async fn read(
    tx: &mut sqlx::PgConnection,
    catalog: &Catalog,
) -> Result<(Document, Vec<StoredModel>), AppError> {
    let settings = load_settings(tx).await?;
    let interval = schedule(&mut *tx).await?.interval_minutes;
    let models = store::all(&mut *tx).await?;
    let assignments = stored_assignments(tx).await?;

    let mut references = std::collections::HashSet::new();
    let entries = models
        .iter()
        .map(|model| ModelEntry {
            name: model.name.clone(),
            platform: model.platform.key().to_owned(),
            model_family: model.model_family.clone(),
            endpoint: model.endpoint.clone(),
            identifier: model.identifier.clone(),
            bedrock_region: model.bedrock_region.clone(),
            vertex_project: model.vertex_project.clone(),
            vertex_location: model.vertex_location.clone(),
            api_key: model.api_key_fingerprint.as_ref().map(|_| {
                // Two names that read alike ("A b", "A-b") must not share one variable.
                let base = key_reference(&model.name);
                let mut env = base.clone();
                let mut n = 2;
                while !references.insert(env.clone()) {
                    env = format!("{}_{n}_API_KEY", base.trim_end_matches("_API_KEY"));
                    n += 1;
                }
                SecretRef { env }
            }),
        })
        .collect();
    // Hidden features (beta ones while beta is off) are not the admin's to set now.
    let features = catalog
        .features
        .iter()
        .filter(|feature| settings.beta_enabled || !feature.release.needs_beta())
        .map(|feature| {
            let entry = match assignments.get(&feature.key) {
                Some(Assignment::SelfHosted { name, .. }) => FeatureEntry::Model(name.clone()),
                Some(Assignment::Disabled) => FeatureEntry::Disabled,
                Some(Assignment::Unassigned) | None => FeatureEntry::Unassigned,
            };
            (feature.key.clone(), entry)
        })
        .collect();
    let document = Document {
        version: VERSION,
        settings: Some(SettingsEntry {
            beta_enabled: settings.beta_enabled,
            ai_gateway_timeout_seconds: settings.ai_gateway_timeout_seconds,
            ai_gateway_url: settings.ai_gateway_url,
            duo_agent_platform_service_url: settings.duo_agent_platform_service_url,
            check_interval_minutes: interval,
        }),
        models: entries,
        features,
    };
    Ok((document, models))
}

/// Who imports: the audit trail's actor, and the admin whose acceptance of the testing terms
/// turns beta on.
pub struct Importer<'a> {
    pub actor: &'a Actor,
    pub admin: &'a CurrentUser,
}

/// Plans `document` against the configuration now and applies it in one transaction (or, for
/// a dry run, applies and rolls back). Refused as a whole, nothing changed, with each problem
/// at its place in the file (`models[2].endpoint`, `features.duo_chat`, `settings.…`).
pub async fn import(
    pool: &sqlx::PgPool,
    catalog: &Catalog,
    master_keys: &MasterKeys,
    importer: Importer<'_>,
    document: &Document,
    secrets: &dyn Secrets,
    dry_run: bool,
) -> Result<Plan, AppError> {
    check_shape(document, catalog)?;
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", IMPORT_LOCK).execute(&mut *tx).await?;
    let (current, stored) = read(&mut tx, catalog).await?;
    let mut plan = Plan::default();
    let Importer { actor, admin } = importer;

    // Settings first when they turn beta on (beta models and features may follow), last when
    // they turn it off (after the features that might still need it).
    let settings = document.settings.as_ref().filter(|wanted| Some(*wanted) != current.settings.as_ref());
    let settings_first = document.settings.as_ref().is_some_and(|wanted| wanted.beta_enabled);
    plan_settings(&mut plan, document.settings.as_ref(), current.settings.as_ref());
    if settings_first && let Some(wanted) = settings {
        apply_settings(&mut tx, actor, admin, wanted).await?;
    }

    let by_name: HashMap<&str, &StoredModel> = stored.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut forms = Vec::new();
    let mut missing_keys = FieldErrors::new();
    for (index, entry) in document.models.iter().enumerate() {
        let before = by_name.get(entry.name.as_str()).copied();
        match model_form(entry, before, secrets, master_keys) {
            Ok((form, key_detail)) => forms.push((index, entry, before, form, key_detail)),
            Err(message) => {
                missing_keys.insert(format!("models[{index}].api_key"), message);
            }
        }
    }
    if !missing_keys.is_empty() {
        return Err(AppError::Validation(missing_keys));
    }
    let mut ids: HashMap<String, i64> = stored.iter().map(|m| (m.name.clone(), m.id.0)).collect();
    for (index, entry, before, form, key_detail) in forms {
        let mut details = before.map(|before| model_differences(before, entry)).unwrap_or_default();
        details.extend(key_detail);
        match before {
            Some(_) if details.is_empty() => plan.unchanged += 1,
            Some(before) => {
                save_model_in(&mut tx, actor, catalog, master_keys, Some(before.id.0), &form)
                    .await
                    .map_err(|error| at(&format!("models[{index}]"), error))?;
                plan.push(ChangeKind::Changed, "model", &entry.name, details);
            }
            None => {
                let id = save_model_in(&mut tx, actor, catalog, master_keys, None, &form)
                    .await
                    .map_err(|error| at(&format!("models[{index}]"), error))?;
                ids.insert(entry.name.clone(), id.0);
                let mut described = vec![describe_model(entry)];
                described.extend(details);
                plan.push(ChangeKind::Added, "model", &entry.name, described);
            }
        }
    }

    for (key, wanted) in &document.features {
        let before = current.features.get(key).unwrap_or(&FeatureEntry::Unassigned);
        if before == wanted {
            plan.unchanged += 1;
            continue;
        }
        let path = format!("features.{key}");
        match wanted {
            FeatureEntry::Model(name) => {
                let id = ids.get(name).ok_or(AppError::Internal)?;
                assign_in(&mut tx, actor, catalog, key, &id.to_string()).await
            }
            FeatureEntry::Disabled => assign_in(&mut tx, actor, catalog, key, CHOICE_DISABLED).await,
            FeatureEntry::Unassigned => {
                unassign_in(&mut tx, actor, catalog, key).await.map(|_| String::new())
            }
        }
        .map_err(|error| at_one(&path, error))?;
        let kind = match (before, wanted) {
            (FeatureEntry::Unassigned, _) => ChangeKind::Added,
            (_, FeatureEntry::Unassigned) => ChangeKind::Removed,
            _ => ChangeKind::Changed,
        };
        plan.push(kind, "feature", key, vec![format!("{} → {}", before.describe(), wanted.describe())]);
    }

    // Removed last, once no feature of the file uses them any more.
    let kept: std::collections::HashSet<&str> = document.models.iter().map(|m| m.name.as_str()).collect();
    for model in stored.iter().filter(|model| !kept.contains(model.name.as_str())) {
        delete_model_in(&mut tx, actor, catalog, model.id.0)
            .await
            .map_err(|error| at_one("models", error))?;
        plan.push(ChangeKind::Removed, "model", &model.name, Vec::new());
    }

    if !settings_first && let Some(wanted) = settings {
        apply_settings(&mut tx, actor, admin, wanted).await?;
    }

    if !plan.changes.is_empty() {
        let count = |kind| plan.changes.iter().filter(|change| change.kind == kind).count();
        record(
            &mut *tx,
            actor,
            NewAuditEvent {
                action: "configuration_imported",
                target_type: "Configuration",
                target_id: None,
                target_name: Some("GitLab Duo Self-Hosted"),
                message: format!(
                    "Imported a configuration: {} added, {} changed, {} removed",
                    count(ChangeKind::Added),
                    count(ChangeKind::Changed),
                    count(ChangeKind::Removed)
                ),
                before: None,
                after: Some(serde_json::to_value(&plan.changes).unwrap_or_default()),
            },
        )
        .await?;
    }
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
        plan.applied = true;
    }
    Ok(plan)
}

/// What can be refused before touching the database: the version, the number of models, a
/// name twice, a feature that does not exist, a model a feature names but the file does not.
fn check_shape(document: &Document, catalog: &Catalog) -> Result<(), AppError> {
    if document.version != VERSION {
        return Err(AppError::field(
            "version",
            format!("Only version {VERSION} configuration files can be imported."),
        ));
    }
    if document.models.len() > MAX_MODELS {
        return Err(AppError::field(
            "models",
            format!("A configuration file holds at most {MAX_MODELS} models."),
        ));
    }
    let mut errors = FieldErrors::new();
    let mut names = std::collections::HashSet::new();
    for (index, model) in document.models.iter().enumerate() {
        if !names.insert(model.name.as_str()) {
            errors.insert(
                format!("models[{index}].name"),
                format!("{} is listed twice. Each model needs a name of its own.", model.name),
            );
        }
    }
    for (key, entry) in &document.features {
        if catalog.feature(key).is_none() {
            errors.insert(format!("features.{key}"), "No AI-native feature has this key.".to_owned());
        } else if let FeatureEntry::Model(name) = entry
            && !names.contains(name.as_str())
        {
            errors.insert(
                format!("features.{key}"),
                format!(
                    "No model named {name} is in the file: every model the console keeps is listed in it."
                ),
            );
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(AppError::Validation(errors)) }
}

/// The form the page would have posted for `entry`, and what happens to its key in words.
fn model_form(
    entry: &ModelEntry,
    before: Option<&StoredModel>,
    secrets: &dyn Secrets,
    master_keys: &MasterKeys,
) -> Result<(ModelForm, Option<String>), String> {
    let had = before.and_then(|model| model.api_key_fingerprint.clone());
    let (action, key, detail) = match &entry.api_key {
        None => (KeyAction::Remove, String::new(), had.map(|old| format!("API key removed (was {old})"))),
        Some(reference) => match secrets.get(&reference.env) {
            Some(value) => {
                let new = master_keys.fingerprint(&ApiKey::new(value.trim().to_owned()));
                let detail = match had {
                    Some(old) if old == new => None,
                    Some(old) => Some(format!("API key replaced ({old} → {new}, from {})", reference.env)),
                    None => Some(format!("API key set ({new}, from {})", reference.env)),
                };
                (KeyAction::Replace, value, detail)
            }
            // Not given, but stored: the stored key stays (the file only names it).
            None if had.is_some() => (KeyAction::Keep, String::new(), None),
            None => return Err(secrets.missing(&reference.env)),
        },
    };
    let form = ModelForm {
        name: entry.name.clone(),
        platform: entry.platform.clone(),
        model_family: entry.model_family.clone(),
        endpoint: entry.endpoint.clone().unwrap_or_default(),
        identifier: entry.identifier.clone(),
        bedrock_region: entry.bedrock_region.clone().unwrap_or_default(),
        vertex_project: entry.vertex_project.clone().unwrap_or_default(),
        vertex_location: entry.vertex_location.clone().unwrap_or_default(),
        api_key_action: action.key().to_owned(),
        api_key: key,
    };
    Ok((form, detail))
}

fn describe_model(entry: &ModelEntry) -> String {
    let place =
        entry.endpoint.as_deref().or(entry.bedrock_region.as_deref()).or(entry.vertex_location.as_deref());
    match place {
        Some(place) => format!("{}, {}, {} at {place}", entry.platform, entry.model_family, entry.identifier),
        None => format!("{}, {}, {}", entry.platform, entry.model_family, entry.identifier),
    }
}

/// The fields of a stored model the file changes (the key apart), in words.
fn model_differences(before: &StoredModel, entry: &ModelEntry) -> Vec<String> {
    let fields = [
        ("platform", Some(before.platform.key()), Some(entry.platform.as_str())),
        ("model_family", Some(before.model_family.as_str()), Some(entry.model_family.as_str())),
        ("endpoint", before.endpoint.as_deref(), entry.endpoint.as_deref()),
        ("identifier", Some(before.identifier.as_str()), Some(entry.identifier.as_str())),
        ("bedrock_region", before.bedrock_region.as_deref(), entry.bedrock_region.as_deref()),
        ("vertex_project", before.vertex_project.as_deref(), entry.vertex_project.as_deref()),
        ("vertex_location", before.vertex_location.as_deref(), entry.vertex_location.as_deref()),
    ];
    fields
        .into_iter()
        .filter(|(_, old, new)| old != new)
        .map(|(field, old, new)| from_to(field, old, new))
        .collect()
}

fn plan_settings(plan: &mut Plan, wanted: Option<&SettingsEntry>, current: Option<&SettingsEntry>) {
    let (Some(wanted), Some(current)) = (wanted, current) else {
        return;
    };
    let text = |value: &Option<String>| value.clone();
    let fields = [
        ("beta_enabled", Some(current.beta_enabled.to_string()), Some(wanted.beta_enabled.to_string())),
        (
            "ai_gateway_timeout_seconds",
            Some(current.ai_gateway_timeout_seconds.to_string()),
            Some(wanted.ai_gateway_timeout_seconds.to_string()),
        ),
        ("ai_gateway_url", text(&current.ai_gateway_url), text(&wanted.ai_gateway_url)),
        (
            "duo_agent_platform_service_url",
            text(&current.duo_agent_platform_service_url),
            text(&wanted.duo_agent_platform_service_url),
        ),
        (
            "check_interval_minutes",
            Some(current.check_interval_minutes.to_string()),
            Some(wanted.check_interval_minutes.to_string()),
        ),
    ];
    for (name, old, new) in fields {
        if old == new {
            plan.unchanged += 1;
        } else {
            let detail = from_to(name, old.as_deref(), new.as_deref());
            let detail = detail.trim_start_matches(&format!("{name}: ")).to_owned();
            plan.push(ChangeKind::Changed, "setting", name, vec![detail]);
        }
    }
}

async fn apply_settings(
    tx: &mut sqlx::PgConnection,
    actor: &Actor,
    admin: &CurrentUser,
    wanted: &SettingsEntry,
) -> Result<(), AppError> {
    let url = |value: &Option<String>| value.clone().unwrap_or_default();
    save_settings(
        tx,
        actor,
        admin,
        wanted.beta_enabled,
        &wanted.ai_gateway_timeout_seconds.to_string(),
        &url(&wanted.ai_gateway_url),
        &url(&wanted.duo_agent_platform_service_url),
    )
    .await
    .map_err(|error| at("settings", error))?;
    let minutes = crate::checks::parse_interval(&wanted.check_interval_minutes.to_string())
        .map_err(|message| AppError::field("settings.check_interval_minutes", message))?;
    save_schedule_in(tx, actor, minutes).await
}

/// A change's refusal, placed in the file: each field's message under `path`.
fn at(path: &str, error: AppError) -> AppError {
    match error {
        AppError::Validation(errors) => AppError::Validation(
            errors.into_iter().map(|(field, message)| (format!("{path}.{field}"), message)).collect(),
        ),
        other => at_one(path, other),
    }
}

/// A refusal that concerns `path` as a whole (a feature, a removed model).
fn at_one(path: &str, error: AppError) -> AppError {
    match error {
        AppError::Validation(errors) => {
            AppError::field(path, errors.into_values().next().unwrap_or_default())
        }
        AppError::Conflict(message) => AppError::field(path, message),
        AppError::NotFound => {
            AppError::field(path, "It changed while the file was being imported. Import it again.")
        }
        other => other,
    }
}
