//! `bill_lines`: Bill lines, one per charge or credit, with the seed's ActionType.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bill_lines")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    /// The month (in the account's time zone) of the pay time: `PeriodType=byPayTime`.
    pub bill_month: String,
    /// The month (in the account's time zone) the fee period begins in: `PeriodType=byUsedTime`.
    pub used_month: String,
    pub resource_id: String,
    pub resource_name: String,
    pub order_id: Option<String>,
    pub action_type: String,
    pub pay_mode: String,
    pub business_code: String,
    pub product_code: String,
    pub region: String,
    pub zone: String,
    pub config_desc: String,
    pub total_cost: i64,
    pub cash_pay_amount: i64,
    pub fee_begin_at: i64,
    pub fee_end_at: i64,
    pub pay_time: i64,
    pub operate_user_id: Option<String>,
    /// Set on pay-as-you-go settlement lines: one line per account, subproduct and day.
    pub settlement_key: Option<String>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
