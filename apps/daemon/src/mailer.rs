//! Delivering the outbox: each claimed row becomes a plain-text + HTML email sent with lettre
//! over SMTP (or written to a directory, the development sink). Failures are retried with
//! exponential backoff and the row is marked dead after the configured number of attempts.
//! Each email carries a Message-ID derived from its outbox row, so the rare resend after a
//! crash between sending and marking it sent is recognisable as the same message.

use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use respack_config::{MailSettings, MailTransport, SmtpSecurity};
use respack_store::{OutboxMail, Store, StoreResult};

/// The transport lettre sends through.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Smtp(_) => "Transport::Smtp",
            Transport::File(_) => "Transport::File",
        })
    }
}

impl Transport {
    pub fn from_settings(settings: &MailSettings) -> anyhow::Result<Transport> {
        match &settings.transport {
            MailTransport::File { dir } => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the mail directory {}", dir.display()))?;
                Ok(Transport::File(AsyncFileTransport::<Tokio1Executor>::new(dir)))
            }
            MailTransport::Smtp(smtp) => {
                let builder = match smtp.security {
                    SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                        .with_context(|| format!("cannot set up STARTTLS to {}", smtp.host))?,
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                        .with_context(|| format!("cannot set up TLS to {}", smtp.host))?,
                    SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
                };
                let mut builder = builder.port(smtp.port).timeout(Some(StdDuration::from_secs(smtp.timeout_s.max(1))));
                if let Some(username) = &smtp.username {
                    let password = smtp.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default();
                    builder = builder.credentials(Credentials::new(username.clone(), password));
                }
                Ok(Transport::Smtp(builder.build()))
            }
        }
    }

    async fn send(&self, message: Message) -> Result<(), String> {
        match self {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|error| error.to_string()),
            Transport::File(file) => file.send(message).await.map(drop).map_err(|error| error.to_string()),
        }
    }

    /// For `check-config`: can the SMTP server be reached (and logged in to)?
    pub async fn test_connection(&self) -> anyhow::Result<()> {
        match self {
            Transport::Smtp(smtp) => {
                let ok = smtp.test_connection().await.context("cannot reach the SMTP server")?;
                anyhow::ensure!(ok, "the SMTP server did not accept a connection");
                Ok(())
            }
            Transport::File(_) => Ok(()),
        }
    }
}

/// Builds the email of an outbox row. An error here is permanent (a malformed address).
pub fn build_message(mail: &OutboxMail, from: &Mailbox) -> Result<Message, String> {
    let domain = from.email.domain().to_owned();
    let mut builder = Message::builder().from(from.clone()).subject(mail.subject.clone()).message_id(Some(format!(
        "<outbox-{}.{}@{domain}>",
        mail.id,
        mail.created_at.timestamp_millis()
    )));
    if mail.recipients.is_empty() {
        return Err("no recipients".into());
    }
    for recipient in &mail.recipients {
        let mailbox: Mailbox =
            recipient.parse().map_err(|error| format!("recipient {recipient:?} is not an email address: {error}"))?;
        builder = builder.to(mailbox);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(mail.body_text.clone(), mail.body_html.clone()))
        .map_err(|error| format!("cannot build the email: {error}"))
}

/// What one delivery pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u64,
    /// Failed and queued for a later attempt.
    pub retried: u64,
    /// Failed for the last time (or permanently) and marked dead.
    pub dead: u64,
}

/// Emails claimed per round.
const CLAIM_BATCH: u64 = 20;

/// The outbox sender.
#[derive(Debug, Clone)]
pub struct Sender {
    store: Store,
    transport: Transport,
    from: Mailbox,
    max_attempts: u32,
    backoff: Duration,
    backoff_max: Duration,
    /// How long a claim lasts: longer than a round of sends can take.
    lease: Duration,
}

impl Sender {
    pub fn new(store: Store, settings: &MailSettings) -> anyhow::Result<Sender> {
        let from: Mailbox = settings.from.parse().with_context(|| {
            format!("[mail] from = {:?} is not a mailbox like `respack <billing@example.com>`", settings.from)
        })?;
        let timeout_s = match &settings.transport {
            MailTransport::Smtp(smtp) => smtp.timeout_s.max(1),
            MailTransport::File { .. } => 5,
        };
        let seconds = |s: u64| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000).min(365 * 86_400));
        Ok(Sender {
            store,
            transport: Transport::from_settings(settings)?,
            from,
            max_attempts: settings.max_attempts,
            backoff: seconds(settings.backoff_s.max(1)),
            backoff_max: seconds(settings.backoff_max_s.max(settings.backoff_s).max(1)),
            lease: seconds(timeout_s * 3 * CLAIM_BATCH + 60),
        })
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The wait before attempt `attempts + 1`: backoff · 2^(attempts − 1), capped.
    pub fn retry_delay(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let factor = 1_i32 << doublings;
        self.backoff.checked_mul(factor).unwrap_or(self.backoff_max).min(self.backoff_max)
    }

    /// Sends every email due at `now`, round after round, until none is due or `stop` says so.
    pub async fn deliver_due(
        &self,
        now: DateTime<Utc>,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> StoreResult<DeliveryReport> {
        let mut report = DeliveryReport::default();
        loop {
            let mails = self.store.claim_outbox(now, CLAIM_BATCH, self.lease).await?;
            let claimed = mails.len() as u64;
            for mail in mails {
                self.deliver(&mail, now, &mut report).await?;
            }
            if claimed < CLAIM_BATCH || stop() {
                return Ok(report);
            }
        }
    }

    async fn deliver(&self, mail: &OutboxMail, now: DateTime<Utc>, report: &mut DeliveryReport) -> StoreResult<()> {
        let outcome = match build_message(mail, &self.from) {
            Ok(message) => self.transport.send(message).await.map_err(|error| (error, false)),
            Err(error) => Err((error, true)),
        };
        match outcome {
            Ok(()) => {
                if self.store.mark_outbox_sent(mail.id, mail.attempts, now).await? {
                    report.sent += 1;
                    tracing::info!(outbox_id = mail.id, kind = %mail.kind, attempts = mail.attempts, "email sent");
                } else {
                    tracing::warn!(outbox_id = mail.id, "email sent, but its claim had passed to another sender");
                }
            }
            Err((error, permanent)) => {
                let last = permanent || mail.attempts >= i32::try_from(self.max_attempts).unwrap_or(i32::MAX);
                let retry_at = (!last).then(|| now + self.retry_delay(mail.attempts));
                self.store.mark_outbox_failed(mail.id, mail.attempts, &error, retry_at).await?;
                if last {
                    report.dead += 1;
                    tracing::error!(outbox_id = mail.id, kind = %mail.kind, attempts = mail.attempts, %error, "email dead: giving up");
                } else {
                    report.retried += 1;
                    tracing::warn!(outbox_id = mail.id, attempts = mail.attempts, %error, retry_at = %retry_at.unwrap_or(now), "email failed; will retry");
                }
            }
        }
        Ok(())
    }
}
