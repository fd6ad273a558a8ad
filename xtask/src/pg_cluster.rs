//! A throwaway PostgreSQL cluster for test runs: `initdb` into a temp dir, `pg_ctl start` on a
//! free loopback port, and `pg_ctl stop` plus deletion of the dir when the guard is dropped.
//!
//! Tests get a cluster that trades durability for speed (`fsync=off` and friends); benchmarks one
//! with PostgreSQL's durable defaults. Either lives for one run.
//! `initdb` refuses to run as root, so as root every PostgreSQL binary runs as the `postgres`
//! user through `runuser`, in a temp dir owned by that user.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use xshell::{Cmd, Shell};

/// Where Debian and Ubuntu install server binaries: `/usr/lib/postgresql/<version>/bin`.
const DEBIAN_POSTGRESQL_ROOT: &str = "/usr/lib/postgresql";

/// Temp dirs of our clusters are named `respack-pg-<xtask pid>-<counter>`, so a later run can
/// tell an abandoned one (its xtask is gone) from one in use by a concurrent run.
const CLUSTER_DIR_PREFIX: &str = "respack-pg-";

/// The database superuser created by `initdb -U`; also the OS user PostgreSQL runs as under root.
const POSTGRES_USER: &str = "postgres";

/// A PostgreSQL server installation: the directory holding `initdb` and `pg_ctl`.
#[derive(Debug, Clone)]
pub struct PgInstall {
    /// Major version as installed, e.g. "15"; shown in progress lines.
    pub version: String,
    bin_dir: PathBuf,
}

impl PgInstall {
    /// The highest version under `/usr/lib/postgresql/*/bin`, else `initdb` and `pg_ctl` found
    /// side by side on `PATH`; `None` when neither exists.
    pub fn find() -> Option<PgInstall> {
        Self::find_debian_layout().or_else(Self::find_on_path)
    }

    fn find_debian_layout() -> Option<PgInstall> {
        let entries = std::fs::read_dir(DEBIAN_POSTGRESQL_ROOT).ok()?;
        entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().into_string().ok()?;
                let bin_dir = entry.path().join("bin");
                let numeric_version = parse_version(&version)?;
                has_server_binaries(&bin_dir).then_some((numeric_version, PgInstall { version, bin_dir }))
            })
            .max_by(|(a, _), (b, _)| a.cmp(b))
            .map(|(_, install)| install)
    }

    fn find_on_path() -> Option<PgInstall> {
        let initdb = find_program("initdb")?;
        let bin_dir = initdb.parent()?.to_path_buf();
        if !has_server_binaries(&bin_dir) {
            return None;
        }
        // `pg_ctl (PostgreSQL) 16.2` → "16"; a label only, so an odd format is no reason to fail.
        let version = std::process::Command::new(bin_dir.join("pg_ctl"))
            .arg("--version")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| {
                let release = text.split("(PostgreSQL)").nth(1)?.split_whitespace().next()?.to_owned();
                Some(release.split('.').next().unwrap_or(&release).to_owned())
            })
            .unwrap_or_else(|| "(unknown version)".to_owned());
        Some(PgInstall { version, bin_dir })
    }

    fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// Extra server options for every throwaway cluster (`-c name=value …`, as `postgres` takes
/// them), e.g. `auto_explain` to see the plans of a benchmark's statements. When set, the
/// server log is kept after the cluster is gone.
const EXTRA_OPTIONS_VAR: &str = "RESPACK_PG_OPTIONS";

/// A running throwaway cluster. Dropping it stops the server and deletes its directory,
/// including when the code holding it returns early with an error.
pub struct PgCluster {
    sh: Shell,
    install: PgInstall,
    run_as: RunAs,
    /// Owns everything: `data/` (the cluster), `log` (server log) and the Unix socket.
    dir: PathBuf,
    port: u16,
    durability: Durability,
}

/// How much the cluster may skip to be fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync=off` and friends: for tests, whose data dies with the run.
    Throwaway,
    /// PostgreSQL's defaults (fsync, synchronous commit): for benchmarks that should measure
    /// what a real deployment pays.
    Durable,
}

