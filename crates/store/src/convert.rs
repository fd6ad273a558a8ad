//! Conversions between stored columns and domain values: instants as Unix milliseconds,
//! money and quantities as fixed-point integers, enums as their text names.

use chrono::{DateTime, TimeZone, Utc};
use respack_domain::money::{from_fixed, to_fixed, QUANTITY_SCALE};
use respack_domain::rust_decimal::Decimal;
use respack_domain::Money;

use crate::error::{StoreError, StoreResult};

pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn instant(millis: i64) -> StoreResult<DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("{millis} is not a valid instant")))
}

pub(crate) fn money(units: i64) -> Money {
    Money::from_fixed(units)
}

pub(crate) fn money_units(amount: Money) -> StoreResult<i64> {
    Ok(amount.to_fixed()?)
}

pub(crate) fn quantity(units: i64) -> Decimal {
    from_fixed(units, QUANTITY_SCALE)
}

pub(crate) fn quantity_units(amount: Decimal) -> StoreResult<i64> {
    Ok(to_fixed(amount, QUANTITY_SCALE)?)
}

/// Parses a stored enum name, reporting corrupt data rather than panicking.
pub(crate) fn parse_stored<T>(text: &str, what: &str, parse: impl Fn(&str) -> Option<T>) -> StoreResult<T> {
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown {what} {text:?}")))
}
