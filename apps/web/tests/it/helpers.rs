//! `spawn_app()`: respack-web on port 0 against a throwaway SQLite store, with a fixed clock,
//! plus seeding through the store API and a small HTTP client for `POST /v1/usage`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Duration, Utc};
use respack_domain::chrono_tz::Tz;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{CapacityItem, DeductionScope, Money, PackSpec, PaymentMode, RenewalMethod, Term, TimeUnit};
use respack_store::{Account, AccountKind, Actor, Charge, DeductionFilter, NewAccount, SealingKey, Store};
use respack_web::{AppState, Clock};
use serde_json::Value;

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// The app's "now" in every test (its clock stands still here).
pub fn t0() -> DateTime<Utc> {
    at("2026-11-23T10:00:00Z")
}

pub fn operator() -> Actor {
    Actor::system("test")
}

pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub store: Store,
    pub clock: Clock,
    pub client: reqwest::Client,
    db_path: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db_path.display()));
        }
    }
}

/// A customer with one 100-minute MPS transcoding pack and an API key.
pub struct Customer {
    pub account: Account,
    pub pack_id: String,
    pub secret_id: String,
    pub secret_key: String,
}

pub async fn spawn_app() -> TestApp {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let db_path = std::env::temp_dir().join(format!(
        "respack_web_it_{}_{}.db",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", db_path.display()), SealingKey::from_bytes([7; 32]))
        .await
        .expect("open a throwaway SQLite store");
    let clock = Clock::fixed(t0());
    let app = respack_web::router(AppState { store: store.clone(), clock: clock.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve the test app");
    });
    TestApp { address, store, clock, client: reqwest::Client::new(), db_path, server }
}

/// A total-decrement MPS general-transcoding pack of `capacity` minutes, a year from a month ago.
pub fn transcoding_pack(capacity: &str) -> PackSpec {
    PackSpec {
        name: "Transcoding pack".into(),
        product: "p_mps".into(),
        subproduct: "sp_mps_general_transcoding".into(),
        region: "ap-guangzhou".into(),
        zone: "ap-guangzhou-3".into(),
        mode: PaymentMode::TotalDecrement,
        term: Term { unit: TimeUnit::Month, count: 12 },
        time_zone: Tz::UTC,
        effective_at: t0() - Duration::days(30),
        renewal: RenewalMethod::Manual,
        auto_renew_period: None,
        unit_price: Money::parse("10").unwrap(),
        scope: DeductionScope::default(),
        items: vec![CapacityItem::new("General transcoding", "minutes", Some(dec(capacity)))],
        tags: BTreeMap::new(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn customer(&self, name: &str) -> Customer {
        let since = t0() - Duration::days(30);
        let account = self.store.create_account(NewAccount::customer(name, Tz::UTC), &operator(), since).await.unwrap();
        let pack_id = self
            .store
            .issue_pack(account.id, transcoding_pack("100"), Charge::Settled, None, &operator(), since)
            .await
            .unwrap()
            .pack_id;
        let key = self.store.create_api_key(account.id, "metering", &operator(), since).await.unwrap();
        Customer { account, pack_id, secret_id: key.info.secret_id, secret_key: key.secret_key.expose().to_owned() }
    }

    /// The provider's own operator account with an API key (and no packs).
    pub async fn operator_key(&self) -> Customer {
        let since = t0() - Duration::days(30);
        let new = NewAccount { kind: AccountKind::Operator, ..NewAccount::customer("Provider", Tz::UTC) };
        let account = self.store.create_account(new, &operator(), since).await.unwrap();
        let key = self.store.create_api_key(account.id, "metering", &operator(), since).await.unwrap();
        Customer {
            account,
            pack_id: String::new(),
            secret_id: key.info.secret_id,
            secret_key: key.secret_key.expose().to_owned(),
        }
    }

    /// Posts `body` as JSON with the customer's key; returns the status and the JSON answer.
    pub async fn post_usage(&self, customer: &Customer, body: &Value) -> (reqwest::StatusCode, Value) {
        let response = self
            .client
            .post(self.url("/v1/usage"))
            .basic_auth(&customer.secret_id, Some(&customer.secret_key))
            .json(body)
            .send()
            .await
            .expect("POST /v1/usage");
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }

    pub async fn remaining(&self, pack_id: &str) -> Decimal {
        self.store.pack(None, pack_id).await.unwrap().items[0].remaining
    }

    pub async fn deduction_count(&self, account_id: i64) -> u64 {
        let filter = DeductionFilter { account_ids: vec![account_id], ..Default::default() };
        self.store.list_deductions(&filter).await.unwrap().total
    }
}

/// One valid record for the customer's pack.
pub fn record(key: &str, quantity: Value) -> Value {
    serde_json::json!({
        "idempotency_key": key,
        "product": "p_mps",
        "subproduct": "sp_mps_general_transcoding",
        "usage_type": "general",
        "unit": "minutes",
        "attributes": { "region": "ap-guangzhou" },
        "quantity": quantity,
        "occurred_at": "2026-11-23T09:30:00Z",
    })
}
