//! respack's storage layer: sea-orm entities (private to this crate) and the business
//! operations both apps use. Every operation is one transaction that writes its ledger rows,
//! bill lines and audit row together; state changes are guarded updates (`… WHERE version = v`)
//! so two writers can never both win. Runs on SQLite (embedded default) and PostgreSQL.
//!
//! Time is a parameter: operations take `now` from the caller's clock.

mod accounts;
mod api_keys;
mod audit;
mod bill_summary;
mod bills;
mod candidate_cache;
mod catalog;
mod column_settings;
mod convert;
mod db;
pub mod demo;
mod entity;
mod error;
mod ids;
mod notices;
mod orders;
mod outbox;
mod pack_ops;
mod pack_rows;
mod packs;
mod sealing;
mod sessions;
mod settlement;
mod sqlx_tx;
#[cfg(test)]
mod test_support;
mod upkeep;
mod upkeep_stream;
mod usage;
mod usage_queue;
mod usage_rows;
mod usage_sql;
mod usage_write;
mod users;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

pub use accounts::{Account, AccountKind, LedgerEntry, NewAccount, TopUp};
pub use api_keys::{ApiKeyInfo, NewApiKey, SigningKey};
pub use audit::{Actor, AuditEntry};
pub use bill_summary::{
    check_month, BillSummaryFilter, BillSummaryPage, BillSummaryRow, BillSummaryTotals, PeriodType, SummaryBuild,
    SummaryState, ABANDONED_AFTER, MAX_SUMMARY_PAGE,
};
pub use bills::BillLine;
pub use catalog::{CatalogProduct, CatalogSubproduct};
pub use error::{StoreError, StoreResult};
pub use outbox::{OutboxMail, OutboxMessage};
pub use pack_ops::{AdjustmentReceipt, Charge, IssuedPack, RefundReceipt, RenewalReceipt};
pub use packs::{PackFilter, PackSort, Page, EXPIRED_VISIBLE_MONTHS};
pub use respack_config::Secret;
pub use sealing::SealingKey;
pub use sessions::{Session, SignIn, MAX_FAILED_SIGN_INS, SESSION_LIFETIME, THROTTLE_LOCKOUT};
pub use settlement::{SettlementReport, SETTLEMENT_LEDGER_KIND};
pub use upkeep::SweepReport;
pub use usage::{DailyUsage, DeductionFilter, DeductionRow, UsageInput, UsageOutcome, MAX_BATCH};
pub use usage_queue::{GROUP_RECORDS as USAGE_GROUP_RECORDS, USAGE_WRITERS_POSTGRES};
pub use users::{FirstUser, NewUser, Role, User};

/// The handle both apps hold: a connection pool plus what write transactions need.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// Present on SQLite: this process's writer connection (one writer at a time).
    sqlite_writer: Option<Arc<db::SqliteWriter>>,
    /// Present on SQLite: the sweep stream's reading connection (see `db::Connections`).
    sqlite_sweep_reader: Option<DatabaseConnection>,
    /// Present on SQLite: the packs the last usage batch left, for the next one.
    candidate_cache: Option<Arc<candidate_cache::CandidateCache>>,
    /// Usage batches waiting for the group writer (see `usage_queue`).
    usage_queue: Arc<usage::UsageQueue>,
    /// The catalog, read on first use (see [`Store::catalog`]).
    catalog: Arc<tokio::sync::OnceCell<Vec<CatalogProduct>>>,
    sealing: SealingKey,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("sqlite", &self.sqlite_writer.is_some()).finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`) and applies every
    /// pending migration. `sealing` protects API secret keys at rest.
    pub async fn connect(url: &str, sealing: SealingKey) -> StoreResult<Store> {
        let db::Connections { pool: db, sqlite_writer, sqlite_sweep_reader } = db::connect(url).await?;
        let candidate_cache = sqlite_writer.is_some().then(Arc::default);
        // SQLite writes one transaction at a time anyway; on PostgreSQL other groups plan and
        // write while one waits for its commit.
        let writers = if sqlite_writer.is_some() { 1 } else { USAGE_WRITERS_POSTGRES };
        let usage_queue = Arc::new(usage_queue::GroupQueue::new(writers));
        Ok(Store {
            db,
            sqlite_writer,
            sqlite_sweep_reader,
            candidate_cache,
            usage_queue,
            catalog: Arc::default(),
            sealing,
        })
    }

    /// Connects as the settings say, creating the data directory and, when no secret key is
    /// configured, a generated one in `<data_dir>/secret.key`.
    pub async fn open(settings: &respack_config::Settings) -> StoreResult<Store> {
        let sealing = match &settings.secret_key {
            Some(key) => SealingKey::from_hex(key.expose())?,
            None => SealingKey::load_or_create(&settings.data_dir.join("secret.key"))?,
        };
        Store::connect(settings.database_url.expose(), sealing).await
    }

    pub fn is_sqlite(&self) -> bool {
        self.sqlite_writer.is_some()
    }

    pub(crate) async fn write(&self) -> StoreResult<db::WriteTx> {
        db::begin_write(&self.db, self.sqlite_writer.as_deref()).await
    }

    pub(crate) fn read(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connection SQLite's sweep stream reads through (the pool elsewhere).
    pub(crate) fn sweep_read(&self) -> &DatabaseConnection {
        self.sqlite_sweep_reader.as_ref().unwrap_or(&self.db)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        self.db.ping().await?;
        Ok(())
    }

    /// Closes the pool and the writer (waits for connections to be returned).
    pub async fn close(self) -> StoreResult<()> {
        if let Some(writer) = &self.sqlite_writer {
            writer.close().await?;
        }
        if let Some(reader) = &self.sqlite_sweep_reader {
            reader.clone().close().await?;
        }
        self.db.close().await?;
        Ok(())
    }
}

/// Runs `operation` again when it failed for a transient reason (a guarded update lost a
/// race, a serialization failure): each attempt is a whole transaction, so a retry is safe.
pub(crate) async fn retrying<T, F, Fut>(mut operation: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    const ATTEMPTS: u32 = 12;
    let mut attempt = 1;
    loop {
        match operation().await {
            Err(error) if error.is_transient() && attempt < ATTEMPTS => {
                tracing::debug!(%error, attempt, "retrying after a transient failure");
                let jitter = rand::random::<u64>() % 10;
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt) * 5 + jitter)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}
