//! Money-moving and state-changing operations on packs: issue (sell), renew, set renewal
//! method, refund, freeze and unfreeze, and an operator's adjustment of a pack's bill. Each is one transaction with its order, ledger row,
//! bill line and audit row; each pack change is a guarded update; each ClientToken-carrying
//! operation returns the first result when retried.

use chrono::{DateTime, Utc};
use respack_domain::rules::{
    apply_renewal, check_adjustment, check_freeze, check_refund, check_renewal_setting, quote_renewal,
};
use respack_domain::{
    BillActionType, Lifecycle, LifecycleEvent, Money, Pack, PackSpec, PaymentMode, RenewalMethod, TransitionError,
};
use sea_orm::ActiveModelTrait;
use serde::{Deserialize, Serialize};

use crate::accounts::{credit, debit, ledger_row, load_account, LedgerRow};
use crate::audit::{self, Actor};
use crate::bills::{bill_line_row, NewBillLine};
use crate::entity::{balance_ledger, bill_lines};
use crate::error::{StoreError, StoreResult};
use crate::orders::{self, NewOrder, OrderKind};
use crate::pack_rows::{insert_pack, lock_pack, update_pack};
use crate::{ids, retrying, Store};

/// How a pack being issued is paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Charge {
    /// Debit the account balance (refused if it does not cover the price, unless the account
    /// allows arrears).
    Balance,
    /// Paid outside respack (an offline order, a gift): the order and bill line are recorded,
    /// the balance is untouched.
    Settled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedPack {
    pub pack_id: String,
    pub order_id: String,
    pub price: Money,
    /// The balance after the debit; `None` when settled outside.
    pub balance_after: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalReceipt {
    pub order_id: String,
    pub pack_id: String,
    pub periods: u32,
    pub price: Money,
    pub balance_after: Money,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundReceipt {
    pub order_id: String,
    pub pack_id: String,
    pub amount: Money,
    pub balance_after: Money,
}

/// What an adjustment of a pack's bill did: `amount` is what the customer was charged
/// (negative: refunded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustmentReceipt {
    pub order_id: String,
    pub pack_id: String,
    pub amount: Money,
    pub action_type: BillActionType,
    pub balance_after: Money,
}

/// "Period decrement: 100 minutes per month × 12" — the bill's ConfigDesc.
pub(crate) fn describe(pack: &Pack) -> String {
    let capacity: Vec<String> = pack
        .items
        .iter()
        .map(|item| match item.capacity {
            Some(capacity) => format!("{} {}", capacity.normalize(), item.unit),
            None => format!("unlimited {}", item.unit),
        })
        .collect();
    let per = match pack.mode {
        PaymentMode::PeriodDecrement(unit) | PaymentMode::ShardDecrement(unit) => format!(" per {}", unit.as_str()),
        PaymentMode::TotalDecrement | PaymentMode::Unlimited => String::new(),
    };
    format!(
        "{}: {}{per} × {} {}",
        pack.mode.kind().label(),
        capacity.join(" + "),
        pack.term.count,
        pack.term.unit.as_str()
    )
}

/// The money side of one operation on a pack: the ledger row when the balance moved, and the
/// bill line. `paid` is what the customer paid (negative for a refund).
pub(crate) struct PackCharge<'a> {
    pub pack: &'a Pack,
    pub zone_of_account: chrono_tz::Tz,
    pub order_id: &'a str,
    pub action_type: BillActionType,
    pub ledger_kind: &'static str,
    pub paid: Money,
    /// `None` when the balance did not move (a purchase settled outside respack).
    pub balance_after: Option<Money>,
    pub fee_begin_at: DateTime<Utc>,
    pub fee_end_at: DateTime<Utc>,
    pub note: String,
}

pub(crate) async fn write_pack_charge(
    conn: &impl sea_orm::ConnectionTrait,
    charge: PackCharge<'_>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let rows = pack_charge_rows(charge, actor, now)?;
    if let Some(ledger) = rows.ledger {
        ledger.insert(conn).await?;
    }
    rows.bill_line.insert(conn).await?;
    Ok(())
}

