//! Accounts and their money: create, read, top up, and the balance ledger. Debits and credits
//! are guarded `UPDATE`s so a balance never goes negative unless the account allows arrears.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use respack_domain::rules::{charge, check_credit};
use respack_domain::Money;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor};
use crate::convert::{instant, millis, money, money_units, parse_stored};
use crate::entity::{accounts, balance_ledger};
use crate::error::{StoreError, StoreResult};
use crate::users::{insert_user, CheckedUser, FirstUser, User};
use crate::{ids, orders, retrying, Store};

/// What an account is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// Buys and uses packs.
    Customer,
    /// Pays for member accounts (`parent_account_id` points at it).
    Organization,
    /// The provider's own staff account.
    Operator,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Customer => "customer",
            AccountKind::Organization => "organization",
            AccountKind::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Option<AccountKind> {
        [AccountKind::Customer, AccountKind::Organization, AccountKind::Operator]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// What an operator gives when creating an account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub kind: AccountKind,
    pub parent_account_id: Option<i64>,
    pub time_zone: Tz,
    /// `en` or `zh-CN`.
    pub language: String,
    pub allow_arrears: bool,
    pub alert_recipients: Vec<String>,
}

impl NewAccount {
    /// A customer account in `zone` with English mail and no arrears.
    pub fn customer(name: impl Into<String>, time_zone: Tz) -> NewAccount {
        NewAccount {
            name: name.into(),
            kind: AccountKind::Customer,
            parent_account_id: None,
            time_zone,
            language: "en".into(),
            allow_arrears: false,
            alert_recipients: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: i64,
    /// The public 12-digit account ID (the API's OwnerUin/PayerUin).
    pub uin: String,
    pub name: String,
    pub kind: AccountKind,
    pub parent_account_id: Option<i64>,
    pub balance: Money,
    pub allow_arrears: bool,
    pub time_zone: Tz,
    pub language: String,
    pub alert_recipients: Vec<String>,
    /// Remaining-capacity alert thresholds in percent, highest first (default 20, 10).
    pub alert_thresholds: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// A top-up's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUp {
    pub order_id: String,
    pub amount: Money,
    pub balance_after: Money,
}

/// One movement of a balance.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    pub id: i64,
    pub account_id: i64,
    pub amount: Money,
    pub balance_after: Money,
    /// `top_up`, `purchase`, `renewal`, `refund`, `adjustment`.
    pub kind: String,
    pub order_id: Option<String>,
    pub pack_id: Option<String>,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) const LANGUAGES: [&str; 2] = ["en", "zh-CN"];

fn to_account(row: accounts::Model) -> StoreResult<Account> {
    Ok(Account {
        id: row.id,
        uin: row.uin,
        name: row.name,
        kind: parse_stored(&row.kind, "account kind", AccountKind::parse)?,
        parent_account_id: row.parent_account_id,
        balance: money(row.balance),
        allow_arrears: row.allow_arrears,
        time_zone: parse_stored(&row.time_zone, "time zone", |text| text.parse::<Tz>().ok())?,
        language: row.language,
        alert_recipients: serde_json::from_str(&row.alert_recipients).unwrap_or_default(),
        alert_thresholds: serde_json::from_str(&row.alert_thresholds).unwrap_or_else(|_| vec![20, 10]),
        created_at: instant(row.created_at)?,
    })
}

pub(crate) async fn load_account(conn: &impl ConnectionTrait, account_id: i64) -> StoreResult<Account> {
    let row = accounts::Entity::find_by_id(account_id)
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::not_found("account", account_id))?;
    to_account(row)
}

/// The accounts with these IDs (missing ones are simply absent).
pub(crate) async fn load_accounts(
    conn: &impl ConnectionTrait,
    ids: &std::collections::BTreeSet<i64>,
) -> StoreResult<Vec<Account>> {
    let mut found = Vec::with_capacity(ids.len());
    let ids: Vec<i64> = ids.iter().copied().collect();
    for chunk in ids.chunks(1000) {
        let rows = accounts::Entity::find().filter(accounts::Column::Id.is_in(chunk.to_vec())).all(conn).await?;
        for row in rows {
            found.push(to_account(row)?);
        }
    }
    Ok(found)
}

