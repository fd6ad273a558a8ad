//! Calendar steps anchored on an instant in a time zone: the math behind validity terms,
//! period cycles and shard cycles.
//!
//! Step `k` of a schedule starts at the anchor's local wall time moved forward by `k` units:
//! hours are exact 3600 s steps (DST never stretches an hourly cycle); days and months keep the
//! anchor's wall-clock time in the pack's zone; months anchored on the 29th–31st clamp to the
//! last day of shorter months (Jan 31 → Feb 28/29 → Mar 31: always from the anchor, never
//! chained). A wall time that falls into a DST gap moves to the first valid time after it; an
//! ambiguous one takes the earlier instant. The step containing an instant is computed in O(1),
//! never by replaying steps.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The unit a schedule steps by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    Hour,
    Day,
    Month,
    Year,
}

impl TimeUnit {
    pub const ALL: [TimeUnit; 4] = [TimeUnit::Hour, TimeUnit::Day, TimeUnit::Month, TimeUnit::Year];

    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Hour => "hour",
            TimeUnit::Day => "day",
            TimeUnit::Month => "month",
            TimeUnit::Year => "year",
        }
    }

    pub fn parse(text: &str) -> Option<TimeUnit> {
        TimeUnit::ALL.into_iter().find(|unit| unit.as_str() == text)
    }
}

/// Where a schedule starts: an instant and the zone whose calendar it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub at: DateTime<Utc>,
    pub zone: Tz,
}

/// One step of a schedule: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cycle {
    /// 0 for the step that starts at the anchor.
    pub index: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Cycle {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }
}

impl Anchor {
    pub fn new(at: DateTime<Utc>, zone: Tz) -> Anchor {
        Anchor { at, zone }
    }

    /// The instant where step `index` starts (`index` may be negative: steps before the anchor).
    pub fn boundary(&self, unit: TimeUnit, index: i64) -> DateTime<Utc> {
        match unit {
            TimeUnit::Hour => self.at + Duration::hours(index),
            TimeUnit::Day => {
                let local = self.local();
                let day = local.date() + Duration::days(index);
                self.resolve(day.and_time(local.time()))
            }
            TimeUnit::Month => self.month_boundary(index),
            TimeUnit::Year => self.month_boundary(index.saturating_mul(12)),
        }
    }

    /// The step containing `at`: `boundary(i) <= at < boundary(i + 1)`.
    pub fn cycle_at(&self, unit: TimeUnit, at: DateTime<Utc>) -> Cycle {
        let index = self.index_at(unit, at);
        self.cycle(unit, index)
    }

    pub fn cycle(&self, unit: TimeUnit, index: i64) -> Cycle {
        Cycle { index, start: self.boundary(unit, index), end: self.boundary(unit, index + 1) }
    }

    /// Index of the step containing `at`, in O(1): an estimate from the calendar, then at most
    /// a couple of corrections for wall times shifted by DST or month-end clamping.
    pub fn index_at(&self, unit: TimeUnit, at: DateTime<Utc>) -> i64 {
        let mut index = match unit {
            TimeUnit::Hour => {
                return (at - self.at).num_milliseconds().div_euclid(3_600_000);
            }
            TimeUnit::Day => {
                let local_at = at.with_timezone(&self.zone).date_naive();
                (local_at - self.local().date()).num_days()
            }
            TimeUnit::Month | TimeUnit::Year => {
                let local_at = at.with_timezone(&self.zone).date_naive();
                let anchor = self.local().date();
                let months = month_number(local_at) - month_number(anchor);
                if unit == TimeUnit::Year {
                    months.div_euclid(12)
                } else {
                    months
                }
            }
        };
        while self.boundary(unit, index) > at {
            index -= 1;
        }
        while self.boundary(unit, index + 1) <= at {
            index += 1;
        }
        index
    }

    fn local(&self) -> NaiveDateTime {
        self.at.with_timezone(&self.zone).naive_local()
    }

    fn month_boundary(&self, index: i64) -> DateTime<Utc> {
        let local = self.local();
        let month = month_number(local.date()) + index;
        let year = i32::try_from(month.div_euclid(12)).unwrap_or(i32::MAX);
        let month0 = u32::try_from(month.rem_euclid(12)).unwrap_or(0);
        let day = local.day().min(days_in_month(year, month0 + 1));
        let date = NaiveDate::from_ymd_opt(year, month0 + 1, day).unwrap_or(NaiveDate::MAX);
        self.resolve(date.and_time(local.time()))
    }

    /// Turns a wall time in the zone into an instant (see the module docs for gaps and folds).
    fn resolve(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let mut probe = wall;
        // A DST gap is at most a few hours; step through it in minutes.
        for _ in 0..=24 * 60 {
            match self.zone.from_local_datetime(&probe) {
                LocalResult::Single(at) => return at.with_timezone(&Utc),
                LocalResult::Ambiguous(earlier, _) => return earlier.with_timezone(&Utc),
                LocalResult::None => probe += Duration::minutes(1),
            }
        }
        Utc.from_utc_datetime(&wall)
    }
}

