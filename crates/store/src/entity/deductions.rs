//! `deductions`: What each usage record took from each pack item, with before and after.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deductions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub usage_record_id: i64,
    pub pack_id: String,
    pub item_position: i32,
    pub usage_type: Option<String>,
    pub cycle_index: i64,
    pub amount: i64,
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub deducted_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
