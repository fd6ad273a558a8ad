//! Connecting (SQLite file in WAL mode, or PostgreSQL), migrating, and opening write
//! transactions that serialize correctly on both backends.

use std::sync::Arc;
use std::time::Duration;

use respack_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::sqlx::Sqlite;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DbErr, EntityName, EntityTrait, IdenStatic, Iterable, Statement,
};
use tokio::sync::Mutex;

use crate::error::{StoreError, StoreResult};
use crate::sqlx_tx::{SqliteWriterGuard, SqlxTx};

/// An open write transaction. On SQLite it holds the process's writer connection (and so its
/// writer lock) and has already taken the database write lock, so the transaction never fails
/// half-way with "database is locked" when another writer commits first.
pub(crate) struct WriteTx {
    pub(crate) txn: SqlxTx,
    /// SQLite: the database's write counter as this transaction set it. Every write
    /// transaction of every process adds one, so a counter one past the last one this process
    /// committed proves nobody else wrote in between (what the usage path's pack cache needs).
    pub(crate) stamp: Option<i64>,
}

impl std::ops::Deref for WriteTx {
    type Target = SqlxTx;
    fn deref(&self) -> &SqlxTx {
        &self.txn
    }
}

impl WriteTx {
    pub(crate) async fn commit(self) -> StoreResult<()> {
        self.txn.commit().await.0?;
        Ok(())
    }

    /// Commits, handing back this process's writer lock (SQLite) so that what must follow
    /// the commit before the next write transaction starts can run while it is held.
    pub(crate) async fn commit_keeping_writer(self) -> (StoreResult<()>, Option<SqliteWriterGuard>) {
        let (committed, writer) = self.txn.commit().await;
        (committed.map_err(Into::into), writer)
    }
}

/// The database handles of a store: the pool everything reads through and, on SQLite, the
/// process's one writer connection and the sweep stream's reading connection.
pub(crate) struct Connections {
    pub(crate) pool: DatabaseConnection,
    pub(crate) sqlite_writer: Option<Arc<SqliteWriter>>,
    /// SQLite's sweep stream claims and decides batch after batch through this one connection
    /// rather than the pool's: the pool hands out its idle connections in turn, and each one
    /// the stream read through filled its page cache (the process's peak RSS while sweeping
    /// 100,000 due packs in transactions of 6,000: ~100 MB through the pool, ~89 through one
    /// connection, 2026-12-02).
    pub(crate) sqlite_sweep_reader: Option<DatabaseConnection>,
}

/// SQLite's writer: one connection that every write transaction of this process uses, behind
/// a lock. One connection rather than any of the pool's: SQLite drops a connection's whole page
/// cache when it starts a transaction after another connection wrote, so writes spread over
/// the pool found a cold cache every time and read every B-tree page they touched back from
/// the file. The writer's cache stays warm from one transaction to the next unless another
/// process (respackd, a second web node) wrote in between.
///
/// The connection is taken out of its one-connection pool once and kept: a pool pings a
/// connection when it comes back and again before handing it out, each a round trip to the
/// connection's worker thread that the next write transaction waited for (~6 ms of a usage
/// group's ~200 on a loaded 2-core machine, 2026-12-03).
pub(crate) struct SqliteWriter {
    /// `None` once closed.
    connection: Arc<Mutex<Option<PoolConnection<Sqlite>>>>,
    pool: DatabaseConnection,
}

pub(crate) async fn connect(url: &str) -> StoreResult<Connections> {
    let sqlite = url.starts_with("sqlite:");
    if sqlite {
        create_sqlite_parent(url);
    }
    let pool = Database::connect(options(url, if sqlite { 8 } else { 20 }, READER_CACHE_KIB, None)).await?;
    Migrator::up(&pool, None).await?;
    let (sqlite_writer, sqlite_sweep_reader) = if sqlite {
        let pool = Database::connect(options(url, 1, WRITER_CACHE_KIB, writer_vfs())).await?;
        let connection = pool
            .get_sqlite_connection_pool()
            .acquire()
            .await
            .map_err(|error| StoreError::Database(DbErr::Conn(sea_orm::RuntimeErr::SqlxError(error))))?;
        let sweep_reader = Database::connect(options(url, 1, READER_CACHE_KIB, None)).await?;
        let connection = Arc::new(Mutex::new(Some(connection)));
        (Some(Arc::new(SqliteWriter { connection, pool })), Some(sweep_reader))
    } else {
        (None, None)
    };
    Ok(Connections { pool, sqlite_writer, sqlite_sweep_reader })
}

