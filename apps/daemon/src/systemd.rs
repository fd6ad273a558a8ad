//! Talking to systemd (`Type=notify`): READY once settings and database are up, WATCHDOG while
//! the database answers, STOPPING on shutdown. Outside systemd (no NOTIFY_SOCKET) these do
//! nothing.

use std::time::Duration;

use respack_store::Store;
use sd_notify::NotifyState;

pub fn ready() {
    notify(&[NotifyState::Ready]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}

/// With `WatchdogSec=` set, pings systemd at half the interval as long as the database
/// answers; a daemon stuck on a dead database stops pinging and systemd restarts it.
pub fn spawn_watchdog(store: Store) {
    let mut usec = 0_u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    tracing::info!(interval_ms = every.as_millis() as u64, "systemd watchdog enabled");
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match tokio::time::timeout(every, store.ping()).await {
                Ok(Ok(())) => notify(&[NotifyState::Watchdog]),
                Ok(Err(error)) => tracing::warn!(%error, "watchdog: the database does not answer"),
                Err(_) => tracing::warn!("watchdog: the database did not answer in time"),
            }
        }
    });
}
