//! respackd, the scheduler daemon: keeps every pack's state true as time passes (activate, roll
//! cycles, auto-renew or expire, exhaust), queues the notices, and delivers the email outbox.
//! The work itself is in `respack-store` (one transaction per batch of due packs); this crate
//! schedules it (tokio-cron-scheduler), sends the mail (lettre), talks to systemd, serves
//! `/healthz` and `/metrics`, and stops cleanly on SIGTERM.

pub mod cli;
pub mod mailer;
pub mod metrics;
pub mod systemd;
pub mod telemetry;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use respack_clock::Clock;
use respack_config::{MailTransport, Settings};
use respack_store::{SettlementReport, Store, SummaryBuild, SweepReport};
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::cli::Command;
use crate::mailer::{DeliveryReport, Sender};
use crate::metrics::Metrics;

/// How many deductions the periodic safety-net capacity scan re-reads (see
/// `Store::scan_capacity_alerts`), and how often it runs.
const CAPACITY_LOOKBACK: i64 = 10_000;
const CAPACITY_LOOKBACK_EVERY: Duration = Duration::hours(1);

/// What one sweep did: the due packs, the low-capacity scan, the overage settlement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepPass {
    pub packs: SweepReport,
    /// Low-capacity emails queued by the scan.
    pub capacity_mails: u64,
    pub settlement: SettlementReport,
}

/// What one pass of every job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub sweep: SweepPass,
    pub delivery: DeliveryReport,
    pub summaries: Vec<SummaryBuild>,
}

impl PassReport {
    pub fn to_json(&self) -> serde_json::Value {
        let (s, capacity_mails, settlement) = (&self.sweep.packs, self.sweep.capacity_mails, &self.sweep.settlement);
        serde_json::json!({
            "packs": s.packs, "activated": s.activated, "cycles_rolled": s.cycles_rolled,
            "renewed": s.renewed, "renewal_failed": s.renewal_failed, "expired": s.expired,
            "exhausted": s.exhausted, "failed": s.failed, "mails_queued": s.mails + capacity_mails,
            "mails_sent": self.delivery.sent, "mails_retried": self.delivery.retried, "mails_dead": self.delivery.dead,
            "overage_lines_settled": settlement.lines, "overage_charged": settlement.charged.to_string(),
            "overage_lines_short": settlement.short,
            "bill_summaries_built": self.summaries.iter().filter(|build| build.built).map(|build| &build.month).collect::<Vec<_>>(),
        })
    }
}

