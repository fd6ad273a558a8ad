//! Builders shared by the domain's unit and property tests.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::money::Money;
use crate::pack::{CapacityItem, DeductionScope, Pack, PackError, PackId, PackSpec, PaymentMode, RenewalMethod, Term};
use crate::schedule::TimeUnit;

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

pub fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn scope(pairs: &[(&str, &[&str])]) -> DeductionScope {
    DeductionScope(
        pairs
            .iter()
            .map(|(k, values)| (k.to_string(), values.iter().map(|v| v.to_string()).collect::<BTreeSet<_>>()))
            .collect(),
    )
}

pub fn pack_id() -> PackId {
    PackId::parse("rp-test").unwrap()
}

/// A pack spec with 100 minutes per item (no capacity for unlimited) at 10 per term unit;
/// period packs count their term in periods, the others in months.
pub fn spec(mode: PaymentMode, count: u32) -> PackSpec {
    let unit = match mode {
        PaymentMode::PeriodDecrement(unit) => unit,
        _ => TimeUnit::Month,
    };
    let capacity = (mode != PaymentMode::Unlimited).then(|| dec("100"));
    PackSpec {
        name: "Transcoding pack".into(),
        product: "mps".into(),
        subproduct: "mps_transcode".into(),
        region: "ap-guangzhou".into(),
        zone: "ap-guangzhou-1".into(),
        mode,
        term: Term { unit, count },
        time_zone: Tz::UTC,
        effective_at: at("2026-01-01T00:00:00Z"),
        renewal: RenewalMethod::Manual,
        auto_renew_period: None,
        unit_price: Money::parse("10").unwrap(),
        scope: DeductionScope::default(),
        items: vec![CapacityItem::new("Transcoding", "minutes", capacity)],
        tags: BTreeMap::new(),
    }
}

pub fn issue(spec: PackSpec) -> Result<Pack, PackError> {
    let purchased_at = spec.effective_at;
    Pack::issue(pack_id(), 1, spec, purchased_at)
}

pub fn period_pack(unit: TimeUnit, count: u32, effective: &str) -> Pack {
    let mut spec = spec(PaymentMode::PeriodDecrement(unit), count);
    spec.effective_at = at(effective);
    issue(spec).unwrap()
}

pub fn pack_with(mode: PaymentMode, effective: &str) -> Pack {
    let mut spec = spec(mode, 12);
    spec.effective_at = at(effective);
    issue(spec).unwrap()
}
