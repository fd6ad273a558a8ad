//! Throwaway stores for the suite: a fresh SQLite file, or a fresh database in the PostgreSQL
//! named by `RESPACK_TEST_DATABASE_URL` (which `cargo xtask test` starts), dropped afterwards.

use std::sync::atomic::{AtomicU32, Ordering};

use respack_store::{SealingKey, Store};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct TestDb {
    pub store: Store,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(std::path::PathBuf),
    PostgresDatabase { admin: DatabaseConnection, name: String },
}

fn key() -> SealingKey {
    SealingKey::from_bytes([42; 32])
}

fn unique_name() -> String {
    format!("respack_it_{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst), rand_suffix())
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos % 100_000
}

pub async fn sqlite() -> TestDb {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = Store::connect(&url, key()).await.expect("open SQLite");
    TestDb { store, url, cleanup: Cleanup::SqliteFile(path) }
}

/// `None` (and a note on stderr) when no PostgreSQL is configured, unless one is required
/// (`RESPACK_REQUIRE_POSTGRES=1` or `CI=true`): then missing PostgreSQL fails the test.
pub async fn postgres() -> Option<TestDb> {
    let Ok(url) = std::env::var("RESPACK_TEST_DATABASE_URL") else {
        let required = std::env::var("RESPACK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
            || std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !required,
            "RESPACK_TEST_DATABASE_URL is not set but PostgreSQL tests are required; run `cargo xtask test`"
        );
        eprintln!("SKIPPED: PostgreSQL store test (set RESPACK_TEST_DATABASE_URL or run `cargo xtask test`)");
        return None;
    };
    let admin = Database::connect(&url).await.expect("connect to the test PostgreSQL");
    let name = unique_name();
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create a test database");
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url.as_str(), String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    let url = format!("{server}/{name}{query}");
    let store = Store::connect(&url, key()).await.expect("open PostgreSQL store");
    Some(TestDb { store, url, cleanup: Cleanup::PostgresDatabase { admin, name } })
}

impl TestDb {
    /// A second handle on the same database, standing for another process (respackd, or
    /// another web node): it shares nothing in memory with `store`.
    pub async fn second_handle(&self) -> Store {
        Store::connect(&self.url, key()).await.expect("open a second handle")
    }

    /// Runs SQL on the database outside the store (a test's own schema changes, such as a
    /// trigger that makes a write fail).
    pub async fn execute(&self, sql: &str) {
        let connection = Database::connect(&self.url).await.expect("connect to the test database");
        connection.execute_unprepared(sql).await.expect("run the test's SQL");
        connection.close().await.expect("close the test's connection");
    }

    /// The database's URL, for a connection of the test's own.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    pub async fn finish(self) {
        let _ = self.store.close().await;
        match self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::PostgresDatabase { admin, name } => {
                let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            }
        }
    }
}

/// Runs each named `async fn(&TestDb)` once on SQLite and once on PostgreSQL: for tests that
/// need the database itself (the store, and SQL run beside it). The two macros below run
/// their tests through it.
#[macro_export]
macro_rules! on_both_backends_with_db {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = $crate::harness::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = $crate::harness::postgres().await {
                        super::$name(&db).await;
                        db.finish().await;
                    }
                }
            }
        )*
    };
}

/// Runs each named `async fn(&Store)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                async fn store(db: &$crate::harness::TestDb) {
                    super::$name(&db.store).await;
                }

                $crate::on_both_backends_with_db!(store);
            }
        )*
    };
}

/// Like [`on_both_backends`], for tests that take the store and a second handle on the same
/// database (another process: respackd, a second web node).
#[macro_export]
macro_rules! on_both_backends_with_two_handles {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                async fn two_handles(db: &$crate::harness::TestDb) {
                    let other = db.second_handle().await;
                    super::$name(&db.store, &other).await;
                    other.close().await.unwrap();
                }

                $crate::on_both_backends_with_db!(two_handles);
            }
        )*
    };
}
