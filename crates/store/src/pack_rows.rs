//! Moving packs between their rows (packs, pack_items, pack_tags) and the domain's `Pack`:
//! load, insert, and the guarded update that every pack state change goes through.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use respack_domain::{
    CapacityItem, DeductionScope, Lifecycle, Pack, PackId, PaymentMode, PaymentModeKind, RenewalMethod, Term, TimeUnit,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};

use crate::convert::{instant, millis, money, money_units, parse_stored, quantity, quantity_units};
use crate::db::placeholder_row;
use crate::entity::{pack_items, pack_tags, packs};
use crate::error::{StoreError, StoreResult};

pub(crate) fn to_item(row: &pack_items::Model) -> CapacityItem {
    CapacityItem {
        name: row.name.clone(),
        unit: row.unit.clone(),
        usage_type: row.usage_type.clone(),
        capacity: row.capacity.map(quantity),
        remaining: quantity(row.remaining),
        cycle_index: row.cycle_index,
        used: quantity(row.used),
    }
}

pub(crate) fn to_pack(row: packs::Model, items: &[pack_items::Model], tags: &[pack_tags::Model]) -> StoreResult<Pack> {
    let kind = parse_stored(&row.payment_mode, "payment mode", PaymentModeKind::parse)?;
    let cycle = row.cycle_unit.as_deref().map(|unit| parse_stored(unit, "cycle unit", TimeUnit::parse)).transpose()?;
    let mut items: Vec<&pack_items::Model> = items.iter().filter(|item| item.pack_id == row.id).collect();
    items.sort_by_key(|item| item.position);
    Ok(Pack {
        id: PackId::parse(&row.id).map_err(|error| StoreError::Corrupt(error.to_string()))?,
        account_id: row.account_id,
        name: row.name,
        product: row.product_code,
        subproduct: row.subproduct_code,
        region: row.region,
        zone: row.zone,
        lifecycle: parse_stored(&row.lifecycle, "lifecycle", Lifecycle::parse)?,
        frozen: row.frozen,
        mode: PaymentMode::from_parts(kind, cycle).map_err(|error| StoreError::Corrupt(error.to_string()))?,
        term: Term {
            unit: parse_stored(&row.term_unit, "term unit", TimeUnit::parse)?,
            count: u32::try_from(row.term_count).map_err(|_| StoreError::Corrupt("negative term".into()))?,
        },
        time_zone: parse_stored(&row.time_zone, "time zone", |text| text.parse::<Tz>().ok())?,
        effective_at: instant(row.effective_at)?,
        expires_at: instant(row.expires_at)?,
        package_expired_at: row.package_expired_at.map(instant).transpose()?,
        purchased_at: instant(row.purchased_at)?,
        renewal: parse_stored(&row.renewal_method, "renewal method", RenewalMethod::parse)?,
        auto_renew_period: row.auto_renew_period.and_then(|period| u32::try_from(period).ok()),
        unit_price: money(row.unit_price),
        price_paid: money(row.price_paid),
        scope: serde_json::from_str::<DeductionScope>(&row.scope)
            .map_err(|error| StoreError::Corrupt(format!("scope of {}: {error}", row.id)))?,
        items: items.into_iter().map(to_item).collect(),
        tags: tags.iter().filter(|tag| tag.pack_id == row.id).map(|tag| (tag.key.clone(), tag.value.clone())).collect(),
        version: row.version,
    })
}

/// A pack's columns (`p`) then one of its items' (`i`), in the order [`pack_row`] and
/// [`item_row`] decode them by position (decoding by name costs more than the query itself at
/// thousands of rows per batch).
pub(crate) const PACK_ITEM_COLUMNS: &str = "p.id, p.account_id, p.name, p.product_code, p.subproduct_code, p.region, \
     p.zone, p.lifecycle, p.frozen, p.payment_mode, p.cycle_unit, p.term_unit, p.term_count, p.time_zone, \
     p.effective_at, p.expires_at, p.package_expired_at, p.purchased_at, p.renewal_method, p.auto_renew_period, \
     p.unit_price, p.price_paid, p.scope, p.version, p.updated_at, \
     i.id, i.account_id, i.pack_id, i.position, i.name, i.unit, i.usage_type, i.capacity, i.remaining, \
     i.cycle_index, i.used, p.next_sweep_at";

