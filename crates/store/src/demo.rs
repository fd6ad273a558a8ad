//! Demo data for `cargo xtask seed` and `cargo xtask dev`: an operator, an organization with a
//! member customer, a second customer, ~60 packs covering every payment mode, status and
//! renewal method (and a combo package), a few weeks of usage, and an API key. Built through
//! the same operations a real deployment uses, with time moved as a parameter.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use respack_domain::catalog::CATALOG;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{CapacityItem, DeductionScope, Money, PackSpec, PaymentMode, RenewalMethod, Term, TimeUnit};

use crate::accounts::{AccountKind, NewAccount};
use crate::audit::Actor;
use crate::error::StoreResult;
use crate::pack_ops::Charge;
use crate::usage::UsageInput;
use crate::users::{NewUser, Role};
use crate::{Store, StoreError};

/// A demo sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoLogin {
    pub role: Role,
    pub email: &'static str,
    pub password: &'static str,
}

/// The demo logins, the same on every machine.
pub const DEMO_LOGINS: [DemoLogin; 4] = [
    DemoLogin { role: Role::Operator, email: "operator@respack.local", password: "operator-demo" },
    DemoLogin { role: Role::OrgAdmin, email: "admin@acme.example", password: "acme-admin-demo" },
    DemoLogin { role: Role::Customer, email: "demo@acme.example", password: "demo-customer" },
    DemoLogin { role: Role::Customer, email: "ops@globex.example", password: "globex-demo" },
];

/// What seeding did (or found already done).
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub already_seeded: bool,
    pub accounts: usize,
    pub packs: usize,
    pub usage_records: usize,
    /// The demo customer's API key: `(SecretId, SecretKey)`.
    pub api_key: Option<(String, String)>,
}

struct DemoPack {
    account: usize,
    spec: PackSpec,
    purchased_at: DateTime<Utc>,
}

fn base_capacity(unit: &str) -> Decimal {
    let amount: i64 = match unit {
        "tokens" => 10_000_000,
        "requests" => 100_000,
        "calls" => 50_000,
        "messages" => 20_000,
        "MAU" => 5_000,
        "GBs" => 400_000,
        "invocations" => 1_000_000,
        "credits" => 10_000,
        "pages" => 20_000,
        "LCU-hours" => 2_000,
        "seat-months" => 10,
        "channel-days" => 300,
        _ => 1_000,
    };
    Decimal::from(amount)
}

/// A demo price: two decimals, between 1 and 120 per term unit.
fn round_money(amount: Decimal) -> Money {
    Money::new(amount.round_dp(2).clamp(Decimal::ONE, Decimal::from(120))).unwrap_or(Money::ZERO)
}

