//! Users: password hashing with argon2id, look-ups, the first admin at first start, and the
//! `duo-admin users` command.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};
use app::audit::ssr::{Actor, NewAuditEvent, record};
use app::auth::{CurrentUser, Role, UserId};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString, rand_core::OsRng};
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distributions::Alphanumeric;
use sqlx::{PgExecutor, PgPool};

pub const FIRST_ADMIN_USERNAME: &str = "root";
pub const INITIAL_PASSWORD_FILE: &str = "initial_root_password";
/// GitLab's minimum password length.
pub const MIN_PASSWORD_LENGTH: usize = 8;

/// A user row as sign-in needs it.
pub struct StoredUser {
    pub user: CurrentUser,
    pub password_hash: String,
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow::anyhow!("could not hash the password: {error}"))
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &str, password_hash: &str) -> bool {
    verify_password_in(password, password_hash, &mut Vec::new())
}

/// Checks a password against a stored argon2 hash, with `area` as argon2's working memory
/// (grown to the hash's memory cost, 19 MiB by default). The server gives each check a fresh
/// area, freed when it ends: with glibc's malloc that left one area per thread arena resident,
/// hundreds of MiB after a flood of sign-ins; mimalloc (server/src/main.rs) gives it back.
/// The comparison is constant-time (`Output`'s equality).
pub fn verify_password_in(password: &str, password_hash: &str, area: &mut Vec<argon2::Block>) -> bool {
    use argon2::password_hash::Output;
    use argon2::{Algorithm, Params, Version};
    let Ok(hash) = PasswordHash::new(password_hash) else { return false };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(hash.algorithm), Params::try_from(&hash)) else {
        return false;
    };
    let Ok(version) = hash.version.map(Version::try_from).transpose() else { return false };
    let mut salt_buffer = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buffer) else { return false };
    area.resize(params.block_count(), argon2::Block::default());
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let computed = Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut area[..])
            .map_err(|_| argon2::password_hash::Error::Password)
    });
    computed.is_ok_and(|computed| computed == expected)
}

/// Password checks (argon2id, 19 MiB and tens of milliseconds of CPU each) allowed at once, and
/// how long one may wait for its turn. Without a bound, a flood of sign-ins would take every core
/// and as much memory as it liked; with it, the excess is refused quickly with a clear message.
/// Each check's 19 MiB is freed when it ends (and given back to the system by the allocator), so
/// a console at rest holds none of it: at most one area per turn exists, and only during checks.
#[derive(Debug)]
pub struct PasswordChecks {
    permits: tokio::sync::Semaphore,
    queue_timeout: std::time::Duration,
}

/// The server had no turn free for a password check within the queue timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

pub const BUSY_MESSAGE: &str =
    "Too many sign-ins are being checked right now. Please wait a moment, then try again.";

impl PasswordChecks {
    pub fn new(at_once: usize, queue_timeout: std::time::Duration) -> Self {
        PasswordChecks { permits: tokio::sync::Semaphore::new(at_once.max(1)), queue_timeout }
    }

    /// How long a sign-in waits for a turn before it is refused as busy.
    pub fn queue_timeout(&self) -> std::time::Duration {
        self.queue_timeout
    }

    /// Checks `password` against `hash` once a turn is free, on a blocking thread.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Busy> {
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.acquire())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let checked = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await;
        drop(permit);
        Ok(checked.unwrap_or(false))
    }
}

/// The number of cores: the default number of password checks at once.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// A real argon2id hash of a random password, checked when no user matches a login, so that
/// "no such user" costs as much time as "wrong password".
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&generate_password()).unwrap_or_default())
}

pub fn generate_password() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect()
}

pub(crate) fn user_from_row(
    id: i64,
    username: String,
    email: String,
    role: &str,
) -> Result<CurrentUser, sqlx::Error> {
    let role = Role::parse(role).map_err(|error| sqlx::Error::Decode(error.into()))?;
    Ok(CurrentUser { id: UserId(id), username, email, role })
}

