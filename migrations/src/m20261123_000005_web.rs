//! The web console's tables: server-side sessions (only a hash of the cookie's token is
//! stored) and the login throttle (failed sign-ins per email and per client address).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebSessions::Table)
                    .col(string(WebSessions::TokenHash).primary_key())
                    .col(big_integer(WebSessions::AccountId))
                    .col(big_integer(WebSessions::UserId))
                    .col(string(WebSessions::CsrfToken))
                    .col(string(WebSessions::Language))
                    .col(big_integer(WebSessions::CreatedAt))
                    .col(big_integer(WebSessions::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("web_sessions_by_user")
                    .table(WebSessions::Table)
                    .col(WebSessions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("web_sessions_by_expiry")
                    .table(WebSessions::Table)
                    .col(WebSessions::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginThrottle::Table)
                    .col(string(LoginThrottle::ThrottleKey).primary_key())
                    .col(integer(LoginThrottle::Failures))
                    .col(big_integer(LoginThrottle::WindowStartedAt))
                    .col(big_integer_null(LoginThrottle::LockedUntil))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LoginThrottle::Table).if_exists().to_owned()).await?;
        manager.drop_table(Table::drop().table(WebSessions::Table).if_exists().to_owned()).await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum WebSessions {
    Table,
    TokenHash,
    AccountId,
    UserId,
    CsrfToken,
    Language,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum LoginThrottle {
    Table,
    ThrottleKey,
    Failures,
    WindowStartedAt,
    LockedUntil,
}