/// Takes `amount` from the balance, refusing (with the balance it saw) when that would go
/// negative on an account without arrears. Returns the balance after.
pub(crate) async fn debit(conn: &impl ConnectionTrait, account_id: i64, amount: Money) -> StoreResult<Money> {
    let units = money_units(amount)?;
    let updated = accounts::Entity::update_many()
        .col_expr(accounts::Column::Balance, Expr::col(accounts::Column::Balance).sub(units))
        .col_expr(accounts::Column::Version, Expr::col(accounts::Column::Version).add(1))
        .filter(accounts::Column::Id.eq(account_id))
        .filter(
            sea_orm::Condition::any()
                .add(accounts::Column::AllowArrears.eq(true))
                .add(accounts::Column::Balance.gte(units)),
        )
        .exec(conn)
        .await?;
    let account = load_account(conn, account_id).await?;
    if updated.rows_affected != 1 {
        // Say exactly why, using the domain's rule on what we saw; if the rule now passes,
        // the balance moved under us and the operation is retried.
        charge(account.balance, amount, account.allow_arrears)?;
        return Err(StoreError::conflict("the account balance"));
    }
    Ok(account.balance)
}

/// Adds `amount` to the balance; returns the balance after.
pub(crate) async fn credit(conn: &impl ConnectionTrait, account_id: i64, amount: Money) -> StoreResult<Money> {
    let units = money_units(amount)?;
    let updated = accounts::Entity::update_many()
        .col_expr(accounts::Column::Balance, Expr::col(accounts::Column::Balance).add(units))
        .col_expr(accounts::Column::Version, Expr::col(accounts::Column::Version).add(1))
        .filter(accounts::Column::Id.eq(account_id))
        .exec(conn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(StoreError::not_found("account", account_id));
    }
    Ok(load_account(conn, account_id).await?.balance)
}

/// A ledger row for a balance movement.
pub(crate) struct LedgerRow<'a> {
    pub account_id: i64,
    pub amount: Money,
    pub balance_after: Money,
    pub kind: &'a str,
    pub order_id: Option<&'a str>,
    pub pack_id: Option<&'a str>,
    pub note: String,
}

/// The row of a balance movement, ready to insert.
pub(crate) fn ledger_row(row: LedgerRow<'_>, now: DateTime<Utc>) -> StoreResult<balance_ledger::ActiveModel> {
    Ok(balance_ledger::ActiveModel {
        account_id: Set(row.account_id),
        amount: Set(money_units(row.amount)?),
        balance_after: Set(money_units(row.balance_after)?),
        kind: Set(row.kind.to_owned()),
        order_id: Set(row.order_id.map(str::to_owned)),
        pack_id: Set(row.pack_id.map(str::to_owned)),
        note: Set(row.note),
        created_at: Set(millis(now)),
        ..Default::default()
    })
}

pub(crate) async fn write_ledger(
    conn: &impl ConnectionTrait,
    row: LedgerRow<'_>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    ledger_row(row, now)?.insert(conn).await?;
    Ok(())
}

/// Inserts ledger rows in few statements, in the order given (ledger IDs follow it, so an
/// account's rows read in ID order show its balance step by step).
pub(crate) async fn write_ledger_rows(
    conn: &impl ConnectionTrait,
    rows: Vec<balance_ledger::ActiveModel>,
) -> StoreResult<()> {
    crate::db::insert_all(conn, rows, "").await?;
    Ok(())
}

/// An account's balance as read (and, on PostgreSQL, locked) for a batch of charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeldBalance {
    pub balance: Money,
    pub version: i64,
}

/// Reads the balances of these accounts for charges decided in memory, locking the rows on
/// PostgreSQL (in ID order, so two transactions that lock overlapping accounts queue instead of
/// deadlocking) until the transaction ends. SQLite has one writer, so its read already holds.
pub(crate) async fn hold_balances(
    conn: &impl ConnectionTrait,
    ids: &std::collections::BTreeSet<i64>,
) -> StoreResult<std::collections::HashMap<i64, HeldBalance>> {
    let mut held = std::collections::HashMap::with_capacity(ids.len());
    let ids: Vec<i64> = ids.iter().copied().collect();
    for chunk in ids.chunks(1000) {
        let mut query = accounts::Entity::find()
            .select_only()
            .column(accounts::Column::Id)
            .column(accounts::Column::Balance)
            .column(accounts::Column::Version)
            .filter(accounts::Column::Id.is_in(chunk.to_vec()))
            .order_by_asc(accounts::Column::Id);
        if conn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            query = query.lock_exclusive();
        }
        let rows: Vec<(i64, i64, i64)> = query.into_tuple().all(conn).await?;
        for (id, balance, version) in rows {
            held.insert(id, HeldBalance { balance: money(balance), version });
        }
    }
    Ok(held)
}

/// One account's charges of a batch, added up: `total` comes off the balance read as `seen`.
pub(crate) struct BalanceDebit {
    pub account_id: i64,
    pub seen: HeldBalance,
    pub total: Money,
}

