//! `usage_daily`: Daily totals of deductions per pack and usage type (day in the account's zone).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_daily")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub pack_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub usage_type: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: String,
    pub amount: i64,
    pub records: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
