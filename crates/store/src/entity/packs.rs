//! `packs`: Resource packs.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "packs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub account_id: i64,
    pub name: String,
    pub product_code: String,
    pub subproduct_code: String,
    pub region: String,
    pub zone: String,
    pub lifecycle: String,
    pub frozen: bool,
    pub payment_mode: String,
    pub cycle_unit: Option<String>,
    pub term_unit: String,
    pub term_count: i32,
    pub time_zone: String,
    pub effective_at: i64,
    pub expires_at: i64,
    pub package_expired_at: Option<i64>,
    pub purchased_at: i64,
    pub renewal_method: String,
    pub auto_renew_period: Option<i32>,
    pub unit_price: i64,
    pub price_paid: i64,
    pub scope: String,
    pub version: i64,
    pub updated_at: i64,
    /// When respackd next has something to do for this pack; NULL once nothing will.
    pub next_sweep_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::pack_items::Entity")]
    Items,
}

impl Related<super::pack_items::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Items.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