fn demo_packs(now: DateTime<Utc>) -> Vec<DemoPack> {
    let zone: Tz = "Asia/Shanghai".parse().unwrap_or(Tz::UTC);
    let subproducts: Vec<_> =
        CATALOG.iter().flat_map(|product| product.subproducts.iter().map(move |sub| (product, sub))).collect();
    let ages = [3_i64, 10, 25, 40, 60, 95, 130, 170];
    let mut packs = Vec::new();
    for (n, (product, sub)) in subproducts.iter().enumerate() {
        for copy in 0..2 {
            let k = n * 2 + copy;
            let (mode, term) = match k % 5 {
                0 => (PaymentMode::TotalDecrement, Term { unit: TimeUnit::Month, count: 12 }),
                1 => (PaymentMode::PeriodDecrement(TimeUnit::Month), Term { unit: TimeUnit::Month, count: 12 }),
                2 => (PaymentMode::PeriodDecrement(TimeUnit::Day), Term { unit: TimeUnit::Day, count: 30 }),
                3 => (PaymentMode::ShardDecrement(TimeUnit::Day), Term { unit: TimeUnit::Month, count: 1 }),
                _ => (PaymentMode::Unlimited, Term { unit: TimeUnit::Month, count: 1 }),
            };
            let list = Decimal::from_str_exact(sub.list_price).unwrap_or(Decimal::ONE);
            let mut capacity = base_capacity(sub.unit) * Decimal::from(1 + k % 3);
            let unit_price = match mode {
                PaymentMode::TotalDecrement => round_money(capacity * list * Decimal::new(8, 1) / Decimal::from(12)),
                PaymentMode::PeriodDecrement(TimeUnit::Day) => {
                    capacity /= Decimal::from(20);
                    round_money(capacity * list * Decimal::new(8, 1))
                }
                PaymentMode::ShardDecrement(_) => {
                    capacity /= Decimal::from(20);
                    round_money(capacity * list * Decimal::from(24))
                }
                PaymentMode::Unlimited => Money::parse("99").unwrap_or(Money::ZERO),
                PaymentMode::PeriodDecrement(_) => round_money(capacity * list * Decimal::new(8, 1)),
            };
            let age = ages[k % ages.len()];
            let purchased_at = now - Duration::days(age) - Duration::hours((k % 24) as i64);
            let effective_at = if k % 13 == 5 { now + Duration::days(7) } else { purchased_at };
            let renewal = match (mode, k % 3) {
                (PaymentMode::TotalDecrement, 0) => RenewalMethod::NotRenew,
                (PaymentMode::TotalDecrement, _) => RenewalMethod::Manual,
                (_, 0) => RenewalMethod::Manual,
                (_, 1) => RenewalMethod::Auto,
                _ => RenewalMethod::NotRenew,
            };
            let item_capacity = (mode != PaymentMode::Unlimited).then_some(capacity.round_dp(0).max(Decimal::ONE));
            let mut scope = DeductionScope::default();
            if k % 7 == 0 {
                scope.0.insert("region".into(), ["ap-guangzhou".to_owned(), "ap-shanghai".to_owned()].into());
            }
            let mut tags = BTreeMap::new();
            tags.insert("team".to_owned(), ["media", "platform", "research"][k % 3].to_owned());
            packs.push(DemoPack {
                account: if k % 4 == 3 { 1 } else { 0 },
                purchased_at,
                spec: PackSpec {
                    name: format!("{} {}", sub.name, ["Starter", "Growth", "Scale"][k % 3]),
                    product: product.code.into(),
                    subproduct: sub.code.into(),
                    region: ["ap-guangzhou", "ap-shanghai", "ap-singapore"][k % 3].into(),
                    zone: ["ap-guangzhou-3", "ap-shanghai-2", "ap-singapore-1"][k % 3].into(),
                    mode,
                    term,
                    time_zone: zone,
                    effective_at,
                    renewal,
                    auto_renew_period: (renewal == RenewalMethod::Auto).then_some(1),
                    unit_price,
                    scope,
                    items: vec![CapacityItem::new(sub.name, sub.unit, item_capacity)],
                    tags,
                },
            });
        }
    }
    // A combo package: general and TSC transcoding minutes in one pack.
    packs.push(DemoPack {
        account: 0,
        purchased_at: now - Duration::days(20),
        spec: PackSpec {
            name: "MPS transcoding combo".into(),
            product: "p_mps".into(),
            subproduct: "sp_mps_general_transcoding".into(),
            region: "ap-guangzhou".into(),
            zone: "ap-guangzhou-3".into(),
            mode: PaymentMode::TotalDecrement,
            term: Term { unit: TimeUnit::Year, count: 1 },
            time_zone: zone,
            effective_at: now - Duration::days(20),
            renewal: RenewalMethod::Manual,
            auto_renew_period: None,
            unit_price: Money::parse("180").unwrap_or(Money::ZERO),
            scope: DeductionScope::default(),
            items: vec![
                CapacityItem::new("General transcoding", "minutes", Some(Decimal::from(20_000)))
                    .with_usage_type("general"),
                CapacityItem::new("TSC transcoding", "minutes", Some(Decimal::from(5_000))).with_usage_type("tsc"),
            ],
            tags: BTreeMap::new(),
        },
    });
    // A small pack that the usage history drains (exhausted), one expiring tomorrow, and one
    // bought yesterday (refunded below).
    let small = |name: &str, days_ago: i64, term: Term, mode: PaymentMode, capacity: i64| DemoPack {
        account: 0,
        purchased_at: now - Duration::days(days_ago),
        spec: PackSpec {
            name: name.into(),
            product: "p_mps".into(),
            subproduct: "sp_mps_tsc_transcoding".into(),
            region: "ap-guangzhou".into(),
            zone: "ap-guangzhou-3".into(),
            mode,
            term,
            time_zone: zone,
            effective_at: now - Duration::days(days_ago),
            renewal: RenewalMethod::Manual,
            auto_renew_period: None,
            unit_price: Money::parse("12").unwrap_or(Money::ZERO),
            scope: DeductionScope::default(),
            items: vec![CapacityItem::new("TSC transcoding", "minutes", Some(Decimal::from(capacity)))],
            tags: BTreeMap::new(),
        },
    };
    packs.push(small("TSC trial", 18, Term { unit: TimeUnit::Month, count: 3 }, PaymentMode::TotalDecrement, 60));
    let mut expiring = small(
        "TSC daily allowance",
        29,
        Term { unit: TimeUnit::Day, count: 30 },
        PaymentMode::PeriodDecrement(TimeUnit::Day),
        400,
    );
    expiring.purchased_at -= Duration::hours(6);
    expiring.spec.effective_at = expiring.purchased_at;
    packs.push(expiring);
    packs.push(small(
        "TSC bought by mistake",
        1,
        Term { unit: TimeUnit::Month, count: 1 },
        PaymentMode::TotalDecrement,
        500,
    ));
    packs
}

