//! A resource pack: its fields (every column of the seed's *Field Description*), payment modes,
//! capacity items, and what it shows at an instant (status, current cycle, remaining).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::schedule::{Anchor, Cycle, TimeUnit};
use crate::status::{Lifecycle, PackStatus};

/// How a pack's capacity is consumed (seed: *Payment mode*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "mode", content = "cycle", rename_all = "snake_case")]
pub enum PaymentMode {
    /// One quota for the whole validity; consumed until zero or expiry. Cannot be renewed.
    TotalDecrement,
    /// A fixed capacity per period (hour/day/month); each period starts full; the pack's term is
    /// counted in periods.
    PeriodDecrement(TimeUnit),
    /// A fixed capacity per shard (hour/day) within the validity window.
    ShardDecrement(TimeUnit),
    /// Usage is recorded, never limited, within validity.
    Unlimited,
}

impl PaymentMode {
    pub fn kind(self) -> PaymentModeKind {
        match self {
            PaymentMode::TotalDecrement => PaymentModeKind::TotalDecrement,
            PaymentMode::PeriodDecrement(_) => PaymentModeKind::PeriodDecrement,
            PaymentMode::ShardDecrement(_) => PaymentModeKind::ShardDecrement,
            PaymentMode::Unlimited => PaymentModeKind::Unlimited,
        }
    }

    /// The unit capacity is restored by, for cyclic modes.
    pub fn cycle_unit(self) -> Option<TimeUnit> {
        match self {
            PaymentMode::PeriodDecrement(unit) | PaymentMode::ShardDecrement(unit) => Some(unit),
            PaymentMode::TotalDecrement | PaymentMode::Unlimited => None,
        }
    }

    pub fn from_parts(kind: PaymentModeKind, cycle: Option<TimeUnit>) -> Result<PaymentMode, PackError> {
        match (kind, cycle) {
            (PaymentModeKind::TotalDecrement, None) => Ok(PaymentMode::TotalDecrement),
            (PaymentModeKind::Unlimited, None) => Ok(PaymentMode::Unlimited),
            (PaymentModeKind::PeriodDecrement, Some(unit @ (TimeUnit::Hour | TimeUnit::Day | TimeUnit::Month))) => {
                Ok(PaymentMode::PeriodDecrement(unit))
            }
            (PaymentModeKind::ShardDecrement, Some(unit @ (TimeUnit::Hour | TimeUnit::Day))) => {
                Ok(PaymentMode::ShardDecrement(unit))
            }
            (kind, cycle) => Err(PackError::BadCycleUnit { kind, cycle }),
        }
    }
}

/// The payment mode without its cycle unit: what filters and columns name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentModeKind {
    TotalDecrement,
    PeriodDecrement,
    ShardDecrement,
    Unlimited,
}

impl PaymentModeKind {
    pub const ALL: [PaymentModeKind; 4] = [
        PaymentModeKind::TotalDecrement,
        PaymentModeKind::PeriodDecrement,
        PaymentModeKind::ShardDecrement,
        PaymentModeKind::Unlimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentModeKind::TotalDecrement => "total_decrement",
            PaymentModeKind::PeriodDecrement => "period_decrement",
            PaymentModeKind::ShardDecrement => "shard_decrement",
            PaymentModeKind::Unlimited => "unlimited",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentModeKind> {
        PaymentModeKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The seed's display name.
    pub fn label(self) -> &'static str {
        match self {
            PaymentModeKind::TotalDecrement => "Total amount decremental",
            PaymentModeKind::PeriodDecrement => "Period decrement",
            PaymentModeKind::ShardDecrement => "Sharding decrement",
            PaymentModeKind::Unlimited => "Unlimited capacity",
        }
    }
}

/// Renewal methods, named as the Tencent API names its RenewFlag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RenewalMethod {
    #[serde(rename = "NOTIFY_AND_MANUAL_RENEW")]
    Manual,
    #[serde(rename = "NOTIFY_AND_AUTO_RENEW")]
    Auto,
    #[serde(rename = "DISABLE_NOTIFY_AND_MANUAL_RENEW")]
    NotRenew,
}

impl RenewalMethod {
    pub const ALL: [RenewalMethod; 3] = [RenewalMethod::Manual, RenewalMethod::Auto, RenewalMethod::NotRenew];