/// SQLite page cache of the writer connection: enough for the hot index pages a batch touches,
/// kept from one write transaction to the next.
const WRITER_CACHE_KIB: u32 = 16 * 1024;
/// SQLite page cache of each pooled reading connection (up to 8). Small: a reader's cache is
/// dropped whenever anyone writes, so under a write load (usage, a sweep) it never grows
/// useful, while eight large ones would hold a process's memory (respackd's budget is 100 MB).
const READER_CACHE_KIB: u32 = 4 * 1024;

/// Rows a SQLite connection's worker thread may run ahead of the task reading them (sqlx's
/// default is 50). Each time the buffer fills, the worker waits for the reader and the two
/// threads hand over: a sweep claim of 750 joined pack rows took a dozen hand-overs, and the
/// kernel's task switching was a tenth of a sweep's CPU. With 1,000 (2026-12-02, two runs
/// each): the sweep of 100,000 due packs 12.5 → 11.0 s of CPU, 8.3–8.5 → 7.5–7.8 s;
/// `bench deduct --records 400000` (SQLite) 24,842–25,700 → 26,927–28,019 records/s. 4,000
/// did no better. At most this many decoded rows wait per query: well under a megabyte.
const SQLITE_ROW_BUFFER: usize = 1000;

/// The VFS of SQLite's writer connection: the platform's, with the WAL's writes batched
/// (`respack_sqlite_direct::register_batched_wal_vfs`): a usage group's ~8,000 dirty pages
/// reach the WAL in ~260 writes instead of ~16,000. Readers never write the WAL and keep the
/// platform's VFS. Should SQLite refuse the VFS, the writer uses the platform's as it is.
fn writer_vfs() -> Option<&'static str> {
    match respack_sqlite_direct::register_batched_wal_vfs() {
        Ok(name) => Some(name),
        Err(error) => {
            tracing::warn!(%error, "SQLite writer: WAL writes not batched");
            None
        }
    }
}

fn options(url: &str, connections: u32, cache_kib: u32, vfs: Option<&'static str>) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |sqlite| {
            let sqlite = match vfs {
                Some(vfs) => sqlite.vfs(vfs),
                None => sqlite,
            };
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("cache_size", format!("-{cache_kib}"))
                .pragma("temp_store", "memory")
                .row_buffer_size(SQLITE_ROW_BUFFER)
                // Checkpoint the WAL every ~200 MiB instead of every 4 MiB: a usage group
                // touches index pages all over the file, and a page written by many groups
                // between checkpoints is copied into the database once instead of each time
                // (every ~40 MiB: 44,000 records/s; every ~200 MiB: 46,800, 2026-12-01). The
                // price: up to that much disk for the WAL, and a restart after a crash reads
                // it once. Durability is unchanged (synchronous=FULL syncs the WAL at every
                // commit).
                .pragma("wal_autocheckpoint", "50000")
        });
    options
}

impl SqliteWriter {
    /// Closes the writer connection once no transaction holds it.
    pub(crate) async fn close(&self) -> StoreResult<()> {
        // Back into its pool, which closes it.
        drop(self.connection.lock().await.take());
        self.pool.clone().close().await?;
        Ok(())
    }
}

/// SQLite creates the file (`mode=rwc`) but not its directory.
fn create_sqlite_parent(url: &str) {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return;
    }
    if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Err(error) = std::fs::create_dir_all(parent) {
            tracing::warn!(%error, dir = %parent.display(), "cannot create the database directory");
        }
    }
}

pub(crate) async fn begin_write(pool: &DatabaseConnection, writer: Option<&SqliteWriter>) -> StoreResult<WriteTx> {
    let txn = match writer {
        Some(writer) => SqlxTx::begin_sqlite(writer.connection.clone().lock_owned().await).await?,
        None => SqlxTx::begin_postgres(pool).await?,
    };
    let mut stamp = None;
    if writer.is_some() {
        // The first statement writes, so SQLite takes its write lock now (as BEGIN IMMEDIATE
        // would), waiting up to busy_timeout for other processes such as respackd.
        let row = txn
            .query_one(Statement::from_string(
                DatabaseBackend::Sqlite,
                "UPDATE write_lock SET n = n + 1 WHERE id = 1 RETURNING n",
            ))
            .await?
            .ok_or_else(|| StoreError::Corrupt("the write_lock row is missing; run the migrations again".into()))?;
        stamp = Some(row.try_get_by_index(0)?);
    }
    Ok(WriteTx { txn, stamp })
}