/// How many columns [`PACK_ITEM_COLUMNS`] lists: a column a query adds after them is at this
/// position.
pub(crate) const PACK_ITEM_COLUMN_COUNT: usize = 37;

/// The pack of a [`PACK_ITEM_COLUMNS`] row.
pub(crate) fn pack_row(row: &sea_orm::QueryResult) -> Result<packs::Model, sea_orm::DbErr> {
    Ok(packs::Model {
        id: row.try_get_by_index(0)?,
        account_id: row.try_get_by_index(1)?,
        name: row.try_get_by_index(2)?,
        product_code: row.try_get_by_index(3)?,
        subproduct_code: row.try_get_by_index(4)?,
        region: row.try_get_by_index(5)?,
        zone: row.try_get_by_index(6)?,
        lifecycle: row.try_get_by_index(7)?,
        frozen: row.try_get_by_index(8)?,
        payment_mode: row.try_get_by_index(9)?,
        cycle_unit: row.try_get_by_index(10)?,
        term_unit: row.try_get_by_index(11)?,
        term_count: row.try_get_by_index(12)?,
        time_zone: row.try_get_by_index(13)?,
        effective_at: row.try_get_by_index(14)?,
        expires_at: row.try_get_by_index(15)?,
        package_expired_at: row.try_get_by_index(16)?,
        purchased_at: row.try_get_by_index(17)?,
        renewal_method: row.try_get_by_index(18)?,
        auto_renew_period: row.try_get_by_index(19)?,
        unit_price: row.try_get_by_index(20)?,
        price_paid: row.try_get_by_index(21)?,
        scope: row.try_get_by_index(22)?,
        version: row.try_get_by_index(23)?,
        updated_at: row.try_get_by_index(24)?,
        next_sweep_at: row.try_get_by_index(36)?,
    })
}

/// The item of a [`PACK_ITEM_COLUMNS`] row.
pub(crate) fn item_row(row: &sea_orm::QueryResult) -> Result<pack_items::Model, sea_orm::DbErr> {
    Ok(pack_items::Model {
        id: row.try_get_by_index(25)?,
        account_id: row.try_get_by_index(26)?,
        pack_id: row.try_get_by_index(27)?,
        position: row.try_get_by_index(28)?,
        name: row.try_get_by_index(29)?,
        unit: row.try_get_by_index(30)?,
        usage_type: row.try_get_by_index(31)?,
        capacity: row.try_get_by_index(32)?,
        remaining: row.try_get_by_index(33)?,
        cycle_index: row.try_get_by_index(34)?,
        used: row.try_get_by_index(35)?,
    })
}

/// The tags of these packs, by pack ID.
pub(crate) async fn tags_of(
    conn: &impl ConnectionTrait,
    ids: &[String],
) -> StoreResult<HashMap<String, Vec<pack_tags::Model>>> {
    let mut tags_by_pack: HashMap<String, Vec<pack_tags::Model>> = HashMap::new();
    for chunk in ids.chunks(5000) {
        for tag in pack_tags::Entity::find().filter(pack_tags::Column::PackId.is_in(chunk.to_vec())).all(conn).await? {
            tags_by_pack.entry(tag.pack_id.clone()).or_default().push(tag);
        }
    }
    Ok(tags_by_pack)
}

/// Loads packs with their items and tags, in the order of `rows`.
pub(crate) async fn hydrate(conn: &impl ConnectionTrait, rows: Vec<packs::Model>) -> StoreResult<Vec<Pack>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let mut items = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(5000) {
        items.extend(
            pack_items::Entity::find()
                .filter(pack_items::Column::PackId.is_in(chunk.to_vec()))
                .order_by_asc(pack_items::Column::Position)
                .all(conn)
                .await?,
        );
    }
    let mut items_by_pack: HashMap<String, Vec<pack_items::Model>> = HashMap::new();
    for item in items {
        items_by_pack.entry(item.pack_id.clone()).or_default().push(item);
    }
    let mut tags_by_pack = tags_of(conn, &ids).await?;
    rows.into_iter()
        .map(|row| {
            let items = items_by_pack.remove(&row.id).unwrap_or_default();
            let tags = tags_by_pack.remove(&row.id).unwrap_or_default();
            to_pack(row, &items, &tags)
        })
        .collect()
}