/// The rows a [`PackCharge`] writes.
pub(crate) struct PackChargeRows {
    pub ledger: Option<balance_ledger::ActiveModel>,
    pub bill_line: bill_lines::ActiveModel,
}

/// The ledger row (when the balance moved) and bill line of a charge, built but not written:
/// one operation writes them at once, the daemon's sweep with a whole batch's.
pub(crate) fn pack_charge_rows(
    charge: PackCharge<'_>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> StoreResult<PackChargeRows> {
    let pack = charge.pack;
    let pack_id = pack.id.as_str();
    let ledger = charge
        .balance_after
        .map(|balance_after| {
            let row = LedgerRow {
                account_id: pack.account_id,
                amount: -charge.paid,
                balance_after,
                kind: charge.ledger_kind,
                order_id: Some(charge.order_id),
                pack_id: Some(pack_id),
                note: charge.note,
            };
            ledger_row(row, now)
        })
        .transpose()?;
    let line = NewBillLine {
        account_id: pack.account_id,
        zone_of_account: charge.zone_of_account,
        resource_id: pack_id,
        resource_name: &pack.name,
        order_id: Some(charge.order_id),
        action_type: charge.action_type,
        business_code: &pack.product,
        product_code: &pack.subproduct,
        region: &pack.region,
        zone: &pack.zone,
        config_desc: describe(pack),
        total_cost: charge.paid,
        cash_pay_amount: charge.paid,
        fee_begin_at: charge.fee_begin_at,
        fee_end_at: charge.fee_end_at,
        pay_time: now,
        operator: Some(actor.as_str()),
    };
    Ok(PackChargeRows { ledger, bill_line: bill_line_row(line, now)? })
}

pub(crate) fn transition(pack: &mut Pack, event: LifecycleEvent) -> Result<(), TransitionError> {
    pack.lifecycle = pack.lifecycle.apply(event)?;
    Ok(())
}

fn request_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

