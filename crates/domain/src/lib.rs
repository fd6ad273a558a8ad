//! respack's billing rules, pure: packs and their fields, the status machine, payment modes and
//! cycle math, renewal and refund rules, deduction planning, money, the product catalog and the
//! regions packs are sold in.
//!
//! Architecture invariant: nothing here does IO, reads the clock or draws randomness. Time
//! comes in as a `now` parameter; IDs come in as random bits chosen by the caller. The crate
//! compiles to wasm32 so the web console can share these types and rules.

pub mod bill;
pub mod catalog;
pub mod deduction;
pub mod fields;
pub mod money;
pub mod pack;
pub mod region;
pub mod rules;
pub mod schedule;
pub mod status;
pub mod upkeep;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod test_support;

pub use chrono;
pub use chrono_tz;
pub use rust_decimal;

pub use bill::{BillActionType, PayMode};
pub use deduction::{apply_plan, plan_deduction, DeductionPlan, PlannedDeduction, UsageError, UsageRecord};
pub use fields::PackField;
pub use money::{Money, PrecisionError};
pub use pack::{
    CapacityItem, DeductionScope, Pack, PackError, PackId, PackSpec, PaymentMode, PaymentModeKind, RenewalMethod, Term,
};
pub use rules::{RenewalQuote, RenewalSetting, RuleViolation};
pub use schedule::{Anchor, Cycle, TimeUnit};
pub use status::{Lifecycle, LifecycleEvent, PackStatus, TransitionError};
