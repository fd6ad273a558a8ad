//! The actions of version 2018-07-09: who is calling (the key's account, and whom it may act
//! for), and the dispatch from an action name to its handler.

mod billing;
mod packages;
mod provisioning;
mod summary;

use chrono::{DateTime, Utc};
use respack_store::{Account, AccountKind, Actor, StoreError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::params::Params;
use crate::TcApi;

/// Every action served, in the order docs/api.md documents them.
pub const ACTIONS: [&str; 14] = [
    "DescribeBillResourceSummary",
    "DescribeAccountBalance",
    "DescribeRenewInstances",
    "SetRenewal",
    "RenewInstance",
    "RefundInstance",
    "CreateAccount",
    "TopUpAccountBalance",
    "CreateResourcePackage",
    "FreezeResourcePackage",
    "UnfreezeResourcePackage",
    "DescribeResourcePackages",
    "DescribeResourcePackageDeductions",
    "CreateUsageRecords",
];

/// The account behind the API key of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub account: Account,
    pub secret_id: String,
}

impl Caller {
    pub async fn load(api: &TcApi, account_id: i64, secret_id: &str) -> Result<Caller, ApiError> {
        let account = api.store().account(account_id).await?;
        Ok(Caller { account, secret_id: secret_id.to_owned() })
    }

    pub fn actor(&self) -> Actor {
        Actor::api_key(&self.secret_id)
    }

    /// The account a request acts for: the key's own, or with `PayerUin` a member of the
    /// organization the key belongs to. Anything else is refused.
    pub async fn payer(&self, api: &TcApi, payer_uin: Option<String>) -> Result<Account, ApiError> {
        let Some(uin) = payer_uin.filter(|uin| !uin.is_empty() && *uin != self.account.uin) else {
            return Ok(self.account.clone());
        };
        let refused = || {
            ApiError::UnauthorizedOperation(format!(
                "the key of account {} may not act for PayerUin {uin}: a key acts for its own account, and an \
                 organization admin's key for the organization's member accounts",
                self.account.uin
            ))
        };
        if self.account.kind != AccountKind::Organization {
            return Err(refused());
        }
        match api.store().account_by_uin(&uin).await {
            Ok(member) if member.parent_account_id == Some(self.account.id) => Ok(member),
            Ok(_) | Err(StoreError::NotFound { .. }) => Err(refused()),
            Err(error) => Err(error.into()),
        }
    }

    /// Provisioning actions are for the provider's own systems: keys of operator accounts.
    pub fn require_operator(&self, action: &str) -> Result<(), ApiError> {
        if self.account.kind == AccountKind::Operator {
            Ok(())
        } else {
            Err(ApiError::UnauthorizedOperation(format!(
                "{action} is a provisioning action; only keys of operator accounts may call it"
            )))
        }
    }
}

/// Serializes an action's response fields.
pub(crate) fn fields<T: Serialize>(response: &T) -> Result<Map<String, Value>, ApiError> {
    match serde_json::to_value(response).map_err(ApiError::internal)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::internal(std::io::Error::other("a response is not a JSON object"))),
    }
}

pub(crate) async fn dispatch(
    api: &TcApi,
    caller: &Caller,
    action: &str,
    params: Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let mut params = Params::new(params);
    let params = &mut params;
    match action {
        "DescribeBillResourceSummary" => summary::describe_bill_resource_summary(api, caller, params, now).await,
        "DescribeAccountBalance" => billing::describe_account_balance(api, caller, params, now).await,
        "DescribeRenewInstances" => billing::describe_renew_instances(api, caller, params, now).await,
        "SetRenewal" => billing::set_renewal(api, caller, params, now).await,
        "RenewInstance" => billing::renew_instance(api, caller, params, now).await,
        "RefundInstance" => billing::refund_instance(api, caller, params, now).await,
        "CreateAccount" => provisioning::create_account(api, caller, params, now).await,
        "TopUpAccountBalance" => provisioning::top_up_account_balance(api, caller, params, now).await,
        "CreateResourcePackage" => provisioning::create_resource_package(api, caller, params, now).await,
        "FreezeResourcePackage" => provisioning::freeze(api, caller, params, now, true).await,
        "UnfreezeResourcePackage" => provisioning::freeze(api, caller, params, now, false).await,
        "DescribeResourcePackages" => packages::describe_resource_packages(api, caller, params, now).await,
        "DescribeResourcePackageDeductions" => packages::describe_deductions(api, caller, params, now).await,
        "CreateUsageRecords" => packages::create_usage_records(api, caller, params, now).await,
        other => Err(ApiError::InvalidAction(format!("the action {other} does not exist"))),
    }
}