impl Store {
    /// Fills an empty database with the demo; on a seeded one, reports what is there.
    pub async fn seed_demo(&self, now: DateTime<Utc>) -> StoreResult<DemoSummary> {
        let operator = Actor::system("seed");
        if let Some(user) = self.verify_login(DEMO_LOGINS[2].email, DEMO_LOGINS[2].password).await? {
            let key = match self.api_keys(user.account_id).await?.into_iter().find(|key| key.revoked_at.is_none()) {
                Some(key) => self
                    .signing_key(&key.secret_id)
                    .await?
                    .map(|signing| (signing.secret_id, signing.secret_key.expose().to_owned())),
                None => None,
            };
            return Ok(DemoSummary { already_seeded: true, accounts: 0, packs: 0, usage_records: 0, api_key: key });
        }
        let start = now - Duration::days(200);
        let utc8: Tz = "Asia/Shanghai".parse().unwrap_or(Tz::UTC);
        let provider = self
            .create_account(
                NewAccount { kind: AccountKind::Operator, ..NewAccount::customer("respack operations", utc8) },
                &operator,
                start,
            )
            .await?;
        let group = self
            .create_account(
                NewAccount { kind: AccountKind::Organization, ..NewAccount::customer("Acme Group", utc8) },
                &operator,
                start,
            )
            .await?;
        let acme = self
            .create_account(
                NewAccount {
                    parent_account_id: Some(group.id),
                    alert_recipients: vec!["billing@acme.example".into()],
                    ..NewAccount::customer("Acme Media", utc8)
                },
                &operator,
                start,
            )
            .await?;
        let globex = self
            .create_account(
                NewAccount {
                    alert_recipients: vec!["finance@globex.example".into()],
                    language: "zh-CN".into(),
                    ..NewAccount::customer("Globex", "Europe/Berlin".parse().unwrap_or(Tz::UTC))
                },
                &operator,
                start,
            )
            .await?;
        for (login, account) in DEMO_LOGINS.iter().zip([provider.id, group.id, acme.id, globex.id]) {
            let name = login.email.split('@').next().unwrap_or(login.email);
            let new = NewUser {
                account_id: account,
                email: login.email,
                display_name: name,
                password: login.password,
                role: login.role,
            };
            self.create_user(new, &operator, start).await?;
        }
        self.top_up(acme.id, Money::parse("60000").unwrap_or(Money::ZERO), None, &operator, start).await?;
        self.top_up(globex.id, Money::parse("30000").unwrap_or(Money::ZERO), None, &operator, start).await?;

        let customers = [acme.id, globex.id];
        let mut plans = demo_packs(now);
        plans.sort_by_key(|plan| plan.purchased_at);
        let mut issued = Vec::new();
        for plan in plans {
            let account_id = customers[plan.account];
            let receipt = self
                .issue_pack(account_id, plan.spec.clone(), Charge::Balance, None, &operator, plan.purchased_at)
                .await?;
            issued.push((account_id, receipt.pack_id, plan.spec));
        }

        // Three weeks of usage: a few records a day against each live pack's subproduct.
        let mut rng = StdRng::seed_from_u64(20261123);
        let mut usage_records = 0;
        for day in (0..21).rev() {
            let day_start = now - Duration::days(day) - Duration::hours(4);
            for account_id in customers {
                let mut batch = Vec::new();
                for (owner, pack_id, spec) in &issued {
                    if *owner != account_id || spec.effective_at > day_start {
                        continue;
                    }
                    for item in &spec.items {
                        let per_record = match (spec.mode, item.capacity) {
                            (_, None) => base_capacity(&item.unit) / Decimal::from(50),
                            (PaymentMode::TotalDecrement, Some(capacity)) => capacity / Decimal::from(40),
                            (_, Some(capacity)) => capacity / Decimal::from(5),
                        };
                        for n in 0..rng.gen_range(1..=2) {
                            let factor = Decimal::new(rng.gen_range(20..=120), 2);
                            let quantity = (per_record * factor).round_dp(2).max(Decimal::new(1, 2));
                            let mut attributes = BTreeMap::new();
                            attributes.insert("region".to_owned(), spec.region.clone());
                            batch.push(UsageInput {
                                idempotency_key: format!("demo-{pack_id}-{}-{day}-{n}", item.name.len()),
                                product: spec.product.clone(),
                                subproduct: spec.subproduct.clone(),
                                usage_type: item.usage_type.clone(),
                                unit: Some(item.unit.clone()),
                                attributes,
                                quantity,
                                occurred_at: day_start + Duration::minutes(batch.len() as i64),
                            });
                        }
                    }
                }
                for chunk in batch.chunks(crate::usage::MAX_BATCH) {
                    let at = chunk.iter().map(|input| input.occurred_at).max().unwrap_or(day_start);
                    usage_records += self.record_usage(account_id, chunk, at + Duration::minutes(1)).await?.len();
                }
            }
        }

        // A refund, a frozen pack, and the passing of time.
        let find = |name: &str| {
            issued
                .iter()
                .find(|(_, _, spec)| spec.name == name)
                .map(|(_, id, _)| id.clone())
                .ok_or_else(|| StoreError::Corrupt(format!("demo pack {name} missing")))
        };
        self.refund(None, &find("TSC bought by mistake")?, None, &operator, now - Duration::hours(2)).await?;
        let frozen = issued
            .iter()
            .find(|(owner, _, spec)| {
                *owner == globex.id && matches!(spec.mode, PaymentMode::PeriodDecrement(TimeUnit::Month))
            })
            .map(|(_, id, _)| id.clone());
        if let Some(pack_id) = frozen {
            self.set_frozen(None, &pack_id, true, &operator, now - Duration::hours(1)).await?;
        }
        for (_, pack_id, _) in &issued {
            self.advance_lifecycle(pack_id, &operator, now).await?;
        }
        let key = self.create_api_key(acme.id, "demo key", &operator, now).await?;
        Ok(DemoSummary {
            already_seeded: false,
            accounts: 4,
            packs: issued.len(),
            usage_records,
            api_key: Some((key.info.secret_id, key.secret_key.expose().to_owned())),
        })
    }
}
