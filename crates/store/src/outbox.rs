//! The email outbox: rows written in the same transaction as the change they report, read by
//! operators (who may retry a dead one), and claimed, marked sent or failed by respackd's sender.

use chrono::{DateTime, Duration, Utc};
use respack_domain::Pack;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use crate::accounts::Account;
use crate::audit::{self, Actor};
use crate::convert::{instant, millis};
use crate::entity::outbox;
use crate::error::{StoreError, StoreResult};
use crate::notices::{render, Notice};
use crate::{retrying, Store};

/// One queued, sent or dead email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub account_id: i64,
    pub kind: String,
    pub recipients: Vec<String>,
    pub subject: String,
    /// `queued`, `sent` or `dead`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The newest outbox messages, optionally of one status.
    pub async fn outbox(&self, status: Option<&str>, limit: u64) -> StoreResult<Vec<OutboxMessage>> {
        let mut query = outbox::Entity::find().order_by_desc(outbox::Column::Id).limit(limit.min(1000));
        if let Some(status) = status {
            query = query.filter(outbox::Column::Status.eq(status));
        }
        query
            .all(self.read())
            .await?
            .into_iter()
            .map(|row| {
                Ok(OutboxMessage {
                    id: row.id,
                    account_id: row.account_id,
                    kind: row.kind,
                    recipients: serde_json::from_str(&row.recipients).unwrap_or_default(),
                    subject: row.subject,
                    status: row.status,
                    attempts: row.attempts,
                    next_attempt_at: instant(row.next_attempt_at)?,
                    last_error: row.last_error,
                    created_at: instant(row.created_at)?,
                    sent_at: row.sent_at.map(instant).transpose()?,
                })
            })
            .collect()
    }
}

/// An email claimed for delivery: everything the sender needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    pub id: i64,
    pub account_id: i64,
    pub kind: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    /// Delivery attempts including this one.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// The outbox row of a notice about `pack` for the account's alert recipients. With no
