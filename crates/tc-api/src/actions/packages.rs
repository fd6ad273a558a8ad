//! respack's own actions in the same protocol: DescribeResourcePackages (every field of the
//! Resource Packages page), DescribeResourcePackageDeductions (usage details, per deduction or
//! added up per day) and CreateUsageRecords (the metering ingest: a batch, all or nothing,
//! idempotent per record key).

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use respack_domain::chrono_tz::Tz;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{Pack, PackField, PackStatus, PaymentMode};
use respack_store::{AccountKind, DeductionFilter, PackFilter, PackSort, StoreError, UsageInput, MAX_BATCH};
use serde::Serialize;
use serde_json::{Map, Value};

use super::billing::{parse_renew_flag, product_names};
use super::{fields, Caller};
use crate::error::ApiError;
use crate::format;
use crate::params::Params;
use crate::TcApi;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CapacityInfo {
    name: String,
    unit: String,
    usage_type: Option<String>,
    /// Of the current period or shard (whole term for total decrement); null when unlimited.
    capacity: Option<String>,
    remaining: Option<String>,
    /// Total remaining / total capacity over the whole term (period and total decrement).
    total_remaining: Option<String>,
    total_capacity: Option<String>,
    used: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeductionAttribute {
    key: String,
    values: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    tag_key: String,
    tag_value: String,
}

/// A pack with every field of the seed's Field Description; fields that do not apply to the
/// pack (by payment mode or renewal method) are null.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResourcePackage {
    resource_package_id: String,
    resource_package_name: String,
    owner_uin: String,
    product_code: String,
    product_name: String,
    sub_product_code: String,
    sub_product_name: String,
    region_code: String,
    zone_code: String,
    status: String,
    payment_mode: String,
    payment_mode_name: String,
    cycle_unit: Option<String>,
    capacity_unit: String,
    single_period_remaining: Option<String>,
    single_period_capacity: Option<String>,
    single_period_start_time: Option<String>,
    single_period_end_time: Option<String>,
    remaining_periods: Option<u32>,
    total_periods: Option<u32>,
    total_remaining: Option<String>,
    total_capacity: Option<String>,
    capacity_items: Vec<CapacityInfo>,
    is_combo: bool,
    deduction_attributes: Vec<DeductionAttribute>,
    effective_time: String,
    expire_time: String,
    package_expiry_time: Option<String>,
    renew_flag: String,
    renew_flag_name: String,
    auto_renew_period: Option<u32>,
    period_unit: String,
    time_zone: String,
    unit_price: String,
    price_paid: String,
    purchase_time: String,
    renewable: bool,
    tags: Vec<Tag>,
}

