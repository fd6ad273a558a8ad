//! respack's one source of "now": the system clock in production, a fixed or shifted time in
//! tests and `cargo xtask dev`, so apps never read the wall clock themselves. Clones share their
//! setting, so a test can move the time of a running app.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};

/// A clock setting that does not parse; says what forms are accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a clock setting: use `system`, `fixed:<RFC 3339 instant>` or `offset:<seconds>`")]
pub struct ClockSpecError(pub String);

/// A cloneable clock; clones share their setting, so a test can move the time of a running app.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Mutex<Reading>>);

#[derive(Debug, Clone, Copy)]
enum Reading {
    /// The system time plus an offset (zero for [`Clock::system`]).
    System { offset: Duration },
    /// Always this instant, until set or advanced.
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::offset(Duration::zero())
    }

    /// The system clock shifted by `offset` (negative for the past).
    pub fn offset(offset: Duration) -> Clock {
        Clock(Arc::new(Mutex::new(Reading::System { offset })))
    }

    /// A clock that stands still at `at`.
    pub fn fixed(at: DateTime<Utc>) -> Clock {
        Clock(Arc::new(Mutex::new(Reading::Fixed(at))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match *self.reading() {
            Reading::System { offset } => Utc::now() + offset,
            Reading::Fixed(at) => at,
        }
    }

    /// Stops the clock at `at` (for this clock and all its clones).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.reading() = Reading::Fixed(at);
    }

    /// Builds a clock from a setting: `system`, `fixed:2026-11-23T10:00:00Z` or `offset:-3600`
    /// (seconds added to the system time).
    pub fn parse(spec: &str) -> Result<Clock, ClockSpecError> {
        let spec = spec.trim();
        let bad = || ClockSpecError(spec.to_owned());
        if spec.is_empty() || spec == "system" {
            return Ok(Clock::system());
        }
        if let Some(at) = spec.strip_prefix("fixed:") {
            let at = DateTime::parse_from_rfc3339(at.trim()).map_err(|_| bad())?;
            return Ok(Clock::fixed(at.with_timezone(&Utc)));
        }
        if let Some(seconds) = spec.strip_prefix("offset:") {
            let seconds: i64 = seconds.trim().parse().map_err(|_| bad())?;
            return Ok(Clock::offset(Duration::try_seconds(seconds).ok_or_else(bad)?));
        }
        Err(bad())
    }

    /// Moves the clock by `by`, whether it stands still or runs.
    pub fn advance(&self, by: Duration) {
        let mut reading = self.reading();
        *reading = match *reading {
            Reading::System { offset } => Reading::System { offset: offset + by },
            Reading::Fixed(at) => Reading::Fixed(at + by),
        };
    }

    fn reading(&self) -> std::sync::MutexGuard<'_, Reading> {
        // The reading is a plain value that is always whole, so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_fixed_clock_stands_still_until_moved_and_clones_follow() {
        let clock = Clock::fixed(at("2026-11-23T10:00:00Z"));
        let clone = clock.clone();
        assert_eq!(clock.now(), at("2026-11-23T10:00:00Z"));
        clock.advance(Duration::minutes(90));
        assert_eq!(clone.now(), at("2026-11-23T11:30:00Z"));
        clone.set(at("2027-01-01T00:00:00Z"));
        assert_eq!(clock.now(), at("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn settings_parse_into_clocks() {
        assert_eq!(Clock::parse("fixed:2026-02-28T23:00:00Z").unwrap().now(), at("2026-02-28T23:00:00Z"));
        let shifted = Clock::parse("offset:86400").unwrap().now();
        assert!((shifted - Utc::now() - Duration::days(1)).abs() < Duration::seconds(5));
        assert!((Clock::parse("system").unwrap().now() - Utc::now()).abs() < Duration::seconds(5));
        for bad in ["fixed:yesterday", "offset:1h", "sundial"] {
            assert!(Clock::parse(bad).unwrap_err().to_string().contains("offset:<seconds>"), "{bad}");
        }
    }

    #[test]
    fn the_system_clock_runs_and_an_offset_shifts_it() {
        let before = Utc::now();
        let now = Clock::system().now();
        assert!(now >= before && now - before < Duration::seconds(5));
        let shifted = Clock::offset(Duration::days(-1)).now();
        assert!((Utc::now() - Duration::days(1) - shifted).abs() < Duration::seconds(5));
        let clock = Clock::system();
        clock.advance(Duration::hours(2));
        assert!(clock.now() - Utc::now() > Duration::minutes(119));
    }
}