/// The user behind a session, unless the session was signed in before the user's sessions were
/// ended (by a password reset).
pub async fn find_for_session(
    db: impl PgExecutor<'_>,
    id: i64,
    signed_in_at: DateTime<Utc>,
) -> Result<Option<CurrentUser>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT id, username, email, role FROM users WHERE id = $1 AND sessions_valid_after <= $2",
        id,
        signed_in_at as _
    )
    .fetch_optional(db)
    .await?;
    row.map(|row| user_from_row(row.id, row.username, row.email, &row.role)).transpose()
}

/// Finds a user by username or e-mail, in any letter case.
pub async fn find_by_login(db: impl PgExecutor<'_>, login: &str) -> Result<Option<StoredUser>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id, username, email, role, password_hash FROM users
           WHERE lower(username) = lower($1) OR lower(email) = lower($1)
           ORDER BY id LIMIT 1"#,
        login.trim()
    )
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        Ok(StoredUser {
            user: user_from_row(row.id, row.username, row.email, &row.role)?,
            password_hash: row.password_hash,
        })
    })
    .transpose()
}

/// Adds a user and records it, in one transaction.
pub async fn add(
    pool: &PgPool,
    username: &str,
    email: &str,
    role: Role,
    password: &str,
    actor: &Actor,
) -> anyhow::Result<CurrentUser> {
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        bail!("The password is too short: use at least {MIN_PASSWORD_LENGTH} characters.");
    }
    let password_hash = hash_password(password)?;
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query!(
        r#"INSERT INTO users (username, email, password_hash, role)
           VALUES ($1, $2, $3, $4) RETURNING id"#,
        username,
        email,
        password_hash,
        role.as_str()
    )
    .fetch_one(&mut *tx)
    .await;
    let id = match inserted {
        Ok(row) => row.id,
        Err(sqlx::Error::Database(error)) => bail!(match error.constraint() {
            Some("users_username_unique") => format!("A user named \"{username}\" already exists."),
            Some("users_email_unique") => format!("A user with the e-mail \"{email}\" already exists."),
            Some("users_username_format") =>
                "A username may hold only letters, digits, \"_\", \".\" and \"-\" (at most 255).".to_owned(),
            Some("users_email_format") => format!("\"{email}\" is not an e-mail address."),
            _ => format!("Could not add the user: {error}"),
        }),
        Err(error) => return Err(error.into()),
    };
    record(
        &mut *tx,
        actor,
        NewAuditEvent {
            action: "user_created",
            target_type: "User",
            target_id: Some(id.to_string()),
            target_name: Some(username),
            message: format!("Added user {username} ({}) with role {}", email, role.as_str()),
            before: None,
            after: Some(serde_json::json!({ "username": username, "email": email, "role": role.as_str() })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CurrentUser { id: UserId(id), username: username.to_owned(), email: email.to_owned(), role })
}

/// Sets a new password and ends every session of that user.
pub async fn reset_password(
    pool: &PgPool,
    login: &str,
    password: &str,
    actor: &Actor,
) -> anyhow::Result<CurrentUser> {
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        bail!("The password is too short: use at least {MIN_PASSWORD_LENGTH} characters.");
    }
    let Some(stored) = find_by_login(pool, login).await? else {
        bail!("No user has the username or e-mail \"{login}\".");
    };
    let user = stored.user;
    let password_hash = hash_password(password)?;
    let mut tx = pool.begin().await?;
    // Moving `sessions_valid_after` ends every session signed in before now.
    sqlx::query!(
        "UPDATE users SET password_hash = $1, sessions_valid_after = now(), updated_at = now() WHERE id = $2",
        password_hash,
        user.id.0
    )
    .execute(&mut *tx)
    .await?;
    record(
        &mut *tx,
        actor,
        NewAuditEvent {
            action: "user_password_reset",
            target_type: "User",
            target_id: Some(user.id.0.to_string()),
            target_name: Some(&user.username),
            message: format!("Reset the password of {}", user.username),
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Ends every session of a user, on every replica at once: sessions signed in before now stop
/// working at their next request. Also forgets the user's known devices. Audited.
pub async fn end_sessions(pool: &PgPool, login: &str, actor: &Actor) -> anyhow::Result<CurrentUser> {
    let Some(stored) = find_by_login(pool, login).await? else {
        bail!("No user has the username or e-mail \"{login}\".");
    };
    let user = stored.user;
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE users SET sessions_valid_after = now(), updated_at = now() WHERE id = $1",
        user.id.0
    )
    .execute(&mut *tx)
    .await?;
    crate::devices::forget_all(&mut *tx, user.id.0).await?;
    record(
        &mut *tx,
        actor,
        NewAuditEvent {
            action: "user_sessions_ended",
            target_type: "User",
            target_id: Some(user.id.0.to_string()),
            target_name: Some(&user.username),
            message: format!("Ended all sessions of {}", user.username),
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Creates the first admin when there is none: from ADMIN_EMAIL / ADMIN_PASSWORD, else with a
/// generated password written to a 0600 file, as GitLab does with its initial root password.
pub async fn ensure_first_admin(
    pool: &PgPool,
    email: &str,
    password: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<()> {
    // Two processes starting together must not both create one.
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('duo_admin_first_admin'))").execute(&mut *tx).await?;
    let has_admin =
        sqlx::query_scalar!(r#"SELECT EXISTS(SELECT 1 FROM users WHERE role = 'admin') AS "exists!""#)
            .fetch_one(&mut *tx)
            .await?;
    if has_admin {
        return Ok(());
    }
    let generated = password.is_none();
    let password = password.map(str::to_owned).unwrap_or_else(generate_password);
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        bail!("ADMIN_PASSWORD is too short: use at least {MIN_PASSWORD_LENGTH} characters.");
    }
    let password_hash = hash_password(&password)?;
    let id = sqlx::query_scalar!(
        "INSERT INTO users (username, email, password_hash, role) VALUES ($1, $2, $3, 'admin') RETURNING id",
        FIRST_ADMIN_USERNAME,
        email,
        password_hash
    )
    .fetch_one(&mut *tx)
    .await
    .context("could not create the first admin (is ADMIN_EMAIL an e-mail address?)")?;
    record(
        &mut *tx,
        &Actor::system("System"),
        NewAuditEvent {
            action: "user_created",
            target_type: "User",
            target_id: Some(id.to_string()),
            target_name: Some(FIRST_ADMIN_USERNAME),
            message: format!("Created the first admin {FIRST_ADMIN_USERNAME} ({email}) at first start"),
            before: None,
            after: Some(
                serde_json::json!({ "username": FIRST_ADMIN_USERNAME, "email": email, "role": "admin" }),
            ),
        },
    )
    .await?;
    if generated {
        let file = data_dir.join(INITIAL_PASSWORD_FILE);
        write_private_file(&file, &format!("Username: {FIRST_ADMIN_USERNAME}\nPassword: {password}\n"))?;
        tracing::warn!(
            username = FIRST_ADMIN_USERNAME,
            file = %file.display(),
            "created the first admin; its generated password is in the file (readable by this user only). Sign in, then delete the file"
        );
        // Shown once to the person at the terminal; never sent to a log collector.
        if std::io::stderr().is_terminal() {
            eprintln!("\n    First admin: {FIRST_ADMIN_USERNAME}\n    Password:    {password}\n");
        }
    } else {
        tracing::info!(
            username = FIRST_ADMIN_USERNAME,
            "created the first admin from ADMIN_EMAIL / ADMIN_PASSWORD"
        );
    }
    tx.commit().await?;
    Ok(())
}

/// Writes a secret to a file only this user may read. An existing file is checked first (it
/// must be this user's), and its mode is set to 0600 before the secret goes in: `mode()` alone
/// applies only to a file being created, so a leftover 0644 file would have stayed readable.
pub fn write_private_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if path.exists() {
        check_owner(path)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("could not write {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// Reads a secret file, refusing one that another user owns or that others may read or write:
/// someone else could have read the secret, or planted their own.
pub fn read_private_file(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::MetadataExt;
    check_owner(path)?;
    let mode = std::fs::metadata(path)?.mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{path} may be read or written by other users (mode {mode:04o}); the secret in it may have leaked. \
             Restrict it with `chmod 600 {path}`, and consider replacing the secret.",
            path = path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))
}

fn check_owner(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(path).with_context(|| format!("could not read {}", path.display()))?.uid();
    // /proc/self belongs to this process's effective user.
    let me = std::fs::metadata("/proc/self")
        .map(|meta| meta.uid())
        .context("could not tell who this process runs as")?;
    if owner != me {
        bail!(
            "{path} belongs to another user (uid {owner}, this process runs as uid {me}). \
             Make it this user's with `chown {me} {path}` if its content is trusted, or delete it.",
            path = path.display()
        );
    }
    Ok(())
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<CurrentUser>, sqlx::Error> {
    sqlx::query!("SELECT id, username, email, role FROM users ORDER BY id")
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|row| user_from_row(row.id, row.username, row.email, &row.role))
        .collect()
}

/// `duo-admin users tokens ...`: the same creation, listing and revocation as the user's own
/// page (`app::tokens`), with the same rules and audit events, for any user. Returns what to
/// print: a created token appears there once, and nowhere else.
pub async fn manage_tokens(
    pool: &PgPool,
    command: crate::config::TokensCommand,
    actor: &Actor,
) -> anyhow::Result<String> {
    use crate::config::TokensCommand;
    use app::tokens::api::ssr::{create_for, revoke_for};
    use app::tokens::domain::TokenForm;

    let owner = |login: String| async move {
        match find_by_login(pool, &login).await? {
            Some(stored) => anyhow::Ok(stored.user),
            None => bail!("No user has the username or e-mail \"{login}\"."),
        }
    };
    let explained = |error: app::error::AppError| match error {
        app::error::AppError::Validation(errors) => {
            let lines: Vec<String> =
                errors.iter().map(|(field, message)| format!("--{field}: {message}")).collect();
            anyhow::anyhow!(lines.join("\n").replace("--expires_at", "--expires-at"))
        }
        app::error::AppError::NotFound => anyhow::anyhow!("That user has no active token with this id."),
        other => anyhow::anyhow!(other.to_string()),
    };
    match command {
        TokensCommand::Create { login, name, scope, expires_at } => {
            let owner = owner(login).await?;
            let form = TokenForm { name, scope, expires_at };
            let created = create_for(pool, &owner, &form, actor).await.map_err(explained)?;
            Ok(format!(
                "Created token {} ({}) for {}, scope {}, expiring on {}.\n\
                 Token (shown once; only its hash is kept): {}\n",
                created.row.id,
                created.row.name,
                owner.username,
                created.row.scope.key(),
                created.row.expires_at.date_naive(),
                created.token
            ))
        }
        TokensCommand::List { login } => {
            let owner = owner(login).await?;
            let now = Utc::now();
            let tokens = app::tokens::store::list(pool, owner.id, true).await.map_err(explained)?;
            let mut out = String::from("id\tname\tscope\tcreated\texpires\tlast used\tstate\n");
            for token in tokens {
                let state = match (token.revoked_at, token.is_active(now)) {
                    (Some(_), _) => "revoked",
                    (None, true) => "active",
                    (None, false) => "expired",
                };
                let last_used =
                    token.last_used_at.map(|at| at.to_rfc3339()).unwrap_or_else(|| "never".to_owned());
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{last_used}\t{state}\n",
                    token.id,
                    token.name,
                    token.scope.key(),
                    token.created_at.to_rfc3339(),
                    token.expires_at.date_naive(),
                ));
            }
            Ok(out)
        }
        TokensCommand::Revoke { login, id } => {
            let owner = owner(login).await?;
            revoke_for(pool, &owner, id, actor).await.map_err(explained)?;
            Ok(format!("Revoked token {id} of {}.\n", owner.username))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_working_area_serves_check_after_check() {
        let hash = hash_password("correct horse").unwrap();
        let mut area = Vec::new();

        assert!(verify_password_in("correct horse", &hash, &mut area));
        let grown_to = area.len();
        assert!(!verify_password_in("wrong horse", &hash, &mut area));
        assert!(verify_password_in("correct horse", &hash, &mut area));

        assert_eq!(grown_to, argon2::Params::DEFAULT_M_COST as usize, "19 MiB of 1 KiB blocks");
        assert_eq!(area.len(), grown_to, "reused, not grown");
        assert!(!verify_password_in("correct horse", "not a hash", &mut area));
    }
}
