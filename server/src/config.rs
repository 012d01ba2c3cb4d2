//! Command line and environment: every setting is listed by `duo-admin --help` with its default.
//! AWS settings are deliberately absent: the standard AWS variables are read by `aws-config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "duo-admin",
    version,
    about = "GitLab Duo Self-Hosted admin console: register self-hosted models, assign them to AI-native features, test them.",
    after_help = "Logging: RUST_LOG (default \"info\") filters log lines, e.g. RUST_LOG=server=debug,info."
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to serve the console on.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000", global = true)]
    pub listen: SocketAddr,

    /// PostgreSQL connection URL. When unset, a private PostgreSQL cluster is started from the
    /// system's PostgreSQL binaries in <DATA_DIR>/postgres, listening on a Unix socket only.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Folder for the private database, the first admin's generated password and other state.
    #[arg(long, env = "DUO_DATA_DIR", default_value = "./.data", global = true)]
    pub data_dir: PathBuf,

    /// Folder holding the built browser bundle (pkg/) and the public files.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site", global = true)]
    pub site_root: PathBuf,

    /// Mark the session cookie Secure (send it over https only). Turn on when served over https.
    #[arg(long, env = "SECURE_COOKIES", default_value_t = false, global = true)]
    pub secure_cookies: bool,

    /// Minutes without a request after which a session ends.
    #[arg(long, env = "SESSION_IDLE_MINUTES", default_value_t = 120, global = true)]
    pub session_idle_minutes: i64,

    /// Hours a session lasts from sign-in at most, however active it is.
    #[arg(long, env = "SESSION_MAX_HOURS", default_value_t = 12, global = true)]
    pub session_max_hours: u64,

    /// E-mail of the first admin (username "root"), created at the first start when no admin exists.
    #[arg(long, env = "ADMIN_EMAIL", default_value = "admin@example.com", global = true)]
    pub admin_email: String,

    /// Password of the first admin. When unset, a strong one is generated and written to
    /// <DATA_DIR>/initial_root_password (mode 0600).
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true, global = true)]
    pub admin_password: Option<String>,

    /// Master keys that encrypt models' API keys: base64 32-byte keys, comma-separated, newest
    /// first (older ones only decrypt, for rotation). When unset, a key is generated into
    /// <DATA_DIR>/encryption_key (mode 0600) at the first start.
    #[arg(long, env = "ENCRYPTION_KEYS", hide_env_values = true, global = true)]
    pub encryption_keys: Option<String>,

    /// Longest wait, in seconds, between two pieces of a model's reply before the exchange is
    /// called stalled. The whole exchange is bounded by the "AI Gateway request timeout" setting.
    #[arg(long, env = "MODEL_IDLE_TIMEOUT_SECONDS", default_value_t = 30, global = true)]
    pub model_idle_timeout_seconds: u64,

    /// The bearer token that `GET /metrics` (Prometheus text format) asks for. Unset: there is
    /// no /metrics.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true, global = true)]
    pub metrics_token: Option<String>,

    /// Days a model's tests are kept in its history.
    #[arg(long, env = "TEST_HISTORY_DAYS", default_value_t = 30, global = true)]
    pub test_history_days: i32,

    /// The Azure OpenAI REST API version sent with every call to an `azure/DEPLOYMENT` model.
    #[arg(long, env = "AZURE_OPENAI_API_VERSION", default_value = app::chat::client::AZURE_API_VERSION, global = true)]
    pub azure_openai_api_version: String,

    /// Failed sign-ins for one login, within SIGN_IN_LOCK_MINUTES, before that login is refused
    /// for a while. After the second failure, each further attempt is also held back (1 s more each time, 5 s at most).
    #[arg(long, env = "SIGN_IN_MAX_FAILURES", default_value_t = 5, global = true)]
    pub sign_in_max_failures: usize,

    /// Failed sign-ins from one client (an IPv4 address, or an IPv6 /64), within
    /// SIGN_IN_LOCK_MINUTES, before that client is refused for a while. Behind a reverse proxy,
    /// see TRUST_FORWARDED_FOR.
    #[arg(long, env = "SIGN_IN_MAX_FAILURES_PER_CLIENT", default_value_t = 20, global = true)]
    pub sign_in_max_failures_per_client: usize,

    /// Minutes a failed sign-in counts against its login and client; a refusal lasts at most this long.
    #[arg(long, env = "SIGN_IN_LOCK_MINUTES", default_value_t = 10, global = true)]
    pub sign_in_lock_minutes: u64,

    /// Password checks (argon2, 19 MiB each) run at once; more sign-ins wait for a turn.
    /// Default: the number of cores.
    #[arg(long, env = "SIGN_IN_PASSWORD_CHECKS", global = true)]
    pub sign_in_password_checks: Option<usize>,

    /// Seconds a sign-in waits for its turn (4 sign-ins are handled at once, and
    /// SIGN_IN_PASSWORD_CHECKS password checks) before it is refused as busy (503).
    #[arg(long, env = "SIGN_IN_QUEUE_SECONDS", default_value_t = 10, global = true)]
    pub sign_in_queue_seconds: u64,

    /// Seconds a request may take before its answer starts; after that it gets 503. Model
    /// tests and chats are bounded by the AI Gateway request timeout instead, and a streaming
    /// reply is never cut by this.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30, global = true)]
    pub request_timeout_seconds: u64,

    /// Seconds a client may take to send a request's headers; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10, global = true)]
    pub header_read_timeout_seconds: u64,

    /// Connections served at once; further ones wait until one closes.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024, global = true)]
    pub max_connections: usize,

    /// The console sits behind one reverse proxy that appends the client's address to
    /// X-Forwarded-For: take the client's address (for audit events and sign-in throttling)
    /// from there. Leave off when clients reach the console directly: they could write the header.
    #[arg(long, env = "TRUST_FORWARDED_FOR", default_value_t = false, global = true)]
    pub trust_forwarded_for: bool,

    /// Seconds a shutdown waits for streaming model replies to finish before cutting them short
    /// with a message.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 20, global = true)]
    pub shutdown_grace_seconds: u64,

    /// Requests a minute one personal access token (or one signed-in user) may make to the JSON
    /// API, counted on each replica: N replicas allow at most N times this.
    #[arg(long, env = "API_RATE_LIMIT_PER_MINUTE", default_value_t = 600, global = true)]
    pub api_rate_limit_per_minute: u32,

    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the console (what runs when no command is given).
    Serve,
    /// Add users and reset passwords.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Start or stop the private PostgreSQL cluster on its own (used by the test script).
    #[command(subcommand)]
    Database(DatabaseCommand),
    /// Configuration as code: export the models, feature assignments and settings as one JSON
    /// file, or import one (with a diff first; --dry-run changes nothing).
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write the configuration as JSON: models (API keys only as references such as
    /// {"env": "MIXTRAL_API_KEY"}), each feature's assignment by model name, the settings.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Make the console's configuration what FILE says, in one transaction, each change audited;
    /// print the diff (+ added, ~ changed, - removed). Models not in the file are removed;
    /// features not in it are left as they are. API keys are read from the environment
    /// variables the file names; one not set keeps the stored key.
    Import {
        /// The configuration file, or - for standard input.
        file: std::path::PathBuf,
        /// Print the diff and check every change, but change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The admin (username or e-mail) the changes are made as: the audit trail's author,
        /// and the one whose acceptance of the testing terms turns beta on.
        #[arg(long = "as", default_value = "root")]
        as_admin: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user. The password is read from standard input with --password-stdin, or generated
    /// and printed once.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// admin (may change everything) or auditor (may see everything, change nothing).
        #[arg(long, default_value = "admin")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password for a user, found by username or e-mail, and end their sessions.
    ResetPassword {
        /// Username or e-mail.
        login: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users and their roles.
    List,
    /// A user's personal access tokens for the JSON API: create, list, revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// End every session of a user at once (on every replica), and forget their known devices.
    EndSessions {
        /// Username or e-mail.
        login: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatabaseCommand {
    /// Start the private cluster in <DATA_DIR>/postgres (creating it if needed), print its URL.
    Start,
    /// Stop the private cluster in <DATA_DIR>/postgres.
    Stop,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a personal access token for a user; it is printed once, only its hash is kept.
    Create {
        /// Username or e-mail of the owner.
        login: String,
        /// What the token is for, such as "CI" or "AI gateway".
        #[arg(long)]
        name: String,
        /// read (GET only), admin (what the owner's role allows) or gateway (read, plus each
        /// feature's model key on the gateway endpoint). Never more than the owner's role.
        #[arg(long, default_value = "read")]
        scope: String,
        /// Expiry date, YYYY-MM-DD: after today, at most a year away. Default: in 30 days.
        #[arg(long, default_value = "")]
        expires_at: String,
    },
    /// List a user's tokens, revoked and expired ones included (never the tokens themselves).
    List {
        /// Username or e-mail.
        login: String,
    },
    /// Revoke one of a user's tokens, by its id (from `list`): refused at once on every replica.
    Revoke {
        /// Username or e-mail.
        login: String,
        id: i64,
    },
}
