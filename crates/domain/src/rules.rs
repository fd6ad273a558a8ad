//! The rules of money-moving and setting-changing operations on a pack: renew, set renewal
//! method, refund, freeze, adjust its bill, and whether a balance covers a charge. Each check returns what the
//! operation will do, or a [`RuleViolation`] that tells the user why not.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use crate::bill::BillActionType;
use crate::money::Money;
use crate::pack::{max_term_count, Pack, PaymentMode, RenewalMethod};
use crate::schedule::TimeUnit;
use crate::status::PackStatus;

/// Renewal settings cannot change in the last day before expiration (seed: "configuration is
/// not supported on the last day before expiration").
pub const RENEWAL_SETTING_CUTOFF: Duration = Duration::hours(24);
/// Packs are refundable only within five days of purchase (seed: MPS resource packs).
pub const REFUND_WINDOW: Duration = Duration::days(5);
/// The longest reason an operator may give for adjusting a bill (it is shown on the bill line
/// and in the ledger).
pub const MAX_ADJUSTMENT_REASON: usize = 200;

/// Why an operation on a pack is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    #[error("total amount decremental packs cannot be renewed")]
    TotalDecrementNotRenewable,
    #[error("the pack is {status}; only inactive or valid packs can be {operation}")]
    NotLive { status: PackStatus, operation: &'static str },
    #[error("the pack is frozen; ask an operator to unfreeze it first")]
    Frozen,
    #[error("the pack is not frozen")]
    NotFrozen,
    #[error("choose between 1 and {max} {} (got {count})", unit.as_str())]
    BadPeriodCount { count: u32, max: u32, unit: TimeUnit },
    #[error("renewal settings cannot change in the last 24 hours before expiration ({expires_at})")]
    TooCloseToExpiration { expires_at: DateTime<Utc> },
    #[error("an auto-renewal period is set only together with automatic renewal")]
    PeriodWithoutAutoRenewal,
    #[error("the pack is not set to renew automatically")]
    NotAutoRenewing,
    #[error("refunds are possible within 5 days of purchase; this pack was bought at {purchased_at}, the window closed at {deadline}")]
    RefundWindowClosed { purchased_at: DateTime<Utc>, deadline: DateTime<Utc> },
    #[error("the balance {balance} does not cover {price}; top up the account first")]
    InsufficientBalance { balance: Money, price: Money },
    #[error("the amount must be greater than zero")]
    NonPositiveAmount,
    #[error("an adjustment needs an amount other than zero: positive to charge the customer, negative to refund")]
    ZeroAdjustment,
    #[error("say why the bill is adjusted: a reason of 1 to {max} characters (got {length})")]
    AdjustmentReason { length: usize, max: usize },
}

/// What a renewal will cost and change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalQuote {
    /// Term units (periods for period packs) added.
    pub periods: u32,
    pub unit: TimeUnit,
    pub price: Money,
    pub new_term_count: u32,
    pub new_expires_at: DateTime<Utc>,
}

/// A customer's renewal of `periods` term units, checked at `now`.
pub fn quote_renewal(pack: &Pack, now: DateTime<Utc>, periods: u32) -> Result<RenewalQuote, RuleViolation> {
    require_live(pack, now, "renewed")?;
    quote(pack, periods)
}

/// The automatic renewal due at expiration: the pack must be set to auto-renew and still be
/// stored live (the daemon renews it at or after its expiration time, before expiring it).
pub fn quote_auto_renewal(pack: &Pack) -> Result<RenewalQuote, RuleViolation> {
    if pack.renewal != RenewalMethod::Auto {
        return Err(RuleViolation::NotAutoRenewing);
    }
    if pack.lifecycle.is_final() {
        return Err(RuleViolation::NotLive {
            status: PackStatus::shown(pack.lifecycle, pack.frozen),
            operation: "renewed",
        });
    }
    if pack.frozen {
        return Err(RuleViolation::Frozen);
    }
    quote(pack, pack.auto_renew_period.unwrap_or(1))
}

