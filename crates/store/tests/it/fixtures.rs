//! Builders the store tests share: instants, money, accounts with balance, pack specs.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{CapacityItem, DeductionScope, Money, PackSpec, PaymentMode, RenewalMethod, Term, TimeUnit};
use respack_store::{Account, Actor, NewAccount, Store, UsageInput};

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

pub fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

pub fn operator() -> Actor {
    Actor::system("test")
}

/// The instant most tests call "now".
pub fn t0() -> DateTime<Utc> {
    at("2026-03-10T08:00:00Z")
}

pub async fn account_with(store: &Store, name: &str, balance: &str) -> Account {
    let account = store
        .create_account(NewAccount::customer(name, Tz::UTC), &operator(), t0() - Duration::days(30))
        .await
        .unwrap();
    if money(balance) > Money::ZERO {
        store.top_up(account.id, money(balance), None, &operator(), t0() - Duration::days(30)).await.unwrap();
    }
    store.account(account.id).await.unwrap()
}

/// An MPS general-transcoding pack of `capacity` minutes, effective at `effective`, 10 per
/// term unit.
pub fn mps_spec(mode: PaymentMode, count: u32, capacity: &str, effective: DateTime<Utc>) -> PackSpec {
    let unit = match mode {
        PaymentMode::PeriodDecrement(unit) => unit,
        _ => TimeUnit::Month,
    };
    PackSpec {
        name: "Transcoding pack".into(),
        product: "p_mps".into(),
        subproduct: "sp_mps_general_transcoding".into(),
        region: "ap-guangzhou".into(),
        zone: "ap-guangzhou-3".into(),
        mode,
        term: Term { unit, count },
        time_zone: Tz::UTC,
        effective_at: effective,
        renewal: RenewalMethod::Manual,
        auto_renew_period: None,
        unit_price: money("10"),
        scope: DeductionScope::default(),
        items: vec![CapacityItem::new(
            "General transcoding",
            "minutes",
            (mode != PaymentMode::Unlimited).then(|| dec(capacity)),
        )],
        tags: BTreeMap::new(),
    }
}

pub fn usage(key: &str, quantity: &str, at: DateTime<Utc>) -> UsageInput {
    UsageInput {
        idempotency_key: key.into(),
        product: "p_mps".into(),
        subproduct: "sp_mps_general_transcoding".into(),
        usage_type: Some("general".into()),
        unit: None,
        attributes: BTreeMap::from([("region".to_owned(), "ap-guangzhou".to_owned())]),
        quantity: dec(quantity),
        occurred_at: at,
    }
}
