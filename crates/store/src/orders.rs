//! Orders: one row per purchase, renewal, refund or top-up, carrying the caller's ClientToken.
//! A retried request with the same token gets the first request's receipt back and changes
//! nothing; a different request under a used token is refused.

use chrono::{DateTime, Utc};
use respack_domain::Money;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set, SqlErr};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::convert::{millis, money_units};
use crate::entity::orders;
use crate::error::{StoreError, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderKind {
    Purchase,
    Renewal,
    Refund,
    TopUp,
    Adjustment,
}

impl OrderKind {
    fn as_str(self) -> &'static str {
        match self {
            OrderKind::Purchase => "purchase",
            OrderKind::Renewal => "renewal",
            OrderKind::Refund => "refund",
            OrderKind::TopUp => "top_up",
            OrderKind::Adjustment => "adjustment",
        }
    }
}

pub(crate) struct NewOrder<'a, R: Serialize> {
    pub id: &'a str,
    pub account_id: i64,
    pub kind: OrderKind,
    pub client_token: Option<&'a str>,
    pub pack_id: Option<&'a str>,
    pub amount: Money,
    pub periods: Option<u32>,
    /// What was asked, to tell a retry from a different request under the same token.
    pub request: &'a serde_json::Value,
    pub receipt: &'a R,
}

/// The first receipt for this token, if the token was used before for the same request.
pub(crate) async fn replay<R: DeserializeOwned>(
    conn: &impl ConnectionTrait,
    account_id: i64,
    kind: OrderKind,
    client_token: Option<&str>,
    request: &serde_json::Value,
) -> StoreResult<Option<R>> {
    let Some(token) = client_token else {
        return Ok(None);
    };
    check_token(token)?;
    let Some(order) = orders::Entity::find()
        .filter(orders::Column::AccountId.eq(account_id))
        .filter(orders::Column::Kind.eq(kind.as_str()))
        .filter(orders::Column::ClientToken.eq(token))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let stored: serde_json::Value = serde_json::from_str(&order.receipt)
        .map_err(|error| StoreError::Corrupt(format!("order {} receipt: {error}", order.id)))?;
    if stored.get("request") != Some(request) {
        return Err(StoreError::TokenReused { token: token.to_owned() });
    }
    let receipt = stored.get("receipt").cloned().unwrap_or_default();
    serde_json::from_value(receipt)
        .map(Some)
        .map_err(|error| StoreError::Corrupt(format!("order {} receipt: {error}", order.id)))
}

fn check_token(token: &str) -> StoreResult<()> {
    if token.is_empty() || token.len() > 64 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::invalid("a ClientToken is 1 to 64 printable ASCII characters"));
    }
    Ok(())
}

/// The row of an order, ready to insert (alone with [`insert`] or with others with
/// [`insert_many`]).
pub(crate) fn order_row<R: Serialize>(order: NewOrder<'_, R>, now: DateTime<Utc>) -> StoreResult<orders::ActiveModel> {
    if let Some(token) = order.client_token {
        check_token(token)?;
    }
    let receipt = serde_json::json!({"request": order.request, "receipt": order.receipt});
    Ok(orders::ActiveModel {
        id: Set(order.id.to_owned()),
        account_id: Set(order.account_id),
        kind: Set(order.kind.as_str().to_owned()),
        client_token: Set(order.client_token.map(str::to_owned)),
        pack_id: Set(order.pack_id.map(str::to_owned)),
        amount: Set(money_units(order.amount)?),
        periods: Set(order.periods.map(|p| i32::try_from(p).unwrap_or(i32::MAX))),
        receipt: Set(receipt.to_string()),
        created_at: Set(millis(now)),
    })
}

/// A unique violation (the same ClientToken, or a random order ID drawn twice) is a conflict:
/// the operation's retry finds the winner's receipt or draws a new ID.
fn unique_is_conflict(error: DbErr) -> StoreError {
    if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        StoreError::conflict("an order with this ClientToken or ID")
    } else {
        error.into()
    }
}

/// Records an order. A concurrent request with the same token makes this fail with a
/// conflict; the retry then finds the winner's receipt through [`replay`].
pub(crate) async fn insert<R: Serialize>(
    conn: &impl ConnectionTrait,
    order: NewOrder<'_, R>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    order_row(order, now)?.insert(conn).await.map_err(unique_is_conflict)?;
    Ok(())
}

/// Records many orders in few statements (the daemon's automatic renewals of a sweep batch).
pub(crate) async fn insert_many(conn: &impl ConnectionTrait, rows: Vec<orders::ActiveModel>) -> StoreResult<()> {
    crate::db::insert_all(conn, rows, "").await.map_err(unique_is_conflict)?;
    Ok(())
}
