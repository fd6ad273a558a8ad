//! The columns of the Resource Packages table (seed: *Field Description*) and which packs each
//! applies to: some fields exist only for some payment modes, or only for auto-renewal.

use serde::{Deserialize, Serialize};

use crate::pack::{Pack, PaymentModeKind, RenewalMethod};

/// Every field of the seed's Field Description, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackField {
    NameAndId,
    Product,
    Subproduct,
    Region,
    AvailabilityZone,
    Status,
    PaymentMode,
    CapacityUnit,
    /// Remaining / total capacity of the current single period or shard.
    SinglePeriodCapacity,
    /// Start / end time of the current single period or shard.
    SinglePeriodTime,
    /// Remaining / total periods.
    Periods,
    /// Total remaining / total capacity.
    TotalCapacity,
    ComboCapacity,
    DeductionAttribute,
    EffectiveExpiration,
    PackageExpiry,
    Renewal,
    AutoRenewalPeriod,
    Operation,
}

impl PackField {
    pub const ALL: [PackField; 19] = [
        PackField::NameAndId,
        PackField::Product,
        PackField::Subproduct,
        PackField::Region,
        PackField::AvailabilityZone,
        PackField::Status,
        PackField::PaymentMode,
        PackField::CapacityUnit,
        PackField::SinglePeriodCapacity,
        PackField::SinglePeriodTime,
        PackField::Periods,
        PackField::TotalCapacity,
        PackField::ComboCapacity,
        PackField::DeductionAttribute,
        PackField::EffectiveExpiration,
        PackField::PackageExpiry,
        PackField::Renewal,
        PackField::AutoRenewalPeriod,
        PackField::Operation,
    ];

    /// The seed's column title.
    pub fn title(self) -> &'static str {
        match self {
            PackField::NameAndId => "Resource Package Name/Resource Package ID",
            PackField::Product => "Product Name",
            PackField::Subproduct => "Subproduct Name",
            PackField::Region => "Region",
            PackField::AvailabilityZone => "Availability Zone",
            PackField::Status => "Status",
            PackField::PaymentMode => "Payment mode",
            PackField::CapacityUnit => "Capacity Unit",
            PackField::SinglePeriodCapacity => "Remaining Capacity/Total Capacity of Single Period",
            PackField::SinglePeriodTime => "Start/End Time of Single Period",
            PackField::Periods => "Remaining/Total Periods",
            PackField::TotalCapacity => "Total Remaining Capacity/Total Capacity",
            PackField::ComboCapacity => "Combo Package Capacity Info",
            PackField::DeductionAttribute => "Dynamic Deduction Attribute",
            PackField::EffectiveExpiration => "Effective/Expiration Time",
            PackField::PackageExpiry => "Package Expiry Time",
            PackField::Renewal => "Renewal Method",
            PackField::AutoRenewalPeriod => "Auto-renewal period",
            PackField::Operation => "Operation",
        }
    }

    /// Whether the field has a value for packs of this payment mode (seed: "only shown for …").
    pub fn applies_to_mode(self, mode: PaymentModeKind) -> bool {
        use PaymentModeKind::*;
        match self {
            PackField::SinglePeriodCapacity | PackField::SinglePeriodTime => {
                matches!(mode, PeriodDecrement | ShardDecrement)
            }
            PackField::Periods => mode == PeriodDecrement,
            PackField::TotalCapacity => matches!(mode, PeriodDecrement | TotalDecrement),
            _ => true,
        }
    }

    /// Whether the field has a value for this pack: its mode, its renewal method (the
    /// auto-renewal period exists only for automatic renewal) and whether it is a combo.
    pub fn applies_to(self, pack: &Pack) -> bool {
        match self {
            PackField::AutoRenewalPeriod => pack.renewal == RenewalMethod::Auto,
            PackField::ComboCapacity => pack.items.len() > 1,
            _ => self.applies_to_mode(pack.mode.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{CapacityItem, PaymentMode};
    use crate::schedule::TimeUnit;
    use crate::test_support::*;
    use PackField::*;
    use PaymentModeKind::*;

    #[test]
    fn mode_specific_fields_follow_the_seed() {
        // (field, total, period, shard, unlimited)
        let table = [
            (SinglePeriodCapacity, false, true, true, false),
            (SinglePeriodTime, false, true, true, false),
            (Periods, false, true, false, false),
            (TotalCapacity, true, true, false, false),
            (Status, true, true, true, true),
            (CapacityUnit, true, true, true, true),
        ];
        for (field, total, period, shard, unlimited) in table {
            assert_eq!(field.applies_to_mode(TotalDecrement), total, "{field:?}");
            assert_eq!(field.applies_to_mode(PeriodDecrement), period, "{field:?}");
            assert_eq!(field.applies_to_mode(ShardDecrement), shard, "{field:?}");
            assert_eq!(field.applies_to_mode(Unlimited), unlimited, "{field:?}");
        }
    }

    #[test]
    fn auto_renewal_period_and_combo_info_depend_on_the_pack() {
        let mut pack = period_pack(TimeUnit::Month, 12, "2026-01-01T00:00:00Z");
        assert!(!AutoRenewalPeriod.applies_to(&pack));
        pack.renewal = RenewalMethod::Auto;
        assert!(AutoRenewalPeriod.applies_to(&pack));
        assert!(!ComboCapacity.applies_to(&pack));
        pack.items.push(CapacityItem::new("TSC", "minutes", Some(dec("5"))));
        assert!(ComboCapacity.applies_to(&pack));
        let unlimited = pack_with(PaymentMode::Unlimited, "2026-01-01T00:00:00Z");
        assert!(!TotalCapacity.applies_to(&unlimited));
    }

    #[test]
    fn every_field_has_the_seed_title() {
        assert_eq!(PackField::ALL.len(), 19);
        assert_eq!(NameAndId.title(), "Resource Package Name/Resource Package ID");
        assert_eq!(AutoRenewalPeriod.title(), "Auto-renewal period");
        let titles: std::collections::HashSet<_> = PackField::ALL.iter().map(|f| f.title()).collect();
        assert_eq!(titles.len(), 19);
    }
}