impl PgCluster {
    /// Creates and starts a fresh cluster, returning once it accepts connections.
    pub fn start(install: &PgInstall, durability: Durability) -> Result<PgCluster> {
        let sh = Shell::new().context("creating a shell for the PostgreSQL cluster")?;
        let run_as = RunAs::detect(&sh)?;
        remove_abandoned_clusters(&sh, install, run_as);

        let dir = create_cluster_dir(run_as)?;
        sh.change_dir(&dir);
        // From here on, the guard cleans up whatever the remaining steps leave behind.
        let mut cluster = PgCluster { sh, install: install.clone(), run_as, dir, port: 0, durability };
        cluster.port = free_loopback_port()?;

        println!("xtask: starting throwaway PostgreSQL {} on 127.0.0.1:{}", cluster.install.version, cluster.port);
        let started = Instant::now();
        cluster.init_data_dir()?;
        cluster.start_server()?;
        println!("xtask: PostgreSQL ready in {:.1}s ({})", started.elapsed().as_secs_f64(), cluster.dir.display());
        Ok(cluster)
    }

    /// Connection URL for the `postgres` superuser and database, over TCP with trust auth.
    pub fn url(&self) -> String {
        format!("postgres://{POSTGRES_USER}@127.0.0.1:{}/postgres", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("log")
    }

    fn init_data_dir(&self) -> Result<()> {
        let initdb = self.run_as.command(&self.sh, &self.install.program("initdb"));
        let initdb = initdb.arg("-D").arg(self.data_dir()).args([
            "-U",
            POSTGRES_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run_capturing_output(initdb).context("initdb failed: cannot create the throwaway PostgreSQL cluster")
    }

    fn start_server(&self) -> Result<()> {
        let socket_dir = self.dir.display().to_string();
        // pg_ctl hands `-o` to a shell, so the dir is quoted; a quote inside it would break that.
        if socket_dir.contains('\'') {
            bail!("temp dir {socket_dir:?} contains a single quote, which pg_ctl cannot pass on; set TMPDIR elsewhere");
        }
        let speed = match self.durability {
            Durability::Throwaway => "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            Durability::Durable => "-c shared_buffers=512MB",
        };
        let extra = std::env::var(EXTRA_OPTIONS_VAR).unwrap_or_default();
        let server_options = format!(
            "-p {port} -k '{socket_dir}' -c listen_addresses=127.0.0.1 {speed} -c max_connections=200 {extra}",
            port = self.port
        );
        let pg_ctl = self.run_as.command(&self.sh, &self.install.program("pg_ctl"));
        let pg_ctl = pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-o")
            .arg(server_options)
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "start"]);
        run_capturing_output(pg_ctl)
            .map_err(|error| anyhow!("{error:#}\nlast lines of the server log:\n{}", self.log_tail(40)))
            .context("pg_ctl could not start the throwaway PostgreSQL")
    }

    /// Stops the server if it runs; `Ok(false)` when there was none (initdb or start failed).
    fn stop(&self) -> Result<bool> {
        if !self.data_dir().join("postmaster.pid").exists() {
            return Ok(false);
        }
        let pg_ctl = self.run_as.command(&self.sh, &self.install.program("pg_ctl"));
        run_capturing_output(pg_ctl.arg("-D").arg(self.data_dir()).args(["-m", "fast", "-w", "stop"]))?;
        Ok(true)
    }

    fn log_tail(&self, max_lines: usize) -> String {
        match std::fs::read_to_string(self.log_file()) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(max_lines)..];
                tail.iter().fold(String::new(), |mut out, line| {
                    let _ = writeln!(out, "    {line}");
                    out
                })
            }
            Err(error) => format!("    (no log at {}: {error})", self.log_file().display()),
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let stopping = Instant::now();
        match self.stop() {
            Ok(true) => println!("xtask: stopped PostgreSQL in {:.1}s", stopping.elapsed().as_secs_f64()),
            Ok(false) => {}
            Err(error) => eprintln!(
                "xtask: warning: could not stop PostgreSQL in {}: {error:#}\n\
                 xtask: deleting its directory anyway; a server whose lock file vanishes shuts itself down within a minute",
                self.dir.display()
            ),
        }
        if std::env::var_os(EXTRA_OPTIONS_VAR).is_some() {
            let kept = std::env::temp_dir().join(format!("respack-pg-{}.log", self.port));
            match std::fs::copy(self.log_file(), &kept) {
                Ok(_) => println!("xtask: PostgreSQL's log ({EXTRA_OPTIONS_VAR} is set): {}", kept.display()),
                Err(error) => {
                    eprintln!("xtask: warning: could not keep PostgreSQL's log at {}: {error}", kept.display())
                }
            }
        }
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("xtask: warning: could not delete {}: {error}", self.dir.display());
        }
    }
}

/// Which OS user runs `initdb`, `pg_ctl` and so the server.
#[derive(Debug, Clone, Copy)]
enum RunAs {
    CurrentUser,
    /// We are root, which `initdb` refuses; run as `postgres` via `runuser`.
    PostgresUser {
        uid: u32,
        gid: u32,
    },
}