impl Store {
    /// Sells a pack to an account. The effective time may lie in the past (the pack is valid
    /// at once) or the future (inactive until then), but not the whole validity in the past.
    pub async fn issue_pack(
        &self,
        account_id: i64,
        spec: PackSpec,
        charge: Charge,
        client_token: Option<&str>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<IssuedPack> {
        let subproduct = self.subproduct(&spec.subproduct).await?;
        if subproduct.product_code != spec.product {
            return Err(StoreError::invalid(format!(
                "subproduct {} belongs to product {}, not {}",
                subproduct.code, subproduct.product_code, spec.product
            )));
        }
        if spec.name.trim().is_empty() || spec.name.len() > 200 {
            return Err(StoreError::invalid("a pack needs a name of 1 to 200 characters"));
        }
        let request = serde_json::json!({"spec": request_json(&spec), "charge": charge});
        retrying(|| async {
            let tx = self.write().await?;
            if let Some(first) = orders::replay(&*tx, account_id, OrderKind::Purchase, client_token, &request).await? {
                return Ok(first);
            }
            let account = load_account(&*tx, account_id).await?;
            let mut pack = Pack::issue(ids::pack_id(), account_id, spec.clone(), now)?;
            if pack.expires_at <= now {
                return Err(StoreError::invalid(format!(
                    "the whole validity ({} to {}) lies in the past; choose a later effective time",
                    pack.effective_at, pack.expires_at
                )));
            }
            if pack.effective_at <= now {
                transition(&mut pack, LifecycleEvent::Activate).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            }
            let price = pack.price_paid;
            let order_id = ids::order_id(now);
            let pack_id = pack.id.to_string();
            let balance_after = match charge {
                Charge::Balance => Some(debit(&*tx, account_id, price).await?),
                Charge::Settled => None,
            };
            let receipt = IssuedPack { pack_id: pack_id.clone(), order_id: order_id.clone(), price, balance_after };
            orders::insert(
                &*tx,
                NewOrder {
                    id: &order_id,
                    account_id,
                    kind: OrderKind::Purchase,
                    client_token,
                    pack_id: Some(&pack_id),
                    amount: price,
                    periods: Some(pack.term.count),
                    request: &request,
                    receipt: &receipt,
                },
                now,
            )
            .await?;
            insert_pack(&*tx, &pack, now).await?;
            let purchase = PackCharge {
                pack: &pack,
                zone_of_account: account.time_zone,
                order_id: &order_id,
                action_type: BillActionType::NewSubscription,
                ledger_kind: "purchase",
                paid: price,
                balance_after,
                fee_begin_at: pack.effective_at,
                fee_end_at: pack.expires_at,
                note: format!("Purchase of {}", pack.name),
            };
            write_pack_charge(&*tx, purchase, actor, now).await?;
            audit::record(
                &*tx,
                account_id,
                actor,
                "pack.issue",
                &pack_id,
                serde_json::json!({"order_id": order_id, "price": price, "charge": charge}),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(receipt)
        })
        .await
    }

    /// A manual renewal for `periods` term units, paid from the owner's balance.
    pub async fn renew(
        &self,
        account_ids: Option<&[i64]>,
        pack_id: &str,
        periods: u32,
        client_token: Option<&str>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<RenewalReceipt> {
        let request = serde_json::json!({"pack_id": pack_id, "periods": periods});
        retrying(|| async {
            let tx = self.write().await?;
            let before = lock_pack(&*tx, account_ids, pack_id).await?;
            let account_id = before.account_id;
            if let Some(first) = orders::replay(&*tx, account_id, OrderKind::Renewal, client_token, &request).await? {
                return Ok(first);
            }
            let quote = quote_renewal(&before, now, periods)?;
            let account = load_account(&*tx, account_id).await?;
            let order_id = ids::order_id(now);
            let balance_after = debit(&*tx, account_id, quote.price).await?;
            let mut after = before.clone();
            apply_renewal(&mut after, &quote);
            transition(&mut after, LifecycleEvent::Renew)?;
            let receipt = RenewalReceipt {
                order_id: order_id.clone(),
                pack_id: pack_id.to_owned(),
                periods,
                price: quote.price,
                balance_after,
                expires_at: after.expires_at,
            };
            orders::insert(
                &*tx,
                NewOrder {
                    id: &order_id,
                    account_id,
                    kind: OrderKind::Renewal,
                    client_token,
                    pack_id: Some(pack_id),
                    amount: quote.price,
                    periods: Some(periods),
                    request: &request,
                    receipt: &receipt,
                },
                now,
            )
            .await?;
            update_pack(&*tx, &before, &after, now).await?;
            let charge = PackCharge {
                pack: &after,
                zone_of_account: account.time_zone,
                order_id: &order_id,
                action_type: BillActionType::SubscriptionRenewal,
                ledger_kind: "renewal",
                paid: quote.price,
                balance_after: Some(balance_after),
                fee_begin_at: before.expires_at,
                fee_end_at: after.expires_at,
                note: format!("Renewal of {} for {periods} {}", after.name, quote.unit.as_str()),
            };
            write_pack_charge(&*tx, charge, actor, now).await?;
            audit::record(
                &*tx,
                account_id,
                actor,
                "pack.renew",
                pack_id,
                serde_json::json!({"order_id": order_id, "periods": periods, "price": quote.price, "expires_at": after.expires_at}),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(receipt)
        })
        .await
    }

    /// Sets the renewal method (and the auto-renewal period with automatic renewal).
    pub async fn set_renewal(
        &self,
        account_ids: Option<&[i64]>,
        pack_id: &str,
        method: RenewalMethod,
        auto_renew_period: Option<u32>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Pack> {
        retrying(|| async {
            let tx = self.write().await?;
            let before = lock_pack(&*tx, account_ids, pack_id).await?;
            let setting = check_renewal_setting(&before, now, method, auto_renew_period)?;
            let mut after = before.clone();
            after.renewal = setting.method;
            after.auto_renew_period = setting.auto_renew_period;
            update_pack(&*tx, &before, &after, now).await?;
            audit::record(
                &*tx,
                before.account_id,
                actor,
                "pack.set_renewal",
                pack_id,
                serde_json::json!({"method": method.as_str(), "auto_renew_period": setting.auto_renew_period}),
                now,
            )
            .await?;
            tx.commit().await?;
            after.version += 1;
            Ok(after)
        })
        .await
    }

    /// Refunds everything paid for a pack bought within the last five days, to the balance.
    pub async fn refund(
        &self,
        account_ids: Option<&[i64]>,
        pack_id: &str,
        client_token: Option<&str>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<RefundReceipt> {
        let request = serde_json::json!({"pack_id": pack_id});
        retrying(|| async {
            let tx = self.write().await?;
            let before = lock_pack(&*tx, account_ids, pack_id).await?;
            let account_id = before.account_id;
            if let Some(first) = orders::replay(&*tx, account_id, OrderKind::Refund, client_token, &request).await? {
                return Ok(first);
            }
            let amount = check_refund(&before, now)?;
            let account = load_account(&*tx, account_id).await?;
            let mut after = before.clone();
            transition(&mut after, LifecycleEvent::Refund)?;
            after.package_expired_at = Some(now);
            let order_id = ids::order_id(now);
            let balance_after = credit(&*tx, account_id, amount).await?;
            let receipt =
                RefundReceipt { order_id: order_id.clone(), pack_id: pack_id.to_owned(), amount, balance_after };
            orders::insert(
                &*tx,
                NewOrder {
                    id: &order_id,
                    account_id,
                    kind: OrderKind::Refund,
                    client_token,
                    pack_id: Some(pack_id),
                    amount,
                    periods: None,
                    request: &request,
                    receipt: &receipt,
                },
                now,
            )
            .await?;
            update_pack(&*tx, &before, &after, now).await?;
            let charge = PackCharge {
                pack: &after,
                zone_of_account: account.time_zone,
                order_id: &order_id,
                action_type: BillActionType::SubscriptionRefund,
                ledger_kind: "refund",
                paid: -amount,
                balance_after: Some(balance_after),
                fee_begin_at: now,
                fee_end_at: before.expires_at,
                note: format!("Refund of {}", after.name),
            };
            write_pack_charge(&*tx, charge, actor, now).await?;
            audit::record(
                &*tx,
                account_id,
                actor,
                "pack.refund",
                pack_id,
                serde_json::json!({"order_id": order_id, "amount": amount}),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(receipt)
        })
        .await
    }

    /// Corrects what a pack was billed: a positive `amount` is charged to the balance (a bill
    /// line "Adjustment - deduction"; refused when the balance cannot cover it, unless the
    /// account allows arrears), a negative one credited to it ("Adjustment - refund"). The
    /// pack itself does not change; `reason` goes on the ledger row and the audit log. With a
    /// `client_token`, a retried request returns the first receipt and moves money once.
    #[allow(clippy::too_many_arguments)] // one per thing the operator decides, as `renew`'s
    pub async fn adjust_pack_bill(
        &self,
        account_ids: Option<&[i64]>,
        pack_id: &str,
        amount: Money,
        reason: &str,
        client_token: Option<&str>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<AdjustmentReceipt> {
        let action_type = check_adjustment(amount, reason)?;
        let reason = reason.trim();
        let request = serde_json::json!({"pack_id": pack_id, "amount": amount, "reason": reason});
        retrying(|| async {
            let tx = self.write().await?;
            let pack = lock_pack(&*tx, account_ids, pack_id).await?;
            let account_id = pack.account_id;
            if let Some(first) = orders::replay(&*tx, account_id, OrderKind::Adjustment, client_token, &request).await?
            {
                return Ok(first);
            }
            let account = load_account(&*tx, account_id).await?;
            let balance_after = if action_type == BillActionType::AdjustmentDeduction {
                debit(&*tx, account_id, amount).await?
            } else {
                credit(&*tx, account_id, -amount).await?
            };
            let order_id = ids::order_id(now);
            let receipt = AdjustmentReceipt {
                order_id: order_id.clone(),
                pack_id: pack_id.to_owned(),
                amount,
                action_type,
                balance_after,
            };
            orders::insert(
                &*tx,
                NewOrder {
                    id: &order_id,
                    account_id,
                    kind: OrderKind::Adjustment,
                    client_token,
                    pack_id: Some(pack_id),
                    amount,
                    periods: None,
                    request: &request,
                    receipt: &receipt,
                },
                now,
            )
            .await?;
            let charge = PackCharge {
                pack: &pack,
                zone_of_account: account.time_zone,
                order_id: &order_id,
                action_type,
                ledger_kind: "adjustment",
                paid: amount,
                balance_after: Some(balance_after),
                fee_begin_at: now,
                fee_end_at: now,
                note: format!("Adjustment of {}: {reason}", pack.name),
            };
            write_pack_charge(&*tx, charge, actor, now).await?;
            audit::record(
                &*tx,
                account_id,
                actor,
                "pack.adjust_bill",
                pack_id,
                serde_json::json!({"order_id": order_id, "amount": amount, "reason": reason}),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(receipt)
        })
        .await
    }

    /// Freezes (`true`) or unfreezes a pack; frozen packs take no usage and cannot renew.
    pub async fn set_frozen(
        &self,
        account_ids: Option<&[i64]>,
        pack_id: &str,
        frozen: bool,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Pack> {
        retrying(|| async {
            let tx = self.write().await?;
            let before = lock_pack(&*tx, account_ids, pack_id).await?;
            check_freeze(&before, now, frozen)?;
            let mut after = before.clone();
            after.frozen = frozen;
            update_pack(&*tx, &before, &after, now).await?;
            let action = if frozen { "pack.freeze" } else { "pack.unfreeze" };
            audit::record(&*tx, before.account_id, actor, action, pack_id, serde_json::json!({}), now).await?;
            tx.commit().await?;
            after.version += 1;
            Ok(after)
        })
        .await
    }

    /// Stores what time has done to a pack: inactive → valid at its effective time, live →
    /// expired at its expiration time (package expiry time = expiration time). Returns the new
    /// lifecycle when it changed. Auto-renewal is not considered here: the scheduler renews
    /// due packs before it expires them.
    pub async fn advance_lifecycle(
        &self,
        pack_id: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Lifecycle>> {
        retrying(|| async {
            let tx = self.write().await?;
            let before = lock_pack(&*tx, None, pack_id).await?;
            let target = before.lifecycle_at(now);
            if target == before.lifecycle || before.lifecycle.is_final() {
                return Ok(None);
            }
            let mut after = before.clone();
            let action = match target {
                Lifecycle::Valid => {
                    transition(&mut after, LifecycleEvent::Activate)?;
                    "pack.activate"
                }
                Lifecycle::Expired => {
                    transition(&mut after, LifecycleEvent::Expire)?;
                    after.package_expired_at = Some(before.expires_at);
                    "pack.expire"
                }
                other => return Err(StoreError::Corrupt(format!("time cannot make a pack {}", other.as_str()))),
            };
            update_pack(&*tx, &before, &after, now).await?;
            audit::record(
                &*tx,
                before.account_id,
                actor,
                action,
                pack_id,
                serde_json::json!({"effective_at": before.effective_at, "expires_at": before.expires_at}),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(Some(after.lifecycle))
        })
        .await
    }
}

impl From<TransitionError> for StoreError {
    fn from(error: TransitionError) -> StoreError {
        StoreError::invalid(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_desc_reads_like_a_bill() {
        let spec = crate::test_support::monthly_mps_spec("n", 12, "1", Utc::now());
        let pack = Pack::issue(respack_domain::PackId::from_random(1), 1, spec, Utc::now()).unwrap();
        assert_eq!(describe(&pack), "Period decrement: 100 minutes per month × 12 month");
    }
}
