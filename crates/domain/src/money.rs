//! Money and quantities: exact decimals, never floats, and their fixed-point storage form.
//!
//! Amounts are `rust_decimal::Decimal`. The store keeps them as integers of a fixed scale
//! (money in 10^-8 of a currency unit, the precision of Tencent's bill amounts; quantities in
//! 10^-6 of a capacity unit) so that both SQLite and PostgreSQL do exact integer arithmetic.

use std::fmt;
use std::ops::{Add, Mul, Neg, Sub};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Decimal places kept for money (bill amounts carry 8 in the Tencent API).
pub const MONEY_SCALE: u32 = 8;
/// Decimal places kept for usage quantities and capacities.
pub const QUANTITY_SCALE: u32 = 6;

/// Why a decimal cannot be kept exactly at a fixed scale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrecisionError {
    #[error("{value} has more than {scale} decimal places; round it before sending")]
    TooPrecise { value: Decimal, scale: u32 },
    #[error("{value} is too large to store")]
    Overflow { value: Decimal },
}

/// Converts `value` to an integer count of `10^-scale`, refusing to round.
pub fn to_fixed(value: Decimal, scale: u32) -> Result<i64, PrecisionError> {
    let normalized = value.normalize();
    if normalized.scale() > scale {
        return Err(PrecisionError::TooPrecise { value, scale });
    }
    let factor = Decimal::from(10_i64.pow(scale));
    let scaled = normalized.checked_mul(factor).ok_or(PrecisionError::Overflow { value })?;
    i64::try_from(scaled).map_err(|_| PrecisionError::Overflow { value })
}

/// The inverse of [`to_fixed`].
pub fn from_fixed(units: i64, scale: u32) -> Decimal {
    Decimal::new(units, scale).normalize()
}

/// An amount of money in the account's currency. May be negative (a refund, a debit in the
/// ledger); whether a negative amount is allowed is a rule of the operation, not of the type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Builds money from a decimal, refusing more precision than the store keeps.
    pub fn new(amount: Decimal) -> Result<Money, PrecisionError> {
        to_fixed(amount, MONEY_SCALE)?;
        Ok(Money(amount.normalize()))
    }

    /// Parses `"12.50"`-style text.
    pub fn parse(text: &str) -> Result<Money, MoneyParseError> {
        let amount: Decimal = text.trim().parse().map_err(|_| MoneyParseError::NotANumber(text.to_owned()))?;
        Money::new(amount).map_err(MoneyParseError::Precision)
    }

    pub fn from_fixed(units: i64) -> Money {
        Money(from_fixed(units, MONEY_SCALE))
    }

    /// The store's integer form; total because every `Money` was checked on construction,
    /// except for sums that overflow 92 billion units.
    pub fn to_fixed(self) -> Result<i64, PrecisionError> {
        to_fixed(self.0, MONEY_SCALE)
    }

    pub fn amount(self) -> Decimal {
        self.0
    }

    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    /// Whole cents, rounded half away from zero (the Tencent API speaks cents for balances).
    pub fn to_cents(self) -> i64 {
        let cents = (self.0 * Decimal::ONE_HUNDRED)
            .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        i64::try_from(cents).unwrap_or(if cents.is_sign_negative() { i64::MIN } else { i64::MAX })
    }

    /// Price of `count` units at this unit price, rounded to the stored precision.
    pub fn times(self, count: Decimal) -> Money {
        Money(
            (self.0 * count)
                .round_dp_with_strategy(MONEY_SCALE, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                .normalize(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyParseError {
    #[error("{0:?} is not an amount of money; write it like 12.50")]
    NotANumber(String),
    #[error(transparent)]
    Precision(PrecisionError),
}

impl fmt::Display for Money {
    /// Two decimals at least, more when the amount has them (`12.50`, `0.00000231`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.normalize();
        if shown.scale() < 2 {
            shown.rescale(2);
        }
        write!(f, "{shown}")
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0 + rhs.0)
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0 - rhs.0)
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl Mul<u32> for Money {
    type Output = Money;
    fn mul(self, rhs: u32) -> Money {
        Money(self.0 * Decimal::from(rhs))
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn fixed_point_round_trips_exactly() {
        for (text, scale, units) in [
            ("0", MONEY_SCALE, 0),
            ("12.5", MONEY_SCALE, 1_250_000_000),
            ("0.00000231", MONEY_SCALE, 231),
            ("-3.1", MONEY_SCALE, -310_000_000),
            ("1.000000", QUANTITY_SCALE, 1_000_000),
            ("0.000001", QUANTITY_SCALE, 1),
        ] {
            assert_eq!(to_fixed(d(text), scale), Ok(units), "{text}");
            assert_eq!(from_fixed(units, scale), d(text).normalize(), "{text}");
        }
    }

    #[test]
    fn fixed_point_refuses_to_round_or_overflow() {
        assert!(matches!(to_fixed(d("0.0000001"), QUANTITY_SCALE), Err(PrecisionError::TooPrecise { .. })));
        assert!(matches!(to_fixed(d("100000000000000"), MONEY_SCALE), Err(PrecisionError::Overflow { .. })));
    }

    #[test]
    fn money_parses_displays_and_converts_to_cents() {
        assert_eq!(Money::parse(" 12.5 ").unwrap().to_string(), "12.50");
        assert_eq!(Money::parse("0.00000231").unwrap().to_string(), "0.00000231");
        assert_eq!(Money::parse("7").unwrap().to_cents(), 700);
        assert_eq!(Money::parse("0.005").unwrap().to_cents(), 1);
        assert_eq!(Money::parse("-0.005").unwrap().to_cents(), -1);
        assert!(matches!(Money::parse("ten"), Err(MoneyParseError::NotANumber(_))));
        assert!(matches!(Money::parse("0.000000001"), Err(MoneyParseError::Precision(_))));
    }

    #[test]
    fn money_arithmetic_is_exact() {
        let price = Money::parse("0.1").unwrap();
        let total: Money = std::iter::repeat_n(price, 10).sum();
        assert_eq!(total, Money::parse("1").unwrap());
        assert_eq!(price * 3, Money::parse("0.3").unwrap());
        assert_eq!(Money::parse("9.99").unwrap().times(d("3")), Money::parse("29.97").unwrap());
        assert!((Money::ZERO - price).is_negative());
        assert!(!Money::ZERO.is_negative());
    }
}
