//! `cargo xtask <command>`: respack's project automation, one subcommand per job.
//!
//! Arguments are parsed by hand on purpose: each subcommand takes its own arguments, and the
//! first one picks the subcommand. To add one (`migrate`, `seed`, `bench`, `dev`, `e2e`,
//! `dist`), give it a module with a `run(args)` function, an arm in [`main`] and a line in
//! [`USAGE`].

mod bench;
mod db_cmd;
mod dev_cmd;
mod dist_cmd;
mod e2e_cmd;
mod pg_cluster;
mod serve;
mod site;
mod test_cmd;
mod venv;

use std::process::ExitCode;

// The process allocator (mimalloc), as respack's binaries have it.
use respack_allocator as _;

const USAGE: &str = "\
usage: cargo xtask <command> [args...]

commands:
  test [cargo test args...]   run every test suite: `cargo test --workspace --all-targets`,
                              with a throwaway PostgreSQL for the store's PostgreSQL suite
                              (or the one in RESPACK_TEST_DATABASE_URL)
  migrate                     apply pending migrations to the configured database
  seed                        migrate, then fill the database with demo data (once) and
                              print the demo logins, an API key and a summary
  bench deduct [--records N] [--accounts N] [--packs N] [--pg-clients N] [--sqlite-clients N]
               [--backend sqlite|postgres|both]
                              usage records per second on SQLite and PostgreSQL against a
                              plain-SQL baseline (default: 10,000 accounts, 100,000 packs,
                              1,000,000 records, 16 PostgreSQL clients); last line is JSON
  bench sweep [--packs N] [--batch N]
                              respackd's sweep of 10% due packs (default 1,000,000; 500 packs
                              per transaction, respackd's batch_size) on SQLite and PostgreSQL
                              against set-based plain SQL, and an idle sweep; last line is JSON
  bench api [--lines N] [--resources N] [--clients N] [--requests N] [--deep-offset N]
                              DescribeBillResourceSummary latency over 1,000,000 bill lines
                              on 10,000 resources, signed, over loopback; last line is JSON
  dev                         build the console (WASM) and respack-web, migrate and seed the
                              SQLite database on first start, serve on RESPACK_ADDR
                              (default 127.0.0.1:3000) and print the URL and demo logins
  e2e                         the browser test: headless Chromium (Debian's) + playwright-core
                              against a fresh, seeded respack-web; screenshots in target/e2e/
  dist                        release binaries, the site and systemd units in target/dist/
  build-site [--dev]          only the console's hydrate bundle (target/site/pkg)
  bench web                   SSR latency and throughput of Resource Packages (10,000 packs)
                              and the WASM's size; last line is JSON
  help                        print this message

the database is RESPACK_DATABASE_URL (default: SQLite at ./data/respack.db); see README.md

environment for `dev`, `e2e`, `dist`:
  RESPACK_WASM_PROFILE=dev    a quick, large WASM build instead of the size-optimized one
  RESPACK_CHROMIUM            the Chromium for `e2e` (default /usr/bin/chromium)

environment for `test`:
  RESPACK_TEST_DATABASE_URL   use this PostgreSQL instead of starting a throwaway cluster
  CI=true                     fail instead of skipping when no PostgreSQL can be had
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();

    let outcome = match command.as_deref() {
        Some("test") => test_cmd::run(&rest),
        Some("migrate") => db_cmd::migrate(&rest),
        Some("seed") => db_cmd::seed(&rest),
        Some("bench") => bench::run(&rest),
        Some("dev") => dev_cmd::run(&rest),
        Some("e2e") => e2e_cmd::run(&rest),
        Some("dist") => dist_cmd::run(&rest),
        Some("build-site") => site::run(&rest),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        None => {
            eprint!("xtask: no command given\n\n{USAGE}");
            return ExitCode::from(2);
        }
        Some(unknown) => {
            eprint!("xtask: unknown command `{unknown}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
