//! Starting respack-web for `dev`, `e2e` and `bench web`: build it, seed its database once,
//! start it on an address, wait until `/healthz` answers, and stop it again.

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use respack_config::Settings;
use respack_domain::chrono::Utc;
use respack_store::demo::DEMO_LOGINS;
use respack_store::Store;
use xshell::Shell;

use crate::site::{cargo, target_dir, workspace_root};

/// Builds the respack-web binary (`release` or debug) and returns its path.
pub fn build_web(sh: &Shell, release: bool) -> Result<PathBuf> {
    crate::site::check_rustflags()?;
    println!("xtask: building respack-web{}", if release { " (release)" } else { "" });
    let mut cmd = sh.cmd(cargo()).args(["build", "--quiet", "-p", "respack-web", "--bin", "respack-web"]);
    if release {
        cmd = cmd.arg("--release");
    }
    cmd.run().context("building respack-web failed")?;
    Ok(target_dir().join(if release { "release" } else { "debug" }).join("respack-web"))
}

/// Settings for a data directory (SQLite inside it), as respack-web will read them.
pub fn settings_for(data_dir: &Path) -> Result<Settings> {
    let env = HashMap::from([("RESPACK_DATA_DIR".to_owned(), data_dir.display().to_string())]);
    Settings::from_parts(None, &env).context("cannot make settings for the data directory")
}

/// The demo customer's account (Acme Media), which the browser test and `bench web` build on.
pub async fn demo_customer(store: &Store) -> Result<respack_store::Account> {
    store
        .accounts()
        .await?
        .into_iter()
        .find(|account| account.name == "Acme Media")
        .context("the demo account Acme Media is missing; seed the demo data first")
}

/// Migrates and adds the demo data unless it is there; returns the demo API key when made.
pub fn seed(settings: &Settings) -> Result<Option<(String, String)>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open(settings).await.context("cannot open the database")?;
        let summary = store.seed_demo(Utc::now()).await.context("seeding the demo data failed")?;
        if summary.already_seeded {
            println!("xtask: the database already holds the demo data");
        } else {
            println!(
                "xtask: seeded {} accounts, {} packs, {} usage records",
                summary.accounts, summary.packs, summary.usage_records
            );
        }
        store.close().await?;
        Ok(summary.api_key)
    })
}

/// The demo customer's API key on one line, as the SDKs take it (`None`: nothing to print).
pub fn print_api_key(key: Option<&(String, String)>) {
    if let Some((secret_id, secret_key)) = key {
        println!("API key of the demo customer (Acme Media):");
        println!("SecretId={secret_id} SecretKey={secret_key}\n");
    }
}

pub fn print_logins(url: &str) {
    println!("\nrespack console: {url}\n\ndemo logins (email / password):");
    for login in DEMO_LOGINS {
        println!("  {:<10} {} / {}", login.role.as_str(), login.email, login.password);
    }
    println!();
}

/// A child process stopped when dropped: SIGTERM first (respack-web and respackd shut down
/// gracefully and close the database), then a kill after 10 s.
pub struct Stopped(Child);

impl Stopped {
    pub fn new(child: Child) -> Stopped {
        Stopped(child)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let child = &mut self.0;
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running respack-web, stopped when dropped.
pub struct Server {
    process: Stopped,
    pub url: String,
}

impl Server {
    /// Starts `binary` with the data directory, address and site root, and waits for it.
    /// `isolated` drops a `RESPACK_DATABASE_URL` from our environment (tests and benchmarks
    /// use the SQLite file in `data_dir`, never the developer's database).
    pub fn start(
        binary: &Path,
        data_dir: &Path,
        addr: &str,
        site_root: &Path,
        log: &str,
        isolated: bool,
    ) -> Result<Server> {
        let mut command = Command::new(binary);
        command
            .current_dir(workspace_root())
            .env("RESPACK_DATA_DIR", data_dir)
            .env("RESPACK_ADDR", addr)
            .env("RESPACK_SITE_ROOT", site_root)
            .env("RESPACK_LOG", log);
        if isolated {
            command.env_remove("RESPACK_DATABASE_URL").env_remove("RESPACK_CONFIG").env_remove("RESPACK_SECRET_KEY");
        }
        let child = command.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
        let mut server = Server { process: Stopped::new(child), url: format!("http://{addr}") };
        server.wait_until_up(addr)?;
        Ok(server)
    }

    fn wait_until_up(&mut self, addr: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.process.0.try_wait()? {
                bail!("respack-web exited during start-up ({status})");
            }
            if TcpStream::connect(addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("respack-web did not listen on {addr} within 60 s")
    }

    /// Waits for the server to exit by itself (Ctrl-C reaches it too), or for this process to
    /// get SIGTERM: then the server (and whatever else the caller holds as [`Stopped`]) is
    /// stopped gracefully on the way out, instead of being left running without its parent.
    pub fn wait(mut self) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let status = runtime.block_on(async {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            loop {
                if let Some(status) = self.process.0.try_wait()? {
                    return Ok::<_, anyhow::Error>(Some(status));
                }
                tokio::select! {
                    _ = terminate.recv() => return Ok(None),
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        })?;
        match status {
            None => {
                println!("xtask: SIGTERM: stopping respack-web and respackd");
                Ok(())
            }
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!("respack-web exited with {status}"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}