fn describe_pack(
    pack: &Pack,
    owner_uin: &str,
    names: &std::collections::HashMap<String, String>,
    zone: Tz,
    now: DateTime<Utc>,
) -> ResourcePackage {
    let applies = |field: PackField| field.applies_to(pack);
    let first = pack.items.first();
    let cycle = pack.cycle_at(now).filter(|_| applies(PackField::SinglePeriodTime));
    let periods = pack.periods_at(now).filter(|_| applies(PackField::Periods));
    let totals =
        first.and_then(|item| pack.total_remaining_at(item, now)).filter(|_| applies(PackField::TotalCapacity));
    let single = first.filter(|_| applies(PackField::SinglePeriodCapacity));
    let name_of = |code: &str| names.get(code).cloned().unwrap_or_else(|| code.to_owned());
    ResourcePackage {
        resource_package_id: pack.id.to_string(),
        resource_package_name: pack.name.clone(),
        owner_uin: owner_uin.to_owned(),
        product_code: pack.product.clone(),
        product_name: name_of(&pack.product),
        sub_product_code: pack.subproduct.clone(),
        sub_product_name: name_of(&pack.subproduct),
        region_code: pack.region.clone(),
        zone_code: pack.zone.clone(),
        status: pack.status_at(now).as_str().into(),
        payment_mode: pack.mode.kind().as_str().into(),
        payment_mode_name: pack.mode.kind().label().into(),
        cycle_unit: pack.mode.cycle_unit().map(|unit| unit.as_str().to_owned()),
        capacity_unit: pack.items.iter().map(|item| item.unit.as_str()).collect::<Vec<_>>().join(" + "),
        single_period_remaining: single.and_then(|item| pack.remaining_at(item, now)).map(format::decimal),
        single_period_capacity: single.and_then(|item| item.capacity).map(format::decimal),
        single_period_start_time: cycle.map(|c| format::time(c.start, zone)),
        single_period_end_time: cycle.map(|c| format::time(c.end, zone)),
        remaining_periods: periods.map(|(remaining, _)| remaining),
        total_periods: periods.map(|(_, total)| total),
        total_remaining: totals.map(|(remaining, _)| format::decimal(remaining)),
        total_capacity: totals.map(|(_, total)| format::decimal(total)),
        capacity_items: pack
            .items
            .iter()
            .map(|item| {
                let totals = pack.total_remaining_at(item, now);
                CapacityInfo {
                    name: item.name.clone(),
                    unit: item.unit.clone(),
                    usage_type: item.usage_type.clone(),
                    capacity: item.capacity.map(format::decimal),
                    remaining: pack.remaining_at(item, now).map(format::decimal),
                    total_remaining: totals.map(|(remaining, _)| format::decimal(remaining)),
                    total_capacity: totals.map(|(_, total)| format::decimal(total)),
                    used: format::decimal(item.used),
                }
            })
            .collect(),
        is_combo: pack.items.len() > 1,
        deduction_attributes: pack
            .scope
            .0
            .iter()
            .map(|(key, values)| DeductionAttribute { key: key.clone(), values: values.iter().cloned().collect() })
            .collect(),
        effective_time: format::time(pack.effective_at, zone),
        expire_time: format::time(pack.expires_at, zone),
        package_expiry_time: pack.package_expired_at.map(|at| format::time(at, zone)),
        renew_flag: pack.renewal.as_str().into(),
        renew_flag_name: pack.renewal.label().into(),
        auto_renew_period: pack.auto_renew_period.filter(|_| applies(PackField::AutoRenewalPeriod)),
        period_unit: format::unit_letter(pack.term.unit).into(),
        time_zone: pack.time_zone.name().into(),
        unit_price: format::money8(pack.unit_price),
        price_paid: format::money8(pack.price_paid),
        purchase_time: format::time(pack.purchased_at, zone),
        renewable: pack.mode != PaymentMode::TotalDecrement
            && matches!(pack.status_at(now), PackStatus::Valid | PackStatus::Inactive),
        tags: pack.tags.iter().map(|(k, v)| Tag { tag_key: k.clone(), tag_value: v.clone() }).collect(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Packages {
    total: u64,
    resource_package_set: Vec<ResourcePackage>,
}

pub(super) async fn describe_resource_packages(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let payer_uin = params.filter_string("PayerUin")?;
    let product = params.filter_string("ProductCode")?;
    let subproduct = params.filter_string("SubProductCode")?;
    let search = params.filter_string("SearchKey")?;
    let statuses = params
        .string_list("StatusList")?
        .iter()
        .map(|text| {
            PackStatus::parse(text).ok_or_else(|| {
                ApiError::invalid_value(format!(
                    "StatusList values are valid, inactive, frozen, expired, exhausted, refunded; not {text:?}"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let renewal_methods = params
        .string_list("RenewFlagList")?
        .iter()
        .map(|flag| parse_renew_flag(flag, "RenewFlagList"))
        .collect::<Result<Vec<_>, _>>()?;
    let pack_ids = params.string_list("ResourcePackageIds")?;
    let expire_start = params.filter_string("ExpireTimeStart")?;
    let expire_end = params.filter_string("ExpireTimeEnd")?;
    let sort = match params.filter_string("OrderBy")?.as_deref() {
        None | Some("PurchaseTimeDesc") => PackSort::PurchasedDesc,
        Some("ExpireTimeAsc") => PackSort::ExpiresAsc,
        Some("ExpireTimeDesc") => PackSort::ExpiresDesc,
        Some("NameAsc") => PackSort::NameAsc,
        Some(other) => {
            return Err(ApiError::invalid_value(format!(
                "OrderBy must be PurchaseTimeDesc, ExpireTimeAsc, ExpireTimeDesc or NameAsc, not {other:?}"
            )))
        }
    };
    let offset = params.integer_in("Offset", 0, i64::MAX)?.unwrap_or(0);
    let limit = params.integer_in("Limit", 1, 1000)?.unwrap_or(20);
    std::mem::take(params).finish()?;
    let account = caller.payer(api, payer_uin).await?;
    let zone = account.time_zone;
    let expires_from = expire_start.map(|t| format::parse_time(&t, zone, "ExpireTimeStart")).transpose()?;
    let expires_to = expire_end.map(|t| format::parse_time(&t, zone, "ExpireTimeEnd")).transpose()?;
    let filter = PackFilter {
        account_ids: vec![account.id],
        product,
        subproduct,
        search,
        statuses,
        expires_from,
        expires_to: expires_to.map(|to| to + chrono::Duration::seconds(1)),
        pack_ids,
        renewal_methods,
        sort,
        offset: u64::try_from(offset).unwrap_or(u64::MAX),
        limit: u64::try_from(limit).unwrap_or(20),
    };
    let page = api.store().list_packs(&filter, now).await?;
    let names = product_names(api).await?;
    fields(&Packages {
        total: page.total,
        resource_package_set: page
            .items
            .iter()
            .map(|pack| describe_pack(pack, &account.uin, &names, zone, now))
            .collect(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Deduction {
    deduction_time: String,
    resource_package_id: String,
    usage_record_id: i64,
    usage_type: Option<String>,
    cycle_index: i64,
    amount: String,
    before: Option<String>,
    after: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DailyUsage {
    date: String,
    resource_package_id: String,
    usage_type: String,
    amount: String,
    records: i64,
}

pub(super) async fn describe_deductions(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let payer_uin = params.filter_string("PayerUin")?;
    let pack_id = params.filter_string("ResourcePackageId")?;
    let subproduct = params.filter_string("SubProductCode")?;
    let usage_type = params.filter_string("UsageType")?;
    let start = params.filter_string("StartTime")?;
    let end = params.filter_string("EndTime")?;
    let daily = params.boolean("Daily")?.unwrap_or(false);
    let offset = params.integer_in("Offset", 0, i64::MAX)?.unwrap_or(0);
    let limit = params.integer_in("Limit", 1, 1000)?.unwrap_or(20);
    std::mem::take(params).finish()?;
    let account = caller.payer(api, payer_uin).await?;
    let zone = account.time_zone;
    let from = start.map(|t| format::parse_time(&t, zone, "StartTime")).transpose()?;
    let to = end.map(|t| format::parse_time(&t, zone, "EndTime")).transpose()?;
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(ApiError::invalid_value("StartTime is after EndTime"));
        }
    }
    let mut response = Map::new();
    if daily {
        // Usage of the same type is added up per day (the seed's usage details), in the
        // account's calendar; a range defaults to the last 30 days.
        let to_day = to.unwrap_or(now).with_timezone(&zone).date_naive();
        let from_day = from.map_or(to_day - chrono::Days::new(30), |at| at.with_timezone(&zone).date_naive());
        if (to_day - from_day).num_days() > 366 {
            return Err(ApiError::invalid_value("a daily usage range spans at most 366 days"));
        }
        let mut days =
            api.store().daily_usage(&[account.id], pack_id.as_deref(), subproduct.as_deref(), from_day, to_day).await?;
        if let Some(usage_type) = &usage_type {
            days.retain(|day| &day.usage_type == usage_type);
        }
        let total = days.len() as u64;
        let set: Vec<DailyUsage> = days
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(20))
            .map(|day| DailyUsage {
                date: day.day.to_string(),
                resource_package_id: day.pack_id,
                usage_type: day.usage_type,
                amount: format::decimal(day.amount),
                records: day.records,
            })
            .collect();
        response.insert("Total".into(), Value::from(total));
        response.insert("DailyUsageSet".into(), serde_json::to_value(set).map_err(ApiError::internal)?);
    } else {
        let filter = DeductionFilter {
            account_ids: vec![account.id],
            pack_id,
            subproduct,
            usage_type,
            from,
            to: to.map(|to| to + chrono::Duration::seconds(1)),
            offset: u64::try_from(offset).unwrap_or(u64::MAX),
            limit: u64::try_from(limit).unwrap_or(20),
        };
        let page = api.store().list_deductions(&filter).await?;
        let set: Vec<Deduction> = page
            .items
            .into_iter()
            .map(|row| Deduction {
                deduction_time: format::time(row.deducted_at, zone),
                resource_package_id: row.pack_id,
                usage_record_id: row.usage_record_id,
                usage_type: row.usage_type,
                cycle_index: row.cycle_index,
                amount: format::decimal(row.amount),
                before: row.before.map(format::decimal),
                after: row.after.map(format::decimal),
            })
            .collect();
        response.insert("Total".into(), Value::from(page.total));
        response.insert("DeductionSet".into(), serde_json::to_value(set).map_err(ApiError::internal)?);
    }
    Ok(response)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RecordOutcome {
    idempotency_key: String,
    usage_record_id: i64,
    deducted: String,
    overage: String,
    overage_cost: String,
    replayed: bool,
}

fn usage_input(index: usize, record: &Value) -> Result<(Option<String>, UsageInput), ApiError> {
    let field = |name: &str| format!("Records.{index}.{name}");
    let Value::Object(record) = record else {
        return Err(ApiError::InvalidParameter(format!("Records.{index} must be an object")));
    };
    const KNOWN: [&str; 9] = [
        "IdempotencyKey",
        "Uin",
        "ProductCode",
        "SubProductCode",
        "UsageType",
        "Unit",
        "Attributes",
        "Quantity",
        "OccurredAt",
    ];
    if let Some(unknown) = record.keys().find(|key| !KNOWN.contains(&key.as_str())) {
        return Err(ApiError::UnknownParameter(format!("Records.{index} has no field {unknown}")));
    }
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match record.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(ApiError::InvalidParameter(format!("{} must be a string", field(name)))),
        }
    };
    let required = |name: &str| -> Result<String, ApiError> {
        text(name)?.ok_or_else(|| ApiError::MissingParameter(format!("{} is required", field(name))))
    };
    let quantity_text = match record.get("Quantity") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => return Err(ApiError::MissingParameter(format!("{} is required (a decimal string)", field("Quantity")))),
    };
    let quantity = Decimal::from_str(quantity_text.trim()).map_err(|_| {
        ApiError::invalid_value(format!("{} must be a decimal like \"12.5\", not {quantity_text:?}", field("Quantity")))
    })?;
    let occurred_text = required("OccurredAt")?;
    let occurred_at = DateTime::parse_from_rfc3339(&occurred_text).map(|at| at.with_timezone(&Utc)).map_err(|_| {
        ApiError::invalid_value(format!("{} must be RFC 3339, like 2026-11-23T10:00:00Z", field("OccurredAt")))
    })?;
    let attributes: BTreeMap<String, String> = match record.get("Attributes") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Array(entries)) => entries
            .iter()
            .enumerate()
            .map(|(n, entry)| {
                let key = entry.get("Key").and_then(Value::as_str);
                let value = entry.get("Value").and_then(Value::as_str);
                match (key, value) {
                    (Some(key), Some(value)) => Ok((key.to_owned(), value.to_owned())),
                    _ => Err(ApiError::InvalidParameter(format!(
                        "{}.{n} needs a Key and a Value (strings)",
                        field("Attributes")
                    ))),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::InvalidParameter(format!("{} is a list of {{Key, Value}}", field("Attributes"))))
        }
    };
    Ok((
        text("Uin")?,
        UsageInput {
            idempotency_key: required("IdempotencyKey")?,
            product: required("ProductCode")?,
            subproduct: required("SubProductCode")?,
            usage_type: text("UsageType")?,
            unit: text("Unit")?,
            attributes,
            quantity,
            occurred_at,
        },
    ))
}

pub(super) async fn create_usage_records(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let records = match params.json("Records") {
        Some(Value::Array(records)) => records,
        Some(_) => return Err(ApiError::InvalidParameter("Records is a list of usage records".into())),
        None => {
            return Err(ApiError::MissingParameter("Records (a list of 1 to 1000 usage records) is required".into()))
        }
    };
    std::mem::take(params).finish()?;
    if records.is_empty() || records.len() > MAX_BATCH {
        return Err(ApiError::invalid_value(format!("Records holds 1 to {MAX_BATCH} records (got {})", records.len())));
    }
    let mut inputs = Vec::with_capacity(records.len());
    let mut accounts: BTreeMap<String, i64> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        let (uin, input) = usage_input(index, record)?;
        let account_id = match uin.filter(|uin| *uin != caller.account.uin) {
            None => caller.account.id,
            Some(uin) => {
                if caller.account.kind != AccountKind::Operator {
                    return Err(ApiError::UnauthorizedOperation(format!(
                        "Records.{index}.Uin: the key of account {} may record usage only for itself; \
                         an operator's key records for other accounts",
                        caller.account.uin
                    )));
                }
                match accounts.get(&uin) {
                    Some(id) => *id,
                    None => {
                        let account = api.store().account_by_uin(&uin).await.map_err(|error| match error {
                            StoreError::NotFound { .. } => ApiError::ResourceNotFound(format!(
                                "Records.{index}.Uin: the account {uin} does not exist"
                            )),
                            other => other.into(),
                        })?;
                        accounts.insert(uin, account.id);
                        account.id
                    }
                }
            }
        };
        inputs.push((account_id, input));
    }
    let batch: Vec<(i64, &UsageInput)> = inputs.iter().map(|(account, input)| (*account, input)).collect();
    let outcomes = api.store().record_usage_of_accounts(&batch, now).await?;
    let set: Vec<RecordOutcome> = outcomes
        .into_iter()
        .map(|outcome| RecordOutcome {
            idempotency_key: outcome.idempotency_key,
            usage_record_id: outcome.usage_record_id,
            deducted: format::decimal(outcome.deducted),
            overage: format::decimal(outcome.overage),
            overage_cost: format::money8(outcome.overage_cost),
            replayed: outcome.replayed,
        })
        .collect();
    let mut response = Map::new();
    response.insert("RecordSet".into(), serde_json::to_value(set).map_err(ApiError::internal)?);
    Ok(response)
}
