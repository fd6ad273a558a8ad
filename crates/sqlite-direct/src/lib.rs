//! Prepared SQLite statements run directly on a connection that sqlx has handed over
//! (`SqliteConnection::lock_handle`): values are bound straight from Rust data and the
//! statement is stepped on the calling thread.
//!
//! Why: sqlx runs each statement on the connection's worker thread, one message there and one
//! back per statement, with every value first converted into sqlx's own arguments. For the
//! usage writer's bulk rows (tens of thousands a transaction, the one writer SQLite has) those
//! hand-overs and conversions were a large part of a group's time. Here a statement is prepared
//! once per group and run once per row, its text and integers bound in place.
//!
//! The handle is borrowed for as long as a [`Connection`] lives, so nothing else (sqlx's worker
//! included) can use the connection meanwhile; a [`Connection`] is neither `Send` nor `Sync`,
//! so it is used on one thread, between two awaits.
//!
//! Also here, as the other place respack talks to SQLite's C API: [`register_batched_wal_vfs`],
//! a VFS that writes a transaction's WAL frames in large pieces (see `batched_wal`).

use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;
pub use sqlx_sqlite::LockedSqliteHandle;

mod batched_wal;
pub use batched_wal::{batched_wal_stats, register_batched_wal_vfs, BatchedWalStats, BATCHED_WAL_VFS};

/// A value bound to one statement parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Integer(i64),
    Text(&'a str),
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::Integer(value)
    }
}

impl From<i32> for Value<'_> {
    fn from(value: i32) -> Self {
        Value::Integer(value.into())
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Value::Text(value)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// What SQLite reported, with its extended result code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (SQLite result code {code})")]
pub struct Error {
    pub code: i32,
    pub message: String,
}

impl Error {
    /// A constraint failed (a unique key taken, a NOT NULL column given NULL, a trigger's
    /// `RAISE`, …).
    pub fn is_constraint(&self) -> bool {
        self.code & 0xff == ffi::SQLITE_CONSTRAINT
    }

    /// A unique key (or the primary key) was taken.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self.code, ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    }

    /// Another connection holds a lock this statement needs.
    pub fn is_busy(&self) -> bool {
        matches!(self.code & 0xff, ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED)
    }

    fn misuse(message: impl Into<String>) -> Error {
        Error { code: ffi::SQLITE_MISUSE, message: message.into() }
    }
}

/// An open SQLite connection, borrowed from sqlx while its handle is locked.
pub struct Connection<'h> {
    db: NonNull<ffi::sqlite3>,
    /// Borrows the locked handle (and is `!Send`, `!Sync` through the pointer).
    _handle: PhantomData<&'h mut ()>,
}

impl<'h> Connection<'h> {
    /// The connection behind `handle`, for as long as it stays locked.
    pub fn new(handle: &'h mut LockedSqliteHandle<'_>) -> Connection<'h> {
        Connection { db: handle.as_raw_handle(), _handle: PhantomData }
    }

    /// Prepares one SQL statement (more than one is refused).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>, Error> {
        let length = c_int::try_from(sql.len()).map_err(|_| Error::misuse("the SQL text is too long"))?;
        let mut statement = ptr::null_mut();
        let mut tail = ptr::null();
        // SAFETY: `self.db` is an open connection that nothing else uses while the handle is
        // locked; `sql` is valid for `length` bytes (SQLite reads no further), and `statement`
        // and `tail` are valid out-pointers.
        #[allow(unsafe_code)]
        let code = unsafe {
            ffi::sqlite3_prepare_v3(self.db.as_ptr(), sql.as_ptr().cast(), length, 0, &mut statement, &mut tail)
        };
        if code != ffi::SQLITE_OK {
            return Err(self.error(code));
        }
        let statement = NonNull::new(statement).ok_or_else(|| Error::misuse("the SQL text holds no statement"))?;
        let statement = Statement { statement, connection: self };
        // `tail` points into `sql`, after the statement's text.
        let used = (tail as usize).saturating_sub(sql.as_ptr() as usize);
        if !sql.get(used..).unwrap_or_default().trim().is_empty() {
            return Err(Error::misuse("the SQL text holds more than one statement"));
        }
        Ok(statement)
    }

    /// The error SQLite holds for the last call on this connection that failed with `code`.
    fn error(&self, code: c_int) -> Error {
        // SAFETY: the connection is open and ours; `sqlite3_errmsg` returns a NUL-terminated
        // string owned by SQLite, valid until the next call on the connection, copied here.
        #[allow(unsafe_code)]
        let (code, message) = unsafe {
            let extended = ffi::sqlite3_extended_errcode(self.db.as_ptr());
            let message = ffi::sqlite3_errmsg(self.db.as_ptr());
            let message = if message.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            };
            (if extended == ffi::SQLITE_OK { code } else { extended }, message)
        };
        Error { code, message }
    }
}