/// recipients configured the row is stored as `dead`, saying why, so operators see what could
/// not be sent.
pub(crate) fn notice_row(
    account: &Account,
    pack: &Pack,
    notice: &Notice,
    dedupe_key: &str,
    now: DateTime<Utc>,
) -> outbox::ActiveModel {
    let mail = render(notice, pack, &account.language, account.time_zone);
    let (status, last_error) = if account.alert_recipients.is_empty() {
        ("dead", Some("the account has no alert recipients; add them in its alert settings".to_owned()))
    } else {
        ("queued", None)
    };
    outbox::ActiveModel {
        account_id: Set(account.id),
        kind: Set(notice.kind().to_owned()),
        dedupe_key: Set(dedupe_key.to_owned()),
        recipients: Set(serde_json::to_string(&account.alert_recipients).unwrap_or_else(|_| "[]".into())),
        subject: Set(mail.subject),
        body_text: Set(mail.text),
        body_html: Set(mail.html),
        status: Set(status.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(millis(now)),
        last_error: Set(last_error),
        created_at: Set(millis(now)),
        sent_at: Set(None),
        ..Default::default()
    }
}

/// Inserts outbox rows, skipping every row whose `dedupe_key` exists already: a rerun never
/// repeats a mail. Returns how many were queued.
pub(crate) async fn enqueue(conn: &impl ConnectionTrait, rows: Vec<outbox::ActiveModel>) -> StoreResult<u64> {
    Ok(crate::db::insert_all(conn, rows, "ON CONFLICT (dedupe_key) DO NOTHING").await?)
}

/// Longest an error text kept on an outbox row.
const MAX_ERROR_LEN: usize = 1000;

impl Store {
    /// Claims up to `limit` emails due at `now` (queued, or left `sending` by a sender that died
    /// more than a lease ago): each becomes `sending` with one more attempt and is not handed
    /// out again before `now + lease`. Several senders never get the same row at once
    /// (`FOR UPDATE SKIP LOCKED` on PostgreSQL; one writer on SQLite). A sender that dies after
    /// sending but before [`Store::mark_outbox_sent`] leaves the row to be sent again after the
    /// lease: delivery is at least once, never lost.
    pub async fn claim_outbox(&self, now: DateTime<Utc>, limit: u64, lease: Duration) -> StoreResult<Vec<OutboxMail>> {
        retrying(|| async {
            let tx = self.write().await?;
            let mut select = outbox::Entity::find()
                .filter(outbox::Column::Status.is_in(["queued", "sending"]))
                .filter(outbox::Column::NextAttemptAt.lte(millis(now)))
                .order_by_asc(outbox::Column::NextAttemptAt)
                .limit(limit);
            if tx.get_database_backend() == DatabaseBackend::Postgres {
                select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
            }
            let rows = select.all(&*tx).await?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
            outbox::Entity::update_many()
                .col_expr(outbox::Column::Status, Expr::value("sending"))
                .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
                .col_expr(outbox::Column::NextAttemptAt, Expr::value(millis(now + lease)))
                .filter(outbox::Column::Id.is_in(ids))
                .exec(&*tx)
                .await?;
            tx.commit().await?;
            rows.into_iter()
                .map(|row| {
                    Ok(OutboxMail {
                        id: row.id,
                        account_id: row.account_id,
                        kind: row.kind,
                        recipients: serde_json::from_str(&row.recipients).unwrap_or_default(),
                        subject: row.subject,
                        body_text: row.body_text,
                        body_html: row.body_html,
                        attempts: row.attempts + 1,
                        created_at: instant(row.created_at)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Records that a claimed email was handed to the mail server. `false` when the claim was
    /// no longer this sender's (its lease ran out and another sender took it).
    pub async fn mark_outbox_sent(&self, id: i64, attempts: i32, now: DateTime<Utc>) -> StoreResult<bool> {
        let tx = self.write().await?;
        let updated = outbox::Entity::update_many()
            .col_expr(outbox::Column::Status, Expr::value("sent"))
            .col_expr(outbox::Column::SentAt, Expr::value(Some(millis(now))))
            .col_expr(outbox::Column::LastError, Expr::value(Option::<String>::None))
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::Status.eq("sending"))
            .filter(outbox::Column::Attempts.eq(attempts))
            .exec(&*tx)
            .await?;
        tx.commit().await?;
        Ok(updated.rows_affected == 1)
    }

    /// Records a failed delivery: queued again for `retry_at`, or `dead` when `None` (the
    /// sender gave up after its last attempt).
    pub async fn mark_outbox_failed(
        &self,
        id: i64,
        attempts: i32,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let error: String = error.chars().take(MAX_ERROR_LEN).collect();
        let tx = self.write().await?;
        let mut update = outbox::Entity::update_many()
            .col_expr(outbox::Column::Status, Expr::value(if retry_at.is_some() { "queued" } else { "dead" }))
            .col_expr(outbox::Column::LastError, Expr::value(Some(error)));
        if let Some(at) = retry_at {
            update = update.col_expr(outbox::Column::NextAttemptAt, Expr::value(millis(at)));
        }
        let updated = update
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::Status.eq("sending"))
            .filter(outbox::Column::Attempts.eq(attempts))
            .exec(&*tx)
            .await?;
        tx.commit().await?;
        Ok(updated.rows_affected == 1)
    }

    /// How many emails are in each status (for metrics): `(status, count)`.
    pub async fn outbox_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::Status)
            .column_as(outbox::Column::Id.count(), "n")
            .group_by(outbox::Column::Status)
            .into_tuple()
            .all(self.read())
            .await?;
        Ok(rows)
    }

    /// Puts a `dead` message back in the queue to be sent at `now` with a fresh count of
    /// attempts (an operator's "Retry"). Guarded on the status, so retrying twice or a
    /// message the daemon is handling changes nothing; returns whether it was requeued.
    pub async fn retry_outbox_message(&self, message_id: i64, actor: &Actor, now: DateTime<Utc>) -> StoreResult<bool> {
        let tx = self.write().await?;
        let Some(row) = outbox::Entity::find_by_id(message_id).one(&*tx).await? else {
            return Err(StoreError::not_found("outbox message", message_id));
        };
        if row.status != "dead" {
            return Err(StoreError::invalid(format!(
                "message {message_id} is {}; only dead messages can be retried",
                row.status
            )));
        }
        let updated = outbox::Entity::update_many()
            .col_expr(outbox::Column::Status, Expr::value("queued"))
            .col_expr(outbox::Column::Attempts, Expr::value(0))
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(millis(now)))
            .filter(outbox::Column::Id.eq(message_id))
            .filter(outbox::Column::Status.eq("dead"))
            .exec(&*tx)
            .await?;
        if updated.rows_affected == 0 {
            return Ok(false);
        }
        audit::record(&*tx, row.account_id, actor, "outbox.retry", &message_id.to_string(), serde_json::json!({}), now)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
