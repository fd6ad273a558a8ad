//! Random public identifiers: pack IDs, order IDs, account UINs, API SecretIds.

use chrono::{DateTime, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;
use respack_domain::PackId;

pub(crate) fn pack_id() -> PackId {
    PackId::from_random(rand::thread_rng().gen())
}

/// `20261123` followed by 12 random digits, like Tencent order IDs.
pub(crate) fn order_id(now: DateTime<Utc>) -> String {
    format!("{}{:012}", now.format("%Y%m%d"), rand::thread_rng().gen_range(0..1_000_000_000_000_u64))
}

/// A 12-digit account UIN.
pub(crate) fn uin() -> String {
    format!("{}", rand::thread_rng().gen_range(100_000_000_000_u64..1_000_000_000_000))
}

/// `AKID` followed by 32 letters and digits, as Tencent SecretIds look.
pub(crate) fn secret_id() -> String {
    format!("AKID{}", random_text(32))
}

pub(crate) fn random_text(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}
