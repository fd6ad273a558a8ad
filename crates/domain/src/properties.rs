//! Property tests for the invariants billing depends on: cycle math agrees with replay and
//! tiles time, plans conserve quantity and never overdraw, totals add up.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use rust_decimal::Decimal;

use crate::deduction::{apply_plan, plan_deduction, UsageRecord};
use crate::money::{from_fixed, to_fixed, MONEY_SCALE};
use crate::pack::{CapacityItem, Pack, PackId, PaymentMode};
use crate::schedule::{Anchor, TimeUnit};
use crate::test_support::{attrs, spec};

const ZONES: [&str; 6] =
    ["UTC", "America/New_York", "Europe/Berlin", "Asia/Shanghai", "Australia/Lord_Howe", "America/St_Johns"];

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(ZONES.to_vec()).prop_map(|name| name.parse::<Tz>().unwrap())
}

/// Instants between 2019 and 2031, to the second.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (1_546_300_800_i64..1_924_992_000).prop_map(|secs| Utc.timestamp_opt(secs, 0).unwrap())
}

fn unit() -> impl Strategy<Value = TimeUnit> {
    prop::sample::select(TimeUnit::ALL.to_vec())
}

/// The reference: walk step by step from the anchor until the step containing `at`.
fn replay_index(anchor: &Anchor, unit: TimeUnit, at: DateTime<Utc>) -> i64 {
    let mut index = 0;
    if at >= anchor.at {
        while anchor.boundary(unit, index + 1) <= at {
            index += 1;
        }
    } else {
        while anchor.boundary(unit, index) > at {
            index -= 1;
        }
    }
    index
}

fn quantity() -> impl Strategy<Value = Decimal> {
    (1_i64..5_000_000).prop_map(|units| Decimal::new(units, 3))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cycle_at_equals_replay(zone in zone(), anchor in instant(), offset_hours in -2_000_i64..20_000, unit in unit()) {
        let anchor = Anchor::new(anchor, zone);
        // Keep replay short for fine units.
        let span = match unit { TimeUnit::Hour => offset_hours / 20, TimeUnit::Day => offset_hours, _ => offset_hours * 5 };
        let at = anchor.at + Duration::hours(span) + Duration::minutes(17);
        prop_assert_eq!(anchor.index_at(unit, at), replay_index(&anchor, unit, at));
    }

    #[test]
    fn cycles_tile_time_without_gap_or_overlap(zone in zone(), anchor in instant(), unit in unit(), first in -30_i64..200) {
        let anchor = Anchor::new(anchor, zone);
        for index in first..first + 40 {
            let cycle = anchor.cycle(unit, index);
            let next = anchor.cycle(unit, index + 1);
            prop_assert!(cycle.start < cycle.end, "empty cycle {index}");
            prop_assert_eq!(cycle.end, next.start);
            prop_assert_eq!(anchor.cycle_at(unit, cycle.start).index, index);
            prop_assert_eq!(anchor.cycle_at(unit, cycle.end - Duration::milliseconds(1)).index, index);
        }
    }

    #[test]
    fn plans_conserve_quantity_and_never_overdraw(
        capacities in prop::collection::vec((1_i64..2_000_000, 0_usize..4, any::<bool>()), 0..6),
        quantities in prop::collection::vec(quantity(), 1..20),
        day_offsets in prop::collection::vec(0_i64..40, 20),
    ) {
        let mut packs: Vec<Pack> = capacities.iter().enumerate().map(|(n, (cap, mode, frozen))| {
            let mode = [
                PaymentMode::TotalDecrement,
                PaymentMode::PeriodDecrement(TimeUnit::Day),
                PaymentMode::ShardDecrement(TimeUnit::Day),
                PaymentMode::Unlimited,
            ][*mode];
            let mut spec = spec(mode, if matches!(mode, PaymentMode::PeriodDecrement(_)) { 30 } else { 1 });
            if let Some(item) = spec.items.first_mut().filter(|item| item.capacity.is_some()) {
                *item = CapacityItem::new("Transcoding", "minutes", Some(Decimal::new(*cap, 3)));
            }
            let mut pack = Pack::issue(PackId::from_random(n as u64), 1, spec, crate::test_support::at("2026-01-01T00:00:00Z")).unwrap();
            pack.frozen = *frozen && n % 2 == 0;
            pack
        }).collect();

        for (n, quantity) in quantities.iter().enumerate() {
            let record = UsageRecord {
                account_id: 1,
                product: "mps".into(),
                subproduct: "mps_transcode".into(),
                usage_type: None,
                unit: "minutes".into(),
                attributes: attrs(&[]),
                quantity: *quantity,
                occurred_at: crate::test_support::at("2026-01-01T00:00:00Z") + Duration::days(day_offsets[n]) + Duration::minutes(n as i64),
            };
            let plan = plan_deduction(&record, &packs);
            prop_assert_eq!(plan.deducted() + plan.overage, *quantity);
            prop_assert!(plan.overage >= Decimal::ZERO);
            for line in &plan.deductions {
                prop_assert!(line.amount > Decimal::ZERO);
                if let (Some(before), Some(after)) = (line.before, line.after) {
                    prop_assert!(after >= Decimal::ZERO);
                    prop_assert_eq!(before - line.amount, after);
                }
            }
            apply_plan(&plan, &mut packs, record.occurred_at);
            for pack in &packs {
                for item in &pack.items {
                    prop_assert!(item.remaining >= Decimal::ZERO);
                    if let Some(capacity) = item.capacity {
                        prop_assert!(item.remaining <= capacity);
                    }
                }
            }
        }
    }

    #[test]
    fn total_remaining_is_current_plus_future_periods(
        periods in 1_u32..24,
        used in 0_i64..100,
        used_cycle in 0_i64..24,
        hours in 0_i64..(24 * 31 * 25),
        zone in zone(),
    ) {
        let mut spec = spec(PaymentMode::PeriodDecrement(TimeUnit::Month), periods);
        spec.time_zone = zone;
        let mut pack = Pack::issue(PackId::from_random(1), 1, spec, crate::test_support::at("2026-01-01T00:00:00Z")).unwrap();
        let item = &mut pack.items[0];
        item.cycle_index = used_cycle.min(i64::from(periods) - 1);
        item.remaining = Decimal::from(100 - used);
        let item = pack.items[0].clone();
        let now = pack.effective_at + Duration::hours(hours);
        let capacity = item.capacity.unwrap();
        let (total_remaining, total) = pack.total_remaining_at(&item, now).unwrap();
        prop_assert_eq!(total, capacity * Decimal::from(periods));
        let current = pack.remaining_at(&item, now).unwrap();
        let (left, _) = pack.periods_at(now).unwrap();
        let future = Decimal::from(left.saturating_sub(1));
        prop_assert_eq!(total_remaining, current + capacity * future);
        prop_assert!(total_remaining <= total);
    }

    #[test]
    fn money_survives_the_store(units in any::<i64>()) {
        prop_assert_eq!(to_fixed(from_fixed(units, MONEY_SCALE), MONEY_SCALE), Ok(units));
    }
}
