//! `cargo xtask e2e`: the browser test. Builds the site and respack-web, seeds a fresh SQLite
//! database under `target/e2e/`, starts respack-web on a free loopback port and runs
//! `e2e/console.spec.mjs` (playwright-core driving Debian's headless Chromium; no browser is
//! downloaded). Screenshots of each page land in `target/e2e/`. Besides the demo data the fixture
//! holds a pack on its last day and one dead email (for the operator's Retry).

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use xshell::Shell;

use crate::serve::{build_web, free_port, seed, settings_for, Server};
use crate::site::{self, default_site_root, target_dir, workspace_root, WasmProfile};

/// The Chromium to drive: `RESPACK_CHROMIUM`, else Debian's.
pub fn chromium() -> PathBuf {
    std::env::var_os("RESPACK_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether the browser test can run here (Chromium and node present).
pub fn available() -> bool {
    chromium().exists() && which("node")
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

pub fn run(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask e2e` takes no arguments (got `{extra}`)");
    }
    run_browser_test(None)
}

/// The browser test against `binary` when given (`cargo xtask test` passes the respack-web
/// its `cargo test` just built, sparing a second build with other features), else against a
/// fresh `cargo build` of respack-web.
pub fn run_browser_test(binary: Option<PathBuf>) -> Result<()> {
    if !chromium().exists() {
        bail!(
            "no Chromium at {}: install Debian's (`apt-get install chromium`) or set RESPACK_CHROMIUM",
            chromium().display()
        );
    }
    if !which("node") || !which("npm") {
        bail!("the browser test needs node and npm (`apt-get install nodejs npm`)");
    }
    let sh = Shell::new()?;
    let root = workspace_root();
    sh.change_dir(&root);
    let site_root = default_site_root();
    if let Err(error) = std::fs::remove_dir_all(site_root.join("pkg")) {
        if error.kind() != std::io::ErrorKind::NotFound {
            return Err(error).context("cannot remove the old bundle");
        }
    }
    let bundle = site::build(&sh, &site_root, WasmProfile::from_env())?;
    let binary = match binary {
        Some(binary) if binary.is_file() => binary,
        _ => build_web(&sh, false)?,
    };
    install_playwright(&sh, &root.join("e2e"))?;

    let out = target_dir().join("e2e");
    let data_dir = out.join("data");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir).with_context(|| format!("cannot clear {}", data_dir.display()))?;
    }
    std::fs::create_dir_all(&data_dir)?;
    let settings = settings_for(&data_dir)?;
    seed(&settings)?;
    add_last_day_pack(&settings)?;
    add_dead_email(&settings)?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let server = Server::start(&binary, &data_dir, &addr, &site_root, "warn", true)?;
    println!("xtask: respack-web at {}; running the browser test", server.url);
    let outcome = sh
        .cmd("node")
        .arg(root.join("e2e").join("console.spec.mjs"))
        .env("BASE_URL", &server.url)
        .env("SCREENSHOT_DIR", &out)
        .env("CHROMIUM", chromium())
        // Without the bundle the test checks the server-rendered pages and plain forms only.
        .env("EXPECT_HYDRATION", if bundle.is_some() { "1" } else { "0" })
        .run()
        .context("the browser test failed (its output is above; screenshots in target/e2e/)");
    drop(server);
    outcome
}

/// `npm ci` from the committed lock file, once.
fn install_playwright(sh: &Shell, e2e: &Path) -> Result<()> {
    if e2e.join("node_modules").join("playwright-core").is_dir() {
        return Ok(());
    }
    println!("xtask: installing playwright-core (npm ci, no browser download)");
    let _dir = sh.push_dir(e2e);
    sh.cmd("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .run()
        .context("npm ci in e2e/ failed")?;
    Ok(())
}

/// The demo customer's pack that expires in 20 hours (its last day): renewal settings are
/// refused on it, renewing is not. The demo's own short pack may be used up by its usage.
fn add_last_day_pack(settings: &respack_config::Settings) -> Result<()> {
    use respack_domain::chrono::{Duration, Utc};
    use respack_domain::rust_decimal::Decimal;
    use respack_domain::{CapacityItem, DeductionScope, Money, PackSpec, PaymentMode, RenewalMethod, Term, TimeUnit};
    use respack_store::{Actor, Charge, Store};

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open(settings).await?;
        let account = crate::serve::demo_customer(&store).await?;
        let now = Utc::now();
        let spec = PackSpec {
            name: "Last-day pack".into(),
            product: "p_mps".into(),
            subproduct: "sp_mps_general_transcoding".into(),
            region: "ap-guangzhou".into(),
            zone: String::new(),
            mode: PaymentMode::PeriodDecrement(TimeUnit::Day),
            term: Term { unit: TimeUnit::Day, count: 1 },
            time_zone: account.time_zone,
            effective_at: now - Duration::hours(4),
            renewal: RenewalMethod::Manual,
            auto_renew_period: None,
            unit_price: Money::parse("3")?,
            scope: DeductionScope::default(),
            items: vec![CapacityItem::new("General transcoding", "minutes", Some(Decimal::from(500)))],
            tags: std::collections::BTreeMap::new(),
        };
        store
            .issue_pack(account.id, spec, Charge::Settled, None, &Actor::system("e2e"), now - Duration::hours(4))
            .await?;
        store.close().await?;
        Ok(())
    })
}

/// One dead email for the operator's Retry, made the way respackd makes one: the daemon's
/// capacity-alert scan (or, if it finds nothing to say, its sweep) queues notices for the demo
/// packs, then a sender claims one and gives up on it (`mark_outbox_failed` without a retry
/// time, as after its last attempt).
fn add_dead_email(settings: &respack_config::Settings) -> Result<()> {
    use respack_domain::chrono::{Duration, Utc};
    use respack_store::Store;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open(settings).await?;
        let now = Utc::now();
        if store.scan_capacity_alerts(now, 10_000).await? == 0 {
            store.sweep_packs(now, 500).await?;
        }
        let claimed = store.claim_outbox(now, 1, Duration::minutes(5)).await?;
        let mail = claimed.first().context(
            "the demo data gave respackd's jobs no email to queue, so the e2e fixture has no message to \
             make dead (check the demo seed's alert settings and packs)",
        )?;
        let error = "550 5.1.1 mailbox unavailable (e2e fixture: the sender gave up)";
        ensure!(
            store.mark_outbox_failed(mail.id, mail.attempts, error, None).await?,
            "the claimed email {} could not be marked dead",
            mail.id
        );
        println!("xtask: e2e fixture: outbox message {} is dead ({})", mail.id, mail.subject);
        store.close().await?;
        Ok(())
    })
}