fn month_number(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    NaiveDate::from_ymd_opt(next_year, next_month, 1).and_then(|first| first.pred_opt()).map_or(28, |last| last.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn month_end_anchor_clamps_without_drifting() {
        let anchor = Anchor::new(utc("2024-01-31T10:00:00Z"), Tz::UTC);
        let expected = [
            "2024-01-31T10:00:00Z",
            "2024-02-29T10:00:00Z",
            "2024-03-31T10:00:00Z",
            "2024-04-30T10:00:00Z",
            "2024-05-31T10:00:00Z",
        ];
        for (index, text) in expected.iter().enumerate() {
            assert_eq!(anchor.boundary(TimeUnit::Month, index as i64), utc(text), "step {index}");
        }
        assert_eq!(anchor.boundary(TimeUnit::Month, 13), utc("2025-02-28T10:00:00Z"));
        assert_eq!(anchor.boundary(TimeUnit::Year, 1), utc("2025-01-31T10:00:00Z"));
        assert_eq!(anchor.boundary(TimeUnit::Month, -2), utc("2023-11-30T10:00:00Z"));
    }

    #[test]
    fn leap_day_anchor_yearly() {
        let anchor = Anchor::new(utc("2024-02-29T00:00:00Z"), Tz::UTC);
        assert_eq!(anchor.boundary(TimeUnit::Year, 1), utc("2025-02-28T00:00:00Z"));
        assert_eq!(anchor.boundary(TimeUnit::Year, 4), utc("2028-02-29T00:00:00Z"));
    }

    #[test]
    fn daily_cycles_keep_wall_time_across_dst() {
        // New York springs forward on 2026-03-08 and falls back on 2026-11-01.
        let zone: Tz = "America/New_York".parse().unwrap();
        let anchor = Anchor::new(utc("2026-03-07T05:00:00Z"), zone); // 00:00 EST
        assert_eq!(anchor.boundary(TimeUnit::Day, 1), utc("2026-03-08T05:00:00Z")); // 00:00 EST
        assert_eq!(anchor.boundary(TimeUnit::Day, 2), utc("2026-03-09T04:00:00Z")); // 00:00 EDT
        let day = anchor.cycle(TimeUnit::Day, 1);
        assert_eq!(day.end - day.start, Duration::hours(23));
        let fall = Anchor::new(utc("2026-10-31T04:00:00Z"), zone);
        let long_day = fall.cycle(TimeUnit::Day, 1);
        assert_eq!(long_day.end - long_day.start, Duration::hours(25));
    }

    #[test]
    fn wall_time_in_a_dst_gap_moves_after_it_and_ambiguous_takes_the_earlier() {
        let zone: Tz = "America/New_York".parse().unwrap();
        // 02:30 local every day; on 2026-03-08 02:30 does not exist -> 03:00 EDT.
        let anchor = Anchor::new(utc("2026-03-07T07:30:00Z"), zone);
        assert_eq!(anchor.boundary(TimeUnit::Day, 1), utc("2026-03-08T07:00:00Z"));
        assert_eq!(anchor.boundary(TimeUnit::Day, 2), utc("2026-03-09T06:30:00Z"));
        // 01:30 local; on 2026-11-01 it happens twice -> the first (EDT).
        let anchor = Anchor::new(utc("2026-10-31T05:30:00Z"), zone);
        assert_eq!(anchor.boundary(TimeUnit::Day, 1), utc("2026-11-01T05:30:00Z"));
    }

    #[test]
    fn hourly_cycles_are_exact_hours() {
        let zone: Tz = "Europe/Berlin".parse().unwrap();
        let anchor = Anchor::new(utc("2026-03-29T00:15:00Z"), zone);
        for index in -3..30 {
            let cycle = anchor.cycle(TimeUnit::Hour, index);
            assert_eq!(cycle.end - cycle.start, Duration::hours(1));
        }
        assert_eq!(anchor.index_at(TimeUnit::Hour, utc("2026-03-29T00:14:59Z")), -1);
        assert_eq!(anchor.index_at(TimeUnit::Hour, utc("2026-03-29T03:15:00Z")), 3);
    }

    #[test]
    fn index_at_finds_the_containing_step() {
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        let anchor = Anchor::new(utc("2025-08-31T16:00:00Z"), zone); // 2025-09-01 00:00 CST
        let cases = [
            (TimeUnit::Month, "2025-09-30T15:59:59Z", 0),
            (TimeUnit::Month, "2025-09-30T16:00:00Z", 1),
            (TimeUnit::Month, "2026-08-31T16:00:00Z", 12),
            (TimeUnit::Day, "2025-09-01T15:59:59Z", 0),
            (TimeUnit::Day, "2025-09-01T16:00:00Z", 1),
            (TimeUnit::Day, "2025-08-31T15:00:00Z", -1),
            (TimeUnit::Year, "2026-08-31T15:59:59Z", 0),
            (TimeUnit::Year, "2026-08-31T16:00:00Z", 1),
        ];
        for (unit, at, index) in cases {
            assert_eq!(anchor.index_at(unit, utc(at)), index, "{unit:?} at {at}");
            assert!(anchor.cycle_at(unit, utc(at)).contains(utc(at)));
        }
    }

    #[test]
    fn time_unit_names_round_trip() {
        for unit in TimeUnit::ALL {
            assert_eq!(TimeUnit::parse(unit.as_str()), Some(unit));
        }
        assert_eq!(TimeUnit::parse("week"), None);
    }
}
