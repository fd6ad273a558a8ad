//! People who sign in: argon2id password hashes and roles.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, SqlErr};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor};
use crate::convert::{instant, millis, parse_stored};
use crate::entity::users;
use crate::error::{StoreError, StoreResult};
use crate::Store;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and manages their own account.
    Customer,
    /// Also sees the organization's member accounts.
    OrgAdmin,
    /// The provider's staff: every account, the catalog, money operations.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::OrgAdmin => "org_admin",
            Role::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Customer, Role::OrgAdmin, Role::Operator].into_iter().find(|role| role.as_str() == text)
    }
}

/// A user to add.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub account_id: i64,
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
    pub role: Role,
}

/// The first user of an account created with it ([`Store::create_account_with_user`]).
#[derive(Debug, Clone, Copy)]
pub struct FirstUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub account_id: i64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A new user's fields, checked and the password hashed, before any transaction starts (hashing
/// takes a while and must not hold the write lock).
pub(crate) struct CheckedUser {
    email: String,
    display_name: String,
    password_hash: String,
    role: Role,
}

impl CheckedUser {
    pub(crate) fn check(email: &str, display_name: &str, password: &str, role: Role) -> StoreResult<CheckedUser> {
        let email = email.trim().to_lowercase();
        if !looks_like_email(&email) {
            return Err(StoreError::invalid(format!("{email:?} is not an email address")));
        }
        if password.chars().count() < 8 {
            return Err(StoreError::invalid("a password needs at least 8 characters"));
        }
        Ok(CheckedUser {
            email,
            display_name: display_name.trim().to_owned(),
            password_hash: hash_password(password)?,
            role,
        })
    }
}

/// Inserts a checked user into an existing account, with its audit row, in the caller's
/// transaction.
pub(crate) async fn insert_user(
    conn: &impl ConnectionTrait,
    account_id: i64,
    user: CheckedUser,
    actor: &Actor,
    now: DateTime<Utc>,
) -> StoreResult<User> {
    let CheckedUser { email, display_name, password_hash, role } = user;
    let inserted = users::ActiveModel {
        account_id: Set(account_id),
        email: Set(email.clone()),
        display_name: Set(display_name),
        password_hash: Set(password_hash),
        role: Set(role.as_str().to_owned()),
        disabled: Set(false),
        created_at: Set(millis(now)),
        ..Default::default()
    }
    .insert(conn)
    .await;
    let row = match inserted {
        Ok(row) => row,
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            return Err(StoreError::invalid(format!("a user with the email {email} already exists")));
        }
        Err(error) => return Err(error.into()),
    };
    audit::record(conn, account_id, actor, "user.create", &email, serde_json::json!({"role": role.as_str()}), now)
        .await?;
    to_user(row)
}

pub(crate) fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !text.contains(char::is_whitespace)
}

fn to_user(row: users::Model) -> StoreResult<User> {
    Ok(User {
        id: row.id,
        account_id: row.account_id,
        email: row.email,
        display_name: row.display_name,
        role: parse_stored(&row.role, "role", Role::parse)?,
        disabled: row.disabled,
        created_at: instant(row.created_at)?,
    })
}

fn hash_password(password: &str) -> StoreResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| StoreError::invalid(format!("cannot hash the password: {error}")))
}

impl Store {
    /// Adds a user to an account. Passwords need 8 characters at least.
    pub async fn create_user(&self, new: NewUser<'_>, actor: &Actor, now: DateTime<Utc>) -> StoreResult<User> {
        let checked = CheckedUser::check(new.email, new.display_name, new.password, new.role)?;
        let tx = self.write().await?;
        crate::accounts::load_account(&*tx, new.account_id).await?;
        let user = insert_user(&*tx, new.account_id, checked, actor, now).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user with this email and password, if both match and the user is enabled.
    /// Unknown emails cost as much time as wrong passwords.
    pub async fn verify_login(&self, email: &str, password: &str) -> StoreResult<Option<User>> {
        let email = email.trim().to_lowercase();
        let row = users::Entity::find().filter(users::Column::Email.eq(&email)).one(self.read()).await?;
        let hash = match &row {
            Some(row) => row.password_hash.clone(),
            None => hash_password("respack-timing-equalizer")?,
        };
        let parsed =
            PasswordHash::new(&hash).map_err(|error| StoreError::Corrupt(format!("password hash: {error}")))?;
        let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        match row {
            Some(row) if matches && !row.disabled => Ok(Some(to_user(row)?)),
            _ => Ok(None),
        }
    }

    pub async fn user(&self, user_id: i64) -> StoreResult<User> {
        let row = users::Entity::find_by_id(user_id)
            .one(self.read())
            .await?
            .ok_or_else(|| StoreError::not_found("user", user_id))?;
        to_user(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_loosely_but_usefully() {
        for good in ["a@b.co", "ops+billing@example.com"] {
            assert!(looks_like_email(good), "{good}");
        }
        for bad in ["", "a", "a@b", "@b.co", "a b@c.de", "a@.com"] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }
}