/// `" OR FAIL"` on SQLite, nothing on PostgreSQL: the conflict clause of every multi-row
/// `INSERT`/`UPDATE` (`INSERT{} INTO …`). With SQLite's default (`ABORT`) a statement that
/// writes many rows keeps a statement journal — a copy of every page it touches — to undo
/// itself alone if a row fails, while the transaction goes on: in `cargo xtask bench deduct`
/// (SQLite) that copying was 5 % of the process's CPU samples (perf, 2026-12-02), and
/// without it the rate rose 1–3 % (two A/B pairs; stop 18 saw no change in the sweep).
/// respack never goes on: every caller returns the error and its transaction rolls back
/// (dropped), so a failed statement's earlier rows, which `FAIL` leaves in place, never outlive
/// it. PostgreSQL aborts the whole transaction on any error anyway.
pub(crate) fn or_fail(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Sqlite => " OR FAIL",
        _ => "",
    }
}

/// The placeholder of a statement's `n`th parameter, counted from 1: `$n` on PostgreSQL, `?`
/// on SQLite.
pub(crate) fn placeholder(backend: DatabaseBackend, n: usize) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// One row of placeholders for a multi-row `VALUES` list: `count` parameters after the first
/// `start`, in parentheses.
pub(crate) fn placeholder_row(backend: DatabaseBackend, start: usize, count: usize) -> String {
    use std::fmt::Write;
    // One buffer, no string per placeholder: bulk statements build thousands of rows.
    let mut row = String::with_capacity(2 + count * 6);
    row.push('(');
    for n in start + 1..=start + count {
        if n > start + 1 {
            row.push_str(", ");
        }
        match backend {
            DatabaseBackend::Postgres => {
                let _ = write!(row, "${n}");
            }
            _ => row.push('?'),
        }
    }
    row.push(')');
    row
}

/// Rows per multi-row INSERT of [`insert_statements`].
const INSERT_CHUNK: usize = 500;

/// Inserts `rows` (see [`insert_statements`]); returns how many were inserted.
pub(crate) async fn insert_all<A: ActiveModelTrait>(
    conn: &impl ConnectionTrait,
    rows: Vec<A>,
    on_conflict: &str,
) -> Result<u64, DbErr> {
    let mut inserted = 0;
    for statement in insert_statements(conn.get_database_backend(), rows, on_conflict)? {
        inserted += conn.execute(statement).await?.rows_affected();
    }
    Ok(inserted)
}

