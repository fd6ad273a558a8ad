//! The audit log: one row per business operation, saying who did what to which object.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use crate::convert::{instant, millis};
use crate::entity::audit_log;
use crate::error::StoreResult;
use crate::Store;

/// Who did something: `user:<id>`, `key:<SecretId>` or `system:<job>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    pub fn user(user_id: i64) -> Actor {
        Actor(format!("user:{user_id}"))
    }

    pub fn api_key(secret_id: &str) -> Actor {
        Actor(format!("key:{secret_id}"))
    }

    pub fn system(job: &str) -> Actor {
        Actor(format!("system:{job}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub account_id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

pub(crate) async fn record(
    txn: &impl ConnectionTrait,
    account_id: i64,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    audit_log::ActiveModel {
        account_id: Set(account_id),
        actor: Set(actor.as_str().to_owned()),
        action: Set(action.to_owned()),
        target: Set(target.to_owned()),
        detail: Set(detail.to_string()),
        created_at: Set(millis(now)),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(())
}

impl Store {
    /// The newest audit rows, of one account or (for operators, `None`) of all.
    pub async fn audit_log(&self, account_id: Option<i64>, limit: u64) -> StoreResult<Vec<AuditEntry>> {
        let mut query = audit_log::Entity::find().order_by_desc(audit_log::Column::Id).limit(limit.min(1000));
        if let Some(account_id) = account_id {
            query = query.filter(audit_log::Column::AccountId.eq(account_id));
        }
        query
            .all(self.read())
            .await?
            .into_iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.id,
                    account_id: row.account_id,
                    actor: row.actor,
                    action: row.action,
                    target: row.target,
                    detail: serde_json::from_str(&row.detail).unwrap_or(serde_json::Value::Null),
                    created_at: instant(row.created_at)?,
                })
            })
            .collect()
    }
}
