//! respackd's counters and the local HTTP endpoints that show them: `/healthz` (the database
//! answers and the last sweep did not fail) and `/metrics` in Prometheus' text format.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use respack_store::Store;

use crate::mailer::DeliveryReport;
use crate::SweepPass;

/// Counters since start; gauges of the last sweep.
#[derive(Debug, Default)]
pub struct Metrics {
    pub sweeps: AtomicU64,
    pub sweep_failures: AtomicU64,
    pub packs_swept: AtomicU64,
    pub activated: AtomicU64,
    pub cycles_rolled: AtomicU64,
    pub renewed: AtomicU64,
    pub renewal_failed: AtomicU64,
    pub expired: AtomicU64,
    pub exhausted: AtomicU64,
    pub packs_failed: AtomicU64,
    pub mails_queued: AtomicU64,
    pub overage_lines_settled: AtomicU64,
    pub overage_lines_short: AtomicU64,
    pub mails_sent: AtomicU64,
    pub mails_retried: AtomicU64,
    pub mails_dead: AtomicU64,
    pub delivery_failures: AtomicU64,
    /// Unix seconds of the last sweep that finished without error (0: none yet).
    pub last_sweep_ok: AtomicI64,
    pub last_sweep_ms: AtomicU64,
    /// 1 when the last sweep failed.
    pub last_sweep_failed: AtomicU64,
}

impl Metrics {
    pub fn record_sweep(&self, pass: &SweepPass) {
        let (report, mails) = (&pass.packs, pass.capacity_mails);
        let add = |counter: &AtomicU64, value: u64| counter.fetch_add(value, Ordering::Relaxed);
        add(&self.overage_lines_settled, pass.settlement.lines);
        add(&self.overage_lines_short, pass.settlement.short);
        add(&self.packs_swept, report.packs);
        add(&self.activated, report.activated);
        add(&self.cycles_rolled, report.cycles_rolled);
        add(&self.renewed, report.renewed);
        add(&self.renewal_failed, report.renewal_failed);
        add(&self.expired, report.expired);
        add(&self.exhausted, report.exhausted);
        add(&self.packs_failed, report.failed);
        add(&self.mails_queued, report.mails + mails);
    }

    pub fn record_delivery(&self, report: &DeliveryReport) {
        self.mails_sent.fetch_add(report.sent, Ordering::Relaxed);
        self.mails_retried.fetch_add(report.retried, Ordering::Relaxed);
        self.mails_dead.fetch_add(report.dead, Ordering::Relaxed);
    }

    fn render(&self, outbox: &[(String, i64)]) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        };
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        counter("respackd_sweeps_total", "Sweeps run.", get(&self.sweeps));
        counter("respackd_sweep_failures_total", "Sweeps that failed.", get(&self.sweep_failures));
        counter("respackd_packs_swept_total", "Due packs handled.", get(&self.packs_swept));
        counter("respackd_packs_activated_total", "Packs activated.", get(&self.activated));
        counter("respackd_cycles_rolled_total", "Packs moved to a later cycle.", get(&self.cycles_rolled));
        counter("respackd_renewals_total", "Automatic renewals charged.", get(&self.renewed));
        counter("respackd_renewal_failures_total", "Automatic renewals not possible.", get(&self.renewal_failed));
        counter("respackd_packs_expired_total", "Packs expired.", get(&self.expired));
        counter("respackd_packs_exhausted_total", "Packs exhausted.", get(&self.exhausted));
        counter("respackd_packs_failed_total", "Packs that could not be handled.", get(&self.packs_failed));
        counter("respackd_mails_queued_total", "Emails queued.", get(&self.mails_queued));
        counter(
            "respackd_overage_lines_settled_total",
            "Daily settlement bill lines paid from a balance, in full or in part.",
            get(&self.overage_lines_settled),
        );
        counter(
            "respackd_overage_lines_short_total",
            "Settlement payments a balance could not cover in full (the rest stays owed).",
            get(&self.overage_lines_short),
        );
        counter("respackd_mails_sent_total", "Emails handed to the mail server.", get(&self.mails_sent));
        counter("respackd_mail_retries_total", "Failed deliveries queued for retry.", get(&self.mails_retried));
        counter("respackd_mails_dead_total", "Emails given up on.", get(&self.mails_dead));
        counter("respackd_delivery_failures_total", "Delivery passes that failed.", get(&self.delivery_failures));
        out.push_str("# HELP respackd_last_sweep_success_timestamp_seconds When the last sweep succeeded.\n");
        out.push_str("# TYPE respackd_last_sweep_success_timestamp_seconds gauge\n");
        out.push_str(&format!(
            "respackd_last_sweep_success_timestamp_seconds {}\n",
            self.last_sweep_ok.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP respackd_last_sweep_duration_seconds How long the last sweep took.\n");
        out.push_str("# TYPE respackd_last_sweep_duration_seconds gauge\n");
        out.push_str(&format!(
            "respackd_last_sweep_duration_seconds {:.3}\n",
            self.last_sweep_ms.load(Ordering::Relaxed) as f64 / 1000.0
        ));
        out.push_str(
            "# HELP respackd_outbox_emails Emails in the outbox by status.\n# TYPE respackd_outbox_emails gauge\n",
        );
        for (status, count) in outbox {
            out.push_str(&format!("respackd_outbox_emails{{status=\"{status}\"}} {count}\n"));
        }
        out
    }
}

#[derive(Clone)]
struct HttpState {
    store: Store,
    metrics: Arc<Metrics>,
}

pub fn router(store: Store, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .with_state(HttpState { store, metrics })
}

async fn healthz(State(state): State<HttpState>) -> impl IntoResponse {
    if let Err(error) = state.store.ping().await {
        tracing::warn!(%error, "health check: the database does not answer");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n");
    }
    if state.metrics.last_sweep_failed.load(Ordering::Relaxed) == 1 {
        return (StatusCode::SERVICE_UNAVAILABLE, "the last sweep failed; see the log\n");
    }
    (StatusCode::OK, "ok\n")
}

async fn prometheus(State(state): State<HttpState>) -> impl IntoResponse {
    let outbox = match state.store.outbox_counts().await {
        Ok(counts) => counts,
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot count the outbox");
            Vec::new()
        }
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(&outbox))
}
