//! `cargo xtask test`: runs every test suite, giving the store's PostgreSQL suite a database.
//!
//! Contract with the test harness, through the environment of `cargo test`:
//! - `RESPACK_TEST_DATABASE_URL`: a PostgreSQL the suite may create databases in. Taken as is
//!   from our own environment when set; otherwise the URL of a throwaway cluster started here.
//! - `RESPACK_REQUIRE_POSTGRES=1`: set when a PostgreSQL is available or `CI=true`; the harness
//!   then fails instead of skipping the PostgreSQL suite, so a broken setup cannot pass silently.
//! - `RESPACK_TEST_PYTHON`: a python with the PyPI test tools (the daemon's SMTP test server,
//!   aiosmtpd), from the virtualenv in `target/venv`; under `CI=true` failing to set it up fails.

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::pg_cluster::{Durability, PgCluster, PgInstall};

const DATABASE_URL_VAR: &str = "RESPACK_TEST_DATABASE_URL";
const REQUIRE_POSTGRES_VAR: &str = "RESPACK_REQUIRE_POSTGRES";
/// The Python (of `target/venv`) the suites run their Python tools with.
const PYTHON_VAR: &str = "RESPACK_TEST_PYTHON";
/// PyPI packages the suites use, pinned: the official Tencent Cloud SDK (the API must answer it
/// as the real service does) and aiosmtpd (the real SMTP server respackd's mail goes to).
const PYTHON_TEST_PACKAGES: [&str; 3] =
    ["tencentcloud-sdk-python-common==3.1.195", "tencentcloud-sdk-python-billing==3.1.177", "aiosmtpd==1.4.6"];

/// Where the PostgreSQL suite's database comes from in this run.
enum TestDatabase {
    /// `RESPACK_TEST_DATABASE_URL` was set by the caller.
    Given(String),
    /// Started by us; stopped and deleted when this value is dropped.
    Throwaway(PgCluster),
    /// No PostgreSQL to be had: the suite is skipped (never under CI).
    Unavailable,
}

impl TestDatabase {
    fn url(&self) -> Option<String> {
        match self {
            TestDatabase::Given(url) => Some(url.clone()),
            TestDatabase::Throwaway(cluster) => Some(cluster.url()),
            TestDatabase::Unavailable => None,
        }
    }
}

/// Runs `cargo test --workspace --all-targets <cargo_test_args>`; `Err` if any test fails.
pub fn run(cargo_test_args: &[String]) -> Result<()> {
    let sh = Shell::new().context("creating a shell for cargo test")?;
    let in_ci = is_ci();

    // Held until the end of this function, so the cluster outlives the tests, and is stopped
    // also when they fail (the early return drops it).
    let database = obtain_test_database(in_ci)?;
    let database_url = database.url();

    let mut test_args: Vec<String> = vec!["test".into()];
    if !selects_packages(cargo_test_args) {
        test_args.push("--workspace".into());
    }
    test_args.push("--all-targets".into());
    test_args.extend_from_slice(cargo_test_args);

    let mut cargo_test = sh.cmd(cargo_bin()).args(&test_args).quiet();
    let mut env_notes = Vec::new();
    if let Some(url) = &database_url {
        cargo_test = cargo_test.env(DATABASE_URL_VAR, url);
        env_notes.push(DATABASE_URL_VAR.to_owned());
    }
    if database_url.is_some() || in_ci {
        cargo_test = cargo_test.env(REQUIRE_POSTGRES_VAR, "1");
        env_notes.push(format!("{REQUIRE_POSTGRES_VAR}=1"));
    }
    match crate::venv::ensure(&PYTHON_TEST_PACKAGES) {
        Ok(python) => {
            cargo_test = cargo_test.env(PYTHON_VAR, &python);
            env_notes.push(PYTHON_VAR.to_owned());
        }
        Err(error) if in_ci => {
            return Err(error.context("the test suites' Python tools (Tencent Cloud SDK, aiosmtpd) are needed under CI"))
        }
        Err(error) => {
            eprintln!("xtask: WARNING: no Python test tools; the SDK and SMTP tests will be skipped: {error:#}")
        }
    }

    if !selects_packages(cargo_test_args) {
        // Architecture invariant: the domain stays pure and portable, so the web console's
        // WASM build can share it.
        if !crate::site::wasm_target_installed(&sh) && !in_ci {
            eprintln!(
                "\nxtask: WARNING: the wasm32 check of respack-domain is SKIPPED: the \
                 wasm32-unknown-unknown target is not installed (`rustup target add \
                 wasm32-unknown-unknown`). With CI=true this is an error.\n"
            );
        } else {
            println!("xtask: checking that respack-domain builds for wasm32-unknown-unknown");
            sh.cmd(cargo_bin())
            .args(["build", "--quiet", "-p", "respack-domain", "--target", "wasm32-unknown-unknown"])
            .run()
            .context("respack-domain must build for wasm32 (is the target installed? `rustup target add wasm32-unknown-unknown`)")?;
        }
    }

    let env_note = if env_notes.is_empty() { String::new() } else { format!(" (with {})", env_notes.join(", ")) };
    println!("xtask: running cargo {}{env_note}", test_args.join(" "));
    let outcome = cargo_test.run().context("cargo test failed (its output is above)");
    if matches!(database, TestDatabase::Unavailable) {
        warn_postgres_suite_skipped();
    }
    outcome?;
    drop(database);

    if !selects_packages(cargo_test_args) {
        // The browser suite: slow, so it runs last; `cargo xtask e2e` runs it alone.
        if crate::e2e_cmd::available() {
            println!("xtask: running the browser test (cargo xtask e2e)");
            // `cargo test` built respack-web's binary for its integration tests just now.
            let binary = crate::site::target_dir().join("debug").join("respack-web");
            crate::e2e_cmd::run_browser_test(Some(binary))?;
        } else if in_ci {
            bail!(
                "CI=true, but the browser test cannot run: it needs Debian's chromium at {}                  (apt-get install chromium) and node/npm",
                crate::e2e_cmd::chromium().display()
            );
        } else {
            eprintln!(
                "\nxtask: WARNING: the browser test is SKIPPED: no Chromium at {} or no node                  (apt-get install chromium nodejs npm). With CI=true this is an error.\n",
                crate::e2e_cmd::chromium().display()
            );
        }
    }
    Ok(())
}