    pub fn as_str(self) -> &'static str {
        match self {
            RenewalMethod::Manual => "NOTIFY_AND_MANUAL_RENEW",
            RenewalMethod::Auto => "NOTIFY_AND_AUTO_RENEW",
            RenewalMethod::NotRenew => "DISABLE_NOTIFY_AND_MANUAL_RENEW",
        }
    }

    pub fn parse(text: &str) -> Option<RenewalMethod> {
        RenewalMethod::ALL.into_iter().find(|method| method.as_str() == text)
    }

    pub fn label(self) -> &'static str {
        match self {
            RenewalMethod::Manual => "Manual renewal",
            RenewalMethod::Auto => "Automatic renewal",
            RenewalMethod::NotRenew => "Not renew",
        }
    }
}

/// The purchased validity: `count` steps of `unit` from the effective time. For period
/// packs the unit is the period and `count` the total number of periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    pub unit: TimeUnit,
    pub count: u32,
}

/// Scope constraints fixed at purchase (seed: *Dynamic Deduction Attribute*): for each key,
/// the values a usage record's attribute must take to be deducted from this pack.
/// An empty scope admits every record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeductionScope(pub BTreeMap<String, BTreeSet<String>>);

impl DeductionScope {
    pub fn admits(&self, attributes: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(key, allowed)| attributes.get(key).is_some_and(|value| allowed.contains(value)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for DeductionScope {
    /// `region=ap-guangzhou|ap-shanghai; model=hd`, or `-` when unrestricted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(key, values)| format!("{key}={}", values.iter().cloned().collect::<Vec<_>>().join("|")))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// One capacity of a pack; a combo package has several, each in its own unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityItem {
    pub name: String,
    /// The capacity unit (minutes, tokens, GB, …); usage must be reported in it.
    pub unit: String,
    /// When set, only usage of this usage type (e.g. transcoding type) is deducted here.
    pub usage_type: Option<String>,
    /// Capacity of the whole term (total decrement) or of one cycle (period, shard);
    /// `None` for unlimited packs.
    pub capacity: Option<Decimal>,
    /// Remaining capacity of the cycle `cycle_index` (of the whole term for total decrement).
    pub remaining: Decimal,
    /// The cycle `remaining` belongs to; a later cycle starts full.
    pub cycle_index: i64,
    /// Everything ever deducted from this item.
    pub used: Decimal,
}

impl CapacityItem {
    /// A fresh item holding its full capacity in cycle 0.
    pub fn new(name: impl Into<String>, unit: impl Into<String>, capacity: Option<Decimal>) -> CapacityItem {
        CapacityItem {
            name: name.into(),
            unit: unit.into(),
            usage_type: None,
            capacity,
            remaining: capacity.unwrap_or_default(),
            cycle_index: 0,
            used: Decimal::ZERO,
        }
    }

    pub fn with_usage_type(mut self, usage_type: impl Into<String>) -> CapacityItem {
        self.usage_type = Some(usage_type.into());
        self
    }

    pub fn matches(&self, unit: &str, usage_type: Option<&str>) -> bool {
        self.unit == unit && self.usage_type.as_deref().is_none_or(|wanted| usage_type == Some(wanted))
    }

    /// What cycle `index` has left: the stored remaining for the stored cycle, full capacity for
    /// a later one, nothing for a closed earlier one (a closed cycle keeps no capacity).
    /// `None` means unlimited.
    pub fn available_in(&self, index: i64) -> Option<Decimal> {
        let capacity = self.capacity?;
        Some(match index.cmp(&self.cycle_index) {
            std::cmp::Ordering::Equal => self.remaining,
            std::cmp::Ordering::Greater => capacity,
            std::cmp::Ordering::Less => Decimal::ZERO,
        })
    }
}

/// Why a pack definition is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("{} cannot cycle by {cycle:?}: period decrement cycles hourly, daily or monthly; sharding decrement hourly or daily; the others take no cycle", kind.label())]
    BadCycleUnit { kind: PaymentModeKind, cycle: Option<TimeUnit> },
    #[error("a pack needs at least one capacity item")]
    NoCapacityItems,
    #[error("capacity item {name:?}: {problem}")]
    BadCapacityItem { name: String, problem: &'static str },
    #[error("the term must be at least one {}", unit.as_str())]
    EmptyTerm { unit: TimeUnit },
    #[error("a period decrement pack's term is counted in its periods ({}), not in {}", period.as_str(), term.as_str())]
    TermNotInPeriods { period: TimeUnit, term: TimeUnit },
    #[error("the price must not be negative")]
    NegativePrice,
    #[error("{0:?} is not a pack ID; pack IDs look like rp-1a2b3c4d")]
    BadPackId(String),
}

/// The public ID of a pack, `rp-` followed by lowercase letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PackId(String);

impl PackId {
    pub fn parse(text: &str) -> Result<PackId, PackError> {
        let rest = text.strip_prefix("rp-").ok_or_else(|| PackError::BadPackId(text.to_owned()))?;
        if rest.is_empty() || rest.len() > 32 || !rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            return Err(PackError::BadPackId(text.to_owned()));
        }
        Ok(PackId(text.to_owned()))
    }

    /// Builds an ID from random bits chosen by the caller (the domain draws no randomness).
    pub fn from_random(bits: u64) -> PackId {
        PackId(format!("rp-{bits:016x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource pack as the rules see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pack {
    pub id: PackId,
    pub account_id: i64,
    pub name: String,
    pub product: String,
    pub subproduct: String,
    pub region: String,
    pub zone: String,
    pub lifecycle: Lifecycle,
    /// Set by an operator; blocks deduction and renewal but not the passing of time.
    pub frozen: bool,
    pub mode: PaymentMode,
    pub term: Term,
    /// The zone whose calendar the cycles and term follow.
    pub time_zone: Tz,
    pub effective_at: DateTime<Utc>,
    /// End of validity: `term.count` steps of `term.unit` after `effective_at`.
    pub expires_at: DateTime<Utc>,
    /// When the pack stopped being usable: first of expiry, exhaustion or refund.
    pub package_expired_at: Option<DateTime<Utc>>,
    pub purchased_at: DateTime<Utc>,
    pub renewal: RenewalMethod,
    /// Auto-renewal period in term units; set only with [`RenewalMethod::Auto`].
    pub auto_renew_period: Option<u32>,
    /// Price of one term unit (one period for period packs); renewals are priced by it.
    pub unit_price: Money,
    /// Everything paid for this pack: purchase plus renewals.
    pub price_paid: Money,
    pub scope: DeductionScope,
    pub items: Vec<CapacityItem>,
    pub tags: BTreeMap<String, String>,
    /// Bumped by every change; guarded updates compare it.
    pub version: i64,
}

/// The parts of a pack that an operator chooses when issuing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackSpec {
    pub name: String,
    pub product: String,
    pub subproduct: String,
    pub region: String,
    pub zone: String,
    pub mode: PaymentMode,
    pub term: Term,
    pub time_zone: Tz,
    pub effective_at: DateTime<Utc>,
    pub renewal: RenewalMethod,
    pub auto_renew_period: Option<u32>,
    pub unit_price: Money,
    pub scope: DeductionScope,
    pub items: Vec<CapacityItem>,
    pub tags: BTreeMap<String, String>,
}

/// The longest term one purchase or renewal may buy, in its unit.
pub fn max_term_count(unit: TimeUnit) -> u32 {
    match unit {
        TimeUnit::Hour => 24 * 366,
        TimeUnit::Day => 366 * 3,
        TimeUnit::Month => 36 * 3,
        TimeUnit::Year => 10,
    }
}

impl Pack {
    /// Builds a new pack from a spec, checking every rule of its shape. The pack is inactive
    /// until its effective time, which may lie in the past or the future.
    pub fn issue(id: PackId, account_id: i64, spec: PackSpec, purchased_at: DateTime<Utc>) -> Result<Pack, PackError> {
        if let PaymentMode::PeriodDecrement(period) = spec.mode {
            if spec.term.unit != period {
                return Err(PackError::TermNotInPeriods { period, term: spec.term.unit });
            }
        }
        PaymentMode::from_parts(spec.mode.kind(), spec.mode.cycle_unit())?;
        if spec.term.count == 0 || spec.term.count > max_term_count(spec.term.unit) {
            return Err(PackError::EmptyTerm { unit: spec.term.unit });
        }
        if spec.unit_price.is_negative() {
            return Err(PackError::NegativePrice);
        }
        if spec.items.is_empty() {
            return Err(PackError::NoCapacityItems);
        }
        let mut items = spec.items;
        for item in &mut items {
            let problem = match (spec.mode, item.capacity) {
                (PaymentMode::Unlimited, Some(_)) => Some("an unlimited pack's items have no capacity"),
                (PaymentMode::Unlimited, None) => None,
                (_, None) => Some("needs a capacity"),
                (_, Some(capacity)) if capacity <= Decimal::ZERO => Some("capacity must be greater than zero"),
                (_, Some(_)) => None,
            };
            if let Some(problem) = problem {
                return Err(PackError::BadCapacityItem { name: item.name.clone(), problem });
            }
            if item.unit.trim().is_empty() {
                return Err(PackError::BadCapacityItem { name: item.name.clone(), problem: "needs a unit" });
            }
            item.remaining = item.capacity.unwrap_or_default();
            item.cycle_index = 0;
            item.used = Decimal::ZERO;
        }
        let anchor = Anchor::new(spec.effective_at, spec.time_zone);
        let price = spec.unit_price * spec.term.count;
        let auto_renew_period = match spec.renewal {
            RenewalMethod::Auto => Some(spec.auto_renew_period.unwrap_or(1)),
            RenewalMethod::Manual | RenewalMethod::NotRenew => None,
        };
        Ok(Pack {
            id,
            account_id,
            name: spec.name,
            product: spec.product,
            subproduct: spec.subproduct,
            region: spec.region,
            zone: spec.zone,
            lifecycle: Lifecycle::Inactive,
            frozen: false,
            mode: spec.mode,
            term: spec.term,
            time_zone: spec.time_zone,
            effective_at: spec.effective_at,
            expires_at: anchor.boundary(spec.term.unit, i64::from(spec.term.count)),
            package_expired_at: None,
            purchased_at,
            renewal: spec.renewal,
            auto_renew_period,
            unit_price: spec.unit_price,
            price_paid: price,
            scope: spec.scope,
            items,
            tags: spec.tags,
            version: 0,
        })
    }

    pub fn anchor(&self) -> Anchor {
        Anchor::new(self.effective_at, self.time_zone)
    }

    pub fn is_in_window(&self, at: DateTime<Utc>) -> bool {
        self.effective_at <= at && at < self.expires_at
    }

    /// The lifecycle state the pack is in at `now`, taking time into account even when no
    /// job has stored the change yet.
    pub fn lifecycle_at(&self, now: DateTime<Utc>) -> Lifecycle {
        match self.lifecycle {
            Lifecycle::Inactive | Lifecycle::Valid if now >= self.expires_at => Lifecycle::Expired,
            Lifecycle::Inactive | Lifecycle::Valid if now < self.effective_at => Lifecycle::Inactive,
            Lifecycle::Inactive | Lifecycle::Valid => Lifecycle::Valid,
            terminal => terminal,
        }
    }

    /// The status the console shows (seed: valid, expired, exhausted, refunded, inactive, frozen).
    pub fn status_at(&self, now: DateTime<Utc>) -> PackStatus {
        PackStatus::shown(self.lifecycle_at(now), self.frozen)
    }

    /// The cycle (period or shard) that contains `at`, clipped to the validity window.
    /// `None` for total-decrement and unlimited packs and outside the window.
    pub fn cycle_at(&self, at: DateTime<Utc>) -> Option<Cycle> {
        let unit = self.mode.cycle_unit()?;
        if !self.is_in_window(at) {
            return None;
        }
        let mut cycle = self.anchor().cycle_at(unit, at);
        cycle.end = cycle.end.min(self.expires_at);
        Some(cycle)
    }

    /// The cycle index usage at `at` deducts from (0 for modes without cycles).
    pub fn cycle_index_at(&self, at: DateTime<Utc>) -> i64 {
        self.cycle_at(at).map_or(0, |cycle| cycle.index)
    }

    /// How many cycles the whole validity holds (1 for modes without cycles).
    pub fn cycle_count(&self) -> i64 {
        match self.mode {
            PaymentMode::PeriodDecrement(_) => i64::from(self.term.count),
            PaymentMode::ShardDecrement(unit) => {
                let last = self.expires_at - chrono::Duration::milliseconds(1);
                self.anchor().index_at(unit, last) + 1
            }
            PaymentMode::TotalDecrement | PaymentMode::Unlimited => 1,
        }
    }

    /// The index of the last cycle of the validity.
    pub fn final_cycle_index(&self) -> i64 {
        self.cycle_count() - 1
    }

    /// Remaining/total periods (seed: only for period decrement). Remaining counts the current
    /// period: a 12-month pack in its first month has 12 of 12 left, and 0 once it has ended.
    pub fn periods_at(&self, now: DateTime<Utc>) -> Option<(u32, u32)> {
        let PaymentMode::PeriodDecrement(unit) = self.mode else {
            return None;
        };
        let total = self.term.count;
        let started = self.anchor().index_at(unit, now).clamp(0, i64::from(total));
        let remaining = if now < self.effective_at { i64::from(total) } else { i64::from(total) - started };
        Some((u32::try_from(remaining).unwrap_or(0), total))
    }

    /// Remaining capacity of an item in the cycle containing `now` (the whole term for total
    /// decrement); `None` for unlimited items. After the validity window nothing remains.
    pub fn remaining_at(&self, item: &CapacityItem, now: DateTime<Utc>) -> Option<Decimal> {
        item.capacity?;
        if now >= self.expires_at || matches!(self.lifecycle, Lifecycle::Exhausted | Lifecycle::Refunded) {
            return Some(Decimal::ZERO);
        }
        let index = if now < self.effective_at { 0 } else { self.cycle_index_at(now) };
        item.available_in(index)
    }

    /// Total remaining / total capacity of an item (seed: only for period decrement and total
    /// decrement): current remaining plus the capacity of every future period.
    pub fn total_remaining_at(&self, item: &CapacityItem, now: DateTime<Utc>) -> Option<(Decimal, Decimal)> {
        let capacity = item.capacity?;
        let current = self.remaining_at(item, now)?;
        match self.mode {
            PaymentMode::TotalDecrement => Some((current, capacity)),
            PaymentMode::PeriodDecrement(_) => {
                let (remaining_periods, total) = self.periods_at(now)?;
                let future = remaining_periods.saturating_sub(1);
                Some((current + capacity * Decimal::from(future), capacity * Decimal::from(total)))
            }
            PaymentMode::ShardDecrement(_) | PaymentMode::Unlimited => None,
        }
    }

    /// True when no capacity is left and none will come: every item is empty in the final
    /// cycle (or, for total decrement, at all). Unlimited packs are never exhausted.
    pub fn is_exhausted(&self) -> bool {
        if self.mode == PaymentMode::Unlimited {
            return false;
        }
        let last = self.final_cycle_index();
        self.items.iter().all(|item| item.cycle_index >= last && item.remaining <= Decimal::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn payment_modes_accept_only_their_cycle_units() {
        use PaymentModeKind::*;
        use TimeUnit::*;
        let cases = [
            (TotalDecrement, None, true),
            (TotalDecrement, Some(Day), false),
            (Unlimited, None, true),
            (Unlimited, Some(Month), false),
            (PeriodDecrement, Some(Hour), true),
            (PeriodDecrement, Some(Day), true),
            (PeriodDecrement, Some(Month), true),
            (PeriodDecrement, Some(Year), false),
            (PeriodDecrement, None, false),
            (ShardDecrement, Some(Hour), true),
            (ShardDecrement, Some(Day), true),
            (ShardDecrement, Some(Month), false),
            (ShardDecrement, None, false),
        ];
        for (kind, cycle, ok) in cases {
            let built = PaymentMode::from_parts(kind, cycle);
            assert_eq!(built.is_ok(), ok, "{kind:?} {cycle:?}");
            if let Ok(mode) = built {
                assert_eq!((mode.kind(), mode.cycle_unit()), (kind, cycle));
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for kind in PaymentModeKind::ALL {
            assert_eq!(PaymentModeKind::parse(kind.as_str()), Some(kind));
        }
        for method in RenewalMethod::ALL {
            assert_eq!(RenewalMethod::parse(method.as_str()), Some(method));
        }
        assert_eq!(RenewalMethod::parse("AUTO"), None);
    }

    #[test]
    fn pack_ids_are_checked() {
        assert!(PackId::parse("rp-1a2b3c").is_ok());
        for bad in ["", "rp-", "1a2b", "rp-ABC", "rp-a b", "rp-../x"] {
            assert!(PackId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(PackId::from_random(0xabc).as_str(), "rp-0000000000000abc");
    }

    #[test]
    fn scope_admits_only_matching_attributes() {
        let scope = scope(&[("region", &["ap-guangzhou", "ap-shanghai"]), ("model", &["hd"])]);
        let cases = [
            (vec![("region", "ap-guangzhou"), ("model", "hd")], true),
            (vec![("region", "ap-shanghai"), ("model", "hd"), ("extra", "x")], true),
            (vec![("region", "ap-beijing"), ("model", "hd")], false),
            (vec![("region", "ap-guangzhou")], false),
            (vec![], false),
        ];
        for (attributes, admitted) in cases {
            assert_eq!(scope.admits(&attrs(&attributes)), admitted, "{attributes:?}");
            assert!(DeductionScope::default().admits(&attrs(&attributes)));
        }
        assert_eq!(scope.to_string(), "model=hd; region=ap-guangzhou|ap-shanghai");
        assert_eq!(DeductionScope::default().to_string(), "-");
    }

    #[test]
    fn issue_checks_the_shape_of_a_pack() {
        let ok = spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 12);
        assert!(Pack::issue(pack_id(), 1, ok.clone(), at("2026-01-01T00:00:00Z")).is_ok());

        let mut wrong_term = ok.clone();
        wrong_term.term.unit = TimeUnit::Year;
        assert!(matches!(issue(wrong_term), Err(PackError::TermNotInPeriods { .. })));

        let mut empty = ok.clone();
        empty.term.count = 0;
        assert!(matches!(issue(empty), Err(PackError::EmptyTerm { .. })));

        let mut no_items = ok.clone();
        no_items.items.clear();
        assert_eq!(issue(no_items), Err(PackError::NoCapacityItems));

        let mut zero = ok.clone();
        zero.items[0].capacity = Some(Decimal::ZERO);
        assert!(matches!(issue(zero), Err(PackError::BadCapacityItem { .. })));

        let mut unlimited_with_cap = spec(PaymentMode::Unlimited, 1);
        unlimited_with_cap.items[0].capacity = Some(Decimal::ONE);
        assert!(matches!(issue(unlimited_with_cap), Err(PackError::BadCapacityItem { .. })));

        let mut negative = ok.clone();
        negative.unit_price = Money::parse("-1").unwrap();
        assert_eq!(issue(negative), Err(PackError::NegativePrice));

        let mut shard_month = spec(PaymentMode::ShardDecrement(TimeUnit::Month), 1);
        shard_month.term.unit = TimeUnit::Month;
        assert!(matches!(issue(shard_month), Err(PackError::BadCycleUnit { .. })));
    }

    #[test]
    fn issue_sets_validity_price_and_fresh_capacity() {
        let pack = period_pack(TimeUnit::Month, 12, "2026-01-31T02:00:00Z");
        assert_eq!(pack.lifecycle, Lifecycle::Inactive);
        assert_eq!(pack.expires_at, at("2027-01-31T02:00:00Z"));
        assert_eq!(pack.price_paid, Money::parse("120").unwrap());
        assert_eq!(pack.items[0].remaining, dec("100"));
        assert_eq!(pack.auto_renew_period, None);
    }

    #[test]
    fn lifecycle_follows_time_until_a_terminal_state() {
        let pack = period_pack(TimeUnit::Day, 3, "2026-05-01T00:00:00Z");
        assert_eq!(pack.lifecycle_at(at("2026-04-30T23:59:59Z")), Lifecycle::Inactive);
        assert_eq!(pack.lifecycle_at(at("2026-05-01T00:00:00Z")), Lifecycle::Valid);
        assert_eq!(pack.lifecycle_at(at("2026-05-03T23:59:59Z")), Lifecycle::Valid);
        assert_eq!(pack.lifecycle_at(at("2026-05-04T00:00:00Z")), Lifecycle::Expired);
        let mut refunded = pack.clone();
        refunded.lifecycle = Lifecycle::Refunded;
        assert_eq!(refunded.lifecycle_at(at("2026-05-02T00:00:00Z")), Lifecycle::Refunded);
        let mut frozen = pack;
        frozen.frozen = true;
        assert_eq!(frozen.status_at(at("2026-05-02T00:00:00Z")), PackStatus::Frozen);
        assert_eq!(frozen.status_at(at("2026-06-02T00:00:00Z")), PackStatus::Expired);
    }

    #[test]
    fn period_pack_shows_periods_and_total_remaining() {
        let mut pack = period_pack(TimeUnit::Month, 12, "2026-01-01T00:00:00Z");
        let item = pack.items[0].clone();
        let jan = at("2026-01-15T00:00:00Z");
        assert_eq!(pack.periods_at(at("2025-12-01T00:00:00Z")), Some((12, 12)));
        assert_eq!(pack.periods_at(jan), Some((12, 12)));
        assert_eq!(pack.periods_at(at("2026-12-31T23:00:00Z")), Some((1, 12)));
        assert_eq!(pack.periods_at(at("2027-01-01T00:00:00Z")), Some((0, 12)));
        assert_eq!(pack.total_remaining_at(&item, jan), Some((dec("1200"), dec("1200"))));

        pack.items[0].remaining = dec("40");
        let item = pack.items[0].clone();
        assert_eq!(pack.total_remaining_at(&item, jan), Some((dec("1140"), dec("1200"))));
        // In February the stored January remaining no longer counts: the period starts full.
        let feb = at("2026-02-10T00:00:00Z");
        assert_eq!(pack.remaining_at(&item, feb), Some(dec("100")));
        assert_eq!(pack.total_remaining_at(&item, feb), Some((dec("1100"), dec("1200"))));
        let cycle = pack.cycle_at(feb).unwrap();
        assert_eq!((cycle.index, cycle.start, cycle.end), (1, at("2026-02-01T00:00:00Z"), at("2026-03-01T00:00:00Z")));
        assert_eq!(pack.remaining_at(&item, at("2027-02-01T00:00:00Z")), Some(Decimal::ZERO));
    }

    #[test]
    fn shard_pack_clips_its_last_shard_to_the_window() {
        let mut shard = spec(PaymentMode::ShardDecrement(TimeUnit::Day), 1);
        shard.term = Term { unit: TimeUnit::Month, count: 1 };
        shard.effective_at = at("2026-02-10T12:00:00Z");
        let pack = issue(shard).unwrap();
        assert_eq!(pack.expires_at, at("2026-03-10T12:00:00Z"));
        assert_eq!(pack.cycle_count(), 28);
        let last = pack.cycle_at(at("2026-03-10T11:00:00Z")).unwrap();
        assert_eq!((last.index, last.end), (27, at("2026-03-10T12:00:00Z")));
        assert_eq!(pack.periods_at(at("2026-02-11T00:00:00Z")), None);
        assert_eq!(pack.total_remaining_at(&pack.items[0], at("2026-02-11T00:00:00Z")), None);
    }

    #[test]
    fn exhaustion_needs_every_item_empty_in_the_final_cycle() {
        let mut total = issue(spec(PaymentMode::TotalDecrement, 12)).unwrap();
        total.items.push(CapacityItem::new("TSC", "minutes", Some(dec("5"))).with_usage_type("tsc"));
        total.items[0].remaining = Decimal::ZERO;
        assert!(!total.is_exhausted(), "a combo pack with one item left is not exhausted");
        total.items[1].remaining = Decimal::ZERO;
        assert!(total.is_exhausted());

        let mut period = period_pack(TimeUnit::Day, 3, "2026-05-01T00:00:00Z");
        period.items[0].remaining = Decimal::ZERO;
        assert!(!period.is_exhausted(), "an empty first period is restored at the next");
        period.items[0].cycle_index = 2;
        assert!(period.is_exhausted());

        let unlimited = issue(spec(PaymentMode::Unlimited, 1)).unwrap();
        assert!(!unlimited.is_exhausted());
    }

    #[test]
    fn capacity_items_match_unit_and_usage_type() {
        let general = CapacityItem::new("Transcoding", "minutes", Some(dec("10")));
        let tsc = general.clone().with_usage_type("tsc");
        assert!(general.matches("minutes", None));
        assert!(general.matches("minutes", Some("tsc")));
        assert!(!general.matches("GB", None));
        assert!(tsc.matches("minutes", Some("tsc")));
        assert!(!tsc.matches("minutes", Some("general")));
        assert!(!tsc.matches("minutes", None));
        let mut used = general.clone();
        used.remaining = dec("3");
        used.cycle_index = 4;
        assert_eq!(used.available_in(4), Some(dec("3")));
        assert_eq!(used.available_in(5), Some(dec("10")));
        assert_eq!(used.available_in(3), Some(Decimal::ZERO));
        assert_eq!(CapacityItem::new("x", "u", None).available_in(0), None);
    }
}
