//! Deduction planning: which packs a usage record is deducted from, how much from each, and
//! what is left over as overage. Pure: the store loads the candidates, calls
//! [`plan_deduction`], and writes what [`apply_plan`] changed.
//!
//! Rules (DESIGN.md, *Deduction*): candidates are the record owner's packs that are live at the
//! record's time (effective ≤ time < expiration, not expired, exhausted or refunded), not
//! frozen, of the record's product and subproduct, whose deduction scope admits the record's
//! attributes, with a capacity item in the record's unit (and usage type, if the item names
//! one). They are consumed in order of earliest package expiry, then purchase time, then ID.
//! Period and shard packs deduct from the cycle containing the record's time; a record for a
//! cycle that has closed (a later cycle was already deducted from) gets nothing from that pack.
//! Unlimited packs take everything that reaches them. What no pack covers is overage.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::pack::{Pack, PackId};
use crate::status::{Lifecycle, LifecycleEvent};

/// A metered usage to deduct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub account_id: i64,
    pub product: String,
    pub subproduct: String,
    /// E.g. the MPS transcoding type (`general`, `tsc`, `sd`, `hd` …).
    pub usage_type: Option<String>,
    /// The capacity unit the quantity is in.
    pub unit: String,
    pub attributes: BTreeMap<String, String>,
    pub quantity: Decimal,
    pub occurred_at: DateTime<Utc>,
}

/// Why a usage record cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("quantity must be greater than zero (got {0})")]
    NonPositiveQuantity(Decimal),
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("usage time {occurred_at} is more than {max_skew_minutes} minutes in the future")]
    InFuture { occurred_at: DateTime<Utc>, max_skew_minutes: i64 },
}

/// How far ahead of the receiver's clock a usage time may lie (clock skew of meters).
pub const MAX_FUTURE_SKEW: chrono::Duration = chrono::Duration::minutes(5);

impl UsageRecord {
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), UsageError> {
        if self.quantity <= Decimal::ZERO {
            return Err(UsageError::NonPositiveQuantity(self.quantity));
        }
        for (field, value) in [("product", &self.product), ("subproduct", &self.subproduct), ("unit", &self.unit)] {
            if value.trim().is_empty() {
                return Err(UsageError::Empty { field });
            }
        }
        if self.occurred_at > now + MAX_FUTURE_SKEW {
            return Err(UsageError::InFuture {
                occurred_at: self.occurred_at,
                max_skew_minutes: MAX_FUTURE_SKEW.num_minutes(),
            });
        }
        Ok(())
    }
}

/// One pack item's share of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedDeduction {
    pub pack_id: PackId,
    /// Position of the capacity item in `Pack::items`.
    pub item: usize,
    pub cycle_index: i64,
    pub amount: Decimal,
    /// Remaining before and after; `None` for unlimited items.
    pub before: Option<Decimal>,
    pub after: Option<Decimal>,
}

/// The whole answer for one record: deductions in consumption order, and the overage.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeductionPlan {
    pub deductions: Vec<PlannedDeduction>,
    pub overage: Decimal,
}

impl DeductionPlan {
    pub fn deducted(&self) -> Decimal {
        self.deductions.iter().map(|line| line.amount).sum()
    }
}

/// Whether `pack` may take any of `record`, and from which item.
pub fn candidate_item(pack: &Pack, record: &UsageRecord) -> Option<usize> {
    let live = matches!(pack.lifecycle, Lifecycle::Inactive | Lifecycle::Valid);
    if !live
        || pack.frozen
        || pack.account_id != record.account_id
        || pack.product != record.product
        || pack.subproduct != record.subproduct
        || !pack.is_in_window(record.occurred_at)
        || !pack.scope.admits(&record.attributes)
    {
        return None;
    }
    pack.items.iter().position(|item| item.matches(&record.unit, record.usage_type.as_deref()))
}

