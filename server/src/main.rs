//! `duo-admin`: serve the console, or manage users and the private database.

use std::io::BufRead;
use std::sync::Arc;

use anyhow::Context;
use app::audit::ssr::Actor;
use app::auth::Role;
use app::catalog::Catalog;
use app::chat::client::ModelClients;
use app::chat::prompts::Prompts;
use app::config_as_code::ssr::FromEnvironment;
use clap::Parser;
use server::config::{Cli, Command, Config, ConfigCommand, DatabaseCommand, LogFormat, UsersCommand};
use server::postgres::PrivateCluster;
use server::{RouterSettings, Services, database, keys, users};
use tokio::net::TcpListener;
use tower_sessions::ExpiredDeletion;
use tower_sessions_sqlx_store::PostgresStore;
use tracing_subscriber::EnvFilter;

// mimalloc, not glibc's malloc. Drawing a page makes many small allocations from several
// threads, which glibc serves under its arenas' locks: about a third of the server's CPU under
// load (measured with perf, scripts/bench.sh). And glibc keeps the 19 MiB a password check
// frees, where mimalloc gives it back to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let password_checks = RouterSettings::from(&cli.config).limits.password_checks;
    server::runtime(password_checks)?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config).await,
        Command::Users(command) => manage_users(&cli.config, command).await,
        Command::Database(DatabaseCommand::Start) => {
            let cluster = PrivateCluster::start(&cli.config.data_dir.join("postgres")).await?;
            println!("{}", cluster.url());
            Ok(())
        }
        Command::Database(DatabaseCommand::Stop) => {
            PrivateCluster::stop_dir(&cli.config.data_dir.join("postgres")).await
        }
        Command::Config(command) => manage_configuration(&cli.config, command).await,
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not escape codes in a log collector's files.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs =
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colours).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    // Checked before anything starts: a broken catalog or key stops start-up with its reason.
    let catalog = Arc::new(Catalog::load().map_err(anyhow::Error::msg)?);
    let prompts = Arc::new(Prompts::load(&catalog).map_err(anyhow::Error::msg)?);
    let master_keys = Arc::new(keys::load(config.encryption_keys.as_deref(), &config.data_dir)?);
    let database = database::connect(config).await?;
    users::ensure_first_admin(
        &database.pool,
        &config.admin_email,
        config.admin_password.as_deref(),
        &config.data_dir,
    )
    .await?;
    // Keys stored before keys were bound to their model and endpoint are bound now.
    let bound = app::models::store::bind_unbound_keys(&database.pool, &master_keys)
        .await
        .context("could not bind the stored API keys to their models")?;
    if bound > 0 {
        tracing::info!(bound, "stored API keys bound to their model and endpoint");
    }
    let expired_sessions = tokio::spawn(
        PostgresStore::new(database.pool.clone())
            .continuously_delete_expired(tokio::time::Duration::from_secs(600)),
    );

    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!("could not listen on {} (set LEPTOS_SITE_ADDR or --listen)", config.listen)
    })?;
    if !config.site_root.join("pkg").exists() {
        tracing::warn!(
            site_root = %config.site_root.display(),
            "the browser bundle is missing: pages render, but nothing is interactive. Build it with scripts/build-site.sh"
        );
    }
    tracing::info!("serving the console at http://{}", config.listen);
    let idle_limit = std::time::Duration::from_secs(config.model_idle_timeout_seconds.max(1));
    let model_clients = Arc::new(
        ModelClients::from_environment(idle_limit)
            .await
            .with_azure_api_version(config.azure_openai_api_version.clone()),
    );
    // Every replica runs the loop; the schedule (a console setting) says when a round is due,
    // and one replica claims each.
    let checks = app::checks::Checks {
        pool: database.pool.clone(),
        clients: model_clients.clone(),
        master_keys: master_keys.clone(),
        history_days: config.test_history_days.max(1),
    };
    let replica = format!("{} (pid {})", config.listen, std::process::id());
    let checks = tokio::spawn(checks.run_forever(replica));
    let services = Services {
        pool: database.pool.clone(),
        catalog,
        master_keys,
        model_clients: model_clients.clone(),
        prompts,
    };
    let settings = RouterSettings::from(config);
    let app = server::router(services, &settings);
    let grace = std::time::Duration::from_secs(config.shutdown_grace_seconds);
    let served =
        server::serve_with(listener, app, model_clients, shutdown_signal(), grace, &settings.limits).await;

    expired_sessions.abort();
    checks.abort();
    database.pool.close().await;
    if let Some(cluster) = database.cluster {
        cluster.stop().await?;
    }
    served.context("the server stopped with an error")
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can always be installed on Unix");
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
}

async fn manage_users(config: &Config, command: UsersCommand) -> anyhow::Result<()> {
    let database = database::connect(config).await?;
    let actor = Actor::system("Command line");
    let outcome = async {
        match command {
            UsersCommand::Add { username, email, role, password_stdin } => {
                let role = Role::parse(&role).map_err(anyhow::Error::msg)?;
                let (password, generated) = password_for(password_stdin)?;
                let user = users::add(&database.pool, &username, &email, role, &password, &actor).await?;
                println!("Added {} ({}) as {}.", user.username, user.email, role.as_str());
                if generated {
                    println!("Password: {password}");
                }
            }
            UsersCommand::ResetPassword { login, password_stdin } => {
                let (password, generated) = password_for(password_stdin)?;
                let user = users::reset_password(&database.pool, &login, &password, &actor).await?;
                println!("New password set for {}; their sessions have ended.", user.username);
                if generated {
                    println!("Password: {password}");
                }
            }
            UsersCommand::EndSessions { login } => {
                let user = users::end_sessions(&database.pool, &login, &actor).await?;
                println!("Ended every session of {}.", user.username);
            }
            UsersCommand::List => {
                for user in users::list(&database.pool).await? {
                    println!("{}\t{}\t{}", user.username, user.email, user.role.as_str());
                }
            }
            UsersCommand::Tokens(command) => {
                print!("{}", users::manage_tokens(&database.pool, command, &actor).await?);
            }
        }
        anyhow::Ok(())
    }
    .await;
    database.pool.close().await;
    if let Some(cluster) = database.cluster {
        cluster.stop().await?;
    }
    outcome
}

async fn manage_configuration(config: &Config, command: ConfigCommand) -> anyhow::Result<()> {
    let catalog = Catalog::load().map_err(anyhow::Error::msg)?;
    let master_keys = keys::load(config.encryption_keys.as_deref(), &config.data_dir)?;
    let database = database::connect(config).await?;
    let outcome =
        server::config_as_code::run(&database.pool, &catalog, &master_keys, command, &FromEnvironment).await;
    database.pool.close().await;
    if let Some(cluster) = database.cluster {
        cluster.stop().await?;
    }
    print!("{}", outcome?);
    Ok(())
}

/// The password from standard input, or a generated one (then `true`).
fn password_for(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
    } else {
        Ok((users::generate_password(), true))
    }
}
