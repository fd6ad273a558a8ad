//! DescribeBillResourceSummary: the bill summarized by instance for one month, over the summary
//! table `Store::build_bill_summary` fills. A month never built is built in the background and
//! answered with `FailedOperation.SummaryDataNotReady` until it is; a summary that may be stale
//! (the month is not over, or was not when it was built) is refreshed in the background while
//! the last one is served.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use respack_domain::{BillActionType, PayMode};
use respack_store::{BillSummaryFilter, BillSummaryRow, PeriodType, SummaryState};
use serde::Serialize;
use serde_json::{Map, Value};

use super::billing::product_names;
use super::{fields, Caller};
use crate::error::ApiError;
use crate::format;
use crate::params::Params;
use crate::TcApi;

/// Bill 2.0, and so this API, starts in March 2019.
const FIRST_MONTH: &str = "2019-03";

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    tag_key: String,
    tag_value: String,
}

/// Every field of the SDK's `BillResourceSummary`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BillResourceSummary {
    business_code_name: String,
    product_code_name: String,
    pay_mode_name: String,
    project_name: String,
    region_name: String,
    zone_name: String,
    resource_id: String,
    resource_name: String,
    action_type_name: String,
    order_id: String,
    pay_time: String,
    fee_begin_time: String,
    fee_end_time: String,
    config_desc: String,
    extend_field1: String,
    extend_field2: String,
    total_cost: String,
    discount: String,
    reduce_type: String,
    real_total_cost: String,
    voucher_pay_amount: String,
    cash_pay_amount: String,
    incentive_pay_amount: String,
    transfer_pay_amount: String,
    extend_field3: String,
    extend_field4: String,
    extend_field5: String,
    tags: Vec<Tag>,
    payer_uin: String,
    owner_uin: String,
    operate_uin: String,
    business_code: String,
    product_code: String,
    region_id: i64,
    instance_type: String,
    #[serde(rename = "OriginalCostWithRI")]
    original_cost_with_ri: String,
    #[serde(rename = "SPDeduction")]
    sp_deduction: String,
    #[serde(rename = "OriginalCostWithSP")]
    original_cost_with_sp: String,
    bill_month: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Summary {
    resource_summary_set: Vec<BillResourceSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
}

/// The first instant after which a month's bill lines can no longer change: a day after the
/// month ended in UTC (every time zone's month is over by then).
fn month_closes_at(month: &str) -> Option<DateTime<Utc>> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)?
    };
    Some(next.and_time(chrono::NaiveTime::MIN).and_utc() + Duration::days(1))
}

pub(super) async fn describe_bill_resource_summary(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let offset = params.required_integer_in("Offset", 0, i64::MAX)?;
    let limit = params.required_integer_in("Limit", 1, 1000)?;
    let month = params.required_string("Month")?;
    respack_store::check_month(&month).map_err(|error| ApiError::invalid_value(error.to_string()))?;
    if month.as_str() < FIRST_MONTH {
        return Err(ApiError::invalid_value(format!(
            "Month {month} is before {FIRST_MONTH}, when Bill 2.0 was launched; ask for {FIRST_MONTH} or later"
        )));
    }
    let period_type = match params.filter_string("PeriodType")? {
        None => PeriodType::ByPayTime,
        Some(text) => PeriodType::parse(&text).ok_or_else(|| {
            ApiError::invalid_value(format!("PeriodType must be byPayTime or byUsedTime, not {text:?}"))
        })?,
    };
    let with_total = match params.integer("NeedRecordNum")? {
        None | Some(0) => false,
        Some(1) => true,
        Some(other) => return Err(ApiError::invalid_value(format!("NeedRecordNum must be 0 or 1, not {other}"))),
    };
    let action_type = params
        .filter_string("ActionType")?
        .map(|text| {
            BillActionType::parse(&text).ok_or_else(|| {
                let names: Vec<&str> = BillActionType::ALL.iter().map(|a| a.as_str()).collect();
                ApiError::invalid_value(format!("ActionType {text:?} is not one of: {}", names.join(", ")))
            })
        })
        .transpose()?;
    let resource_id = params.filter_string("ResourceId")?;
    let pay_mode = params
        .filter_string("PayMode")?
        .map(|text| {
            PayMode::parse(&text)
                .ok_or_else(|| ApiError::invalid_value(format!("PayMode must be prePay or postPay, not {text:?}")))
        })
        .transpose()?;
    let business_code = params.filter_string("BusinessCode")?;
    let payer_uin = params.filter_string("PayerUin")?;
    let tag_key = params.filter_string("TagKey")?;
    let tag_value = params.filter_string("TagValue")?;
    std::mem::take(params).finish()?;
    if tag_value.is_some() && tag_key.is_none() {
        return Err(ApiError::MissingParameter("TagValue filters the values of a TagKey; send TagKey too".into()));
    }
    let account = caller.payer(api, payer_uin).await?;
    let current_month = now.with_timezone(&account.time_zone).format("%Y-%m").to_string();
    if month > current_month {
        return Err(ApiError::invalid_value(format!(
            "Month {month} has not begun (it is {current_month} in the account's time zone)"
        )));
    }
    match api.store().bill_summary_state(&month).await? {
        SummaryState::NotBuilt => {
            api.start_summary_build(&month);
            return Err(ApiError::SummaryDataNotReady(month));
        }
        SummaryState::Building => return Err(ApiError::SummaryDataNotReady(month)),
        SummaryState::Ready { built_at, rebuilding } => {
            let month_still_open = month_closes_at(&month).is_none_or(|closes| built_at < closes);
            if !rebuilding && month_still_open && now - built_at > api.config().summary_refresh_after {
                api.start_summary_build(&month);
            }
        }
    }
    let filter = BillSummaryFilter {
        account_id: account.id,
        month,
        period_type,
        action_type,
        resource_id,
        pay_mode,
        business_code,
        tag_key,
        tag_value,
        offset: u64::try_from(offset).unwrap_or(u64::MAX),
        limit: u64::try_from(limit).unwrap_or(1000),
        with_total,
    };
    let page = api.store().bill_summaries(&filter).await?;
    let names = product_names(api).await?;
    let zone = account.time_zone;
    let name_of = |code: &str| names.get(code).cloned().unwrap_or_else(|| code.to_owned());
    let rows = page.rows.iter().map(|row| summary_of(row, zone, &name_of)).collect();
    fields(&Summary { resource_summary_set: rows, total: page.total })
}

