//! How values look on the wire: times as `yyyy-mm-dd hh:mm:ss` in the account's time zone,
//! money as decimal strings with 8 places (bills) or cents (balances), region names and IDs.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use respack_domain::chrono_tz::Tz;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{Money, TimeUnit};

use crate::error::ApiError;

/// `2026-11-23 18:00:00` in `zone`.
pub fn time(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Reads `yyyy-mm-dd hh:mm:ss` or `yyyy-mm-dd` (midnight) in `zone`; `name` is the parameter.
pub fn parse_time(text: &str, zone: Tz, name: &str) -> Result<DateTime<Utc>, ApiError> {
    let text = text.trim();
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|day| day.and_time(chrono::NaiveTime::MIN)))
        .map_err(|_| {
            ApiError::invalid_value(format!("{name} must be a time like 2026-11-23 18:00:00 (or a date), not {text:?}"))
        })?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| ApiError::invalid_value(format!("{name} {text:?} does not exist in the time zone {zone}")))
}

/// `12.50000000`: a bill amount with 8 decimals.
pub fn money8(amount: Money) -> String {
    let mut value = amount.amount();
    value.rescale(8);
    value.to_string()
}

/// A balance in cents as the API's float fields carry it (exact to the stored 10^-8).
pub fn cents_f64(amount: Money) -> f64 {
    let cents = amount.amount() * Decimal::ONE_HUNDRED;
    cents.to_string().parse().unwrap_or(0.0)
}

/// A decimal without trailing zeros (`12.5`, `100`).
pub fn decimal(value: Decimal) -> String {
    value.normalize().to_string()
}

/// The one-letter period unit of the renewal actions (`h`, `d`, `m`, `y`).
pub fn unit_letter(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Hour => "h",
        TimeUnit::Day => "d",
        TimeUnit::Month => "m",
        TimeUnit::Year => "y",
    }
}

/// Reads a period unit: `h`/`d`/`m`/`y` or `hour`/`day`/`month`/`year`.
pub fn parse_unit(text: &str, name: &str) -> Result<TimeUnit, ApiError> {
    match text {
        "h" | "hour" => Ok(TimeUnit::Hour),
        "d" | "day" => Ok(TimeUnit::Day),
        "m" | "month" => Ok(TimeUnit::Month),
        "y" | "year" => Ok(TimeUnit::Year),
        other => Err(ApiError::invalid_value(format!(
            "{name} must be one of h, d, m, y (hour, day, month, year), not {other:?}"
        ))),
    }
}

/// A region's numeric ID and English name; other regions get ID 0 and their code as name.
pub fn region(code: &str) -> (i64, String) {
    match respack_domain::region::find_region(code) {
        Some(region) => (region.id, region.name.to_owned()),
        None => (0, dash(code)),
    }
}

/// A zone's English name as Tencent Cloud writes it (`ap-guangzhou-3` → `Guangzhou Zone 3`);
/// a zone of another region, or not named `<region>-<n>`, keeps its code.
pub fn zone(code: &str) -> String {
    match respack_domain::region::find_zone(code) {
        Some((region, number)) => respack_domain::region::zone_name(region, number),
        None => dash(code),
    }
}

/// `-` for an empty text, as the billing API shows absent values.
pub fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_formats() {
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-23T16:30:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(time(at, shanghai), "2026-11-24 00:30:00");
        assert_eq!(parse_time("2026-11-24 00:30:00", shanghai, "T").unwrap(), at);
        assert_eq!(parse_time("2026-11-24", Tz::UTC, "T").unwrap().to_rfc3339(), "2026-11-24T00:00:00+00:00");
        assert_eq!(parse_time("tomorrow", Tz::UTC, "T").unwrap_err().code(), "InvalidParameterValue");
        assert_eq!(money8(Money::parse("12.5").unwrap()), "12.50000000");
        assert_eq!(money8(Money::parse("-0.00000231").unwrap()), "-0.00000231");
        assert!((cents_f64(Money::parse("1234.5678").unwrap()) - 123_456.78).abs() < 1e-9);
        assert_eq!(region("ap-guangzhou"), (1, "South China (Guangzhou)".to_owned()));
        assert_eq!(region("moon-1").0, 0);
        assert_eq!(region(""), (0, "-".to_owned()));
        for (code, name) in [
            ("ap-guangzhou-3", "Guangzhou Zone 3"),
            ("ap-hongkong-2", "Hong Kong Zone 2"),
            ("na-siliconvalley-1", "Silicon Valley Zone 1"),
            ("ap-guangzhou", "ap-guangzhou"),
            ("ap-guangzhou-x", "ap-guangzhou-x"),
            ("ap-guangzhou-", "ap-guangzhou-"),
            ("moon-1", "moon-1"),
            ("", "-"),
        ] {
            assert_eq!(zone(code), name, "{code}");
        }
    }
}
