//! SQLite's write transaction, run on sqlx directly.
//!
//! sea-orm's own transaction clones every statement's bound values before handing them to
//! sqlx (`sqlx_query` in sea-orm 1.1's driver takes the statement by reference): every string
//! of every row of a multi-row insert, allocated and copied once more and dropped again, on the
//! writer's path while SQLite's thread waits for the statement. In `cargo xtask bench deduct`
//! that copy was 5 % of the process's CPU samples (perf, 2026-12-02). Statements here are run
//! as they are given, their values moved into sqlx's arguments.
//!
//! It answers to sea-orm's [`ConnectionTrait`], with the same results and the same errors
//! (`DbErr::Exec`/`DbErr::Query` around the sqlx error, a missing row from `query_one` as
//! `None`), so every operation runs on it unchanged. Dropped without a commit, it rolls back
//! (sqlx's transaction queues the rollback on the connection before it goes back to its pool).

use sea_orm::sqlx::{self, Sqlite};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_binder::SqlxValues;
use tokio::sync::Mutex;

pub(crate) struct SqliteTx {
    txn: Mutex<sqlx::Transaction<'static, Sqlite>>,
}

impl std::fmt::Debug for SqliteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteTx")
    }
}

impl SqliteTx {
    /// Begins a transaction on a connection of `pool` (for the writer: its only one).
    pub(crate) async fn begin(pool: &sqlx::SqlitePool) -> Result<SqliteTx, DbErr> {
        let txn = pool.begin().await.map_err(|error| DbErr::Conn(RuntimeErr::SqlxError(error)))?;
        Ok(SqliteTx { txn: Mutex::new(txn) })
    }

    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.txn.into_inner().commit().await.map_err(|error| DbErr::Exec(RuntimeErr::SqlxError(error)))
    }
}

/// A statement's SQL and its values, moved out of it.
fn parts(stmt: Statement) -> (String, SqlxValues) {
    (stmt.sql, SqlxValues(stmt.values.unwrap_or(sea_orm::Values(Vec::new()))))
}

fn exec_error(error: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(error))
}

fn query_error(error: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(error))
}

#[async_trait::async_trait]
impl ConnectionTrait for SqliteTx {
    fn get_database_backend(&self) -> DatabaseBackend {
        DatabaseBackend::Sqlite
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let (sql, values) = parts(stmt);
        let mut txn = self.txn.lock().await;
        sqlx::query_with(&sql, values).execute(&mut **txn).await.map(Into::into).map_err(exec_error)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut txn = self.txn.lock().await;
        sqlx::Executor::execute(&mut **txn, sql).await.map(Into::into).map_err(exec_error)
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let (sql, values) = parts(stmt);
        let mut txn = self.txn.lock().await;
        match sqlx::query_with(&sql, values).fetch_one(&mut **txn).await {
            Ok(row) => Ok(Some(row.into())),
            Err(sqlx::Error::RowNotFound) => Ok(None),
            Err(error) => Err(query_error(error)),
        }
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let (sql, values) = parts(stmt);
        let mut txn = self.txn.lock().await;
        let rows = sqlx::query_with(&sql, values).fetch_all(&mut **txn).await.map_err(query_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
