//! respack's schema, as sea-orm-migration migrations: the only place the schema changes.
//! Run automatically when a store connects, and by `cargo xtask migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_tables;
mod m20261123_000002_seed_catalog;
mod m20261123_000003_daemon;
mod m20261123_000004_api;
mod m20261123_000005_web;
mod m20261124_000001_drop_usage_time_index;
mod m20261124_000002_bill_summary_by_used_time;
mod m20261201_000001_overage_settlement;
mod m20261201_000002_drop_deduction_pack_index;
mod m20261202_000001_cluster_usage_daily;
mod m20261202_000002_drop_unused_pack_indexes;
mod m20261203_000001_usage_fill_factor;
mod m20261203_000002_drop_deduction_record_index;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_tables::Migration),
            Box::new(m20261123_000002_seed_catalog::Migration),
            Box::new(m20261123_000003_daemon::Migration),
            Box::new(m20261123_000004_api::Migration),
            Box::new(m20261123_000005_web::Migration),
            Box::new(m20261124_000001_drop_usage_time_index::Migration),
            Box::new(m20261124_000002_bill_summary_by_used_time::Migration),
            Box::new(m20261201_000001_overage_settlement::Migration),
            Box::new(m20261201_000002_drop_deduction_pack_index::Migration),
            Box::new(m20261202_000001_cluster_usage_daily::Migration),
            Box::new(m20261202_000002_drop_unused_pack_indexes::Migration),
            Box::new(m20261203_000001_usage_fill_factor::Migration),
            Box::new(m20261203_000002_drop_deduction_record_index::Migration),
        ]
    }
}