/// One pack of one account; `NotFound` also when it belongs to someone else.
pub(crate) async fn load_pack(
    conn: &impl ConnectionTrait,
    account_ids: Option<&[i64]>,
    pack_id: &str,
) -> StoreResult<Pack> {
    load(conn, account_ids, pack_id, false).await
}

/// [`load_pack`] inside a write transaction: the row stays locked (PostgreSQL) until commit,
/// so concurrent operations on one pack queue instead of failing their guarded update.
pub(crate) async fn lock_pack(
    conn: &impl ConnectionTrait,
    account_ids: Option<&[i64]>,
    pack_id: &str,
) -> StoreResult<Pack> {
    load(conn, account_ids, pack_id, true).await
}

async fn load(
    conn: &impl ConnectionTrait,
    account_ids: Option<&[i64]>,
    pack_id: &str,
    lock: bool,
) -> StoreResult<Pack> {
    let mut query = packs::Entity::find_by_id(pack_id.to_owned());
    if lock {
        query = query.lock_exclusive();
    }
    let row = query
        .one(conn)
        .await?
        .filter(|row| account_ids.is_none_or(|ids| ids.contains(&row.account_id)))
        .ok_or_else(|| StoreError::not_found("resource pack", pack_id))?;
    Ok(hydrate(conn, vec![row]).await?.remove(0))
}

pub(crate) async fn insert_pack(conn: &impl ConnectionTrait, pack: &Pack, now: DateTime<Utc>) -> StoreResult<()> {
    packs::ActiveModel {
        id: Set(pack.id.to_string()),
        account_id: Set(pack.account_id),
        name: Set(pack.name.clone()),
        product_code: Set(pack.product.clone()),
        subproduct_code: Set(pack.subproduct.clone()),
        region: Set(pack.region.clone()),
        zone: Set(pack.zone.clone()),
        lifecycle: Set(pack.lifecycle.as_str().to_owned()),
        frozen: Set(pack.frozen),
        payment_mode: Set(pack.mode.kind().as_str().to_owned()),
        cycle_unit: Set(pack.mode.cycle_unit().map(|unit| unit.as_str().to_owned())),
        term_unit: Set(pack.term.unit.as_str().to_owned()),
        term_count: Set(i32::try_from(pack.term.count).unwrap_or(i32::MAX)),
        time_zone: Set(pack.time_zone.name().to_owned()),
        effective_at: Set(millis(pack.effective_at)),
        expires_at: Set(millis(pack.expires_at)),
        package_expired_at: Set(pack.package_expired_at.map(millis)),
        purchased_at: Set(millis(pack.purchased_at)),
        renewal_method: Set(pack.renewal.as_str().to_owned()),
        auto_renew_period: Set(pack.auto_renew_period.map(|p| i32::try_from(p).unwrap_or(i32::MAX))),
        unit_price: Set(money_units(pack.unit_price)?),
        price_paid: Set(money_units(pack.price_paid)?),
        scope: Set(serde_json::to_string(&pack.scope).unwrap_or_else(|_| "{}".into())),
        version: Set(pack.version),
        updated_at: Set(millis(now)),
        // Due at once: respackd computes the pack's real next instant on its next sweep.
        next_sweep_at: Set(Some(millis(now))),
    }
    .insert(conn)
    .await?;
    for (position, item) in pack.items.iter().enumerate() {
        pack_items::ActiveModel {
            account_id: Set(pack.account_id),
            pack_id: Set(pack.id.to_string()),
            position: Set(i32::try_from(position).unwrap_or(i32::MAX)),
            name: Set(item.name.clone()),
            unit: Set(item.unit.clone()),
            usage_type: Set(item.usage_type.clone()),
            capacity: Set(item.capacity.map(quantity_units).transpose()?),
            remaining: Set(quantity_units(item.remaining)?),
            cycle_index: Set(item.cycle_index),
            used: Set(quantity_units(item.used)?),
            ..Default::default()
        }
        .insert(conn)
        .await?;
    }
    for (key, value) in &pack.tags {
        pack_tags::ActiveModel {
            account_id: Set(pack.account_id),
            pack_id: Set(pack.id.to_string()),
            key: Set(key.clone()),
            value: Set(value.clone()),
        }
        .insert(conn)
        .await?;
    }
    Ok(())
}

