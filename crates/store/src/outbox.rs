//! Reading the email outbox (the daemon writes and sends it; operators watch it).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::convert::instant;
use crate::entity::outbox;
use crate::error::StoreResult;
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