fn quote(pack: &Pack, periods: u32) -> Result<RenewalQuote, RuleViolation> {
    if pack.mode == PaymentMode::TotalDecrement {
        return Err(RuleViolation::TotalDecrementNotRenewable);
    }
    check_period_count(pack.term.unit, periods)?;
    let new_term_count = pack.term.count.saturating_add(periods);
    Ok(RenewalQuote {
        periods,
        unit: pack.term.unit,
        price: pack.unit_price * periods,
        new_term_count,
        new_expires_at: pack.anchor().boundary(pack.term.unit, i64::from(new_term_count)),
    })
}

/// Extends the pack as quoted: validity moves out and period packs gain periods.
pub fn apply_renewal(pack: &mut Pack, quote: &RenewalQuote) {
    pack.term.count = quote.new_term_count;
    pack.expires_at = quote.new_expires_at;
    pack.price_paid = pack.price_paid + quote.price;
}

fn check_period_count(unit: TimeUnit, count: u32) -> Result<(), RuleViolation> {
    let max = max_term_count(unit);
    if count == 0 || count > max {
        return Err(RuleViolation::BadPeriodCount { count, max, unit });
    }
    Ok(())
}

/// A renewal method with its auto-renewal period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalSetting {
    pub method: RenewalMethod,
    pub auto_renew_period: Option<u32>,
}

/// Checks a change of renewal method or auto-renewal period (seed: *Operation*). Automatic
/// renewal defaults to one term unit when no period is given.
pub fn check_renewal_setting(
    pack: &Pack,
    now: DateTime<Utc>,
    method: RenewalMethod,
    auto_renew_period: Option<u32>,
) -> Result<RenewalSetting, RuleViolation> {
    require_live(pack, now, "changed")?;
    if method == RenewalMethod::Auto && pack.mode == PaymentMode::TotalDecrement {
        return Err(RuleViolation::TotalDecrementNotRenewable);
    }
    if pack.expires_at - now <= RENEWAL_SETTING_CUTOFF {
        return Err(RuleViolation::TooCloseToExpiration { expires_at: pack.expires_at });
    }
    let auto_renew_period = match method {
        RenewalMethod::Auto => {
            let period = auto_renew_period.unwrap_or(1);
            check_period_count(pack.term.unit, period)?;
            Some(period)
        }
        RenewalMethod::Manual | RenewalMethod::NotRenew if auto_renew_period.is_some() => {
            return Err(RuleViolation::PeriodWithoutAutoRenewal);
        }
        RenewalMethod::Manual | RenewalMethod::NotRenew => None,
    };
    Ok(RenewalSetting { method, auto_renew_period })
}

/// The amount a refund returns: everything paid for the pack, if it is still live and was
/// bought within the last five days.
pub fn check_refund(pack: &Pack, now: DateTime<Utc>) -> Result<Money, RuleViolation> {
    let deadline = pack.purchased_at + REFUND_WINDOW;
    if now > deadline {
        return Err(RuleViolation::RefundWindowClosed { purchased_at: pack.purchased_at, deadline });
    }
    let lifecycle = pack.lifecycle_at(now);
    if lifecycle.is_final() {
        return Err(RuleViolation::NotLive { status: PackStatus::shown(lifecycle, false), operation: "refunded" });
    }
    Ok(pack.price_paid)
}

/// Freezing needs a live, unfrozen pack; unfreezing a frozen one.
pub fn check_freeze(pack: &Pack, now: DateTime<Utc>, freeze: bool) -> Result<(), RuleViolation> {
    let lifecycle = pack.lifecycle_at(now);
    if lifecycle.is_final() {
        let operation = if freeze { "frozen" } else { "unfrozen" };
        return Err(RuleViolation::NotLive { status: PackStatus::shown(lifecycle, false), operation });
    }
    match (freeze, pack.frozen) {
        (true, true) => Err(RuleViolation::Frozen),
        (false, false) => Err(RuleViolation::NotFrozen),
        _ => Ok(()),
    }
}

/// The balance after charging `price`, unless that would go negative on an account that does
/// not allow arrears.
pub fn charge(balance: Money, price: Money, allow_arrears: bool) -> Result<Money, RuleViolation> {
    let after = balance - price;
    if after.is_negative() && !allow_arrears {
        return Err(RuleViolation::InsufficientBalance { balance, price });
    }
    Ok(after)
}

