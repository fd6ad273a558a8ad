//! The wire format of `POST /v1/usage`: the JSON records a metering system sends, turned into
//! `UsageInput`s, and the outcomes sent back. Quantities and money travel as decimal strings so
//! no float ever touches them.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use respack_domain::rust_decimal::Decimal;
use respack_store::{UsageInput, UsageOutcome};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::MeteringError;

/// One record as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageRecordJson {
    /// The UIN of the account the usage belongs to; defaults to the API key's account. Only an
    /// operator's key may name another account.
    #[serde(default)]
    account: Option<String>,
    idempotency_key: String,
    product: String,
    subproduct: String,
    #[serde(default)]
    usage_type: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    attributes: Option<BTreeMap<String, String>>,
    quantity: Quantity,
    occurred_at: Rfc3339,
}

/// A quantity written as a decimal string (`"12.5"`) or a JSON number (`12.5`), taken from the
/// number's exact text, never through a float.
#[derive(Debug)]
struct Quantity(Decimal);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Quantity, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let raw = raw.get();
        if raw.starts_with('"') {
            let text: String = serde_json::from_str(raw).map_err(D::Error::custom)?;
            parse_decimal_text(&text).map(Quantity).map_err(D::Error::custom)
        } else if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            parse_json_number(raw).map(Quantity).map_err(D::Error::custom)
        } else {
            Err(D::Error::custom(format_args!(
                "quantity must be a decimal string like \"12.5\" or a number, not {}",
                raw.chars().take(20).collect::<String>()
            )))
        }
    }
}

/// `"12.5"`, `"-3"`, `"7"`: a plain decimal, no exponent, no spaces, no digit separators.
fn parse_decimal_text(text: &str) -> Result<Decimal, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    let plain = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !plain(whole) || !plain(fraction) {
        return Err(format!("quantity {text:?} is not a decimal number; write it like \"12.5\""));
    }
    Decimal::from_str_exact(text).map_err(|error| format!("quantity {text:?} cannot be kept exactly ({error})"))
}

/// A JSON number's own text (`12.5`, `1e3`, `2.5E-2`), converted exactly.
fn parse_json_number(text: &str) -> Result<Decimal, String> {
    let parsed = if text.contains(['e', 'E']) { Decimal::from_scientific(text) } else { Decimal::from_str_exact(text) };
    parsed.map_err(|error| format!("quantity {text} cannot be kept exactly ({error}); send it as a decimal string"))
}

/// An RFC 3339 instant with any offset, kept in UTC.
#[derive(Debug)]
struct Rfc3339(DateTime<Utc>);

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rfc3339, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text).map(|at| Rfc3339(at.with_timezone(&Utc))).map_err(|error| {
            D::Error::custom(format_args!(
                "occurred_at {text:?} is not an RFC 3339 time like \"2026-11-23T10:00:00Z\" ({error})"
            ))
        })
    }
}

/// One parsed record: the account UIN it names (if any) and the usage.
#[derive(Debug)]
pub(super) struct ParsedRecord {
    pub account: Option<String>,
    pub input: UsageInput,
}

impl From<UsageRecordJson> for ParsedRecord {
    fn from(record: UsageRecordJson) -> ParsedRecord {
        ParsedRecord { account: record.account.clone(), input: UsageInput::from(record) }
    }
}

impl From<UsageRecordJson> for UsageInput {
    fn from(record: UsageRecordJson) -> UsageInput {
        UsageInput {
            idempotency_key: record.idempotency_key,
            product: record.product,
            subproduct: record.subproduct,
            usage_type: record.usage_type,
            unit: record.unit,
            attributes: record.attributes.unwrap_or_default(),
            quantity: record.quantity.0,
            occurred_at: record.occurred_at.0,
        }
    }
}

/// Parses a request body; errors name the record and field (`[2].quantity`) and the line and
/// column where parsing stopped.
pub(super) fn parse_batch(body: &[u8]) -> Result<Vec<ParsedRecord>, MeteringError> {
    let malformed = |path: String, error: serde_json::Error| {
        // A key the parser never finished reading shows as `?`; leave it out.
        let path = path.trim_end_matches(".?").trim_start_matches('?');
        MeteringError::MalformedJson(match path {
            "" | "." => error.to_string(),
            path => format!("at {path}: {error}"),
        })
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let records: Vec<UsageRecordJson> = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        malformed(path, error.into_inner())
    })?;
    deserializer.end().map_err(|error| malformed(".".into(), error))?;
    Ok(records.into_iter().map(ParsedRecord::from).collect())
}

/// The 200 answer: one outcome per record, in the order sent.
#[derive(Debug, Serialize)]
pub(crate) struct RecordedBatch {
    records: Vec<RecordedUsage>,
}