/// Writes a pack's changed header fields if nobody changed it since `before` was read
/// (same version and lifecycle); bumps the version. Items are written by the usage path.
pub(crate) async fn update_pack(
    conn: &impl ConnectionTrait,
    before: &Pack,
    after: &Pack,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let updated = packs::Entity::update_many()
        .col_expr(packs::Column::Lifecycle, Expr::value(after.lifecycle.as_str()))
        .col_expr(packs::Column::Frozen, Expr::value(after.frozen))
        .col_expr(packs::Column::TermCount, Expr::value(i32::try_from(after.term.count).unwrap_or(i32::MAX)))
        .col_expr(packs::Column::ExpiresAt, Expr::value(millis(after.expires_at)))
        .col_expr(packs::Column::PackageExpiredAt, Expr::value(after.package_expired_at.map(millis)))
        .col_expr(packs::Column::RenewalMethod, Expr::value(after.renewal.as_str()))
        .col_expr(
            packs::Column::AutoRenewPeriod,
            Expr::value(after.auto_renew_period.map(|p| i32::try_from(p).unwrap_or(i32::MAX))),
        )
        .col_expr(packs::Column::PricePaid, Expr::value(money_units(after.price_paid)?))
        .col_expr(packs::Column::Version, Expr::value(before.version + 1))
        .col_expr(packs::Column::UpdatedAt, Expr::value(millis(now)))
        // Any change may move what respackd has to do next (a renewal, a new renewal method,
        // an exhaustion to report): it looks at the pack again on its next sweep.
        .col_expr(packs::Column::NextSweepAt, Expr::value(Some(millis(now))))
        .filter(packs::Column::Id.eq(before.id.as_str()))
        .filter(packs::Column::AccountId.eq(before.account_id))
        .filter(packs::Column::Version.eq(before.version))
        .filter(packs::Column::Lifecycle.eq(before.lifecycle.as_str()))
        .exec(conn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(StoreError::conflict(format!("resource pack {}", before.id)));
    }
    Ok(())
}

/// Rows per batched `UPDATE … FROM (VALUES …)`.
pub(crate) const VALUES_CHUNK: usize = 500;

/// A pack as read, as changed in memory, and its next sweep instant: one row of [`write_packs`].
pub(crate) type PackWrite<'a> = (&'a Pack, &'a Pack, Option<DateTime<Utc>>);

/// The header columns a sweep or a usage group may change, besides the next sweep instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ChangedColumns {
    lifecycle: bool,
    term_count: bool,
    expires_at: bool,
    package_expired_at: bool,
    price_paid: bool,
}

impl ChangedColumns {
    fn between(before: &Pack, after: &Pack) -> ChangedColumns {
        ChangedColumns {
            lifecycle: before.lifecycle != after.lifecycle,
            term_count: before.term.count != after.term.count,
            expires_at: before.expires_at != after.expires_at,
            package_expired_at: before.package_expired_at != after.package_expired_at,
            price_paid: before.price_paid != after.price_paid,
        }
    }

    fn any(self) -> bool {
        self.lifecycle || self.term_count || self.expires_at || self.package_expired_at || self.price_paid
    }
}

