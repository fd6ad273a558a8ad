//! The customer's billing actions: DescribeAccountBalance, DescribeRenewInstances, SetRenewal,
//! RenewInstance, RefundInstance. Resource packs are the instances.

use chrono::{DateTime, Utc};
use respack_domain::{Money, Pack, PackStatus, RenewalMethod};
use respack_store::{PackFilter, PackSort, StoreError};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{fields, Caller};
use crate::error::ApiError;
use crate::format;
use crate::params::Params;
use crate::TcApi;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AccountBalance {
    balance: i64,
    uin: i64,
    real_balance: f64,
    cash_account_balance: f64,
    income_into_account_balance: f64,
    present_account_balance: f64,
    freeze_amount: f64,
    owe_amount: f64,
    is_allow_arrears: bool,
    is_credit_limited: bool,
    credit_amount: f64,
    credit_balance: f64,
    real_credit_balance: f64,
    temp_credit: f64,
    temp_amount_info_list: Vec<Value>,
}

/// The balance in cents, as the real API reports it: a negative balance (arrears) is shown as
/// an owed amount, and so is overage of ended days that the balance could not pay.
pub(super) async fn describe_account_balance(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    // The SDK's request model has an optional TempCredit flag; respack grants no temporary
    // credit, so it changes nothing.
    params.boolean("TempCredit")?;
    std::mem::take(params).finish()?;
    let account = &caller.account;
    let balance = account.balance;
    let (cash, arrears) = if balance.is_negative() { (Money::ZERO, -balance) } else { (balance, Money::ZERO) };
    let owed = arrears + api.store().owed_overage(account.id, now).await?;
    let real = format::cents_f64(cash) - format::cents_f64(arrears);
    fields(&AccountBalance {
        balance: balance.to_cents(),
        uin: account.uin.parse().unwrap_or_default(),
        real_balance: real,
        cash_account_balance: format::cents_f64(cash),
        income_into_account_balance: 0.0,
        present_account_balance: 0.0,
        freeze_amount: 0.0,
        owe_amount: format::cents_f64(owed),
        is_allow_arrears: account.allow_arrears,
        is_credit_limited: false,
        credit_amount: 0.0,
        credit_balance: real,
        real_credit_balance: real,
        temp_credit: 0.0,
        temp_amount_info_list: Vec::new(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RenewInstance {
    instance_id: String,
    product_code: String,
    sub_product_code: String,
    region_code: String,
    status: String,
    renew_flag: String,
    expire_time: String,
    instance_name: String,
    product_name: String,
    project_name: String,
    renew_period: i64,
    renew_period_unit: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RenewInstances {
    instance_list: Vec<RenewInstance>,
    next_token: String,
}

const MAX_RENEW_RESULTS: i64 = 100;

pub(super) async fn describe_renew_instances(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let zone = caller.account.time_zone;
    let limit = params.integer_in("MaxResults", 1, MAX_RENEW_RESULTS)?.unwrap_or(MAX_RENEW_RESULTS);
    let offset = match params.filter_string("NextToken")? {
        None => 0,
        Some(token) => token.parse::<u64>().map_err(|_| {
            ApiError::invalid_value(format!("NextToken {token:?} is not a token this API returned; start without it"))
        })?,
    };
    let reverse = params.boolean("Reverse")?.unwrap_or(false);
    let renewal_methods = params
        .string_list("RenewFlagList")?
        .iter()
        .map(|flag| parse_renew_flag(flag, "RenewFlagList"))
        .collect::<Result<Vec<_>, _>>()?;
    let pack_ids = params.string_list("InstanceIdList")?;
    if pack_ids.len() > 100 {
        return Err(ApiError::invalid_value("InstanceIdList holds at most 100 IDs"));
    }
    let expires_from = params
        .filter_string("ExpireTimeStart")?
        .map(|t| format::parse_time(&t, zone, "ExpireTimeStart"))
        .transpose()?;
    let expires_to =
        params.filter_string("ExpireTimeEnd")?.map(|t| format::parse_time(&t, zone, "ExpireTimeEnd")).transpose()?;
    std::mem::take(params).finish()?;
    let filter = PackFilter {
        account_ids: vec![caller.account.id],
        statuses: vec![PackStatus::Inactive, PackStatus::Valid, PackStatus::Frozen],
        pack_ids,
        renewal_methods,
        expires_from,
        // The end of the range is inclusive on the wire.
        expires_to: expires_to.map(|to| to + chrono::Duration::seconds(1)),
        sort: if reverse { PackSort::ExpiresDesc } else { PackSort::ExpiresAsc },
        offset,
        limit: u64::try_from(limit).unwrap_or(100),
        ..PackFilter::default()
    };
    let page = api.store().list_packs(&filter, now).await?;
    let names = product_names(api).await?;
    let next = offset + page.items.len() as u64;
    let instance_list = page
        .items
        .iter()
        .map(|pack| RenewInstance {
            instance_id: pack.id.to_string(),
            product_code: pack.product.clone(),
            sub_product_code: pack.subproduct.clone(),
            region_code: pack.region.clone(),
            status: pack.status_at(now).as_str().to_owned(),
            renew_flag: pack.renewal.as_str().to_owned(),
            expire_time: format::time(pack.expires_at, zone),
            instance_name: pack.name.clone(),
            product_name: names.get(&pack.product).cloned().unwrap_or_else(|| pack.product.clone()),
            project_name: "default".into(),
            renew_period: pack.auto_renew_period.map_or(0, i64::from),
            renew_period_unit: format::unit_letter(pack.term.unit).into(),
        })
        .collect();
    fields(&RenewInstances {
        instance_list,
        next_token: if next < page.total { next.to_string() } else { String::new() },
    })
}

pub(crate) async fn product_names(api: &TcApi) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let mut names = std::collections::HashMap::new();
    for product in api.store().catalog().await? {
        for sub in &product.subproducts {
            names.insert(sub.code.clone(), sub.name.clone());
        }
        names.insert(product.code, product.name);
    }
    Ok(names)
}

pub(crate) fn parse_renew_flag(text: &str, name: &str) -> Result<RenewalMethod, ApiError> {
    RenewalMethod::parse(text).ok_or_else(|| {
        ApiError::invalid_value(format!(
            "{name} must be NOTIFY_AND_MANUAL_RENEW, NOTIFY_AND_AUTO_RENEW or DISABLE_NOTIFY_AND_MANUAL_RENEW, not {text:?}"
        ))
    })
}

/// The optional product/subproduct/region parameters must describe the pack when given.
fn check_matches(pack: &Pack, given: &[(&str, Option<String>, &str)]) -> Result<(), ApiError> {
    for (name, value, actual) in given {
        if let Some(value) = value {
            if value != actual {
                return Err(ApiError::invalid_value(format!(
                    "{name} {value:?} does not match the instance {} ({name} is {actual:?})",
                    pack.id
                )));
            }
        }
    }
    Ok(())
}

/// The caller's pack, or ResourceNotFound (also for another account's pack).
async fn own_pack(api: &TcApi, caller: &Caller, pack_id: &str) -> Result<Pack, ApiError> {
    api.store().pack(Some(&[caller.account.id]), pack_id).await.map_err(|error| match error {
        StoreError::NotFound { .. } => ApiError::ResourceNotFound(format!(
            "the instance {pack_id} does not exist in account {}",
            caller.account.uin
        )),
        other => other.into(),
    })
}

fn check_unit(pack: &Pack, unit: Option<String>, name: &str) -> Result<(), ApiError> {
    if let Some(unit) = unit {
        let unit = format::parse_unit(&unit, name)?;
        if unit != pack.term.unit {
            return Err(ApiError::invalid_value(format!(
                "{name} must be {} for the instance {}: its term is counted in {}s",
                format::unit_letter(pack.term.unit),
                pack.id,
                pack.term.unit.as_str()
            )));
        }
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct OperateRsp {
    code: String,
    message: String,
    instance_id: String,
}

pub(super) async fn set_renewal(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let product = params.filter_string("ProductCode")?;
    let region = params.filter_string("RegionCode")?;
    let pack_id = params.required_string("InstanceId")?;
    let method = parse_renew_flag(&params.required_string("RenewFlag")?, "RenewFlag")?;
    // The SDK models RenewPeriod as a string; plain integers are taken too.
    let period = match params.json("RenewPeriod") {
        None => None,
        Some(Value::String(text)) if text.is_empty() => None,
        Some(Value::String(text)) => Some(text.trim().parse::<u32>().map_err(|_| {
            ApiError::invalid_value(format!("RenewPeriod must be a whole number of periods, not {text:?}"))
        })?),
        Some(Value::Number(number)) => Some(
            number
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::invalid_value(format!("RenewPeriod must be a whole number, not {number}")))?,
        ),
        Some(_) => return Err(ApiError::InvalidParameter("RenewPeriod must be a number of periods".into())),
    };
    let unit = params.filter_string("RenewPeriodUnit")?;
    std::mem::take(params).finish()?;
    let pack = own_pack(api, caller, &pack_id).await?;
    check_matches(&pack, &[("ProductCode", product, &pack.product), ("RegionCode", region, &pack.region)])?;
    check_unit(&pack, unit, "RenewPeriodUnit")?;
    if method == RenewalMethod::Auto && period.is_none() {
        return Err(ApiError::MissingParameter(
            "RenewPeriod is required with NOTIFY_AND_AUTO_RENEW (how many periods each automatic renewal buys)".into(),
        ));
    }
    let period = if method == RenewalMethod::Auto { period } else { None };
    api.store().set_renewal(Some(&[caller.account.id]), &pack_id, method, period, &caller.actor(), now).await?;
    let mut response = Map::new();
    response.insert(
        "InstanceList".into(),
        serde_json::to_value(vec![OperateRsp { code: "Success".into(), message: "ok".into(), instance_id: pack_id }])
            .map_err(ApiError::internal)?,
    );
    Ok(response)
}

fn client_token(params: &mut Params) -> Result<Option<String>, ApiError> {
    let token = params.filter_string("ClientToken")?;
    if let Some(token) = &token {
        if token.len() > 64 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::invalid_value("ClientToken is 1 to 64 printable ASCII characters"));
        }
    }
    Ok(token)
}

pub(super) async fn renew_instance(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let token = client_token(params)?;
    let product = params.filter_string("ProductCode")?;
    let subproduct = params.filter_string("SubProductCode")?;
    let region = params.filter_string("RegionCode")?;
    let pack_id = params.required_string("InstanceId")?;
    let period = params.required_integer_in("Period", 1, i64::from(u32::MAX))?;
    let unit = params.filter_string("PeriodUnit")?;
    std::mem::take(params).finish()?;
    let pack = own_pack(api, caller, &pack_id).await?;
    check_matches(
        &pack,
        &[
            ("ProductCode", product, &pack.product),
            ("SubProductCode", subproduct, &pack.subproduct),
            ("RegionCode", region, &pack.region),
        ],
    )?;
    check_unit(&pack, unit, "PeriodUnit")?;
    let periods = u32::try_from(period).unwrap_or(u32::MAX);
    let receipt = api
        .store()
        .renew(Some(&[caller.account.id]), &pack_id, periods, token.as_deref(), &caller.actor(), now)
        .await?;
    order_ids(receipt.order_id)
}

pub(super) async fn refund_instance(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let token = client_token(params)?;
    let product = params.filter_string("ProductCode")?;
    let subproduct = params.filter_string("SubProductCode")?;
    let region = params.filter_string("RegionCode")?;
    let pack_id = params.required_string("InstanceId")?;
    std::mem::take(params).finish()?;
    let pack = own_pack(api, caller, &pack_id).await?;
    check_matches(
        &pack,
        &[
            ("ProductCode", product, &pack.product),
            ("SubProductCode", subproduct, &pack.subproduct),
            ("RegionCode", region, &pack.region),
        ],
    )?;
    let receipt = api
        .store()
        .refund(Some(&[caller.account.id]), &pack_id, token.as_deref(), &caller.actor(), now)
        .await
        .map_err(|error| match error {
            // Every rule that stops a refund (the 5-day window, a pack already ended) is the
            // billing API's NotAllowToRefund.
            StoreError::Rule(rule) => ApiError::NotAllowToRefund(rule.to_string()),
            other => other.into(),
        })?;
    order_ids(receipt.order_id)
}

fn order_ids(order_id: String) -> Result<Map<String, Value>, ApiError> {
    let mut response = Map::new();
    response.insert("OrderIdList".into(), Value::Array(vec![Value::String(order_id)]));
    Ok(response)
}
