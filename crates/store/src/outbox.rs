//! The email outbox as operators see it: reading it (the daemon writes and sends it) and
//! retrying a dead message.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::audit::{self, Actor};
use crate::convert::{instant, millis};
use crate::entity::outbox;
use crate::error::{StoreError, StoreResult};
use crate::Store;

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

impl Store {
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
