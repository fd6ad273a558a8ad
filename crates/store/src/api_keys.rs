//! API keys for the Tencent-Cloud-compatible API: a public SecretId and a SecretKey shown once
//! at creation, stored sealed (TC3-HMAC-SHA256 needs it back to check signatures).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::audit::{self, Actor};
use crate::convert::{instant, millis};
use crate::entity::api_keys;
use crate::error::{StoreError, StoreResult};
use crate::{ids, Secret, Store};

/// A key as listed: never with its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub account_id: i64,
    pub secret_id: String,
    pub note: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub info: ApiKeyInfo,
    pub secret_key: Secret,
}

/// What the API needs to check a signature.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub account_id: i64,
    pub secret_id: String,
    pub secret_key: Secret,
    pub revoked: bool,
}

fn to_info(row: &api_keys::Model) -> StoreResult<ApiKeyInfo> {
    Ok(ApiKeyInfo {
        id: row.id,
        account_id: row.account_id,
        secret_id: row.secret_id.clone(),
        note: row.note.clone(),
        created_at: instant(row.created_at)?,
        revoked_at: row.revoked_at.map(instant).transpose()?,
        last_used_at: row.last_used_at.map(instant).transpose()?,
    })
}

impl Store {
    pub async fn create_api_key(
        &self,
        account_id: i64,
        note: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<NewApiKey> {
        let secret_key = ids::random_text(32);
        let tx = self.write().await?;
        crate::accounts::load_account(&*tx, account_id).await?;
        let row = api_keys::ActiveModel {
            account_id: Set(account_id),
            secret_id: Set(ids::secret_id()),
            sealed_secret_key: Set(self.sealing.seal(&secret_key)),
            note: Set(note.trim().chars().take(200).collect()),
            created_by_user_id: Set(None),
            created_at: Set(millis(now)),
            revoked_at: Set(None),
            last_used_at: Set(None),
            ..Default::default()
        }
        .insert(&*tx)
        .await?;
        audit::record(&*tx, account_id, actor, "api_key.create", &row.secret_id, serde_json::json!({}), now).await?;
        tx.commit().await?;
        Ok(NewApiKey { info: to_info(&row)?, secret_key: Secret::new(secret_key) })
    }

    pub async fn revoke_api_key(
        &self,
        account_id: i64,
        secret_id: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let tx = self.write().await?;
        let updated = api_keys::Entity::update_many()
            .col_expr(api_keys::Column::RevokedAt, Expr::value(millis(now)))
            .filter(api_keys::Column::AccountId.eq(account_id))
            .filter(api_keys::Column::SecretId.eq(secret_id))
            .filter(api_keys::Column::RevokedAt.is_null())
            .exec(&*tx)
            .await?;
        if updated.rows_affected != 1 {
            return Err(StoreError::not_found("active API key", secret_id));
        }
        audit::record(&*tx, account_id, actor, "api_key.revoke", secret_id, serde_json::json!({}), now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn api_keys(&self, account_id: i64) -> StoreResult<Vec<ApiKeyInfo>> {
        api_keys::Entity::find()
            .filter(api_keys::Column::AccountId.eq(account_id))
            .order_by_desc(api_keys::Column::Id)
            .all(self.read())
            .await?
            .iter()
            .map(to_info)
            .collect()
    }

    /// The key behind a SecretId, unsealed, for signature checks (revoked keys included so
    /// the API can say so).
    pub async fn signing_key(&self, secret_id: &str) -> StoreResult<Option<SigningKey>> {
        let Some(row) =
            api_keys::Entity::find().filter(api_keys::Column::SecretId.eq(secret_id)).one(self.read()).await?
        else {
            return Ok(None);
        };
        Ok(Some(SigningKey {
            account_id: row.account_id,
            secret_id: row.secret_id,
            secret_key: Secret::new(self.sealing.open(&row.sealed_secret_key)?),
            revoked: row.revoked_at.is_some(),
        }))
    }

    /// Records that a key was used at `now`. Writes at most once a minute per key (the
    /// console shows "last used", not every call), so busy keys cost no write per request.
    pub async fn touch_api_key(&self, secret_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let tx = self.write().await?;
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(millis(now)))
            .filter(api_keys::Column::SecretId.eq(secret_id))
            .filter(
                sea_orm::Condition::any()
                    .add(api_keys::Column::LastUsedAt.is_null())
                    .add(api_keys::Column::LastUsedAt.lt(millis(now) - 60_000)),
            )
            .exec(&*tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
