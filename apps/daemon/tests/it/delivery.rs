//! The outbox sender against a real SMTP server (aiosmtpd): what arrives, and what happens
//! while the server is down.

use chrono::Duration;
use respack_clock::Clock;
use respack_domain::RenewalMethod;
use respackd::Daemon;

use crate::harness::*;

fn smtp_env(port: u16, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("RESPACK_MAIL_TRANSPORT", "smtp".to_owned()),
        ("RESPACK_SMTP_HOST", "127.0.0.1".to_owned()),
        ("RESPACK_SMTP_PORT", port.to_string()),
        ("RESPACK_SMTP_SECURITY", "none".to_owned()),
        ("RESPACK_SMTP_TIMEOUT_S", "5".to_owned()),
        ("RESPACK_MAIL_FROM", "respack billing <billing@respack.example>".to_owned()),
        ("RESPACK_MAIL_BACKOFF_S", "60".to_owned()),
    ];
    for (key, value) in extra {
        let key: &'static str = match *key {
            "RESPACK_MAIL_MAX_ATTEMPTS" => "RESPACK_MAIL_MAX_ATTEMPTS",
            other => panic!("unexpected {other}"),
        };
        env.push((key, (*value).to_owned()));
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_smtp_server_receives_plain_text_and_html() {
    let Some(python) = python() else { return };
    let dir = TempDir::new("smtp");
    let inbox = TempDir::new("inbox");
    let port = free_port();
    let _sink = SmtpSink::start(&python, port, inbox.path());
    let env = daemon_env(dir.path(), &sqlite_url(dir.path()), &smtp_env(port, &[]));
    let now = at("2026-04-30T00:00:00Z");
    let daemon = Daemon::build(&settings(&env), Clock::fixed(now)).await.unwrap();
    let account = account(daemon.store(), "0").await;
    let pack = issue(daemon.store(), account.id, monthly(at("2026-03-31T00:00:00Z"), 1, RenewalMethod::Manual)).await;

    let report = daemon.pass(now).await.unwrap();
    assert_eq!((report.sweep.packs.expired, report.delivery.sent), (1, 1));
    let messages = read_messages(inbox.path());
    assert_eq!(messages.len(), 1);
    let raw = &messages[0];
    assert!(raw.contains(&format!("Subject: Resource pack Transcoding pack ({pack}) has expired")), "{raw}");
    assert!(raw.contains("To: ops@acme.example"), "{raw}");
    assert!(raw.contains("From: \"respack billing\" <billing@respack.example>"), "{raw}");
    assert!(raw.contains("multipart/alternative") && raw.contains("text/plain") && raw.contains("text/html"), "{raw}");
    assert!(message_id(raw).starts_with("<outbox-"), "{raw}");
    let outbox = daemon.store().outbox(None, 10).await.unwrap();
    assert_eq!((outbox[0].status.as_str(), outbox[0].attempts), ("sent", 1));

    assert_eq!(daemon.pass(now + Duration::minutes(5)).await.unwrap().delivery.sent, 0, "sent once");
    assert_eq!(read_messages(inbox.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mails_wait_while_smtp_is_down_and_arrive_exactly_once() {
    let Some(python) = python() else { return };
    let dir = TempDir::new("down");
    let inbox = TempDir::new("inbox-down");
    let port = free_port();
    let env = daemon_env(dir.path(), &sqlite_url(dir.path()), &smtp_env(port, &[]));
    let now = at("2026-04-30T00:00:00Z");
    let clock = Clock::fixed(now);
    let daemon = Daemon::build(&settings(&env), clock.clone()).await.unwrap();
    let account = account(daemon.store(), "0").await;
    for _ in 0..3 {
        issue(daemon.store(), account.id, monthly(at("2026-03-31T00:00:00Z"), 1, RenewalMethod::Manual)).await;
    }

    // Down: every attempt fails and is queued again with backoff (60 s, then 120 s).
    let report = daemon.pass(now).await.unwrap();
    assert_eq!((report.sweep.packs.expired, report.delivery.sent, report.delivery.retried), (3, 0, 3));
    assert_eq!(daemon.pass(now + Duration::seconds(59)).await.unwrap().delivery.retried, 0, "backing off");
    assert_eq!(daemon.pass(now + Duration::seconds(60)).await.unwrap().delivery.retried, 3);
    let queued = daemon.store().outbox(Some("queued"), 10).await.unwrap();
    assert_eq!(queued.len(), 3);
    assert!(queued.iter().all(|mail| mail.attempts == 2 && mail.next_attempt_at == now + Duration::seconds(180)));
    assert!(queued[0].last_error.as_deref().is_some_and(|e| !e.is_empty()));

    // Back up: the next due attempt delivers each once; later passes send nothing more.
    let _sink = SmtpSink::start(&python, port, inbox.path());
    assert_eq!(daemon.pass(now + Duration::seconds(179)).await.unwrap().delivery.sent, 0);
    assert_eq!(daemon.pass(now + Duration::seconds(180)).await.unwrap().delivery.sent, 3);
    assert_eq!(daemon.pass(now + Duration::hours(2)).await.unwrap().delivery.sent, 0);
    let messages = read_messages(inbox.path());
    assert_eq!(messages.len(), 3, "each mail arrives exactly once");
    let mut ids: Vec<String> = messages.iter().map(|raw| message_id(raw)).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(daemon
        .store()
        .outbox(None, 10)
        .await
        .unwrap()
        .iter()
        .all(|mail| mail.status == "sent" && mail.attempts == 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_is_marked_dead_after_the_last_attempt() {
    let dir = TempDir::new("dead");
    let port = free_port();
    let env = daemon_env(dir.path(), &sqlite_url(dir.path()), &smtp_env(port, &[("RESPACK_MAIL_MAX_ATTEMPTS", "2")]));
    let now = at("2026-04-30T00:00:00Z");
    let daemon = Daemon::build(&settings(&env), Clock::fixed(now)).await.unwrap();
    let account = account(daemon.store(), "0").await;
    issue(daemon.store(), account.id, monthly(at("2026-03-31T00:00:00Z"), 1, RenewalMethod::Manual)).await;
    assert_eq!(daemon.pass(now).await.unwrap().delivery.retried, 1);
    let report = daemon.pass(now + Duration::minutes(1)).await.unwrap();
    assert_eq!((report.delivery.retried, report.delivery.dead), (0, 1));
    assert_eq!(daemon.pass(now + Duration::days(1)).await.unwrap().delivery, Default::default());
    let dead = daemon.store().outbox(Some("dead"), 10).await.unwrap();
    assert_eq!((dead.len(), dead[0].attempts), (1, 2));
}