/// Writes packs changed in memory in few statements (the sweep's batch, the packs a usage group
/// exhausted): each pack's header as `after` left it and its next sweep instant, guarded on the
/// version and lifecycle `before` was read with (the version moves only when something other
/// than the next sweep instant changed). Any pack changed under us fails the transaction, which
/// is retried.
///
/// Packs are grouped by the columns that changed, and each statement sets only those: a column
/// in an UPDATE's SET list costs a delete and an insert in every index holding it, changed or
/// not, and most swept packs change only their next sweep instant (a cycle roll, a notice).
pub(crate) async fn write_packs(
    conn: &impl ConnectionTrait,
    swept: &[PackWrite<'_>],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut shapes: std::collections::BTreeMap<ChangedColumns, Vec<&PackWrite<'_>>> = std::collections::BTreeMap::new();
    for row in swept {
        shapes.entry(ChangedColumns::between(row.0, row.1)).or_default().push(row);
    }
    for (changed, rows) in shapes {
        for chunk in rows.chunks(VALUES_CHUNK) {
            write_pack_shape(conn, changed, chunk, now).await?;
        }
    }
    Ok(())
}

/// One `UPDATE packs … FROM (VALUES …)` for packs whose `changed` columns are the same.
async fn write_pack_shape(
    conn: &impl ConnectionTrait,
    changed: ChangedColumns,
    chunk: &[&PackWrite<'_>],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let backend = conn.get_database_backend();
    // The guard's four columns come first; then the SET list's, numbered as they are added.
    let mut set: Vec<String> = Vec::new();
    let mut column = 4;
    let mut next_column = |expression: &str| {
        column += 1;
        expression.replace('#', &format!("v.column{column}"))
    };
    if changed.lifecycle {
        set.push(next_column("lifecycle = #"));
    }
    if changed.term_count {
        set.push(next_column("term_count = #"));
    }
    if changed.expires_at {
        set.push(next_column("expires_at = #"));
    }
    if changed.package_expired_at {
        // -1 stands for NULL: untyped NULLs in VALUES do not work on PostgreSQL.
        set.push(next_column("package_expired_at = CASE WHEN # < 0 THEN NULL ELSE # END"));
    }
    if changed.price_paid {
        set.push(next_column("price_paid = #"));
    }
    if changed.any() {
        set.push(next_column("version = #"));
        set.push(next_column("updated_at = #"));
    }
    set.push(next_column("next_sweep_at = CASE WHEN # < 0 THEN NULL ELSE # END"));

    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * (4 + set.len()));
    let mut rows = Vec::with_capacity(chunk.len());
    for (before, after, next) in chunk.iter().copied() {
        let start = values.len();
        values.push(before.id.as_str().into());
        values.push(before.account_id.into());
        values.push(before.version.into());
        values.push(before.lifecycle.as_str().into());
        if changed.lifecycle {
            values.push(after.lifecycle.as_str().into());
        }
        if changed.term_count {
            values.push(i64::from(after.term.count).into());
        }
        if changed.expires_at {
            values.push(millis(after.expires_at).into());
        }
        if changed.package_expired_at {
            values.push(after.package_expired_at.map_or(-1, millis).into());
        }
        if changed.price_paid {
            values.push(money_units(after.price_paid)?.into());
        }
        if changed.any() {
            values.push((before.version + 1).into());
            values.push(millis(now).into());
        }
        values.push(next.map_or(-1, millis).into());
        rows.push(placeholder_row(backend, start, values.len() - start));
    }
    let sql = format!(
        "UPDATE{} packs SET {} FROM (VALUES {}) AS v \
         WHERE packs.id = v.column1 AND packs.account_id = v.column2 AND packs.version = v.column3 \
         AND packs.lifecycle = v.column4",
        crate::db::or_fail(backend),
        set.join(", "),
        rows.join(", ")
    );
    let updated = conn.execute(Statement::from_sql_and_values(backend, sql, values)).await?;
    if updated.rows_affected() != chunk.len() as u64 {
        return Err(StoreError::conflict("a resource pack of this batch"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_count_is_the_number_of_columns_listed() {
        assert_eq!(PACK_ITEM_COLUMNS.split(',').count(), PACK_ITEM_COLUMN_COUNT);
    }
}