/// The cargo that runs us, so a `+toolchain` choice carries over.
fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn obtain_test_database(in_ci: bool) -> Result<TestDatabase> {
    if let Some(url) = std::env::var(DATABASE_URL_VAR).ok().filter(|url| !url.trim().is_empty()) {
        // The URL may hold a password, so it is not printed.
        println!("xtask: using the PostgreSQL given in {DATABASE_URL_VAR}");
        return Ok(TestDatabase::Given(url));
    }
    match PgInstall::find() {
        Some(install) => Ok(TestDatabase::Throwaway(PgCluster::start(&install, Durability::Throwaway)?)),
        None if in_ci => bail!(
            "CI=true, but there is no PostgreSQL to test against: no initdb/pg_ctl under \
             /usr/lib/postgresql/*/bin or on PATH, and {DATABASE_URL_VAR} is not set.\n\
             Install the `postgresql` package (apt-get install postgresql) or set \
             {DATABASE_URL_VAR}=postgres://user@host:port/db"
        ),
        None => {
            warn_postgres_suite_skipped();
            Ok(TestDatabase::Unavailable)
        }
    }
}

fn warn_postgres_suite_skipped() {
    eprintln!(
        "\n\
         xtask: ====================================================================\n\
         xtask: WARNING: the PostgreSQL test suite is SKIPPED in this run.\n\
         xtask:   No PostgreSQL server binaries were found (initdb and pg_ctl under\n\
         xtask:   /usr/lib/postgresql/*/bin or on PATH), and {DATABASE_URL_VAR}\n\
         xtask:   is not set. To run it, either\n\
         xtask:     apt-get install postgresql      (xtask then starts its own cluster)\n\
         xtask:   or export {DATABASE_URL_VAR}=postgres://user@host:port/db\n\
         xtask:   With CI=true this is an error rather than a warning.\n\
         xtask: ====================================================================\n"
    );
}

/// `CI=true` (as set by GitHub Actions, GitLab and `.ci/run`) or `CI=1`.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// Whether the caller picked packages (`-p x`, `--package=x`), which replaces `--workspace`.
/// Only arguments before `--` are cargo's; the rest go to the test binaries.
fn selects_packages(cargo_test_args: &[String]) -> bool {
    cargo_test_args
        .iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| arg.starts_with("-p") || arg.starts_with("--package"))
}