/// Consumption order: earliest package expiry (the expiration time of a live pack), then
/// purchase time, then ID so that the order is total.
pub fn consumption_order(a: &Pack, b: &Pack) -> std::cmp::Ordering {
    (a.expires_at, a.purchased_at, &a.id).cmp(&(b.expires_at, b.purchased_at, &b.id))
}

/// Plans the deduction of `record` from `packs` (any packs: those that are not candidates are
/// skipped). Never plans more than an item has, never a negative amount.
pub fn plan_deduction(record: &UsageRecord, packs: &[Pack]) -> DeductionPlan {
    let mut candidates: Vec<(&Pack, usize)> =
        packs.iter().filter_map(|pack| candidate_item(pack, record).map(|item| (pack, item))).collect();
    candidates.sort_by(|(a, _), (b, _)| consumption_order(a, b));

    let mut left = record.quantity.max(Decimal::ZERO);
    let mut deductions = Vec::new();
    for (pack, index) in candidates {
        if left.is_zero() {
            break;
        }
        let item = &pack.items[index];
        let cycle_index = pack.cycle_index_at(record.occurred_at);
        match item.available_in(cycle_index) {
            None => {
                deductions.push(PlannedDeduction {
                    pack_id: pack.id.clone(),
                    item: index,
                    cycle_index,
                    amount: left,
                    before: None,
                    after: None,
                });
                left = Decimal::ZERO;
            }
            Some(available) if available > Decimal::ZERO => {
                let amount = available.min(left);
                deductions.push(PlannedDeduction {
                    pack_id: pack.id.clone(),
                    item: index,
                    cycle_index,
                    amount,
                    before: Some(available),
                    after: Some(available - amount),
                });
                left -= amount;
            }
            Some(_) => {}
        }
    }
    DeductionPlan { deductions, overage: left }
}

/// What applying a plan did to one pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackChange {
    pub pack_id: PackId,
    /// The pack became exhausted by this deduction.
    pub exhausted: bool,
}