/// How much of an outstanding pay-as-you-go charge (a day's overage, settled after the day
/// ends) the balance pays now: all of it on an account that allows arrears, else what the
/// balance covers, never taking it below zero. The rest stays owed until a later settlement
/// finds the balance topped up.
pub fn settle_owed(balance: Money, owed: Money, allow_arrears: bool) -> Money {
    if owed <= Money::ZERO {
        return Money::ZERO;
    }
    if allow_arrears {
        owed
    } else {
        owed.min(balance.max(Money::ZERO))
    }
}

/// A top-up or other credit must be positive.
pub fn check_credit(amount: Money) -> Result<(), RuleViolation> {
    if amount.amount() <= Decimal::ZERO {
        return Err(RuleViolation::NonPositiveAmount);
    }
    Ok(())
}

/// An operator's correction of what a pack was billed: a positive `amount` charges the
/// customer more ("Adjustment - deduction"), a negative one gives money back ("Adjustment -
/// refund"). Whatever the pack's status — a correction may come after it ended — but never
/// without a reason. Returns the bill line's ActionType.
pub fn check_adjustment(amount: Money, reason: &str) -> Result<BillActionType, RuleViolation> {
    let length = reason.trim().chars().count();
    if length == 0 || length > MAX_ADJUSTMENT_REASON {
        return Err(RuleViolation::AdjustmentReason { length, max: MAX_ADJUSTMENT_REASON });
    }
    match amount.amount().cmp(&Decimal::ZERO) {
        std::cmp::Ordering::Greater => Ok(BillActionType::AdjustmentDeduction),
        std::cmp::Ordering::Less => Ok(BillActionType::AdjustmentRefund),
        std::cmp::Ordering::Equal => Err(RuleViolation::ZeroAdjustment),
    }
}

