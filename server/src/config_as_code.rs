//! `duo-admin config export` and `duo-admin config import FILE [--dry-run]`: the command-line
//! side of configuration as code (`app::config_as_code`), which the API shares.

use std::io::Read;

use anyhow::{Context, bail};
use app::audit::ssr::Actor;
use app::auth::Role;
use app::catalog::Catalog;
use app::config_as_code::Document;
use app::config_as_code::ssr::{Importer, Secrets, export, import};
use app::error::AppError;
use app::models::secrets::MasterKeys;
use sqlx::PgPool;

use crate::config::ConfigCommand;

/// Runs one `config` command, its file's API keys read from `secrets` (the environment, for
/// the real command); answers what it prints.
pub async fn run(
    pool: &PgPool,
    catalog: &Catalog,
    master_keys: &MasterKeys,
    command: ConfigCommand,
    secrets: &dyn Secrets,
) -> anyhow::Result<String> {
    match command {
        ConfigCommand::Export { output } => {
            let text = export(pool, catalog).await.map_err(explained)?.to_text();
            match output {
                None => Ok(text),
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("could not write {}", path.display()))?;
                    Ok(format!("Wrote the configuration to {}.\n", path.display()))
                }
            }
        }
        ConfigCommand::Import { file, dry_run, as_admin } => {
            let text = read_file(&file)?;
            let document = Document::parse(&text).map_err(anyhow::Error::msg)?;
            let admin = match crate::users::find_by_login(pool, &as_admin).await? {
                Some(stored) if stored.user.role == Role::Admin => stored.user,
                Some(stored) => bail!("{} is not an admin: pass an admin with --as.", stored.user.username),
                None => bail!("No user has the username or e-mail \"{as_admin}\": pass an admin with --as."),
            };
            let actor = Actor { id: Some(admin.id.0), name: admin.username.clone(), ip_address: None };
            let importer = Importer { actor: &actor, admin: &admin };
            let plan = import(pool, catalog, master_keys, importer, &document, secrets, dry_run)
                .await
                .map_err(explained)?;
            Ok(plan.render())
        }
    }
}

fn read_file(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("could not read standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))
}

/// A refused import, one line a problem, each at its place in the file.
fn explained(error: AppError) -> anyhow::Error {
    match error {
        AppError::Validation(errors) => {
            let lines: Vec<String> =
                errors.iter().map(|(place, message)| format!("{place}: {message}")).collect();
            anyhow::anyhow!("The configuration was not imported; nothing changed.\n{}", lines.join("\n"))
        }
        other => anyhow::anyhow!(other.to_string()),
    }
}
