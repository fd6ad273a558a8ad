//! `accounts`: Customer, organization and operator accounts with their balance and alert settings.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub uin: String,
    pub name: String,
    pub kind: String,
    pub parent_account_id: Option<i64>,
    pub balance: i64,
    pub allow_arrears: bool,
    pub time_zone: String,
    pub language: String,
    pub alert_recipients: String,
    pub alert_thresholds: String,
    pub version: i64,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
