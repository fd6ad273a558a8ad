//! `respack-web keys create --account <UIN> [--note <text>]`: creates an API key for an
//! account and prints it once as `SecretId=… SecretKey=…` (the SecretKey cannot be shown
//! again). Every other invocation of `respack-web` serves the app.

use anyhow::{bail, Context};
use respack_store::{Actor, Store};

use crate::Clock;

const USAGE: &str = "usage: respack-web [keys create --account <UIN> [--note <text>]]";

/// Runs a subcommand when the arguments name one; `None` means "serve".
pub async fn run(args: &[String], settings: &respack_config::Settings) -> Option<anyhow::Result<()>> {
    match args.first().map(String::as_str) {
        None => None,
        Some("keys") => Some(keys(&args[1..], settings).await),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Some(Ok(()))
        }
        Some(other) => Some(Err(anyhow::anyhow!("unknown command `{other}`\n{USAGE}"))),
    }
}

async fn keys(args: &[String], settings: &respack_config::Settings) -> anyhow::Result<()> {
    let Some(("create", rest)) = args.split_first().map(|(first, rest)| (first.as_str(), rest)) else {
        bail!("{USAGE}");
    };
    let mut account = None;
    let mut note = String::from("created with respack-web keys create");
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--account" => account = Some(value.clone()),
            "--note" => note.clone_from(value),
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    let uin = account.with_context(|| format!("--account <UIN> is required\n{USAGE}"))?;
    let store = Store::open(settings).await.context("cannot open the respack database")?;
    let account = store.account_by_uin(&uin).await.with_context(|| format!("no account has the UIN {uin}"))?;
    let key = store
        .create_api_key(account.id, &note, &Actor::system("respack-web keys create"), Clock::system().now())
        .await
        .context("cannot create the API key")?;
    println!("SecretId={} SecretKey={}", key.info.secret_id, key.secret_key.expose());
    store.close().await.context("cannot close the database cleanly")?;
    Ok(())
}