/// Applies a plan to the packs it was made from: items move to the deducted cycle with the
/// new remaining; a pack left with nothing now or later becomes exhausted at the record's
/// time. Returns the packs that changed.
pub fn apply_plan(plan: &DeductionPlan, packs: &mut [Pack], occurred_at: DateTime<Utc>) -> Vec<PackChange> {
    let mut changes: Vec<PackChange> = Vec::new();
    for line in &plan.deductions {
        let Some(pack) = packs.iter_mut().find(|pack| pack.id == line.pack_id) else {
            continue;
        };
        let item = &mut pack.items[line.item];
        item.used += line.amount;
        if let Some(after) = line.after {
            item.remaining = after;
            item.cycle_index = line.cycle_index;
        }
        let exhausted = pack.is_exhausted();
        if exhausted {
            if let Ok(next) = pack.lifecycle.apply(LifecycleEvent::Activate) {
                pack.lifecycle = next;
            }
            if let Ok(next) = pack.lifecycle.apply(LifecycleEvent::Exhaust) {
                pack.lifecycle = next;
                pack.package_expired_at = Some(occurred_at);
            }
        }
        match changes.iter_mut().find(|change| change.pack_id == line.pack_id) {
            Some(change) => change.exhausted |= exhausted,
            None => changes.push(PackChange { pack_id: line.pack_id.clone(), exhausted }),
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{CapacityItem, PaymentMode};
    use crate::schedule::TimeUnit;
    use crate::test_support::*;

    fn record(quantity: &str, at_text: &str) -> UsageRecord {
        UsageRecord {
            account_id: 1,
            product: "mps".into(),
            subproduct: "mps_transcode".into(),
            usage_type: Some("general".into()),
            unit: "minutes".into(),
            attributes: attrs(&[("region", "ap-guangzhou")]),
            quantity: dec(quantity),
            occurred_at: at(at_text),
        }
    }

    #[test]
    fn validation_rejects_bad_records() {
        let now = at("2026-05-01T00:00:00Z");
        assert_eq!(record("1", "2026-05-01T00:00:00Z").validate(now), Ok(()));
        assert_eq!(record("1", "2026-05-01T00:05:00Z").validate(now), Ok(()));
        for quantity in ["0", "-1"] {
            assert!(matches!(
                record(quantity, "2026-05-01T00:00:00Z").validate(now),
                Err(UsageError::NonPositiveQuantity(_))
            ));
        }
        assert!(matches!(record("1", "2026-05-01T00:05:01Z").validate(now), Err(UsageError::InFuture { .. })));
        let mut no_product = record("1", "2026-05-01T00:00:00Z");
        no_product.product = " ".into();
        assert_eq!(no_product.validate(now), Err(UsageError::Empty { field: "product" }));
    }

    #[test]
    fn candidates_follow_every_rule() {
        let base = pack_with(PaymentMode::TotalDecrement, "2026-01-01T00:00:00Z");
        let rec = record("1", "2026-02-01T00:00:00Z");
        assert_eq!(candidate_item(&base, &rec), Some(0));
        let mut cases: Vec<(&str, Pack)> = Vec::new();
        let mut p = base.clone();
        p.frozen = true;
        cases.push(("frozen", p));
        for lifecycle in [Lifecycle::Expired, Lifecycle::Exhausted, Lifecycle::Refunded] {
            let mut p = base.clone();
            p.lifecycle = lifecycle;
            cases.push(("final", p));
        }
        let mut p = base.clone();
        p.account_id = 2;
        cases.push(("other account", p));
        let mut p = base.clone();
        p.product = "clb".into();
        cases.push(("other product", p));
        let mut p = base.clone();
        p.subproduct = "other".into();
        cases.push(("other subproduct", p));
        let mut p = base.clone();
        p.scope = scope(&[("region", &["ap-beijing"])]);
        cases.push(("scope", p));
        let mut p = base.clone();
        p.items[0].unit = "GB".into();
        cases.push(("unit", p));
        let mut p = base.clone();
        p.items[0].usage_type = Some("tsc".into());
        cases.push(("usage type", p));
        let mut p = base.clone();
        p.effective_at = at("2026-03-01T00:00:00Z");
        cases.push(("not yet effective", p));
        let mut p = base.clone();
        p.expires_at = at("2026-02-01T00:00:00Z");
        cases.push(("expired at the record's time", p));
        for (why, pack) in cases {
            assert_eq!(candidate_item(&pack, &rec), None, "{why}");
        }
    }

    #[test]
    fn earliest_expiry_first_then_purchase_time_then_split_and_overage() {
        let mut later = pack_with(PaymentMode::TotalDecrement, "2026-01-01T00:00:00Z");
        later.id = crate::pack::PackId::parse("rp-later").unwrap();
        later.expires_at = at("2027-06-01T00:00:00Z");
        let mut sooner = pack_with(PaymentMode::TotalDecrement, "2026-01-01T00:00:00Z");
        sooner.id = crate::pack::PackId::parse("rp-sooner").unwrap();
        sooner.expires_at = at("2026-12-01T00:00:00Z");
        let mut sooner_newer = sooner.clone();
        sooner_newer.id = crate::pack::PackId::parse("rp-newer").unwrap();
        sooner_newer.purchased_at = at("2026-01-02T00:00:00Z");
        let mut packs = vec![later, sooner_newer, sooner];

        let rec = record("250", "2026-02-01T00:00:00Z");
        let plan = plan_deduction(&rec, &packs);
        let order: Vec<(&str, Decimal)> = plan.deductions.iter().map(|d| (d.pack_id.as_str(), d.amount)).collect();
        assert_eq!(order, vec![("rp-sooner", dec("100")), ("rp-newer", dec("100")), ("rp-later", dec("50"))]);
        assert_eq!(plan.overage, Decimal::ZERO);
        assert_eq!(plan.deductions[2].before, Some(dec("100")));
        assert_eq!(plan.deductions[2].after, Some(dec("50")));

        let changes = apply_plan(&plan, &mut packs, rec.occurred_at);
        assert_eq!(changes.iter().filter(|c| c.exhausted).count(), 2);
        let sooner = packs.iter().find(|p| p.id.as_str() == "rp-sooner").unwrap();
        assert_eq!(sooner.lifecycle, Lifecycle::Exhausted);
        assert_eq!(sooner.package_expired_at, Some(rec.occurred_at));

        let plan = plan_deduction(&record("80", "2026-02-02T00:00:00Z"), &packs);
        assert_eq!(plan.deducted(), dec("50"));
        assert_eq!(plan.overage, dec("30"));
    }

    #[test]
    fn period_packs_deduct_from_the_record_cycle_and_closed_cycles_give_nothing() {
        let mut packs = vec![period_pack(TimeUnit::Day, 3, "2026-05-01T00:00:00Z")];
        let day2 = record("30", "2026-05-02T10:00:00Z");
        let plan = plan_deduction(&day2, &packs);
        assert_eq!(plan.deductions[0].cycle_index, 1);
        assert_eq!(plan.deductions[0].before, Some(dec("100")));
        apply_plan(&plan, &mut packs, day2.occurred_at);
        assert_eq!((packs[0].items[0].cycle_index, packs[0].items[0].remaining), (1, dec("70")));

        // A late record for day 1 finds that cycle closed.
        let late = record("5", "2026-05-01T23:00:00Z");
        let plan = plan_deduction(&late, &packs);
        assert!(plan.deductions.is_empty());
        assert_eq!(plan.overage, dec("5"));

        // Day 3 starts full; draining it exhausts the pack (its final cycle).
        let day3 = record("120", "2026-05-03T01:00:00Z");
        let plan = plan_deduction(&day3, &packs);
        assert_eq!((plan.deducted(), plan.overage), (dec("100"), dec("20")));
        let changes = apply_plan(&plan, &mut packs, day3.occurred_at);
        assert!(changes[0].exhausted);
        assert_eq!(packs[0].lifecycle, Lifecycle::Exhausted);
    }

    #[test]
    fn draining_a_middle_period_does_not_exhaust() {
        let mut packs = vec![period_pack(TimeUnit::Day, 3, "2026-05-01T00:00:00Z")];
        let rec = record("100", "2026-05-01T10:00:00Z");
        let plan = plan_deduction(&rec, &packs);
        let changes = apply_plan(&plan, &mut packs, rec.occurred_at);
        assert!(!changes[0].exhausted);
        assert_eq!(packs[0].lifecycle, Lifecycle::Inactive, "the stored lifecycle is left to the jobs");
    }

    #[test]
    fn combo_packs_deduct_from_the_matching_item() {
        let mut pack = pack_with(PaymentMode::TotalDecrement, "2026-01-01T00:00:00Z");
        pack.items[0].usage_type = Some("general".into());
        pack.items.push(CapacityItem::new("TSC transcoding", "minutes", Some(dec("40"))).with_usage_type("tsc"));
        let mut tsc = record("10", "2026-02-01T00:00:00Z");
        tsc.usage_type = Some("tsc".into());
        let plan = plan_deduction(&tsc, std::slice::from_ref(&pack));
        assert_eq!(plan.deductions[0].item, 1);
        assert_eq!(plan.deductions[0].after, Some(dec("30")));
    }

    #[test]
    fn unlimited_packs_take_everything_and_record_it() {
        let mut packs = vec![pack_with(PaymentMode::Unlimited, "2026-01-01T00:00:00Z")];
        let rec = record("1000000", "2026-01-05T00:00:00Z");
        let plan = plan_deduction(&rec, &packs);
        assert_eq!(plan.overage, Decimal::ZERO);
        assert_eq!(plan.deductions[0].before, None);
        apply_plan(&plan, &mut packs, rec.occurred_at);
        assert_eq!(packs[0].items[0].used, dec("1000000"));
        assert!(!packs[0].is_exhausted());
    }

    #[test]
    fn nothing_to_deduct_from_is_all_overage() {
        let plan = plan_deduction(&record("7.5", "2026-02-01T00:00:00Z"), &[]);
        assert_eq!(plan, DeductionPlan { deductions: vec![], overage: dec("7.5") });
    }
}