/// A prepared statement, run once per row of values; finalized when dropped.
pub struct Statement<'c> {
    statement: NonNull<ffi::sqlite3_stmt>,
    connection: &'c Connection<'c>,
}

impl Statement<'_> {
    /// Binds `values` to the statement's parameters in order, runs it to its end (rows it
    /// returns are skipped) and returns how many rows it inserted, updated or deleted. The
    /// statement is reset and its parameters cleared, whatever happened, before this returns.
    pub fn execute<'v>(&mut self, values: impl IntoIterator<Item = Value<'v>>) -> Result<u64, Error> {
        let outcome = self.bind(values).and_then(|()| self.run());
        // SAFETY: the statement is live. Clearing the bindings before returning is what makes
        // binding text without a copy (`SQLITE_STATIC`) sound: SQLite reads the text the values
        // borrow (for `'v`, beyond this call) only while this call runs.
        #[allow(unsafe_code)]
        unsafe {
            ffi::sqlite3_reset(self.statement.as_ptr());
            ffi::sqlite3_clear_bindings(self.statement.as_ptr());
        }
        outcome
    }

    fn bind<'v>(&mut self, values: impl IntoIterator<Item = Value<'v>>) -> Result<(), Error> {
        let statement = self.statement.as_ptr();
        // SAFETY: the statement is live.
        #[allow(unsafe_code)]
        let expected = unsafe { ffi::sqlite3_bind_parameter_count(statement) };
        let mut given: c_int = 0;
        for value in values {
            given = given.saturating_add(1);
            if given > expected {
                continue;
            }
            let index = given;
            // SAFETY: the statement is live and `index` is within its parameters (1 to
            // `expected`). Text is bound in place (`SQLITE_STATIC`): `execute` clears the
            // bindings before the borrowed strings can go away.
            #[allow(unsafe_code)]
            let code = unsafe {
                match value {
                    Value::Null => ffi::sqlite3_bind_null(statement, index),
                    Value::Integer(number) => ffi::sqlite3_bind_int64(statement, index, number),
                    Value::Text(text) => {
                        let length =
                            c_int::try_from(text.len()).map_err(|_| Error::misuse("a text value is too long"))?;
                        ffi::sqlite3_bind_text(statement, index, text.as_ptr().cast(), length, ffi::SQLITE_STATIC())
                    }
                }
            };
            if code != ffi::SQLITE_OK {
                return Err(self.connection.error(code));
            }
        }
        if given != expected {
            return Err(Error::misuse(format!("the statement takes {expected} values, {given} were given")));
        }
        Ok(())
    }

    fn run(&mut self) -> Result<u64, Error> {
        loop {
            // SAFETY: the statement is live and bound; the connection is ours.
            #[allow(unsafe_code)]
            let code = unsafe { ffi::sqlite3_step(self.statement.as_ptr()) };
            match code {
                ffi::SQLITE_ROW => continue,
                ffi::SQLITE_DONE => break,
                _ => return Err(self.connection.error(code)),
            }
        }
        // SAFETY: the connection is ours; it reports the changes of the statement just run.
        #[allow(unsafe_code)]
        let changes = unsafe { ffi::sqlite3_changes64(self.connection.db.as_ptr()) };
        Ok(u64::try_from(changes).unwrap_or_default())
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on this connection and is finalized only here.
        #[allow(unsafe_code)]
        unsafe {
            ffi::sqlite3_finalize(self.statement.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sqlx::{Connection as _, Executor as _, Row as _, SqliteConnection};

    use super::*;

    async fn memory() -> SqliteConnection {
        let mut connection = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER)").await.unwrap();
        connection
    }

    #[tokio::test]
    async fn a_statement_runs_once_per_row_and_counts_the_rows_it_changed() {
        let mut sqlx = memory().await;
        {
            let mut handle = sqlx.lock_handle().await.unwrap();
            let connection = Connection::new(&mut handle);
            let mut insert = connection.prepare("INSERT INTO t (id, name, n) VALUES (?, ?, ?)").unwrap();
            for (id, name) in [(1_i64, "one".to_owned()), (2, "two".to_owned())] {
                // Each row's text is borrowed only for its own run.
                assert_eq!(insert.execute([id.into(), name.as_str().into(), Value::Null]).unwrap(), 1);
            }
            assert_eq!(insert.execute([3_i64.into(), Value::Null, Some(7_i64).into()]).unwrap(), 1);
            let mut update = connection.prepare("UPDATE t SET n = coalesce(n, 0) + ? WHERE id <= ?").unwrap();
            assert_eq!(update.execute([5_i64.into(), 2_i64.into()]).unwrap(), 2);
            assert_eq!(update.execute([5_i64.into(), 0_i64.into()]).unwrap(), 0);
        }
        // sqlx has the connection back and sees every row as bound.
        let rows = sqlx.fetch_all("SELECT id, name, n FROM t ORDER BY id").await.unwrap();
        let read: Vec<(i64, Option<String>, Option<i64>)> =
            rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect();
        assert_eq!(read, [(1, Some("one".into()), Some(5)), (2, Some("two".into()), Some(5)), (3, None, Some(7))]);
    }

    #[tokio::test]
    async fn errors_say_what_sqlite_said_and_leave_the_statement_usable() {
        let mut sqlx = memory().await;
        let mut handle = sqlx.lock_handle().await.unwrap();
        let connection = Connection::new(&mut handle);
        let mut insert = connection.prepare("INSERT INTO t (id, name) VALUES (?, ?)").unwrap();
        insert.execute([1_i64.into(), "taken".into()]).unwrap();
        let taken = insert.execute([2_i64.into(), "taken".into()]).unwrap_err();
        assert!(taken.is_constraint() && taken.is_unique_violation() && !taken.is_busy(), "{taken:?}");
        assert!(taken.message.contains("UNIQUE constraint failed: t.name"), "{taken}");
        assert_eq!(insert.execute([2_i64.into(), "free".into()]).unwrap(), 1);
        connection
            .prepare("CREATE TRIGGER refuse BEFORE INSERT ON t WHEN NEW.name = 'bad' BEGIN SELECT RAISE(ABORT, 'refused'); END")
            .unwrap()
            .execute([])
            .unwrap();
        let refused = insert.execute([3_i64.into(), "bad".into()]).unwrap_err();
        assert!(refused.is_constraint() && !refused.is_unique_violation(), "{refused:?}");
        assert!(refused.message.contains("refused"), "{refused}");

        let count = insert.execute([3_i64.into()]).unwrap_err();
        assert!(count.message.contains("takes 2 values, 1 were given"), "{count}");
        let count = insert.execute([4_i64.into(), "four".into(), Value::Null]).unwrap_err();
        assert!(count.message.contains("takes 2 values, 3 were given"), "{count}");
        let syntax = connection.prepare("INSERT INTO nowhere VALUES (?)").err().unwrap();
        assert!(syntax.message.contains("no such table: nowhere"), "{syntax}");
        let two = connection.prepare("DELETE FROM t; DELETE FROM t").err().unwrap();
        assert!(two.message.contains("more than one statement"), "{two}");
        let none = connection.prepare("  ").err().unwrap();
        assert!(none.message.contains("holds no statement"), "{none}");
    }
}
