//! What the crate's unit tests share.

use chrono::{DateTime, Utc};
use respack_domain::{CapacityItem, DeductionScope, Money, PackSpec, PaymentMode, RenewalMethod, Term, TimeUnit};

/// A pack of 100 minutes of MPS general transcoding a month for `months` months, manually
/// renewed, at `unit_price` a month.
pub(crate) fn monthly_mps_spec(name: &str, months: u32, unit_price: &str, effective_at: DateTime<Utc>) -> PackSpec {
    PackSpec {
        name: name.into(),
        product: "p_mps".into(),
        subproduct: "sp_mps_general_transcoding".into(),
        region: "ap-guangzhou".into(),
        zone: "".into(),
        mode: PaymentMode::PeriodDecrement(TimeUnit::Month),
        term: Term { unit: TimeUnit::Month, count: months },
        time_zone: chrono_tz::Tz::UTC,
        effective_at,
        renewal: RenewalMethod::Manual,
        auto_renew_period: None,
        unit_price: Money::parse(unit_price).expect("a test's price parses"),
        scope: DeductionScope::default(),
        items: vec![CapacityItem::new("General", "minutes", Some(100.into()))],
        tags: Default::default(),
    }
}