/// The daemon: a store, a clock, the outbox sender and the counters. Cheap to clone.
#[derive(Clone)]
pub struct Daemon {
    store: Store,
    clock: Clock,
    sender: Sender,
    batch_size: u64,
    metrics: Arc<Metrics>,
    /// Set on SIGTERM: jobs stop after the transaction in flight.
    stopping: Arc<AtomicBool>,
    sweep_running: Arc<Mutex<()>>,
    delivery_running: Arc<Mutex<()>>,
    last_lookback: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("store", &self.store)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    pub async fn build(settings: &Settings, clock: Clock) -> anyhow::Result<Daemon> {
        let store = Store::open(settings).await.context("cannot open the database")?;
        let sender = Sender::new(store.clone(), &settings.mail)?;
        Ok(Daemon {
            batch_size: settings.daemon.batch_size.unwrap_or_else(|| store.default_sweep_batch()),
            store,
            clock,
            sender,
            metrics: Arc::new(Metrics::default()),
            stopping: Arc::new(AtomicBool::new(false)),
            sweep_running: Arc::new(Mutex::new(())),
            delivery_running: Arc::new(Mutex::new(())),
            last_lookback: Arc::new(Mutex::new(None)),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn stop_requested(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The pack jobs at `now`: every due pack (batch after batch, stopping early on SIGTERM),
    /// then the low-capacity scan, then the settlement of ended days' overage.
    pub async fn sweep(&self, now: DateTime<Utc>) -> anyhow::Result<SweepPass> {
        let _running = self.sweep_running.lock().await;
        let started = Instant::now();
        self.metrics.sweeps.fetch_add(1, Ordering::Relaxed);
        let result = self.sweep_inner(now).await;
        self.metrics.last_sweep_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        match &result {
            Ok(pass) => {
                self.metrics.record_sweep(pass);
                self.metrics.last_sweep_failed.store(0, Ordering::Relaxed);
                self.metrics.last_sweep_ok.store(Utc::now().timestamp(), Ordering::Relaxed);
            }
            Err(_) => {
                self.metrics.sweep_failures.fetch_add(1, Ordering::Relaxed);
                self.metrics.last_sweep_failed.store(1, Ordering::Relaxed);
            }
        }
        result
    }

    async fn sweep_inner(&self, now: DateTime<Utc>) -> anyhow::Result<SweepPass> {
        let stopping = self.stopping.clone();
        let total = self
            .store
            .sweep_packs_while(now, self.batch_size, move |_| !stopping.load(Ordering::SeqCst))
            .await
            .context("pack sweep failed")?;
        let lookback = {
            let mut last = self.last_lookback.lock().await;
            let due = last.is_none_or(|at| now - at >= CAPACITY_LOOKBACK_EVERY || now < at);
            if due {
                *last = Some(now);
            }
            if due {
                CAPACITY_LOOKBACK
            } else {
                0
            }
        };
        if self.stop_requested() {
            return Ok(SweepPass { packs: total, ..SweepPass::default() });
        }
        let capacity_mails =
            self.store.scan_capacity_alerts(now, lookback).await.context("capacity alert scan failed")?;
        let settlement = if self.stop_requested() {
            SettlementReport::default()
        } else {
            self.store.settle_overage(now, self.batch_size).await.context("overage settlement failed")?
        };
        Ok(SweepPass { packs: total, capacity_mails, settlement })
    }

    /// The outbox sender at `now`.
    pub async fn deliver(&self, now: DateTime<Utc>) -> anyhow::Result<DeliveryReport> {
        let _running = self.delivery_running.lock().await;
        let stopping = self.stopping.clone();
        let result = self.sender.deliver_due(now, &move || stopping.load(Ordering::SeqCst)).await;
        match result {
            Ok(report) => {
                self.metrics.record_delivery(&report);
                Ok(report)
            }
            Err(error) => {
                self.metrics.delivery_failures.fetch_add(1, Ordering::Relaxed);
                Err(error).context("outbox delivery failed")
            }
        }
    }

    /// Builds the monthly bill summaries that can still change at `now`: see [`open_bill_months`].
    pub async fn build_bill_summaries(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<SummaryBuild>> {
        let mut builds = Vec::new();
        for month in open_bill_months(now) {
            if self.stop_requested() {
                break;
            }
            let build = self
                .store
                .build_bill_summary(&month, now)
                .await
                .with_context(|| format!("building the bill summary of {month} failed"))?;
            builds.push(build);
        }
        Ok(builds)
    }

    /// One pass of every job at `now` (`respackd sweep --once`).
    pub async fn pass(&self, now: DateTime<Utc>) -> anyhow::Result<PassReport> {
        let sweep = self.sweep(now).await?;
        let delivery = self.deliver(now).await?;
        let summaries = self.build_bill_summaries(now).await?;
        Ok(PassReport { sweep, delivery, summaries })
    }

    async fn summary_job(&self) {
        if self.stop_requested() {
            return;
        }
        let now = self.clock.now();
        match self.build_bill_summaries(now).await {
            Ok(builds) => {
                for build in builds.iter().filter(|build| build.built) {
                    tracing::info!(month = %build.month, summaries = build.summaries, lines = build.lines,
                        "bill summary built");
                }
            }
            Err(error) => tracing::error!(%now, "{error:#}"),
        }
    }

    async fn sweep_job(&self) {
        if self.stop_requested() {
            return;
        }
        if self.sweep_running.try_lock().is_err() {
            tracing::debug!("the previous sweep is still running; skipping this tick");
            return;
        }
        let now = self.clock.now();
        match self.sweep(now).await {
            Ok(SweepPass { packs: report, capacity_mails: mails, settlement })
                if report.packs > 0 || mails > 0 || settlement.lines > 0 || settlement.short > 0 =>
            {
                tracing::info!(%now, packs = report.packs, activated = report.activated, cycles_rolled = report.cycles_rolled,
                    renewed = report.renewed, renewal_failed = report.renewal_failed, expired = report.expired,
                    exhausted = report.exhausted, failed = report.failed, mails = report.mails + mails,
                    overage_lines_settled = settlement.lines, overage_charged = %settlement.charged,
                    overage_lines_short = settlement.short, "sweep finished");
            }
            Ok(_) => tracing::debug!(%now, "sweep: nothing due"),
            Err(error) => tracing::error!(%now, "{error:#}"),
        }
    }

    async fn delivery_job(&self) {
        if self.stop_requested() || self.delivery_running.try_lock().is_err() {
            return;
        }
        let now = self.clock.now();
        match self.deliver(now).await {
            Ok(report) if report != DeliveryReport::default() => {
                tracing::info!(
                    sent = report.sent,
                    retried = report.retried,
                    dead = report.dead,
                    "outbox delivery finished"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::error!("{error:#}"),
        }
    }

    /// Asks running jobs to stop after their transaction in flight and waits for them.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _sweep = self.sweep_running.lock().await;
        let _delivery = self.delivery_running.lock().await;
    }
}

/// The bill months (`yyyy-mm`) whose summaries can still change at `now`: every month some
/// time zone is in (bill lines are dated in their account's zone, UTC−12 to UTC+14), and the
/// month before for two days after it ends, so late settlements land and the final build of a
/// month happens after its end plus one day.
pub fn open_bill_months(now: DateTime<Utc>) -> Vec<String> {
    let mut months: Vec<String> = [now - Duration::days(2), now - Duration::hours(12), now, now + Duration::hours(14)]
        .iter()
        .map(|at| at.format("%Y-%m").to_string())
        .collect();
    months.dedup();
    months
}

/// Runs a command of the command line.
pub async fn execute(command: Command) -> anyhow::Result<()> {
    if command == Command::Help {
        println!("{}", cli::USAGE);
        return Ok(());
    }
    let settings = Settings::load().context("cannot read respack settings")?;
    telemetry::init(&settings.log)?;
    let clock = Clock::parse(&settings.daemon.clock).context("[daemon] clock / RESPACK_DAEMON_CLOCK")?;
    match command {
        Command::Help => Ok(()),
        Command::CheckConfig => check_config(&settings, &clock).await,
        Command::SweepOnce { now } => {
            let daemon = Daemon::build(&settings, clock.clone()).await?;
            let now = now.unwrap_or_else(|| clock.now());
            let report = daemon.pass(now).await?;
            let mut line = report.to_json();
            line["now"] = serde_json::json!(now);
            println!("{line}");
            daemon.store.clone().close().await.ok();
            Ok(())
        }
        Command::Run => run(&settings, clock).await,
    }
}

async fn check_config(settings: &Settings, clock: &Clock) -> anyhow::Result<()> {
    println!("settings: {settings:#?}");
    println!("clock now: {}", clock.now());
    for (name, schedule) in [
        ("sweep", &settings.daemon.sweep_schedule),
        ("outbox", &settings.daemon.outbox_schedule),
        ("summary", &settings.daemon.summary_schedule),
    ] {
        Job::new_async(schedule.as_str(), |_, _| Box::pin(async {})).with_context(|| {
            format!("[daemon] {name}_schedule = {schedule:?} is not a cron schedule (sec min hour day month weekday)")
        })?;
    }
    let daemon = Daemon::build(settings, clock.clone()).await?;
    daemon.store.ping().await.context("the database does not answer")?;
    println!("database: reachable, migrations applied");
    daemon.sender.transport().test_connection().await?;
    match &settings.mail.transport {
        MailTransport::File { dir } => println!("mail: written to {} (development sink)", dir.display()),
        MailTransport::Smtp(smtp) => println!("mail: SMTP server {}:{} reachable", smtp.host, smtp.port),
    }
    println!("configuration OK");
    Ok(())
}

async fn run(settings: &Settings, clock: Clock) -> anyhow::Result<()> {
    let daemon = Daemon::build(settings, clock).await?;
    if let MailTransport::File { dir } = &settings.mail.transport {
        tracing::warn!(dir = %dir.display(), "mail goes to files, not to an SMTP server ([mail] transport = \"file\")");
    }
    let listener = tokio::net::TcpListener::bind(&settings.daemon.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {} ([daemon] metrics_addr)", settings.daemon.metrics_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "serving /healthz and /metrics");
    let app = metrics::router(daemon.store.clone(), daemon.metrics());
    let http = tokio::spawn(async move { axum::serve(listener, app).await });

    let scheduler = JobScheduler::new().await.context("cannot start the job scheduler")?;
    let sweeper = daemon.clone();
    scheduler
        .add(
            Job::new_async(settings.daemon.sweep_schedule.as_str(), move |_, _| {
                let daemon = sweeper.clone();
                Box::pin(async move { daemon.sweep_job().await })
            })
            .with_context(|| {
                format!("[daemon] sweep_schedule {:?} is not a cron schedule", settings.daemon.sweep_schedule)
            })?,
        )
        .await?;
    let deliverer = daemon.clone();
    scheduler
        .add(
            Job::new_async(settings.daemon.outbox_schedule.as_str(), move |_, _| {
                let daemon = deliverer.clone();
                Box::pin(async move { daemon.delivery_job().await })
            })
            .with_context(|| {
                format!("[daemon] outbox_schedule {:?} is not a cron schedule", settings.daemon.outbox_schedule)
            })?,
        )
        .await?;
    let summarizer = daemon.clone();
    scheduler
        .add(
            Job::new_async(settings.daemon.summary_schedule.as_str(), move |_, _| {
                let daemon = summarizer.clone();
                Box::pin(async move { daemon.summary_job().await })
            })
            .with_context(|| {
                format!("[daemon] summary_schedule {:?} is not a cron schedule", settings.daemon.summary_schedule)
            })?,
        )
        .await?;
    scheduler.start().await.context("cannot start the job scheduler")?;
    // Catch up at once rather than waiting for the first tick (after downtime, due packs wait).
    let first = daemon.clone();
    tokio::spawn(async move {
        first.sweep_job().await;
        first.delivery_job().await;
    });
    systemd::spawn_watchdog(daemon.store.clone());
    systemd::ready();
    tracing::info!(sweep = %settings.daemon.sweep_schedule, outbox = %settings.daemon.outbox_schedule, "respackd running");

    shutdown_signal().await;
    tracing::info!("stopping: finishing the transaction in flight");
    systemd::stopping();
    let mut scheduler = scheduler;
    if let Err(error) = scheduler.shutdown().await {
        tracing::warn!(%error, "job scheduler did not shut down cleanly");
    }
    daemon.stop().await;
    http.abort();
    daemon.store.clone().close().await.ok();
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn open_bill_months_cover_every_zone_and_the_month_just_ended() {
        assert_eq!(open_bill_months(at("2026-11-15T12:00:00Z")), vec!["2026-11"]);
        assert_eq!(open_bill_months(at("2026-11-30T12:00:00Z")), vec!["2026-11", "2026-12"], "UTC+14 is in December");
        assert_eq!(open_bill_months(at("2026-12-01T08:00:00Z")), vec!["2026-11", "2026-12"]);
        assert_eq!(open_bill_months(at("2026-12-02T23:00:00Z")), vec!["2026-11", "2026-12"], "the final build");
        assert_eq!(open_bill_months(at("2026-12-03T01:00:00Z")), vec!["2026-12"]);
        assert_eq!(open_bill_months(at("2026-12-31T23:00:00Z")), vec!["2026-12", "2027-01"]);
    }
}
