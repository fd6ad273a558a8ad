//! What the passing of time asks of a pack — the rules behind respackd's sweep: which notice
//! is due (expiring soon, renewal balance warning), which capacity threshold was crossed, and
//! the next instant anything changes, so the daemon only ever looks at due packs.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use crate::pack::{CapacityItem, Pack, RenewalMethod};
use crate::status::Lifecycle;

/// "Expiring soon" notices for packs renewed by hand or not at all: days before expiration.
pub const EXPIRY_NOTICE_DAYS: [i64; 2] = [7, 1];
/// Warnings for auto-renewing packs whose balance would not cover the renewal.
pub const RENEWAL_WARNING_DAYS: [i64; 3] = [7, 3, 1];
/// Remaining-capacity alert thresholds (percent) when an account sets none.
pub const DEFAULT_THRESHOLDS: [u8; 2] = [20, 10];

/// The notice days that apply to a pack's renewal method.
pub fn notice_days(renewal: RenewalMethod) -> &'static [i64] {
    match renewal {
        RenewalMethod::Auto => &RENEWAL_WARNING_DAYS,
        RenewalMethod::Manual | RenewalMethod::NotRenew => &EXPIRY_NOTICE_DAYS,
    }
}

/// The notice due at `now` for a live pack: the fewest days `d` with
/// `expires_at - d ≤ now < expires_at`. After downtime only the latest applies (a pack a day
/// from expiry gets the 1-day notice, not the 7- and 3-day ones too). Notices that fell due
/// before the pack became effective are not sent.
pub fn due_notice_days(pack: &Pack, now: DateTime<Utc>) -> Option<i64> {
    if pack.lifecycle.is_final() || now >= pack.expires_at || now < pack.effective_at {
        return None;
    }
    notice_days(pack.renewal).iter().copied().filter(|days| pack.expires_at - Duration::days(*days) <= now).min()
}

/// The next instant after `now` at which time changes something for the pack (activation, a
/// cycle boundary, a notice, expiration); `None` when its lifecycle has ended.
pub fn next_upkeep_at(pack: &Pack, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if pack.lifecycle.is_final() {
        return None;
    }
    let mut candidates = vec![pack.expires_at];
    if pack.lifecycle == Lifecycle::Inactive {
        candidates.push(pack.effective_at);
    }
    if let Some(cycle) = pack.cycle_at(now) {
        candidates.push(cycle.end);
    }
    candidates.extend(notice_days(pack.renewal).iter().map(|days| pack.expires_at - Duration::days(*days)));
    candidates.into_iter().filter(|at| *at > now).min().or(Some(pack.expires_at))
}

/// The lowest of `thresholds` (percent) that an item's remaining capacity is strictly below,
/// if any: the one alert worth sending now (a later, lower crossing gets its own).
pub fn crossed_threshold(item: &CapacityItem, thresholds: &[u8]) -> Option<u8> {
    let capacity = item.capacity?;
    if capacity <= Decimal::ZERO {
        return None;
    }
    let percent_left = item.remaining * Decimal::from(100) / capacity;
    thresholds.iter().copied().filter(|threshold| percent_left < Decimal::from(*threshold)).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::TimeUnit;
    use crate::test_support::*;

    #[test]
    fn notices_follow_the_renewal_method_and_only_the_latest_is_due() {
        let mut pack = period_pack(TimeUnit::Month, 1, "2026-05-01T00:00:00Z");
        pack.lifecycle = Lifecycle::Valid;
        assert_eq!(pack.expires_at, at("2026-06-01T00:00:00Z"));
        let cases = [
            (RenewalMethod::Manual, "2026-05-24T23:59:59Z", None),
            (RenewalMethod::Manual, "2026-05-25T00:00:00Z", Some(7)),
            (RenewalMethod::Manual, "2026-05-29T00:00:00Z", Some(7)),
            (RenewalMethod::Manual, "2026-05-31T00:00:00Z", Some(1)),
            (RenewalMethod::Manual, "2026-06-01T00:00:00Z", None),
            (RenewalMethod::Auto, "2026-05-29T00:00:00Z", Some(3)),
            (RenewalMethod::Auto, "2026-05-31T12:00:00Z", Some(1)),
            (RenewalMethod::NotRenew, "2026-05-26T00:00:00Z", Some(7)),
        ];
        for (renewal, now, due) in cases {
            pack.renewal = renewal;
            assert_eq!(due_notice_days(&pack, at(now)), due, "{renewal:?} at {now}");
        }
    }

    #[test]
    fn next_upkeep_is_the_nearest_event() {
        let mut pack = period_pack(TimeUnit::Day, 30, "2026-05-01T00:00:00Z");
        assert_eq!(next_upkeep_at(&pack, at("2026-04-01T00:00:00Z")), Some(at("2026-05-01T00:00:00Z")));
        pack.lifecycle = Lifecycle::Valid;
        assert_eq!(next_upkeep_at(&pack, at("2026-05-03T10:00:00Z")), Some(at("2026-05-04T00:00:00Z")));
        // Past the last cycle boundary, the 1-day notice and then expiration remain.
        assert_eq!(next_upkeep_at(&pack, at("2026-05-30T00:00:00Z")), Some(at("2026-05-31T00:00:00Z")));
        pack.lifecycle = Lifecycle::Expired;
        assert_eq!(next_upkeep_at(&pack, at("2026-06-30T00:00:00Z")), None);
    }

    #[test]
    fn thresholds_report_the_lowest_crossed() {
        let mut item = CapacityItem::new("x", "minutes", Some(dec("100")));
        let table =
            [("100", None), ("20", None), ("19.5", Some(20)), ("10", Some(20)), ("9", Some(10)), ("0", Some(10))];
        for (remaining, crossed) in table {
            item.remaining = dec(remaining);
            assert_eq!(crossed_threshold(&item, &[20, 10]), crossed, "{remaining}");
        }
        assert_eq!(crossed_threshold(&CapacityItem::new("u", "minutes", None), &[20]), None);
    }
}