fn summary_of(
    row: &BillSummaryRow,
    zone: respack_domain::chrono_tz::Tz,
    name_of: &impl Fn(&str) -> String,
) -> BillResourceSummary {
    let (region_id, region_name) = format::region(&row.region);
    let zero = "0.00000000".to_owned();
    BillResourceSummary {
        business_code_name: name_of(&row.business_code),
        product_code_name: name_of(&row.product_code),
        pay_mode_name: row.pay_mode.label().into(),
        project_name: "default".into(),
        region_name,
        zone_name: format::zone(&row.zone),
        resource_id: row.resource_id.clone(),
        resource_name: row.resource_name.clone(),
        action_type_name: row.action_type.as_str().into(),
        order_id: row.order_id.clone().unwrap_or_else(|| "-".into()),
        pay_time: format::time(row.pay_time, zone),
        fee_begin_time: format::time(row.fee_begin_at, zone),
        fee_end_time: format::time(row.fee_end_at, zone),
        config_desc: row.config_desc.clone(),
        extend_field1: "-".into(),
        extend_field2: "-".into(),
        total_cost: format::money8(row.total_cost),
        discount: "1".into(),
        reduce_type: "discount".into(),
        real_total_cost: format::money8(row.total_cost),
        voucher_pay_amount: zero.clone(),
        cash_pay_amount: format::money8(row.cash_pay_amount),
        incentive_pay_amount: zero.clone(),
        transfer_pay_amount: zero.clone(),
        extend_field3: "-".into(),
        extend_field4: "-".into(),
        extend_field5: "-".into(),
        tags: row.tags.iter().map(|(key, value)| Tag { tag_key: key.clone(), tag_value: value.clone() }).collect(),
        payer_uin: row.owner_uin.clone(),
        owner_uin: row.owner_uin.clone(),
        operate_uin: row.owner_uin.clone(),
        business_code: row.business_code.clone(),
        product_code: row.product_code.clone(),
        region_id,
        instance_type: "-".into(),
        original_cost_with_ri: zero.clone(),
        sp_deduction: zero.clone(),
        original_cost_with_sp: zero,
        bill_month: format!("{}-01 00:00:00", row.bill_month),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_closes_a_day_after_it_ends() {
        assert_eq!(month_closes_at("2026-11").unwrap().to_rfc3339(), "2026-12-02T00:00:00+00:00");
        assert_eq!(month_closes_at("2026-12").unwrap().to_rfc3339(), "2027-01-02T00:00:00+00:00");
        assert!(month_closes_at("2026-13").is_none());
    }
}
