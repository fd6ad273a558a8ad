//! respackd as processes: two daemons on one PostgreSQL split the due packs and never renew,
//! charge or mail twice; SIGKILL at random moments during sweeps loses and doubles nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use rand::Rng;
use respack_domain::{Lifecycle, Money, RenewalMethod};
use respack_store::{SealingKey, Store};

use crate::harness::*;

fn respackd(env: &HashMap<String, String>, now: DateTime<Utc>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_respackd"));
    command
        .args(["sweep", "--once", "--now", &now.to_rfc3339()])
        .env_clear()
        .envs(env)
        .env("RESPACK_CONFIG", "/nonexistent-respack-test.toml")
        .env_remove("RESPACK_CONFIG")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

async fn connect(url: &str) -> Store {
    Store::connect(url, SealingKey::from_hex(SECRET_KEY).unwrap()).await.unwrap()
}

/// What the scenario expects after everything due at `NOW` was handled.
struct Scenario {
    account: i64,
    start_balance: Money,
    auto: Vec<String>,
    manual: Vec<String>,
    rolling: Vec<String>,
}

const NOW: &str = "2026-06-30T12:00:00Z";

/// `auto` packs expiring before NOW renew (the balance covers every one once), `manual` ones
/// expire, `rolling` ones (12 months, effective Jan 31) move to the June period.
async fn seed(store: &Store, packs_of_each: usize) -> Scenario {
    let account = account(store, &format!("{}", packs_of_each * 10)).await;
    let mut scenario = Scenario {
        account: account.id,
        start_balance: account.balance,
        auto: Vec::new(),
        manual: Vec::new(),
        rolling: Vec::new(),
    };
    for _ in 0..packs_of_each {
        scenario.auto.push(issue(store, account.id, monthly(at("2026-05-31T00:00:00Z"), 1, RenewalMethod::Auto)).await);
        scenario
            .manual
            .push(issue(store, account.id, monthly(at("2026-05-31T00:00:00Z"), 1, RenewalMethod::Manual)).await);
        scenario
            .rolling
            .push(issue(store, account.id, monthly(at("2026-01-31T00:00:00Z"), 12, RenewalMethod::Manual)).await);
    }
    scenario
}

async fn check_invariants(store: &Store, scenario: &Scenario, mail_dir: &std::path::Path) {
    let now = at(NOW);
    let account = store.account(scenario.account).await.unwrap();
    let ledger = store.ledger(scenario.account, 1000).await.unwrap();
    let ledger_sum: Money = ledger.iter().map(|row| row.amount).sum();
    assert_eq!(account.balance, ledger_sum, "balance == sum(ledger)");
    let renewals: Vec<_> = ledger.iter().filter(|row| row.kind == "renewal").collect();
    assert_eq!(renewals.len(), scenario.auto.len(), "each auto-renew pack charged exactly once");
    let per_pack: BTreeSet<_> = renewals.iter().map(|row| row.pack_id.clone().unwrap()).collect();
    assert_eq!(per_pack.len(), scenario.auto.len());
    assert_eq!(account.balance, scenario.start_balance - Money::parse("10").unwrap() * scenario.auto.len() as u32);
    for id in &scenario.auto {
        let pack = store.pack(None, id).await.unwrap();
        assert_eq!(
            (pack.lifecycle, pack.term.count, pack.expires_at),
            (Lifecycle::Valid, 2, at("2026-07-31T00:00:00Z")),
            "{id}"
        );
    }
    for id in &scenario.manual {
        assert_eq!(store.pack(None, id).await.unwrap().lifecycle, Lifecycle::Expired, "{id}");
    }
    for id in &scenario.rolling {
        let pack = store.pack(None, id).await.unwrap();
        assert_eq!(pack.items[0].cycle_index, pack.cycle_index_at(now), "{id}: no lost cycle");
        assert_eq!(pack.items[0].cycle_index, 5, "Jun 30 starts the sixth period");
    }
    assert_eq!(store.due_pack_count(now).await.unwrap(), 0);

    // Every due mail exactly once in the outbox, and all delivered.
    let outbox = store.outbox(None, 1000).await.unwrap();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &outbox {
        *by_kind.entry(mail.kind.clone()).or_default() += 1;
        assert_eq!(mail.status, "sent", "{mail:?}");
    }
    let n = scenario.auto.len();
    assert_eq!(by_kind.get("renewal_receipt"), Some(&n));
    assert_eq!(by_kind.get("expired"), Some(&n));
    // Each outbox row arrived (a kill between sending and marking may resend a row, always
    // under the same Message-ID).
    let received: BTreeSet<String> = read_messages(mail_dir).iter().map(|raw| message_id(raw)).collect();
    assert_eq!(received.len(), outbox.len(), "every outbox row was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_postgres_never_renew_charge_or_mail_twice() {
    let Some(db) = postgres_database().await else { return };
    let dir = TempDir::new("two");
    let mail_dir = dir.path().join("mail");
    let store = connect(&db.url).await;
    let scenario = seed(&store, 60).await;
    let env = daemon_env(
        dir.path(),
        &db.url,
        &[("RESPACK_MAIL_TRANSPORT", "file".into()), ("RESPACK_DAEMON_BATCH_SIZE", "10".into())],
    );
    let first = respackd(&env, at(NOW)).spawn().unwrap();
    let second = respackd(&env, at(NOW)).spawn().unwrap();
    let mut renewed = 0;
    for child in [first, second] {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let line: serde_json::Value = serde_json::from_slice(output.stdout.trim_ascii()).unwrap();
        renewed += line["renewed"].as_u64().unwrap();
    }
    assert_eq!(renewed, 60, "the two daemons renewed 60 packs between them");
    check_invariants(&store, &scenario, &mail_dir).await;
    assert_eq!(read_messages(&mail_dir).len(), store.outbox(None, 1000).await.unwrap().len(), "no mail sent twice");
    store.close().await.unwrap();
    db.drop_database().await;
}

async fn kill_at_random_moments(url: &str, dir: &std::path::Path, scenario: &Scenario, store: &Store) {
    let env =
        daemon_env(dir, url, &[("RESPACK_MAIL_TRANSPORT", "file".into()), ("RESPACK_DAEMON_BATCH_SIZE", "5".into())]);
    let mut rng = rand::thread_rng();
    let mut killed = 0;
    for _ in 0..8 {
        let mut child = respackd(&env, at(NOW)).spawn().unwrap();
        std::thread::sleep(StdDuration::from_millis(rng.gen_range(30..400)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    eprintln!("killed respackd {killed} times of 8");
    // A mail claimed by a killed sender is handed out again once its lease (6 minutes here)
    // has passed: the last run comes 10 minutes later (nothing else falls due in between).
    let output = respackd(&env, at(NOW) + chrono::Duration::minutes(10)).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    check_invariants(store, scenario, &dir.join("mail")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_sweeps_loses_and_doubles_nothing_on_sqlite() {
    let dir = TempDir::new("kill-sqlite");
    let url = sqlite_url(dir.path());
    let store = connect(&url).await;
    let scenario = seed(&store, 40).await;
    kill_at_random_moments(&url, dir.path(), &scenario, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_sweeps_loses_and_doubles_nothing_on_postgres() {
    let Some(db) = postgres_database().await else { return };
    let dir = TempDir::new("kill-pg");
    let store = connect(&db.url).await;
    let scenario = seed(&store, 40).await;
    kill_at_random_moments(&db.url, dir.path(), &scenario, &store).await;
    store.close().await.unwrap();
    db.drop_database().await;
}