fn require_live(pack: &Pack, now: DateTime<Utc>, operation: &'static str) -> Result<(), RuleViolation> {
    let lifecycle = pack.lifecycle_at(now);
    if lifecycle.is_final() {
        return Err(RuleViolation::NotLive { status: PackStatus::shown(lifecycle, false), operation });
    }
    if pack.frozen {
        return Err(RuleViolation::Frozen);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Lifecycle;
    use crate::test_support::*;

    fn money(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    #[test]
    fn an_adjustment_charges_or_refunds_by_its_sign_and_needs_a_reason() {
        let long = "x".repeat(MAX_ADJUSTMENT_REASON + 1);
        let at_most = "x".repeat(MAX_ADJUSTMENT_REASON);
        for (amount, reason, expected) in [
            ("5", "billed too little in March", Ok(BillActionType::AdjustmentDeduction)),
            ("-0.01", "rounding", Ok(BillActionType::AdjustmentRefund)),
            ("-120", at_most.as_str(), Ok(BillActionType::AdjustmentRefund)),
            ("0", "nothing", Err(RuleViolation::ZeroAdjustment)),
            ("5", "", Err(RuleViolation::AdjustmentReason { length: 0, max: MAX_ADJUSTMENT_REASON })),
            ("5", "   ", Err(RuleViolation::AdjustmentReason { length: 0, max: MAX_ADJUSTMENT_REASON })),
            (
                "5",
                long.as_str(),
                Err(RuleViolation::AdjustmentReason { length: MAX_ADJUSTMENT_REASON + 1, max: MAX_ADJUSTMENT_REASON }),
            ),
        ] {
            assert_eq!(check_adjustment(money(amount), reason), expected, "{amount} {reason:?}");
        }
    }

    #[test]
    fn settlement_pays_what_the_balance_covers_unless_arrears_are_allowed() {
        assert_eq!(settle_owed(money("10"), money("3.5"), false), money("3.5"), "covered in full");
        assert_eq!(settle_owed(money("2"), money("3.5"), false), money("2"), "part, down to zero");
        assert_eq!(settle_owed(money("0"), money("3.5"), false), Money::ZERO);
        assert_eq!(settle_owed(money("-4"), money("3.5"), false), Money::ZERO, "already in arrears");
        assert_eq!(settle_owed(money("2"), money("3.5"), true), money("3.5"), "arrears allowed");
        assert_eq!(settle_owed(money("-4"), money("3.5"), true), money("3.5"));
        assert_eq!(settle_owed(money("10"), Money::ZERO, false), Money::ZERO, "nothing owed");
        assert_eq!(settle_owed(money("10"), money("-1"), true), Money::ZERO, "a credit is never settled here");
    }

    #[test]
    fn renewal_adds_periods_and_charges_the_unit_price() {
        let mut pack = period_pack(TimeUnit::Month, 12, "2026-01-31T00:00:00Z");
        let quote = quote_renewal(&pack, at("2026-06-01T00:00:00Z"), 3).unwrap();
        assert_eq!(quote.price, money("30"));
        assert_eq!(quote.new_term_count, 15);
        assert_eq!(quote.new_expires_at, at("2027-04-30T00:00:00Z"), "clamped to the month end");
        apply_renewal(&mut pack, &quote);
        assert_eq!(pack.expires_at, at("2027-04-30T00:00:00Z"));
        assert_eq!(pack.price_paid, money("150"));
        assert_eq!(pack.periods_at(at("2026-06-01T00:00:00Z")), Some((11, 15)));
    }

    #[test]
    fn renewal_is_refused_where_the_rules_say() {
        let now = at("2026-06-01T00:00:00Z");
        let total = pack_with(crate::pack::PaymentMode::TotalDecrement, "2026-01-01T00:00:00Z");
        assert_eq!(quote_renewal(&total, now, 1), Err(RuleViolation::TotalDecrementNotRenewable));

        let pack = period_pack(TimeUnit::Month, 12, "2026-01-01T00:00:00Z");
        for count in [0, 109] {
            assert!(matches!(quote_renewal(&pack, now, count), Err(RuleViolation::BadPeriodCount { .. })));
        }
        let mut frozen = pack.clone();
        frozen.frozen = true;
        assert_eq!(quote_renewal(&frozen, now, 1), Err(RuleViolation::Frozen));
        let after_expiry = at("2027-01-01T00:00:00Z");
        assert!(matches!(
            quote_renewal(&pack, after_expiry, 1),
            Err(RuleViolation::NotLive { status: PackStatus::Expired, .. })
        ));
        for final_state in [Lifecycle::Exhausted, Lifecycle::Refunded] {
            let mut ended = pack.clone();
            ended.lifecycle = final_state;
            assert!(matches!(quote_renewal(&ended, now, 1), Err(RuleViolation::NotLive { .. })));
        }
        // Inactive packs (bought for later) can be renewed.
        assert!(quote_renewal(&pack, at("2025-12-01T00:00:00Z"), 1).is_ok());
    }

    #[test]
    fn auto_renewal_uses_the_configured_period_at_expiration() {
        let mut pack = period_pack(TimeUnit::Month, 1, "2026-01-01T00:00:00Z");
        assert_eq!(quote_auto_renewal(&pack), Err(RuleViolation::NotAutoRenewing));
        pack.renewal = RenewalMethod::Auto;
        pack.auto_renew_period = Some(2);
        pack.lifecycle = Lifecycle::Valid;
        let quote = quote_auto_renewal(&pack).unwrap();
        assert_eq!((quote.periods, quote.price), (2, money("20")));
        assert_eq!(quote.new_expires_at, at("2026-04-01T00:00:00Z"));
        pack.frozen = true;
        assert_eq!(quote_auto_renewal(&pack), Err(RuleViolation::Frozen));
        pack.frozen = false;
        pack.lifecycle = Lifecycle::Expired;
        assert!(matches!(quote_auto_renewal(&pack), Err(RuleViolation::NotLive { .. })));
    }

    #[test]
    fn renewal_settings_table() {
        let pack = period_pack(TimeUnit::Day, 10, "2026-03-01T00:00:00Z"); // expires 03-11 00:00
        let early = at("2026-03-05T00:00:00Z");
        let last_day = at("2026-03-10T00:00:01Z");
        let exactly_24h = at("2026-03-10T00:00:00Z");
        let just_before = at("2026-03-09T23:59:59Z");
        use RenewalMethod::*;
        type Case = (DateTime<Utc>, RenewalMethod, Option<u32>, Result<Option<u32>, RuleViolation>);
        let cases: [Case; 9] = [
            (early, Auto, None, Ok(Some(1))),
            (early, Auto, Some(7), Ok(Some(7))),
            (early, Manual, None, Ok(None)),
            (early, NotRenew, None, Ok(None)),
            (early, Manual, Some(3), Err(RuleViolation::PeriodWithoutAutoRenewal)),
            (early, Auto, Some(0), Err(RuleViolation::BadPeriodCount { count: 0, max: 1098, unit: TimeUnit::Day })),
            (just_before, Auto, Some(2), Ok(Some(2))),
            (exactly_24h, Auto, None, Err(RuleViolation::TooCloseToExpiration { expires_at: pack.expires_at })),
            (last_day, NotRenew, None, Err(RuleViolation::TooCloseToExpiration { expires_at: pack.expires_at })),
        ];
        for (now, method, period, expected) in cases {
            let got = check_renewal_setting(&pack, now, method, period).map(|setting| setting.auto_renew_period);
            assert_eq!(got, expected, "{now} {method:?} {period:?}");
        }
        let total = pack_with(crate::pack::PaymentMode::TotalDecrement, "2026-01-01T00:00:00Z");
        assert_eq!(check_renewal_setting(&total, early, Auto, None), Err(RuleViolation::TotalDecrementNotRenewable));
        assert!(check_renewal_setting(&total, early, NotRenew, None).is_ok());
    }

    #[test]
    fn refund_within_five_days_of_purchase_only() {
        let pack = period_pack(TimeUnit::Month, 12, "2026-01-01T00:00:00Z"); // bought 2026-01-01
        assert_eq!(check_refund(&pack, at("2026-01-06T00:00:00Z")), Ok(money("120")));
        assert!(matches!(
            check_refund(&pack, at("2026-01-06T00:00:01Z")),
            Err(RuleViolation::RefundWindowClosed { .. })
        ));
        let mut refunded = pack.clone();
        refunded.lifecycle = Lifecycle::Refunded;
        assert!(matches!(check_refund(&refunded, at("2026-01-02T00:00:00Z")), Err(RuleViolation::NotLive { .. })));
        let mut frozen = pack;
        frozen.frozen = true;
        assert!(check_refund(&frozen, at("2026-01-02T00:00:00Z")).is_ok(), "operators refund frozen packs");
    }

    #[test]
    fn freeze_and_unfreeze() {
        let now = at("2026-02-01T00:00:00Z");
        let mut pack = period_pack(TimeUnit::Month, 12, "2026-01-01T00:00:00Z");
        assert_eq!(check_freeze(&pack, now, false), Err(RuleViolation::NotFrozen));
        assert_eq!(check_freeze(&pack, now, true), Ok(()));
        pack.frozen = true;
        assert_eq!(check_freeze(&pack, now, true), Err(RuleViolation::Frozen));
        assert_eq!(check_freeze(&pack, now, false), Ok(()));
        assert!(matches!(check_freeze(&pack, at("2028-01-01T00:00:00Z"), false), Err(RuleViolation::NotLive { .. })));
    }

    #[test]
    fn charges_respect_the_balance_unless_arrears_are_allowed() {
        assert_eq!(charge(money("10"), money("10"), false), Ok(Money::ZERO));
        assert_eq!(
            charge(money("9.99"), money("10"), false),
            Err(RuleViolation::InsufficientBalance { balance: money("9.99"), price: money("10") })
        );
        assert_eq!(charge(money("9.99"), money("10"), true), Ok(money("-0.01")));
        assert_eq!(check_credit(money("0")), Err(RuleViolation::NonPositiveAmount));
        assert_eq!(check_credit(money("-1")), Err(RuleViolation::NonPositiveAmount));
        assert_eq!(check_credit(money("0.01")), Ok(()));
    }
}
