//! The private PostgreSQL cluster used when no `DATABASE_URL` is given: created with the
//! system's own PostgreSQL binaries in `<data dir>/postgres`, reachable only through a Unix socket
//! in that folder (no TCP port, so it never clashes with another server), reused on the next
//! start and stopped on exit.
//!
//! The cluster's privacy is written into its own files (`postgresql.conf`: no TCP, the socket in
//! the cluster's folder with mode 0700; `pg_hba.conf`: local connections only), not only onto
//! `pg_ctl`'s command line, so a plain `pg_ctl -D <folder> start` by an operator or a tool is
//! exactly as private. That is what makes `trust` authentication safe here.
//!
//! `initdb` and `postgres` refuse to run as root; as root, they run as the `postgres` user that
//! Debian's package creates, and the cluster's folder is handed to that user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;
use tokio::process::Command;

const SOCKET_PORT: u16 = 5432;
pub const DATABASE_NAME: &str = "duo_admin";
const SUPERUSER: &str = "postgres";
/// The account the cluster runs as when this process is root.
const UNPRIVILEGED_USER: &str = "postgres";

pub const MISSING_BINARIES: &str = "PostgreSQL's server programs (initdb, pg_ctl) were not found. \
Install them with `sudo apt-get install postgresql` (Debian and Ubuntu), or set DATABASE_URL to \
use an existing PostgreSQL server.";

pub struct PrivateCluster {
    dir: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<&'static str>,
    /// Only a cluster this process started is stopped by it: a second process (the `users`
    /// command while the console runs) must not pull the database from under the first.
    started_here: bool,
}

impl PrivateCluster {
    /// Starts the cluster in `dir`, creating it first if it does not exist yet.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin_dir = find_bin_dir().context(MISSING_BINARIES)?;
        let run_as = running_as_root().then_some(UNPRIVILEGED_USER);
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create the database folder {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let mut cluster = PrivateCluster { dir, bin_dir, run_as, started_here: false };

        // A Unix socket path may be at most 107 bytes long.
        let socket = cluster.dir.join(format!(".s.PGSQL.{SOCKET_PORT}"));
        if socket.as_os_str().len() > 100 {
            bail!(
                "the database folder's path is too long for a Unix socket ({}): set DUO_DATA_DIR to a shorter path",
                cluster.dir.display()
            );
        }
        if let Some(user) = run_as {
            cluster.hand_over_to(user).await?;
        }
        if !cluster.dir.join("PG_VERSION").exists() {
            cluster.init().await?;
        }
        // Every start, so a cluster made by an older version gets them too.
        cluster.write_safety()?;
        if !cluster.is_running().await {
            cluster.pg_ctl_start().await?;
            cluster.started_here = true;
        }
        cluster.create_database().await?;
        Ok(cluster)
    }

