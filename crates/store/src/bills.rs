//! Bill lines: one per charge or credit (purchase, renewal, refund, overage settlement,
//! adjustment), with the seed's ActionType, grouped later by resource and month.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use respack_domain::{BillActionType, Money, PayMode};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::convert::{instant, millis, money, money_units, parse_stored};
use crate::entity::bill_lines;
use crate::error::StoreResult;
use crate::Store;

#[derive(Debug, Clone, PartialEq)]
pub struct BillLine {
    pub id: i64,
    pub account_id: i64,
    /// `yyyy-mm` in the account's time zone, by pay time.
    pub bill_month: String,
    pub resource_id: String,
    pub resource_name: String,
    pub order_id: Option<String>,
    pub action_type: BillActionType,
    pub pay_mode: PayMode,
    /// Product code (BusinessCode).
    pub business_code: String,
    /// Subproduct code (ProductCode).
    pub product_code: String,
    pub region: String,
    pub zone: String,
    pub config_desc: String,
    /// Negative for refunds.
    pub total_cost: Money,
    pub cash_pay_amount: Money,
    pub fee_begin_at: DateTime<Utc>,
    pub fee_end_at: DateTime<Utc>,
    pub pay_time: DateTime<Utc>,
}

/// What an operation bills; the month is derived from the pay time in `zone`.
pub(crate) struct NewBillLine<'a> {
    pub account_id: i64,
    pub zone_of_account: Tz,
    pub resource_id: &'a str,
    pub resource_name: &'a str,
    pub order_id: Option<&'a str>,
    pub action_type: BillActionType,
    pub business_code: &'a str,
    pub product_code: &'a str,
    pub region: &'a str,
    pub zone: &'a str,
    pub config_desc: String,
    pub total_cost: Money,
    pub cash_pay_amount: Money,
    pub fee_begin_at: DateTime<Utc>,
    pub fee_end_at: DateTime<Utc>,
    pub pay_time: DateTime<Utc>,
    pub operator: Option<&'a str>,
}

/// A day's pay-as-you-go charge for one subproduct of one account ("Daily settlement"):
/// charges with the same key add up on one bill line.
pub(crate) struct Settlement {
    pub key: String,
    pub account_id: i64,
    pub zone_of_account: Tz,
    pub resource_id: String,
    pub resource_name: String,
    pub business_code: String,
    pub product_code: String,
    pub config_desc: String,
    pub cost: Money,
    pub day_start: DateTime<Utc>,
    pub day_end: DateTime<Utc>,
}

pub(crate) fn bill_month(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).format("%Y-%m").to_string()
}

/// The row of a bill line, ready to insert with others (`db::insert_all`).
pub(crate) fn bill_line_row(line: NewBillLine<'_>, now: DateTime<Utc>) -> StoreResult<bill_lines::ActiveModel> {
    to_active(line, None, now)
}

/// Adds settlements to their day's bill lines, creating the lines that do not exist yet.
pub(crate) async fn add_settlements(
    conn: &impl ConnectionTrait,
    settlements: Vec<Settlement>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if settlements.is_empty() {
        return Ok(());
    }
    let rows = settlements
        .iter()
        .map(|settlement| {
            let line = NewBillLine {
                account_id: settlement.account_id,
                zone_of_account: settlement.zone_of_account,
                resource_id: &settlement.resource_id,
                resource_name: &settlement.resource_name,
                order_id: None,
                action_type: BillActionType::DailySettlement,
                business_code: &settlement.business_code,
                product_code: &settlement.product_code,
                region: "-",
                zone: "-",
                config_desc: settlement.config_desc.clone(),
                total_cost: settlement.cost,
                // Paid when the day is settled (settlement.rs), from the balance.
                cash_pay_amount: Money::ZERO,
                fee_begin_at: settlement.day_start,
                fee_end_at: settlement.day_end,
                pay_time: settlement.day_start,
                operator: None,
            };
            to_active(line, Some(settlement.key.clone()), now)
        })
        .collect::<StoreResult<Vec<_>>>()?;
    crate::db::insert_all(
        conn,
        rows,
        "ON CONFLICT (settlement_key) DO UPDATE SET total_cost = bill_lines.total_cost + excluded.total_cost",
    )
    .await?;
    Ok(())
}

fn to_active(
    line: NewBillLine<'_>,
    settlement_key: Option<String>,
    now: DateTime<Utc>,
) -> StoreResult<bill_lines::ActiveModel> {
    Ok(bill_lines::ActiveModel {
        account_id: Set(line.account_id),
        bill_month: Set(bill_month(line.pay_time, line.zone_of_account)),
        used_month: Set(bill_month(line.fee_begin_at, line.zone_of_account)),
        resource_id: Set(line.resource_id.to_owned()),
        resource_name: Set(line.resource_name.to_owned()),
        order_id: Set(line.order_id.map(str::to_owned)),
        action_type: Set(line.action_type.as_str().to_owned()),
        pay_mode: Set(line.action_type.pay_mode().as_str().to_owned()),
        business_code: Set(line.business_code.to_owned()),
        product_code: Set(line.product_code.to_owned()),
        region: Set(line.region.to_owned()),
        zone: Set(line.zone.to_owned()),
        config_desc: Set(line.config_desc),
        total_cost: Set(money_units(line.total_cost)?),
        cash_pay_amount: Set(money_units(line.cash_pay_amount)?),
        fee_begin_at: Set(millis(line.fee_begin_at)),
        fee_end_at: Set(millis(line.fee_end_at)),
        pay_time: Set(millis(line.pay_time)),
        operate_user_id: Set(line.operator.map(str::to_owned)),
        settlement_key: Set(settlement_key),
        created_at: Set(millis(now)),
        ..Default::default()
    })
}

impl Store {
    /// An account's bill lines of one month (`yyyy-mm`), oldest first.
    pub async fn bill_lines(&self, account_id: i64, month: &str) -> StoreResult<Vec<BillLine>> {
        bill_lines::Entity::find()
            .filter(bill_lines::Column::AccountId.eq(account_id))
            .filter(bill_lines::Column::BillMonth.eq(month))
            .order_by_asc(bill_lines::Column::Id)
            .all(self.read())
            .await?
            .into_iter()
            .map(|row| {
                Ok(BillLine {
                    id: row.id,
                    account_id: row.account_id,
                    bill_month: row.bill_month,
                    resource_id: row.resource_id,
                    resource_name: row.resource_name,
                    order_id: row.order_id,
                    action_type: parse_stored(&row.action_type, "action type", BillActionType::parse)?,
                    pay_mode: parse_stored(&row.pay_mode, "pay mode", PayMode::parse)?,
                    business_code: row.business_code,
                    product_code: row.product_code,
                    region: row.region,
                    zone: row.zone,
                    config_desc: row.config_desc,
                    total_cost: money(row.total_cost),
                    cash_pay_amount: money(row.cash_pay_amount),
                    fee_begin_at: instant(row.fee_begin_at)?,
                    fee_end_at: instant(row.fee_end_at)?,
                    pay_time: instant(row.pay_time)?,
                })
            })
            .collect()
    }
}
