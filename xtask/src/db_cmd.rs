//! `cargo xtask migrate` and `cargo xtask seed`: the configured database brought to the latest
//! schema, and filled with the demo (operator, customers, ~60 packs, weeks of usage).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use respack_config::Settings;
use respack_domain::chrono::Utc;
use respack_migrations::{Migrator, MigratorTrait};
use respack_store::demo::DEMO_LOGINS;
use respack_store::{PackFilter, Store};

fn no_args(command: &str, args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask {command}` takes no arguments (got `{extra}`); configure it with RESPACK_* variables");
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

async fn open(settings: &Settings) -> Result<Store> {
    let where_ = if settings.is_sqlite() {
        format!("SQLite in {}", settings.data_dir.display())
    } else {
        "PostgreSQL (RESPACK_DATABASE_URL)".to_owned()
    };
    println!("xtask: opening {where_} and applying migrations");
    Store::open(settings).await.with_context(|| format!("cannot open the database ({where_})"))
}

pub fn migrate(args: &[String]) -> Result<()> {
    no_args("migrate", args)?;
    let settings = Settings::load()?;
    runtime()?.block_on(async {
        let store = open(&settings).await?;
        store.close().await?;
        let names: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
        println!("xtask: the schema is up to date ({} migrations: {})", names.len(), names.join(", "));
        Ok(())
    })
}

pub fn seed(args: &[String]) -> Result<()> {
    no_args("seed", args)?;
    let settings = Settings::load()?;
    runtime()?.block_on(async {
        let store = open(&settings).await?;
        println!("xtask: seeding demo data (accounts, ~60 packs, three weeks of usage)…");
        let now = Utc::now();
        let summary = store.seed_demo(now).await.context("seeding failed")?;
        if summary.already_seeded {
            println!("xtask: the demo data was already there; nothing added");
        } else {
            println!(
                "xtask: added {} accounts, {} packs and {} usage records",
                summary.accounts, summary.packs, summary.usage_records
            );
        }
        print_summary(&store, now).await?;
        println!("\ndemo logins (password after the slash):");
        for login in DEMO_LOGINS {
            println!("  {:<10} {} / {}", login.role.as_str(), login.email, login.password);
        }
        println!();
        crate::serve::print_api_key(summary.api_key.as_ref());
        store.close().await?;
        Ok(())
    })
}

/// Packs per account and shown status, as the console will list them now.
async fn print_summary(store: &Store, now: respack_domain::chrono::DateTime<Utc>) -> Result<()> {
    println!("\nresource packs by account and status (ended packs older than 3 months hidden):");
    for account in store.accounts().await? {
        let filter = PackFilter { account_ids: vec![account.id], limit: 1000, ..Default::default() };
        let page = store.list_packs(&filter, now).await?;
        if page.total == 0 {
            continue;
        }
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for pack in &page.items {
            *by_status.entry(pack.status_at(now).as_str()).or_default() += 1;
        }
        let counts: Vec<String> = by_status.iter().map(|(status, n)| format!("{n} {status}")).collect();
        println!(
            "  {} (UIN {}, balance {}): {} packs — {}",
            account.name,
            account.uin,
            account.balance,
            page.total,
            counts.join(", ")
        );
    }
    Ok(())
}