#[derive(Debug, Serialize)]
struct RecordedUsage {
    idempotency_key: String,
    usage_record_id: i64,
    deducted: DecimalText,
    overage: DecimalText,
    /// Money's own text: at least two decimals (`"0.00"`, `"0.15375"`).
    overage_cost: String,
    replayed: bool,
}

/// A decimal serialized as its shortest exact text (`"10"`, `"2.5"`).
#[derive(Debug)]
struct DecimalText(Decimal);

impl Serialize for DecimalText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self)
    }
}

impl fmt::Display for DecimalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.normalize())
    }
}

impl From<Vec<UsageOutcome>> for RecordedBatch {
    fn from(outcomes: Vec<UsageOutcome>) -> RecordedBatch {
        let records = outcomes
            .into_iter()
            .map(|outcome| RecordedUsage {
                idempotency_key: outcome.idempotency_key,
                usage_record_id: outcome.usage_record_id,
                deducted: DecimalText(outcome.deducted),
                overage: DecimalText(outcome.overage),
                overage_cost: outcome.overage_cost.to_string(),
                replayed: outcome.replayed,
            })
            .collect();
        RecordedBatch { records }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn record(quantity: &str) -> String {
        format!(
            r#"[{{"idempotency_key": "k", "product": "p_mps", "subproduct": "sp_mps_general_transcoding",
                "quantity": {quantity}, "occurred_at": "2026-11-23T18:00:00+08:00"}}]"#
        )
    }

    fn quantity_of(json: &str) -> Result<Decimal, String> {
        match parse_batch(record(json).as_bytes()) {
            Ok(inputs) => Ok(inputs[0].input.quantity),
            Err(error) => Err(error.to_string()),
        }
    }

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn quantities_are_taken_exactly_from_strings_and_numbers() {
        let cases = [
            (r#""12.5""#, "12.5"),
            (r#""0.000001""#, "0.000001"),
            (r#""-3""#, "-3"),
            ("12.5", "12.5"),
            ("0.1", "0.1"),
            ("7", "7"),
            ("-2", "-2"),
            ("1e3", "1000"),
            ("2.5E-2", "0.025"),
            // More digits than an f64 holds: kept exactly, and the store decides.
            ("0.30000000000000001", "0.30000000000000001"),
        ];
        for (json, expected) in cases {
            assert_eq!(quantity_of(json), Ok(dec(expected)), "{json}");
        }
    }

    #[test]
    fn bad_quantities_name_the_field_and_say_how_to_write_it() {
        for json in [r#""abc""#, r#""1e3""#, r#"" 1""#, r#""1_000""#, r#""""#, r#"".5""#, "true", "null", "[1]"] {
            let error = quantity_of(json).unwrap_err();
            assert!(error.contains("[0].quantity") && error.contains("12.5"), "{json}: {error}");
        }
    }

    #[test]
    fn times_take_any_offset_and_become_utc() {
        let inputs = parse_batch(record("1").as_bytes()).unwrap();
        assert_eq!(inputs[0].input.occurred_at.to_rfc3339(), "2026-11-23T10:00:00+00:00");
        let bad = record("1").replace("2026-11-23T18:00:00+08:00", "2026-11-23 18:00");
        let error = parse_batch(bad.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("[0].occurred_at") && error.contains("RFC 3339"), "{error}");
    }

    #[test]
    fn structural_errors_say_where_and_what_was_expected() {
        let error = |body: &str| parse_batch(body.as_bytes()).unwrap_err().to_string();
        let not_array = error(r#"{"idempotency_key": "k"}"#);
        assert!(not_array.contains("expected a sequence") && not_array.contains("line 1 column"), "{not_array}");
        let unknown = error(&record("1").replace(r#""quantity""#, r#""account_id": 2, "quantity""#));
        assert!(unknown.contains("unknown field `account_id`") && unknown.contains("[0]"), "{unknown}");
        let missing = error(&record("1").replace(r#""product": "p_mps", "#, ""));
        assert!(missing.contains("missing field `product`"), "{missing}");
        let truncated = error(&record("1")[..40]);
        assert!(truncated.contains("EOF while parsing") && !truncated.contains('?'), "{truncated}");
        let cut_after_a_value = error(&record("1").replace("}]", ""));
        assert!(cut_after_a_value.contains("at [0]: EOF while parsing an object"), "{cut_after_a_value}");
        let trailing = error(&format!("{} []", record("1")));
        assert!(trailing.contains("trailing characters"), "{trailing}");
    }

    #[test]
    fn optional_fields_default() {
        let inputs = parse_batch(record("1").as_bytes()).unwrap();
        assert_eq!((inputs[0].input.usage_type.as_deref(), inputs[0].input.unit.as_deref()), (None, None));
        assert!(inputs[0].input.attributes.is_empty());
        assert!(parse_batch(b"[]").unwrap().is_empty());
    }
}
