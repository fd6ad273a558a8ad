//! `orders`: Orders (purchase, renewal, refund, top-up) with the ClientToken that makes them idempotent.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub account_id: i64,
    pub kind: String,
    pub client_token: Option<String>,
    pub pack_id: Option<String>,
    pub amount: i64,
    pub periods: Option<i32>,
    pub receipt: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
