//! Provisioning actions for the provider's own systems (keys of operator accounts only):
//! CreateAccount, TopUpAccountBalance, CreateResourcePackage, FreezeResourcePackage and
//! UnfreezeResourcePackage. With these a storefront can sell and provision packs; the
//! money-moving ones take a ClientToken, so a retry never charges or credits twice.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use respack_domain::chrono_tz::Tz;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{
    CapacityItem, DeductionScope, Money, PackSpec, PaymentMode, PaymentModeKind, RenewalMethod, Term,
};
use respack_store::{AccountKind, Charge, NewAccount, StoreError};
use serde::Serialize;
use serde_json::{Map, Value};

use super::billing::parse_renew_flag;
use super::{fields, Caller};
use crate::error::ApiError;
use crate::format;
use crate::params::Params;
use crate::TcApi;

fn client_token(params: &mut Params) -> Result<Option<String>, ApiError> {
    let token = params.filter_string("ClientToken")?;
    if token.as_ref().is_some_and(|t| t.len() > 64 || !t.bytes().all(|b| b.is_ascii_graphic())) {
        return Err(ApiError::invalid_value("ClientToken is 1 to 64 printable ASCII characters"));
    }
    Ok(token)
}

async fn account_by_uin(api: &TcApi, uin: &str) -> Result<respack_store::Account, ApiError> {
    api.store().account_by_uin(uin).await.map_err(|error| match error {
        StoreError::NotFound { .. } => ApiError::ResourceNotFound(format!("the account {uin} does not exist")),
        other => other.into(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreatedAccount {
    uin: String,
    name: String,
    kind: String,
    parent_uin: Option<String>,
    time_zone: String,
}

pub(super) async fn create_account(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    caller.require_operator("CreateAccount")?;
    let name = params.required_string("Name")?;
    let kind = match params.filter_string("Kind")?.as_deref() {
        None | Some("customer") => AccountKind::Customer,
        Some("organization") => AccountKind::Organization,
        Some(other) => {
            return Err(ApiError::invalid_value(format!(
                "Kind must be customer or organization, not {other:?} (operator accounts are made in the console)"
            )))
        }
    };
    let parent_uin = params.filter_string("ParentUin")?;
    let time_zone = parse_zone(params.filter_string("TimeZone")?)?;
    let language = params.filter_string("Language")?.unwrap_or_else(|| "en".into());
    let allow_arrears = params.boolean("AllowArrears")?.unwrap_or(false);
    let alert_recipients = params.string_list("AlertRecipients")?;
    std::mem::take(params).finish()?;
    let parent = match &parent_uin {
        Some(uin) => Some(account_by_uin(api, uin).await?),
        None => None,
    };
    let new = NewAccount {
        name,
        kind,
        parent_account_id: parent.as_ref().map(|p| p.id),
        time_zone,
        language,
        allow_arrears,
        alert_recipients,
    };
    let account = api.store().create_account(new, &caller.actor(), now).await?;
    fields(&CreatedAccount {
        uin: account.uin,
        name: account.name,
        kind: account.kind.as_str().into(),
        parent_uin,
        time_zone: account.time_zone.name().into(),
    })
}

fn parse_zone(text: Option<String>) -> Result<Tz, ApiError> {
    match text {
        None => Ok(Tz::UTC),
        Some(text) => text.parse::<Tz>().map_err(|_| {
            ApiError::invalid_value(format!("TimeZone {text:?} is not an IANA time zone like Asia/Shanghai"))
        }),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ToppedUp {
    order_id: String,
    uin: String,
    /// Cents.
    amount: i64,
    /// Cents after the top-up.
    balance: i64,
}

pub(super) async fn top_up_account_balance(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    caller.require_operator("TopUpAccountBalance")?;
    let token = client_token(params)?;
    let uin = params.required_string("Uin")?;
    // Cents, like every balance amount of the billing API.
    let cents = params.required_integer_in("Amount", 1, 1_000_000_000_000)?;
    std::mem::take(params).finish()?;
    let account = account_by_uin(api, &uin).await?;
    let amount = Money::new(Decimal::new(cents, 2)).map_err(|error| ApiError::invalid_value(error.to_string()))?;
    let top_up = api.store().top_up(account.id, amount, token.as_deref(), &caller.actor(), now).await?;
    fields(&ToppedUp {
        order_id: top_up.order_id,
        uin,
        amount: top_up.amount.to_cents(),
        balance: top_up.balance_after.to_cents(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Issued {
    instance_id: String,
    order_id: String,
    price: String,
    /// Cents after the purchase; absent when paid outside respack.
    #[serde(skip_serializing_if = "Option::is_none")]
    balance: Option<i64>,
}

fn decimal_param(value: &Value, name: &str) -> Result<Decimal, ApiError> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => {
            return Err(ApiError::InvalidParameter(format!(
                "{name} must be a decimal written as a string, like \"100\""
            )))
        }
    };
    Decimal::from_str(text.trim())
        .map_err(|_| ApiError::invalid_value(format!("{name} must be a decimal like \"100\" or \"0.5\", not {text:?}")))
}

fn capacity_items(value: Option<Value>, unlimited: bool) -> Result<Vec<CapacityItem>, ApiError> {
    let Some(Value::Array(items)) = value else {
        return Err(ApiError::MissingParameter(
            "CapacityItems is required: a list of {Name, Unit, Capacity, UsageType?} (several make a combo package)"
                .into(),
        ));
    };
    if items.is_empty() || items.len() > 20 {
        return Err(ApiError::invalid_value("CapacityItems holds 1 to 20 items"));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let name = |field: &str| format!("CapacityItems.{index}.{field}");
            let Value::Object(item) = item else {
                return Err(ApiError::InvalidParameter(format!("CapacityItems.{index} must be an object")));
            };
            if let Some(unknown) =
                item.keys().find(|k| !["Name", "Unit", "Capacity", "UsageType"].contains(&k.as_str()))
            {
                return Err(ApiError::UnknownParameter(format!("CapacityItems.{index} has no field {unknown}")));
            }
            let text = |field: &str| -> Result<Option<String>, ApiError> {
                match item.get(field) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(text)) => Ok(Some(text.clone())),
                    Some(_) => Err(ApiError::InvalidParameter(format!("{} must be a string", name(field)))),
                }
            };
            let item_name =
                text("Name")?.ok_or_else(|| ApiError::MissingParameter(format!("{} is required", name("Name"))))?;
            let unit =
                text("Unit")?.ok_or_else(|| ApiError::MissingParameter(format!("{} is required", name("Unit"))))?;
            let capacity = match item.get("Capacity") {
                None | Some(Value::Null) if unlimited => None,
                None | Some(Value::Null) => {
                    return Err(ApiError::MissingParameter(format!("{} is required", name("Capacity"))))
                }
                Some(_) if unlimited => {
                    return Err(ApiError::invalid_value(format!(
                        "{}: unlimited packs have no capacity",
                        name("Capacity")
                    )))
                }
                Some(value) => Some(decimal_param(value, &name("Capacity"))?),
            };
            let mut capacity_item = CapacityItem::new(item_name, unit, capacity);
            if let Some(usage_type) = text("UsageType")?.filter(|t| !t.is_empty()) {
                capacity_item = capacity_item.with_usage_type(usage_type);
            }
            Ok(capacity_item)
        })
        .collect()
}

fn deduction_scope(value: Option<Value>) -> Result<DeductionScope, ApiError> {
    let Some(value) = value else {
        return Ok(DeductionScope::default());
    };
    let Value::Array(entries) = value else {
        return Err(ApiError::InvalidParameter("DeductionAttributes is a list of {Key, Values}".into()));
    };
    let mut scope = BTreeMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let key = entry.get("Key").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or_else(|| {
            ApiError::MissingParameter(format!("DeductionAttributes.{index}.Key is required (a string)"))
        })?;
        let values: BTreeSet<String> = entry
            .get("Values")
            .and_then(Value::as_array)
            .map(|values| values.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if values.is_empty() {
            return Err(ApiError::MissingParameter(format!(
                "DeductionAttributes.{index}.Values is required: the values usage must carry to be deducted"
            )));
        }
        scope.insert(key.to_owned(), values);
    }
    Ok(DeductionScope(scope))
}

fn tags(value: Option<Value>) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(value) = value else {
        return Ok(BTreeMap::new());
    };
    let Value::Array(entries) = value else {
        return Err(ApiError::InvalidParameter("Tags is a list of {TagKey, TagValue}".into()));
    };
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let key = entry.get("TagKey").and_then(Value::as_str).filter(|k| !k.is_empty());
            let value = entry.get("TagValue").and_then(Value::as_str);
            match (key, value) {
                (Some(key), Some(value)) => Ok((key.to_owned(), value.to_owned())),
                _ => Err(ApiError::MissingParameter(format!("Tags.{index} needs a TagKey and a TagValue"))),
            }
        })
        .collect()
}

pub(super) async fn create_resource_package(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    caller.require_operator("CreateResourcePackage")?;
    let token = client_token(params)?;
    let uin = params.required_string("Uin")?;
    let name = params.required_string("Name")?;
    let product = params.required_string("ProductCode")?;
    let subproduct = params.required_string("SubProductCode")?;
    let region = params.filter_string("RegionCode")?.unwrap_or_default();
    let zone = params.filter_string("ZoneCode")?.unwrap_or_default();
    let mode_text = params.required_string("PaymentMode")?;
    let mode_kind = PaymentModeKind::parse(&mode_text).ok_or_else(|| {
        ApiError::invalid_value(format!(
            "PaymentMode must be total_decrement, period_decrement, shard_decrement or unlimited, not {mode_text:?}"
        ))
    })?;
    let cycle = params.filter_string("CycleUnit")?.map(|u| format::parse_unit(&u, "CycleUnit")).transpose()?;
    let mode = PaymentMode::from_parts(mode_kind, cycle).map_err(|error| {
        ApiError::invalid_value(format!(
            "{error} (CycleUnit: h/d/m for period_decrement, h/d for shard_decrement, none otherwise)"
        ))
    })?;
    let term_unit = format::parse_unit(&params.required_string("PeriodUnit")?, "PeriodUnit")?;
    let term_count = params.required_integer_in("Period", 1, i64::from(u32::MAX))?;
    let time_zone = parse_zone(params.filter_string("TimeZone")?)?;
    let effective_at = match params.filter_string("EffectiveTime")? {
        Some(text) => format::parse_time(&text, time_zone, "EffectiveTime")?,
        None => now,
    };
    let unit_price = match params.json("UnitPrice") {
        Some(value) => Money::new(decimal_param(&value, "UnitPrice")?)
            .map_err(|error| ApiError::invalid_value(format!("UnitPrice: {error}")))?,
        None => {
            return Err(ApiError::MissingParameter(
                "UnitPrice (the price of one period, a decimal string) is required".into(),
            ))
        }
    };
    let renewal = match params.filter_string("RenewFlag")? {
        Some(flag) => parse_renew_flag(&flag, "RenewFlag")?,
        None => RenewalMethod::Manual,
    };
    let auto_renew_period =
        params.integer_in("RenewPeriod", 1, i64::from(u32::MAX))?.map(|p| u32::try_from(p).unwrap_or(1));
    let items = capacity_items(params.json("CapacityItems"), mode_kind == PaymentModeKind::Unlimited)?;
    let scope = deduction_scope(params.json("DeductionAttributes"))?;
    let tags = tags(params.json("Tags"))?;
    let charge = match params.filter_string("PayFrom")?.as_deref() {
        None | Some("balance") => Charge::Balance,
        Some("settled") => Charge::Settled,
        Some(other) => {
            return Err(ApiError::invalid_value(format!(
                "PayFrom must be balance (debit the account) or settled (paid outside respack), not {other:?}"
            )))
        }
    };
    std::mem::take(params).finish()?;
    if renewal == RenewalMethod::Auto && auto_renew_period.is_none() {
        return Err(ApiError::MissingParameter("RenewPeriod is required with NOTIFY_AND_AUTO_RENEW".into()));
    }
    let account = account_by_uin(api, &uin).await?;
    let spec = PackSpec {
        name,
        product,
        subproduct,
        region,
        zone,
        mode,
        term: Term { unit: term_unit, count: u32::try_from(term_count).unwrap_or(u32::MAX) },
        time_zone,
        effective_at,
        renewal,
        auto_renew_period: if renewal == RenewalMethod::Auto { auto_renew_period } else { None },
        unit_price,
        scope,
        items,
        tags,
    };
    let issued = api.store().issue_pack(account.id, spec, charge, token.as_deref(), &caller.actor(), now).await?;
    fields(&Issued {
        instance_id: issued.pack_id,
        order_id: issued.order_id,
        price: format::money8(issued.price),
        balance: issued.balance_after.map(Money::to_cents),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Frozen {
    instance_id: String,
    status: String,
}

pub(super) async fn freeze(
    api: &TcApi,
    caller: &Caller,
    params: &mut Params,
    now: DateTime<Utc>,
    frozen: bool,
) -> Result<Map<String, Value>, ApiError> {
    caller.require_operator(if frozen { "FreezeResourcePackage" } else { "UnfreezeResourcePackage" })?;
    let pack_id = params.required_string("InstanceId")?;
    std::mem::take(params).finish()?;
    let pack =
        api.store().set_frozen(None, &pack_id, frozen, &caller.actor(), now).await.map_err(|error| match error {
            StoreError::NotFound { .. } => ApiError::ResourceNotFound(format!("the instance {pack_id} does not exist")),
            other => other.into(),
        })?;
    fields(&Frozen { instance_id: pack_id, status: pack.status_at(now).as_str().into() })
}
