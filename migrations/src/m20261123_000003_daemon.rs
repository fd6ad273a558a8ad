//! What respackd needs: `packs.next_sweep_at` (the next instant time changes something for a
//! pack; NULL once nothing will) with its index, so a sweep reads only due packs and an idle
//! sweep is one index probe; and `daemon_cursors`, the positions of scans that follow an
//! append-only table (the capacity-alert scan follows `deductions`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Packs {
    Table,
    NextSweepAt,
    Lifecycle,
}

#[derive(DeriveIden)]
enum DaemonCursors {
    Table,
    Name,
    Position,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Packs::Table)
                    .add_column(ColumnDef::new(Packs::NextSweepAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        // Every live pack is due once, so the daemon computes its real next instant.
        manager
            .exec_stmt(
                Query::update()
                    .table(Packs::Table)
                    .value(Packs::NextSweepAt, 0_i64)
                    .and_where(Expr::col(Packs::Lifecycle).is_in(["inactive", "valid"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_packs_next_sweep").table(Packs::Table).col(Packs::NextSweepAt).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DaemonCursors::Table)
                    .col(string(DaemonCursors::Name).primary_key())
                    .col(big_integer(DaemonCursors::Position))
                    .col(big_integer(DaemonCursors::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(DaemonCursors::Table).if_exists().to_owned()).await?;
        manager.drop_index(Index::drop().name("ix_packs_next_sweep").table(Packs::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Packs::Table).drop_column(Packs::NextSweepAt).to_owned()).await?;
        Ok(())
    }
}
