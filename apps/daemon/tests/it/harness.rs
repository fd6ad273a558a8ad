//! What the daemon tests share: throwaway databases (SQLite file or a database in the
//! PostgreSQL of `RESPACK_TEST_DATABASE_URL`), settings pointing at them, the aiosmtpd sink,
//! and builders for accounts and due packs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use respack_config::Settings;
use respack_domain::{CapacityItem, DeductionScope, Money, PackSpec, PaymentMode, RenewalMethod, Term, TimeUnit};
use respack_store::{Account, Actor, Charge, NewAccount, Store};
use sea_orm::{ConnectionTrait, Database};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub const SECRET_KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242";

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

pub fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

/// A fresh temporary directory, removed by [`TempDir`]'s drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "respackd-it-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PostgreSQL of `RESPACK_TEST_DATABASE_URL` with a fresh database, or `None` (and a note)
/// when there is none and none is required.
pub async fn postgres_database() -> Option<PostgresDb> {
    let Ok(url) = std::env::var("RESPACK_TEST_DATABASE_URL") else {
        let required = std::env::var("RESPACK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
            || std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !required,
            "RESPACK_TEST_DATABASE_URL is not set but PostgreSQL tests are required; run `cargo xtask test`"
        );
        eprintln!("SKIPPED: PostgreSQL daemon test (set RESPACK_TEST_DATABASE_URL or run `cargo xtask test`)");
        return None;
    };
    let admin = Database::connect(&url).await.expect("connect to the test PostgreSQL");
    let name = format!("respackd_it_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create a test database");
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url.as_str(), String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    Some(PostgresDb { url: format!("{server}/{name}{query}"), admin, name })
}

pub struct PostgresDb {
    pub url: String,
    admin: sea_orm::DatabaseConnection,
    name: String,
}

impl PostgresDb {
    pub async fn drop_database(self) {
        let _ = self.admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await;
    }
}

/// The variables a respackd of these tests runs with.
pub fn daemon_env(data_dir: &Path, database_url: &str, mail: &[(&str, String)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("RESPACK_DATA_DIR", data_dir.display().to_string()),
        ("RESPACK_DATABASE_URL", database_url.to_owned()),
        ("RESPACK_SECRET_KEY", SECRET_KEY.to_owned()),
        ("RESPACK_LOG", "warn".to_owned()),
        ("RESPACK_DAEMON_METRICS_ADDR", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (key, value) in mail {
        env.insert((*key).to_owned(), value.clone());
    }
    env
}

pub fn settings(env: &HashMap<String, String>) -> Settings {
    Settings::from_parts(None, env).expect("test settings")
}

pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("respack.db").display())
}

/// A TCP port nobody listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The python with aiosmtpd, from `cargo xtask test`. Without it the caller skips, except
/// under CI, where a missing SMTP server fails the test.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("RESPACK_TEST_PYTHON") {
        Some(python) => Some(PathBuf::from(python)),
        None => {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!in_ci, "RESPACK_TEST_PYTHON is not set under CI: run the tests through `cargo xtask test`");
            eprintln!("SKIPPED: SMTP test (run `cargo xtask test`, which provides aiosmtpd in target/venv)");
            None
        }
    }
}

/// aiosmtpd listening on `port`, storing messages in `dir`; killed on drop.
pub struct SmtpSink {
    child: Child,
}

impl SmtpSink {
    pub fn start(python: &Path, port: u16, dir: &Path) -> SmtpSink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("smtp_sink.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the aiosmtpd sink");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        SmtpSink { child }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The complete messages in `dir`. lettre's file transport writes in place, so a respackd
/// killed mid-write leaves a partial file (without its headers): that is no delivery (the row
/// stays `sending` and is sent again after its lease), so it is skipped.
pub fn read_messages(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|path| path.extension().is_some_and(|ext| ext == "eml"));
    files.sort();
    files
        .into_iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .filter(|raw| has_message_id(raw) && raw.trim_end().ends_with("--"))
        .collect()
}

fn has_message_id(raw: &str) -> bool {
    raw.lines().any(|line| line.starts_with("Message-ID: ") || line.starts_with("Message-Id: "))
}

/// The `Message-ID` header of a raw message.
pub fn message_id(raw: &str) -> String {
    raw.lines()
        .find_map(|line| line.strip_prefix("Message-ID: ").or_else(|| line.strip_prefix("Message-Id: ")))
        .map(|id| id.trim().to_owned())
        .expect("every message has a Message-ID")
}

pub fn operator() -> Actor {
    Actor::system("test")
}

pub async fn account(store: &Store, balance: &str) -> Account {
    let created = store
        .create_account(NewAccount::customer("Acme Media", Tz::UTC), &operator(), at("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    if money(balance) > Money::ZERO {
        store.top_up(created.id, money(balance), None, &operator(), at("2026-01-01T00:00:00Z")).await.unwrap();
    }
    store
        .set_alert_settings(
            created.id,
            vec!["ops@acme.example".into()],
            "en",
            vec![20, 10],
            &operator(),
            at("2026-01-01T00:00:00Z"),
        )
        .await
        .unwrap()
}

/// A monthly period pack of 100 minutes at 10 a month.
pub fn monthly(effective: DateTime<Utc>, months: u32, renewal: RenewalMethod) -> PackSpec {
    PackSpec {
        name: "Transcoding pack".into(),
        product: "p_mps".into(),
        subproduct: "sp_mps_general_transcoding".into(),
        region: "ap-guangzhou".into(),
        zone: "ap-guangzhou-3".into(),
        mode: PaymentMode::PeriodDecrement(TimeUnit::Month),
        term: Term { unit: TimeUnit::Month, count: months },
        time_zone: Tz::UTC,
        effective_at: effective,
        renewal,
        auto_renew_period: (renewal == RenewalMethod::Auto).then_some(1),
        unit_price: money("10"),
        scope: DeductionScope::default(),
        items: vec![CapacityItem::new("General transcoding", "minutes", Some(100.into()))],
        tags: Default::default(),
    }
}

pub async fn issue(store: &Store, account: i64, spec: PackSpec) -> String {
    let now = spec.effective_at;
    store.issue_pack(account, spec, Charge::Settled, None, &operator(), now).await.unwrap().pack_id
}
