//! Console sign-in: server-side sessions and the login throttle. The cookie carries a random
//! token; only its SHA-256 is stored, so a copy of the database cannot be used to sign in.
//! Each session also holds the CSRF token that state-changing requests must echo.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};

use crate::audit::{self, Actor};
use crate::convert::{instant, millis};
use crate::entity::{login_throttle, web_sessions};
use crate::error::{StoreError, StoreResult};
use crate::users::User;
use crate::Store;

/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// Failed sign-ins per key (email or client address) within [`THROTTLE_WINDOW`] before the key
/// is locked for [`THROTTLE_LOCKOUT`].
pub const MAX_FAILED_SIGN_INS: i32 = 5;
pub const THROTTLE_WINDOW: Duration = Duration::minutes(15);
pub const THROTTLE_LOCKOUT: Duration = Duration::minutes(15);

/// A signed-in user as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    /// The token a state-changing request must send back (header `X-CSRF-Token` or a form field).
    pub csrf_token: String,
    /// `en` or `zh-CN`: the console's language for this session.
    pub language: String,
    pub expires_at: DateTime<Utc>,
}

/// The outcome of a sign-in attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// Put `token` in the session cookie; it is not stored and cannot be shown again.
    SignedIn { token: String, session: Session },
    /// Wrong email or password (which of the two is not told).
    Refused,
    /// Too many failures for this email or client; try again after `until`.
    Throttled { until: DateTime<Utc> },
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut buffer);
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn throttle_keys(email: &str, client: &str) -> [String; 2] {
    [format!("email:{}", email.trim().to_lowercase()), format!("client:{client}")]
}

impl Store {
    /// Checks the throttle, the email and the password; on success opens a session of
    /// [`SESSION_LIFETIME`] and forgets the email's failures, on failure counts one against
    /// the email and the client address. `client` identifies the caller (its IP address).
    pub async fn sign_in(&self, email: &str, password: &str, client: &str, now: DateTime<Utc>) -> StoreResult<SignIn> {
        let keys = throttle_keys(email, client);
        let rows = login_throttle::Entity::find()
            .filter(login_throttle::Column::ThrottleKey.is_in(keys.clone()))
            .all(self.read())
            .await?;
        if let Some(until) = rows.iter().filter_map(|row| row.locked_until).filter(|until| *until > millis(now)).max() {
            return Ok(SignIn::Throttled { until: instant(until)? });
        }
        let Some(user) = self.verify_login(email, password).await? else {
            self.count_failure(&keys, now).await?;
            return Ok(SignIn::Refused);
        };
        let token = random_hex(32);
        let session = Session {
            csrf_token: random_hex(16),
            language: self
                .account(user.account_id)
                .await
                .map(|account| account.language)
                .unwrap_or_else(|_| "en".into()),
            expires_at: now + SESSION_LIFETIME,
            user,
        };
        let tx = self.write().await?;
        web_sessions::Entity::insert(web_sessions::ActiveModel {
            token_hash: Set(token_hash(&token)),
            account_id: Set(session.user.account_id),
            user_id: Set(session.user.id),
            csrf_token: Set(session.csrf_token.clone()),
            language: Set(session.language.clone()),
            created_at: Set(millis(now)),
            expires_at: Set(millis(session.expires_at)),
        })
        .exec(&*tx)
        .await?;
        login_throttle::Entity::delete_many()
            .filter(login_throttle::Column::ThrottleKey.eq(keys[0].clone()))
            .exec(&*tx)
            .await?;
        // Expired sessions are removed as new ones are made, so the table stays small.
        web_sessions::Entity::delete_many().filter(web_sessions::Column::ExpiresAt.lte(millis(now))).exec(&*tx).await?;
        audit::record(
            &*tx,
            session.user.account_id,
            &Actor::user(session.user.id),
            "session.sign_in",
            &session.user.email,
            serde_json::json!({"client": client}),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(SignIn::SignedIn { token, session })
    }

    async fn count_failure(&self, keys: &[String], now: DateTime<Utc>) -> StoreResult<()> {
        let tx = self.write().await?;
        for key in keys {
            let row = login_throttle::Entity::find_by_id(key.clone()).one(&*tx).await?;
            let (failures, window_started_at) = match row {
                Some(row) if row.window_started_at > millis(now - THROTTLE_WINDOW) => {
                    (row.failures + 1, row.window_started_at)
                }
                _ => (1, millis(now)),
            };
            let locked_until = (failures >= MAX_FAILED_SIGN_INS).then(|| millis(now + THROTTLE_LOCKOUT));
            login_throttle::Entity::insert(login_throttle::ActiveModel {
                throttle_key: Set(key.clone()),
                failures: Set(if locked_until.is_some() { 0 } else { failures }),
                window_started_at: Set(window_started_at),
                locked_until: Set(locked_until),
            })
            .on_conflict(
                OnConflict::column(login_throttle::Column::ThrottleKey)
                    .update_columns([
                        login_throttle::Column::Failures,
                        login_throttle::Column::WindowStartedAt,
                        login_throttle::Column::LockedUntil,
                    ])
                    .to_owned(),
            )
            .exec(&*tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The session of a cookie token, if it exists, has not expired and its user is enabled.
    pub async fn session(&self, token: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
        let Some(row) = web_sessions::Entity::find_by_id(token_hash(token)).one(self.read()).await? else {
            return Ok(None);
        };
        if row.expires_at <= millis(now) {
            return Ok(None);
        }
        let user = match self.user(row.user_id).await {
            Ok(user) if !user.disabled => user,
            Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        Ok(Some(Session {
            user,
            csrf_token: row.csrf_token,
            language: row.language,
            expires_at: instant(row.expires_at)?,
        }))
    }

    /// Ends the session of this token (signing out); ending an unknown one is not an error.
    pub async fn sign_out(&self, token: &str) -> StoreResult<()> {
        let tx = self.write().await?;
        web_sessions::Entity::delete_by_id(token_hash(token)).exec(&*tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Switches the console language of this session (`en` or `zh-CN`).
    pub async fn set_session_language(&self, token: &str, language: &str) -> StoreResult<()> {
        if !crate::accounts::LANGUAGES.contains(&language) {
            return Err(StoreError::invalid(format!("unknown language {language:?}; use en or zh-CN")));
        }
        let tx = self.write().await?;
        web_sessions::Entity::update_many()
            .col_expr(web_sessions::Column::Language, sea_orm::sea_query::Expr::value(language))
            .filter(web_sessions::Column::TokenHash.eq(token_hash(token)))
            .exec(&*tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
