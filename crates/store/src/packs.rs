//! Reading packs: one pack, and the filtered, sorted, paged list of the Resource Packages page
//! (name/ID, status, product, expiry range, and the rule that expired packs show for three
//! months only).

use chrono::{DateTime, Months, Utc};
use respack_domain::{Pack, PackStatus, RenewalMethod};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select};

use crate::convert::millis;
use crate::entity::packs;
use crate::error::{StoreError, StoreResult};
use crate::pack_rows::{hydrate, load_pack};
use crate::Store;

/// Packs that ended (expired, exhausted, refunded) stay visible this many months after their
/// package expiry time (seed: "expiration time not exceeded 3 months").
pub const EXPIRED_VISIBLE_MONTHS: u32 = 3;

/// Most rows one page may hold.
pub const MAX_PAGE: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PackSort {
    /// Newest purchase first (the default).
    #[default]
    PurchasedDesc,
    ExpiresAsc,
    ExpiresDesc,
    NameAsc,
}

/// The Resource Packages page's filters. `account_ids` is the caller's scope and is required.
#[derive(Debug, Clone, Default)]
pub struct PackFilter {
    pub account_ids: Vec<i64>,
    /// Product code.
    pub product: Option<String>,
    /// Subproduct code: the pack's type (seed MPS: general or TSC transcoding packs).
    pub subproduct: Option<String>,
    /// Part of the name or of the pack ID, case-insensitive.
    pub search: Option<String>,
    /// Any of these shown statuses; empty means all.
    pub statuses: Vec<PackStatus>,
    /// Expiration time range, inclusive start, exclusive end.
    pub expires_from: Option<DateTime<Utc>>,
    pub expires_to: Option<DateTime<Utc>>,
    /// Only these pack IDs; empty means any.
    pub pack_ids: Vec<String>,
    /// Only packs with one of these renewal methods; empty means any.
    pub renewal_methods: Vec<RenewalMethod>,
    pub sort: PackSort,
    pub offset: u64,
    pub limit: u64,
}

/// A page of results with the total that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

fn live() -> Condition {
    Condition::all().add(packs::Column::Lifecycle.is_in(["inactive", "valid"]))
}

/// SQL for "the status shown at `now` is `status`", mirroring `Pack::status_at`.
fn status_condition(status: PackStatus, now: i64) -> Condition {
    match status {
        PackStatus::Inactive => live()
            .add(packs::Column::Frozen.eq(false))
            .add(packs::Column::EffectiveAt.gt(now))
            .add(packs::Column::ExpiresAt.gt(now)),
        PackStatus::Valid => live()
            .add(packs::Column::Frozen.eq(false))
            .add(packs::Column::EffectiveAt.lte(now))
            .add(packs::Column::ExpiresAt.gt(now)),
        PackStatus::Frozen => live().add(packs::Column::Frozen.eq(true)).add(packs::Column::ExpiresAt.gt(now)),
        PackStatus::Expired => Condition::any()
            .add(packs::Column::Lifecycle.eq("expired"))
            .add(live().add(packs::Column::ExpiresAt.lte(now))),
        PackStatus::Exhausted => Condition::all().add(packs::Column::Lifecycle.eq("exhausted")),
        PackStatus::Refunded => Condition::all().add(packs::Column::Lifecycle.eq("refunded")),
    }
}

fn filtered(filter: &PackFilter, now: DateTime<Utc>) -> StoreResult<Select<packs::Entity>> {
    if filter.account_ids.is_empty() {
        return Err(StoreError::invalid("a pack query needs the accounts it may see"));
    }
    let cutoff = now
        .checked_sub_months(Months::new(EXPIRED_VISIBLE_MONTHS))
        .ok_or_else(|| StoreError::invalid("time out of range"))?;
    let now_ms = millis(now);
    let mut query = packs::Entity::find()
        .filter(packs::Column::AccountId.is_in(filter.account_ids.clone()))
        // Live packs, or ended ones whose package expiry lies within the last three months.
        .filter(
            Condition::any().add(packs::Column::PackageExpiredAt.gte(millis(cutoff))).add(
                Condition::all()
                    .add(packs::Column::PackageExpiredAt.is_null())
                    .add(packs::Column::ExpiresAt.gte(millis(cutoff))),
            ),
        );
    if let Some(product) = filter.product.as_deref().filter(|p| !p.is_empty()) {
        query = query.filter(packs::Column::ProductCode.eq(product));
    }
    if let Some(subproduct) = filter.subproduct.as_deref().filter(|s| !s.is_empty()) {
        query = query.filter(packs::Column::SubproductCode.eq(subproduct));
    }
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let pattern = format!("%{}%", search.to_lowercase().replace(['%', '_'], ""));
        query = query.filter(
            Condition::any()
                .add(Expr::expr(sea_orm::sea_query::Func::lower(Expr::col(packs::Column::Name))).like(pattern.clone()))
                .add(packs::Column::Id.like(pattern)),
        );
    }
    if !filter.statuses.is_empty() {
        let mut any = Condition::any();
        for status in &filter.statuses {
            any = any.add(status_condition(*status, now_ms));
        }
        query = query.filter(any);
    }
    if let Some(from) = filter.expires_from {
        query = query.filter(packs::Column::ExpiresAt.gte(millis(from)));
    }
    if let Some(to) = filter.expires_to {
        query = query.filter(packs::Column::ExpiresAt.lt(millis(to)));
    }
    if !filter.pack_ids.is_empty() {
        query = query.filter(packs::Column::Id.is_in(filter.pack_ids.clone()));
    }
    if !filter.renewal_methods.is_empty() {
        query = query.filter(packs::Column::RenewalMethod.is_in(filter.renewal_methods.iter().map(|m| m.as_str())));
    }
    Ok(query)
}

/// `query` in the list's order.
fn sorted(query: Select<packs::Entity>, sort: PackSort) -> Select<packs::Entity> {
    match sort {
        PackSort::PurchasedDesc => query.order_by_desc(packs::Column::PurchasedAt).order_by_asc(packs::Column::Id),
        PackSort::ExpiresAsc => query.order_by_asc(packs::Column::ExpiresAt).order_by_asc(packs::Column::Id),
        PackSort::ExpiresDesc => query.order_by_desc(packs::Column::ExpiresAt).order_by_asc(packs::Column::Id),
        PackSort::NameAsc => query.order_by_asc(packs::Column::Name).order_by_asc(packs::Column::Id),
    }
}

impl Store {
    /// One pack, if it belongs to one of `account_ids` (`None`: any account, for operators).
    pub async fn pack(&self, account_ids: Option<&[i64]>, pack_id: &str) -> StoreResult<Pack> {
        load_pack(self.read(), account_ids, pack_id).await
    }

    /// The Resource Packages list at `now`.
    pub async fn list_packs(&self, filter: &PackFilter, now: DateTime<Utc>) -> StoreResult<Page<Pack>> {
        let query = filtered(filter, now)?;
        // Counted without the ORDER BY: sorting every matching row only to count them cost
        // most of a Resource Packages page view (16 of ~20 ms at 10,000 packs on SQLite).
        let total = query.clone().count(self.read()).await?;
        let limit = if filter.limit == 0 { 20 } else { filter.limit.min(MAX_PAGE) };
        let rows = sorted(query, filter.sort).offset(filter.offset).limit(limit).all(self.read()).await?;
        Ok(Page { items: hydrate(self.read(), rows).await?, total })
    }
}