/// Takes each account's total in one guarded statement for all of them: an account whose
/// version moved since it was read fails the whole write with a conflict (the caller's
/// transaction is retried), so the balances after that the caller recorded stay exact. The
/// caller has checked each charge against the balance seen ([`charge`]), pack by pack.
pub(crate) async fn debit_many(conn: &impl ConnectionTrait, debits: &[BalanceDebit]) -> StoreResult<()> {
    let backend = conn.get_database_backend();
    for chunk in debits.chunks(500) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 3);
        let mut rows = Vec::with_capacity(chunk.len());
        for debit in chunk {
            let start = values.len();
            values.push(debit.account_id.into());
            values.push(debit.seen.version.into());
            values.push(money_units(debit.total)?.into());
            rows.push(crate::db::placeholder_row(backend, start, values.len() - start));
        }
        let sql = format!(
            "UPDATE{} accounts SET balance = accounts.balance - v.column3, version = accounts.version + 1 \
             FROM (VALUES {}) AS v WHERE accounts.id = v.column1 AND accounts.version = v.column2",
            crate::db::or_fail(backend),
            rows.join(", ")
        );
        let updated = conn.execute(sea_orm::Statement::from_sql_and_values(backend, sql, values)).await?;
        if updated.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::conflict("the balance of an account charged in this batch"));
        }
    }
    Ok(())
}

fn check_new_account(new: &NewAccount) -> StoreResult<()> {
    if new.name.trim().is_empty() || new.name.len() > 200 {
        return Err(StoreError::invalid("an account needs a name of 1 to 200 characters"));
    }
    if !LANGUAGES.contains(&new.language.as_str()) {
        return Err(StoreError::invalid(format!("language must be one of {LANGUAGES:?}, not {:?}", new.language)));
    }
    if let Some(bad) = new.alert_recipients.iter().find(|email| !crate::users::looks_like_email(email)) {
        return Err(StoreError::invalid(format!("{bad:?} is not an email address")));
    }
    Ok(())
}