/// Multi-row INSERTs of up to 500 of `rows`, each value moved into its statement: sea-orm's
/// `insert_many` builds its SQL value by value and clones every value on the way (a third of
/// the sweep's CPU in this process on PostgreSQL, 2026-12-01). Every row must set the same
/// columns. `on_conflict` is appended to each statement as it is (`""`, or an
/// `ON CONFLICT (…) DO …` clause).
pub(crate) fn insert_statements<A: ActiveModelTrait>(
    backend: DatabaseBackend,
    rows: Vec<A>,
    on_conflict: &str,
) -> Result<Vec<Statement>, DbErr> {
    let table = <A::Entity as Default>::default().table_name().to_owned();
    let different = || DbErr::Custom(format!("rows of one insert into {table} set different columns"));
    let mut statements = Vec::with_capacity(rows.len().div_ceil(INSERT_CHUNK));
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut columns: Vec<String> = Vec::new();
        let mut values: Vec<sea_orm::Value> = Vec::new();
        let mut tuples = Vec::with_capacity(INSERT_CHUNK);
        for (index, mut row) in rows.by_ref().take(INSERT_CHUNK).enumerate() {
            let start = values.len();
            for column in <<A::Entity as EntityTrait>::Column as Iterable>::iter() {
                let (ActiveValue::Set(value) | ActiveValue::Unchanged(value)) = row.take(column) else { continue };
                let position = values.len() - start;
                if index == 0 {
                    columns.push(column.as_str().to_owned());
                } else if columns.get(position).map(String::as_str) != Some(column.as_str()) {
                    return Err(different());
                }
                values.push(value);
            }
            if values.len() - start != columns.len() {
                return Err(different());
            }
            tuples.push(placeholder_row(backend, start, columns.len()));
        }
        let names: Vec<String> = columns.iter().map(|column| format!("\"{column}\"")).collect();
        let sql = format!(
            "INSERT{} INTO \"{table}\" ({}) VALUES {} {on_conflict}",
            or_fail(backend),
            names.join(", "),
            tuples.join(", ")
        );
        statements.push(Statement::from_sql_and_values(backend, sql.trim_end().to_owned(), values));
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, PaginatorTrait, Set};

    use super::insert_all;
    use crate::entity::audit_log;
    use crate::{SealingKey, Store};

    fn audit(target: &str) -> audit_log::ActiveModel {
        audit_log::ActiveModel {
            account_id: Set(1),
            actor: Set("system:test".into()),
            action: Set("test".into()),
            target: Set(target.into()),
            detail: Set("{}".into()),
            created_at: Set(0),
            ..Default::default()
        }
    }

    /// A store on a fresh SQLite file in its own directory (removed by the caller).
    async fn sqlite_store(name: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("respack-{name}-{}", std::process::id()));
        let url = format!("sqlite://{}?mode=rwc", dir.join("store.db").display());
        (Store::connect(&url, SealingKey::from_bytes([1; 32])).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn insert_all_writes_every_row_in_chunks_and_refuses_rows_of_different_columns() {
        let (store, dir) = sqlite_store("insert-all").await;
        let tx = store.write().await.unwrap();
        // More than one statement's worth.
        let rows: Vec<_> = (0..1203).map(|n| audit(&format!("pack-{n}"))).collect();
        assert_eq!(insert_all(&*tx, rows, "").await.unwrap(), 1203);
        assert_eq!(audit_log::Entity::find().count(&*tx).await.unwrap(), 1203);

        let mut with_id = audit("pack-x");
        with_id.id = Set(99_999);
        let error = insert_all(&*tx, vec![audit("pack-y"), with_id], "").await.unwrap_err();
        assert!(error.to_string().contains("set different columns"), "{error}");
        drop(tx);
        store.close().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Multi-row writes are `OR FAIL` on SQLite (see `or_fail`): a row that fails leaves the
    /// statement's earlier rows in the transaction, which is why a failed statement must fail
    /// its transaction — and nothing of it is stored once the transaction is dropped.
    #[tokio::test]
    async fn a_failed_bulk_insert_stores_nothing_once_its_transaction_is_dropped() {
        let (store, dir) = sqlite_store("or-fail").await;
        let tx = store.write().await.unwrap();
        // Eleven rows, then a twelfth with the first one's ID.
        let with_id = |id: i64| {
            let mut row = audit(&format!("pack-{id}"));
            row.id = Set(id);
            row
        };
        let rows: Vec<_> = (1..=11).chain([1]).map(with_id).collect();
        let error = insert_all(&*tx, rows, "").await.unwrap_err();
        assert!(error.to_string().to_lowercase().contains("unique"), "{error}");
        // OR FAIL: the rows before the failing one are still in the transaction.
        assert_eq!(audit_log::Entity::find().count(&*tx).await.unwrap(), 11);
        drop(tx);
        assert_eq!(audit_log::Entity::find().count(store.read()).await.unwrap(), 0);
        store.close().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The writer's WAL writes go through the batching VFS; what it writes, every reading
    /// connection (the platform's VFS) sees as written.
    #[tokio::test]
    async fn the_writer_batches_its_wal_writes_and_readers_see_every_row() {
        let (store, dir) = sqlite_store("batched-wal").await;
        let before = respack_sqlite_direct::batched_wal_stats();
        let tx = store.write().await.unwrap();
        let rows: Vec<_> = (0..3000).map(|n| audit(&format!("pack-{n}"))).collect();
        assert_eq!(insert_all(&*tx, rows, "").await.unwrap(), 3000);
        tx.commit().await.unwrap();
        let after = respack_sqlite_direct::batched_wal_stats();
        assert!(after.writes_taken > before.writes_taken + 20, "{before:?} → {after:?}");
        assert!(after.writes_made - before.writes_made < after.writes_taken - before.writes_taken);
        assert_eq!(audit_log::Entity::find().count(store.read()).await.unwrap(), 3000);
        store.close().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
