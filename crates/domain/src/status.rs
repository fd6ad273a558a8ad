//! The pack status machine: stored lifecycle states, the events that move them, and the
//! status shown to people (which adds *frozen*, an operator's flag over the lifecycle).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a pack is in its life. Expired, exhausted and refunded are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Before the effective time.
    Inactive,
    Valid,
    /// The expiration time passed.
    Expired,
    /// No capacity left and none will come.
    Exhausted,
    Refunded,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 5] =
        [Lifecycle::Inactive, Lifecycle::Valid, Lifecycle::Expired, Lifecycle::Exhausted, Lifecycle::Refunded];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Inactive => "inactive",
            Lifecycle::Valid => "valid",
            Lifecycle::Expired => "expired",
            Lifecycle::Exhausted => "exhausted",
            Lifecycle::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<Lifecycle> {
        Lifecycle::ALL.into_iter().find(|state| state.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Lifecycle::Expired | Lifecycle::Exhausted | Lifecycle::Refunded)
    }

    /// The state after `event`, or why the event cannot happen now.
    pub fn apply(self, event: LifecycleEvent) -> Result<Lifecycle, TransitionError> {
        use Lifecycle::*;
        use LifecycleEvent::*;
        let next = match (self, event) {
            (Inactive, Activate) => Valid,
            // A pack whose whole window passed while nobody looked goes straight to expired.
            (Inactive | Valid, Expire) => Expired,
            (Valid, Exhaust) => Exhausted,
            (Inactive | Valid, Refund) => Refunded,
            (Inactive | Valid, Renew) => self,
            (from, event) => return Err(TransitionError { from, event }),
        };
        Ok(next)
    }
}

/// What can happen to a pack's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LifecycleEvent {
    Activate,
    Expire,
    Exhaust,
    Refund,
    Renew,
}

/// An event that the current state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a pack that is {} cannot {}", from.as_str(), event.verb())]
pub struct TransitionError {
    pub from: Lifecycle,
    pub event: LifecycleEvent,
}

impl LifecycleEvent {
    fn verb(self) -> &'static str {
        match self {
            LifecycleEvent::Activate => "be activated",
            LifecycleEvent::Expire => "expire",
            LifecycleEvent::Exhaust => "be exhausted",
            LifecycleEvent::Refund => "be refunded",
            LifecycleEvent::Renew => "be renewed",
        }
    }
}

/// The status a person sees (seed: valid, expired, exhausted, refunded, inactive; MPS adds
/// frozen). A frozen pack shows *frozen* while it is inactive or valid; once its lifecycle
/// ends, the end shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackStatus {
    Inactive,
    Valid,
    Frozen,
    Expired,
    Exhausted,
    Refunded,
}

impl PackStatus {
    pub const ALL: [PackStatus; 6] = [
        PackStatus::Inactive,
        PackStatus::Valid,
        PackStatus::Frozen,
        PackStatus::Expired,
        PackStatus::Exhausted,
        PackStatus::Refunded,
    ];

    pub fn shown(lifecycle: Lifecycle, frozen: bool) -> PackStatus {
        match lifecycle {
            Lifecycle::Inactive | Lifecycle::Valid if frozen => PackStatus::Frozen,
            Lifecycle::Inactive => PackStatus::Inactive,
            Lifecycle::Valid => PackStatus::Valid,
            Lifecycle::Expired => PackStatus::Expired,
            Lifecycle::Exhausted => PackStatus::Exhausted,
            Lifecycle::Refunded => PackStatus::Refunded,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PackStatus::Inactive => "inactive",
            PackStatus::Valid => "valid",
            PackStatus::Frozen => "frozen",
            PackStatus::Expired => "expired",
            PackStatus::Exhausted => "exhausted",
            PackStatus::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<PackStatus> {
        PackStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

impl fmt::Display for PackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Lifecycle::*;
    use LifecycleEvent::*;

    #[test]
    fn every_transition_of_the_machine() {
        // (from, event, Some(to) when allowed)
        let table = [
            (Inactive, Activate, Some(Valid)),
            (Inactive, Expire, Some(Expired)),
            (Inactive, Exhaust, None),
            (Inactive, Refund, Some(Refunded)),
            (Inactive, Renew, Some(Inactive)),
            (Valid, Activate, None),
            (Valid, Expire, Some(Expired)),
            (Valid, Exhaust, Some(Exhausted)),
            (Valid, Refund, Some(Refunded)),
            (Valid, Renew, Some(Valid)),
            (Expired, Activate, None),
            (Expired, Expire, None),
            (Expired, Exhaust, None),
            (Expired, Refund, None),
            (Expired, Renew, None),
            (Exhausted, Activate, None),
            (Exhausted, Expire, None),
            (Exhausted, Exhaust, None),
            (Exhausted, Refund, None),
            (Exhausted, Renew, None),
            (Refunded, Activate, None),
            (Refunded, Expire, None),
            (Refunded, Exhaust, None),
            (Refunded, Refund, None),
            (Refunded, Renew, None),
        ];
        assert_eq!(table.len(), Lifecycle::ALL.len() * 5, "every pair is listed");
        for (from, event, to) in table {
            let result = from.apply(event);
            assert_eq!(result.ok(), to, "{from:?} + {event:?}");
            if to.is_none() {
                assert_eq!(result, Err(TransitionError { from, event }));
            }
        }
    }

    #[test]
    fn final_states_are_final() {
        for state in Lifecycle::ALL {
            assert_eq!(state.is_final(), matches!(state, Expired | Exhausted | Refunded));
        }
    }

    #[test]
    fn frozen_shows_only_over_live_states() {
        let table = [
            (Inactive, false, PackStatus::Inactive),
            (Inactive, true, PackStatus::Frozen),
            (Valid, false, PackStatus::Valid),
            (Valid, true, PackStatus::Frozen),
            (Expired, true, PackStatus::Expired),
            (Exhausted, true, PackStatus::Exhausted),
            (Refunded, true, PackStatus::Refunded),
        ];
        for (lifecycle, frozen, shown) in table {
            assert_eq!(PackStatus::shown(lifecycle, frozen), shown);
        }
    }

    #[test]
    fn names_round_trip_and_errors_read_well() {
        for state in Lifecycle::ALL {
            assert_eq!(Lifecycle::parse(state.as_str()), Some(state));
        }
        for status in PackStatus::ALL {
            assert_eq!(PackStatus::parse(&status.to_string()), Some(status));
        }
        let error = Expired.apply(Renew).unwrap_err();
        assert_eq!(error.to_string(), "a pack that is expired cannot be renewed");
    }
}