/// Inserts a checked account with its audit row in the caller's transaction.
async fn insert_account(
    conn: &impl ConnectionTrait,
    new: NewAccount,
    actor: &Actor,
    now: DateTime<Utc>,
) -> StoreResult<Account> {
    if let Some(parent) = new.parent_account_id {
        let parent = load_account(conn, parent).await?;
        if parent.kind != AccountKind::Organization {
            return Err(StoreError::invalid(format!("account {} is not an organization", parent.uin)));
        }
    }
    let row = accounts::ActiveModel {
        uin: Set(ids::uin()),
        name: Set(new.name.trim().to_owned()),
        kind: Set(new.kind.as_str().to_owned()),
        parent_account_id: Set(new.parent_account_id),
        balance: Set(0),
        allow_arrears: Set(new.allow_arrears),
        time_zone: Set(new.time_zone.name().to_owned()),
        language: Set(new.language.clone()),
        alert_recipients: Set(serde_json::to_string(&new.alert_recipients).unwrap_or_else(|_| "[]".into())),
        alert_thresholds: Set("[20,10]".into()),
        version: Set(0),
        created_at: Set(millis(now)),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    let account = to_account(row)?;
    audit::record(
        conn,
        account.id,
        actor,
        "account.create",
        &account.uin,
        serde_json::json!({"name": account.name, "kind": account.kind.as_str()}),
        now,
    )
    .await?;
    Ok(account)
}

impl Store {
    pub async fn create_account(&self, new: NewAccount, actor: &Actor, now: DateTime<Utc>) -> StoreResult<Account> {
        check_new_account(&new)?;
        let tx = self.write().await?;
        let account = insert_account(&*tx, new, actor, now).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// Creates an account and its first user together: both or neither (a user that cannot be
    /// created — a taken email — leaves no account behind to be created twice on a retry).
    pub async fn create_account_with_user(
        &self,
        new: NewAccount,
        user: FirstUser<'_>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<(Account, User)> {
        check_new_account(&new)?;
        let checked = CheckedUser::check(user.email, user.display_name, user.password, user.role)?;
        let tx = self.write().await?;
        let account = insert_account(&*tx, new, actor, now).await?;
        let user = insert_user(&*tx, account.id, checked, actor, now).await?;
        tx.commit().await?;
        Ok((account, user))
    }

    pub async fn account(&self, account_id: i64) -> StoreResult<Account> {
        load_account(self.read(), account_id).await
    }

    pub async fn account_by_uin(&self, uin: &str) -> StoreResult<Account> {
        let row = accounts::Entity::find()
            .filter(accounts::Column::Uin.eq(uin))
            .one(self.read())
            .await?
            .ok_or_else(|| StoreError::not_found("account", uin))?;
        to_account(row)
    }

    /// Every account, oldest first (operators' view).
    pub async fn accounts(&self) -> StoreResult<Vec<Account>> {
        accounts::Entity::find()
            .order_by_asc(accounts::Column::Id)
            .all(self.read())
            .await?
            .into_iter()
            .map(to_account)
            .collect()
    }

    /// The member accounts an organization pays for.
    pub async fn member_accounts(&self, organization_id: i64) -> StoreResult<Vec<Account>> {
        accounts::Entity::find()
            .filter(accounts::Column::ParentAccountId.eq(organization_id))
            .order_by_asc(accounts::Column::Id)
            .all(self.read())
            .await?
            .into_iter()
            .map(to_account)
            .collect()
    }

    /// Credits the balance. With a `client_token`, a retried request returns the first
    /// result and credits once.
    pub async fn top_up(
        &self,
        account_id: i64,
        amount: Money,
        client_token: Option<&str>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<TopUp> {
        check_credit(amount)?;
        let request = serde_json::json!({"amount": amount});
        retrying(|| async {
            let tx = self.write().await?;
            if let Some(first) =
                orders::replay::<TopUp>(&*tx, account_id, orders::OrderKind::TopUp, client_token, &request).await?
            {
                return Ok(first);
            }
            load_account(&*tx, account_id).await?;
            let order_id = ids::order_id(now);
            let balance_after = credit(&*tx, account_id, amount).await?;
            let result = TopUp { order_id: order_id.clone(), amount, balance_after };
            orders::insert(
                &*tx,
                orders::NewOrder {
                    id: &order_id,
                    account_id,
                    kind: orders::OrderKind::TopUp,
                    client_token,
                    pack_id: None,
                    amount,
                    periods: None,
                    request: &request,
                    receipt: &result,
                },
                now,
            )
            .await?;
            write_ledger(
                &*tx,
                LedgerRow {
                    account_id,
                    amount,
                    balance_after,
                    kind: "top_up",
                    order_id: Some(&order_id),
                    pack_id: None,
                    note: "Top-up".into(),
                },
                now,
            )
            .await?;
            audit::record(
                &*tx,
                account_id,
                actor,
                "account.top_up",
                &order_id,
                serde_json::json!({"amount": amount}),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(result)
        })
        .await
    }

    /// The newest ledger rows of an account.
    pub async fn ledger(&self, account_id: i64, limit: u64) -> StoreResult<Vec<LedgerEntry>> {
        balance_ledger::Entity::find()
            .filter(balance_ledger::Column::AccountId.eq(account_id))
            .order_by_desc(balance_ledger::Column::Id)
            .limit(limit.min(1000))
            .all(self.read())
            .await?
            .into_iter()
            .map(|row| {
                Ok(LedgerEntry {
                    id: row.id,
                    account_id: row.account_id,
                    amount: money(row.amount),
                    balance_after: money(row.balance_after),
                    kind: row.kind,
                    order_id: row.order_id,
                    pack_id: row.pack_id,
                    note: row.note,
                    created_at: instant(row.created_at)?,
                })
            })
            .collect()
    }

    /// Alert settings: who gets mail, in which language, at which remaining-capacity
    /// percentages (each 1..=99, highest first).
    pub async fn set_alert_settings(
        &self,
        account_id: i64,
        recipients: Vec<String>,
        language: &str,
        mut thresholds: Vec<u8>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Account> {
        if let Some(bad) = recipients.iter().find(|email| !crate::users::looks_like_email(email)) {
            return Err(StoreError::invalid(format!("{bad:?} is not an email address")));
        }
        if !LANGUAGES.contains(&language) {
            return Err(StoreError::invalid(format!("language must be one of {LANGUAGES:?}, not {language:?}")));
        }
        if thresholds.is_empty() || thresholds.iter().any(|t| !(1..=99).contains(t)) {
            return Err(StoreError::invalid("thresholds are percentages between 1 and 99"));
        }
        thresholds.sort_unstable_by(|a, b| b.cmp(a));
        thresholds.dedup();
        let tx = self.write().await?;
        let updated = accounts::Entity::update_many()
            .col_expr(
                accounts::Column::AlertRecipients,
                Expr::value(serde_json::to_string(&recipients).unwrap_or_default()),
            )
            .col_expr(accounts::Column::Language, Expr::value(language))
            .col_expr(
                accounts::Column::AlertThresholds,
                Expr::value(serde_json::to_string(&thresholds).unwrap_or_default()),
            )
            .col_expr(accounts::Column::Version, Expr::col(accounts::Column::Version).add(1))
            .filter(accounts::Column::Id.eq(account_id))
            .exec(&*tx)
            .await?;
        if updated.rows_affected != 1 {
            return Err(StoreError::not_found("account", account_id));
        }
        audit::record(
            &*tx,
            account_id,
            actor,
            "account.alert_settings",
            &account_id.to_string(),
            serde_json::json!({"recipients": recipients, "language": language, "thresholds": thresholds}),
            now,
        )
        .await?;
        let account = load_account(&*tx, account_id).await?;
        tx.commit().await?;
        Ok(account)
    }
}
