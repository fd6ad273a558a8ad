//! The write transaction, run on sqlx directly.
//!
//! sea-orm's own transaction clones every statement's bound values before handing them to
//! sqlx (`sqlx_query` in sea-orm 1.1's drivers takes the statement by reference): every string
//! of every row of a multi-row insert, allocated and copied once more and dropped again, on the
//! writer's path while the database waits for the statement. In `cargo xtask bench deduct`
//! (SQLite) that copy was 5 % of the process's CPU samples (perf, 2026-12-02). Statements here
//! are run as they are given, their values moved into sqlx's arguments.
//!
//! It answers to sea-orm's [`ConnectionTrait`], with the same results and the same errors
//! (`DbErr::Exec`/`DbErr::Query` around the sqlx error, a missing row from `query_one` as
//! `None`), so every operation runs on it unchanged. Dropped without a commit, it rolls back
//! (the rollback is queued on the connection, ahead of whatever its next user sends).
//!
//! On SQLite it runs on the process's one writer connection, which it holds — and with it the
//! process's writer lock — until it commits or is dropped (see `db::SqliteWriter`).

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::sqlite::SqliteTransactionManager;
use sea_orm::sqlx::{self, Postgres, Sqlite, TransactionManager};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, ExecResult, QueryResult, RuntimeErr, Statement,
};
use sea_query_binder::SqlxValues;
use tokio::sync::{Mutex, OwnedMutexGuard};

pub(crate) struct SqlxTx {
    backend: DatabaseBackend,
    txn: Mutex<Open>,
}

/// SQLite's writer connection, locked (`None` once the store is closed); its guard is the
/// process's writer lock.
pub(crate) type SqliteWriterGuard = OwnedMutexGuard<Option<PoolConnection<Sqlite>>>;

enum Open {
    Sqlite(SqliteTransaction),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// A transaction on SQLite's writer connection: begun, committed and rolled back as sqlx's own
/// transactions are (its transaction manager), on a connection that never goes back to a pool.
struct SqliteTransaction {
    /// Holds a connection (`begin_sqlite` checks); taken out only by `SqlxTx::commit`, which
    /// ends the transaction.
    connection: Option<SqliteWriterGuard>,
}

impl SqliteTransaction {
    fn connection(&mut self) -> &mut sqlx::SqliteConnection {
        self.connection
            .as_mut()
            .and_then(|guard| guard.as_deref_mut())
            .expect("a SQLite transaction keeps its connection until it commits")
    }
}

impl Drop for SqliteTransaction {
    fn drop(&mut self) {
        // Not committed: roll back, ahead of what the connection's next user sends.
        if let Some(connection) = self.connection.as_mut().and_then(|guard| guard.as_deref_mut()) {
            SqliteTransactionManager::start_rollback(connection);
        }
    }
}

impl std::fmt::Debug for SqlxTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqlxTx({:?})", self.backend)
    }
}

impl SqlxTx {
    /// Begins a transaction on a connection of PostgreSQL's pool.
    pub(crate) async fn begin_postgres(db: &DatabaseConnection) -> Result<SqlxTx, DbErr> {
        let open = db.get_postgres_connection_pool().begin().await.map_err(connection_error)?;
        Ok(SqlxTx { backend: DatabaseBackend::Postgres, txn: Mutex::new(Open::Postgres(open)) })
    }

    /// Begins a transaction on SQLite's writer connection, which it holds until it ends.
    pub(crate) async fn begin_sqlite(mut guard: SqliteWriterGuard) -> Result<SqlxTx, DbErr> {
        let connection = guard.as_deref_mut().ok_or_else(|| connection_error(sqlx::Error::PoolClosed))?;
        SqliteTransactionManager::begin(connection, None).await.map_err(connection_error)?;
        let open = SqliteTransaction { connection: Some(guard) };
        Ok(SqlxTx { backend: DatabaseBackend::Sqlite, txn: Mutex::new(Open::Sqlite(open)) })
    }

