//! `usage_records`: Usage records received from metering, one per idempotency key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_records")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub idempotency_key: String,
    pub product_code: String,
    pub subproduct_code: String,
    pub usage_type: Option<String>,
    pub unit: String,
    pub attributes: String,
    pub quantity: i64,
    pub overage: i64,
    pub overage_cost: i64,
    pub occurred_at: i64,
    pub received_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