impl RunAs {
    fn detect(sh: &Shell) -> Result<RunAs> {
        let euid = read_id(sh, &["-u"]).context("finding out whether xtask runs as root")?;
        if euid != 0 {
            return Ok(RunAs::CurrentUser);
        }
        if find_program("runuser").is_none() {
            bail!(
                "running as root, and initdb refuses root, but `runuser` (util-linux) is not installed to run it \
                 as `{POSTGRES_USER}`; install util-linux, run as a non-root user, or set RESPACK_TEST_DATABASE_URL"
            );
        }
        let (uid, gid) = match (read_id(sh, &["-u", POSTGRES_USER]), read_id(sh, &["-g", POSTGRES_USER])) {
            (Ok(uid), Ok(gid)) => (uid, gid),
            _ => bail!(
                "running as root, and initdb refuses root, but there is no `{POSTGRES_USER}` user to run it as; \
                 install the `postgresql` package (it creates that user), run as a non-root user, \
                 or set RESPACK_TEST_DATABASE_URL"
            ),
        };
        Ok(RunAs::PostgresUser { uid, gid })
    }

    fn command<'a>(self, sh: &'a Shell, program: &Path) -> Cmd<'a> {
        match self {
            RunAs::CurrentUser => sh.cmd(program),
            RunAs::PostgresUser { .. } => sh.cmd("runuser").args(["-u", POSTGRES_USER, "--"]).arg(program),
        }
    }
}

fn read_id(sh: &Shell, args: &[&str]) -> Result<u32> {
    let output = sh.cmd("id").args(args).quiet().ignore_stderr().read()?;
    output.trim().parse().with_context(|| format!("`id {}` printed {output:?}, not a number", args.join(" ")))
}

fn create_cluster_dir(run_as: RunAs) -> Result<PathBuf> {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    for counter in 0..1000 {
        let dir = base.join(format!("{CLUSTER_DIR_PREFIX}{pid}-{counter}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                if let RunAs::PostgresUser { uid, gid } = run_as {
                    if let Err(error) = std::os::unix::fs::chown(&dir, Some(uid), Some(gid)) {
                        let _ = std::fs::remove_dir(&dir);
                        return Err(error)
                            .with_context(|| format!("handing {} to the `{POSTGRES_USER}` user", dir.display()));
                    }
                }
                return Ok(dir);
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("could not create a fresh {CLUSTER_DIR_PREFIX}{pid}-* directory in {}", base.display())
}

/// Stops and deletes clusters left behind by runs that were killed before their guard ran
/// (Ctrl-C kills xtask, but pg_ctl puts the server in its own session, so it survives).
/// Best effort: a failure here only means some litter remains.
fn remove_abandoned_clusters(sh: &Shell, install: &PgInstall, run_as: RunAs) {
    if !Path::new("/proc/self").exists() {
        return; // cannot tell live runs from dead ones without /proc
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner_pid) = name.strip_prefix(CLUSTER_DIR_PREFIX).and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if owner_pid.parse::<u32>().is_err() || Path::new("/proc").join(owner_pid).exists() {
            continue;
        }
        let dir = entry.path();
        let data_dir = dir.join("data");
        if data_dir.join("postmaster.pid").exists() {
            let pg_ctl = run_as.command(sh, &install.program("pg_ctl"));
            let _ = pg_ctl
                .arg("-D")
                .arg(&data_dir)
                .args(["-m", "immediate", "-w", "stop"])
                .quiet()
                .ignore_status()
                .output();
        }
        if std::fs::remove_dir_all(&dir).is_ok() {
            println!("xtask: removed PostgreSQL cluster abandoned by an interrupted run: {}", dir.display());
        }
    }
}

/// Runs a command quietly; on failure, the error carries its full output.
fn run_capturing_output(cmd: Cmd<'_>) -> Result<()> {
    let shown = cmd.to_string();
    let output = cmd.quiet().ignore_status().output().with_context(|| format!("running `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` exited with {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A port that was free a moment ago. Another process could take it before PostgreSQL binds
/// it; then startup fails with the bind error in the log tail, and a rerun picks another.
fn free_loopback_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr().context("reading the port 127.0.0.1:0 was given")?.port())
}

fn has_server_binaries(bin_dir: &Path) -> bool {
    bin_dir.join("initdb").is_file() && bin_dir.join("pg_ctl").is_file()
}

/// "15" → [15], "9.6" → [9, 6]; `None` for names that are not versions.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// Looks `name` up on `PATH`, then in the sbin dirs a non-login root shell may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