    /// Runs `write` on this SQLite transaction's connection, lent out by sqlx (see
    /// `respack-sqlite-direct`), on this thread — which a multi-threaded runtime is told is
    /// busy meanwhile, so its other tasks move to another thread.
    pub(crate) async fn sqlite_direct<R>(
        &self,
        write: impl FnOnce(&respack_sqlite_direct::Connection<'_>) -> R,
    ) -> Result<R, DbErr> {
        let mut open = self.txn.lock().await;
        let Open::Sqlite(txn) = &mut *open else {
            return Err(DbErr::Custom("direct statements are for SQLite connections only".into()));
        };
        let mut handle = txn.connection().lock_handle().await.map_err(exec_error)?;
        let connection = respack_sqlite_direct::Connection::new(&mut handle);
        let multi_threaded =
            tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
        Ok(if multi_threaded { tokio::task::block_in_place(|| write(&connection)) } else { write(&connection) })
    }

    /// Commits; on SQLite, hands back the writer connection's guard (the writer lock) for
    /// what must follow the commit before the next write transaction starts.
    pub(crate) async fn commit(self) -> (Result<(), DbErr>, Option<SqliteWriterGuard>) {
        match self.txn.into_inner() {
            Open::Sqlite(mut txn) => {
                let committed = SqliteTransactionManager::commit(txn.connection()).await;
                if committed.is_err() {
                    // Still open: roll it back, ahead of what the connection's next user sends.
                    SqliteTransactionManager::start_rollback(txn.connection());
                }
                (committed.map_err(exec_error), txn.connection.take())
            }
            Open::Postgres(txn) => (txn.commit().await.map_err(exec_error), None),
        }
    }
}

/// A statement's SQL and its values, moved out of it.
fn parts(stmt: Statement) -> (String, SqlxValues) {
    (stmt.sql, SqlxValues(stmt.values.unwrap_or(sea_orm::Values(Vec::new()))))
}

fn connection_error(error: sqlx::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(error))
}

fn exec_error(error: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(error))
}

fn query_error(error: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(error))
}

/// `query_one`'s answer: a missing row is `None`, as sea-orm has it.
fn optional<T>(fetched: Result<T, sqlx::Error>) -> Result<Option<QueryResult>, DbErr>
where
    QueryResult: From<T>,
{
    match fetched {
        Ok(row) => Ok(Some(row.into())),
        Err(sqlx::Error::RowNotFound) => Ok(None),
        Err(error) => Err(query_error(error)),
    }
}

fn all<T>(fetched: Result<Vec<T>, sqlx::Error>) -> Result<Vec<QueryResult>, DbErr>
where
    QueryResult: From<T>,
{
    Ok(fetched.map_err(query_error)?.into_iter().map(Into::into).collect())
}

#[async_trait::async_trait]
impl ConnectionTrait for SqlxTx {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.backend
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let (sql, values) = parts(stmt);
        let executed = match &mut *self.txn.lock().await {
            Open::Sqlite(txn) => sqlx::query_with(&sql, values).execute(txn.connection()).await.map(Into::into),
            Open::Postgres(txn) => sqlx::query_with(&sql, values).execute(&mut **txn).await.map(Into::into),
        };
        executed.map_err(exec_error)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let executed = match &mut *self.txn.lock().await {
            Open::Sqlite(txn) => sqlx::Executor::execute(txn.connection(), sql).await.map(Into::into),
            Open::Postgres(txn) => sqlx::Executor::execute(&mut **txn, sql).await.map(Into::into),
        };
        executed.map_err(exec_error)
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let (sql, values) = parts(stmt);
        match &mut *self.txn.lock().await {
            Open::Sqlite(txn) => optional(sqlx::query_with(&sql, values).fetch_one(txn.connection()).await),
            Open::Postgres(txn) => optional(sqlx::query_with(&sql, values).fetch_one(&mut **txn).await),
        }
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let (sql, values) = parts(stmt);
        match &mut *self.txn.lock().await {
            Open::Sqlite(txn) => all(sqlx::query_with(&sql, values).fetch_all(txn.connection()).await),
            Open::Postgres(txn) => all(sqlx::query_with(&sql, values).fetch_all(&mut **txn).await),
        }
    }
}