    /// Connection options for the console's database in this cluster.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options_for(DATABASE_NAME)
    }

    /// The same as a URL, for tools that want one (sqlx's test harness, psql).
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@localhost:{SOCKET_PORT}/{DATABASE_NAME}?host={}", self.dir.display())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        if self.started_here {
            self.pg_ctl_stop().await?;
        }
        Ok(())
    }

    /// Stops the cluster in `dir` whoever started it.
    pub async fn stop_dir(dir: &Path) -> anyhow::Result<()> {
        let cluster = PrivateCluster {
            dir: dir.canonicalize()?,
            bin_dir: find_bin_dir().context(MISSING_BINARIES)?,
            run_as: running_as_root().then_some(UNPRIVILEGED_USER),
            started_here: true,
        };
        if cluster.is_running().await { cluster.pg_ctl_stop().await } else { Ok(()) }
    }

    fn options_for(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.dir.to_string_lossy())
            .port(SOCKET_PORT)
            .username(SUPERUSER)
            .database(database)
    }

    async fn hand_over_to(&self, user: &str) -> anyhow::Result<()> {
        // The server refuses a data folder that others can read.
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(&self.dir)
            .status()
            .await
            .context("could not run chown")?;
        if !status.success() {
            bail!(
                "could not hand {} to the `{user}` user, which PostgreSQL needs when started by root. \
                 Install PostgreSQL (`apt-get install postgresql`) to create that user, or set DATABASE_URL.",
                self.dir.display()
            );
        }
        // Every folder above the cluster must be enterable by that user (root's home is not).
        let reachable = Command::new("runuser")
            .args(["-u", user, "--", "test", "-w"])
            .arg(&self.dir)
            .status()
            .await
            .is_ok_and(|status| status.success());
        if !reachable {
            bail!(
                "the `{user}` user cannot reach {}: PostgreSQL runs as that user when started by root. \
                 Set DUO_DATA_DIR to a folder outside private home folders (for example /var/lib/duo-admin).",
                self.dir.display()
            );
        }
        Ok(())
    }

    async fn init(&self) -> anyhow::Result<()> {
        tracing::info!(dir = %self.dir.display(), "creating the private PostgreSQL cluster");
        self.run(
            "initdb",
            &["-D", &self.dir_str(), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale"],
        )
        .await
    }

    /// Writes the cluster's privacy into its configuration: appended last to `postgresql.conf`
    /// (the last setting wins, and our block replaces its earlier self), and `pg_hba.conf`
    /// replaced by local (Unix socket) lines only. Files are rewritten in place, so they keep
    /// their owner when this runs as root for the `postgres` user.
    fn write_safety(&self) -> anyhow::Result<()> {
        const BEGIN: &str = "# BEGIN duo-admin: private cluster (rewritten at every start)";
        const END: &str = "# END duo-admin";
        let conf = self.dir.join("postgresql.conf");
        let existing =
            std::fs::read_to_string(&conf).with_context(|| format!("could not read {}", conf.display()))?;
        let mut kept = existing.clone();
        if let (Some(begin), Some(end)) = (existing.find(BEGIN), existing.find(END)) {
            kept = format!("{}{}", &existing[..begin], existing[end + END.len()..].trim_start_matches('\n'));
        }
        let socket_dir = self.dir_str().replace('\'', "''");
        let block = format!(
            "{BEGIN}\n\
             # No TCP at all: only the Unix socket below, usable by its owner (and root) only.\n\
             listen_addresses = ''\n\
             port = {SOCKET_PORT}\n\
             unix_socket_directories = '{socket_dir}'\n\
             unix_socket_permissions = 0700\n\
             {END}\n"
        );
        let separator = if kept.is_empty() || kept.ends_with('\n') { "" } else { "\n" };
        std::fs::write(&conf, format!("{kept}{separator}{block}"))
            .with_context(|| format!("could not write {}", conf.display()))?;
        let hba = self.dir.join("pg_hba.conf");
        std::fs::write(
            &hba,
            "# Written by duo-admin at every start: connections through the Unix socket only (its\n\
             # folder and the socket are this user's alone, mode 0700). No host lines: no TCP.\n\
             local all all trust\n",
        )
        .with_context(|| format!("could not write {}", hba.display()))?;
        Ok(())
    }

    async fn pg_ctl_start(&self) -> anyhow::Result<()> {
        tracing::info!(dir = %self.dir.display(), "starting the private PostgreSQL cluster");
        // No TCP at all; the socket is usable by its owner (and root) only, which is what makes
        // `trust` authentication safe here.
        let server_options = format!(
            "-c listen_addresses='' -k '{}' -p {SOCKET_PORT} -c unix_socket_permissions=0700",
            self.dir_str()
        );
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.dir_str(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &server_options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .await
        .with_context(|| format!("PostgreSQL did not start; its log is {}", log.display()))
    }

    async fn pg_ctl_stop(&self) -> anyhow::Result<()> {
        tracing::info!(dir = %self.dir.display(), "stopping the private PostgreSQL cluster");
        self.run("pg_ctl", &["-D", &self.dir_str(), "-m", "fast", "-w", "stop"]).await
    }

    async fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .args(["-D", &self.dir_str(), "status"])
            .output()
            .await
            .map(|output| output.status.success())
            .unwrap_or(false)
    }

    async fn create_database(&self) -> anyhow::Result<()> {
        use sqlx::{Connection, PgConnection};
        let mut connection = PgConnection::connect_with(&self.options_for("postgres"))
            .await
            .context("could not connect to the private PostgreSQL cluster")?;
        let exists = sqlx::query_scalar!(
            r#"SELECT EXISTS(SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
            DATABASE_NAME
        )
        .fetch_one(&mut connection)
        .await?;
        if !exists {
            // Identifiers cannot be bound as parameters; the name is a constant.
            sqlx::query(&format!("CREATE DATABASE {DATABASE_NAME}")).execute(&mut connection).await?;
        }
        Ok(())
    }

    fn dir_str(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin_dir.join(program);
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }

    async fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let output = self
            .command(program)
            .args(args)
            // Run from a folder the unprivileged user can enter.
            .current_dir("/")
            .output()
            .await
            .with_context(|| format!("could not run {program}"))?;
        if !output.status.success() {
            bail!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stderr).trim(),
                String::from_utf8_lossy(&output.stdout).trim()
            );
        }
        Ok(())
    }
}

/// The newest installed PostgreSQL's `bin` folder.
pub fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    // Debian and Ubuntu keep each major version apart: /usr/lib/postgresql/<major>/bin.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    // Elsewhere the programs are usually on PATH.
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

pub fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").map(|meta| meta.uid() == 0).unwrap_or(false)
}
