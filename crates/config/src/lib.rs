//! Typed settings for every respack binary: `respack.toml` (optional) overlaid by `RESPACK_*`
//! environment variables. Secrets are wrapped in [`Secret`] so they never print.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A value that must not appear in logs or error messages.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Settings shared by respack-web, respackd and xtask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where the embedded database, the secret key file and local mail go.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to a SQLite file in the data directory.
    /// Wrapped because a PostgreSQL URL may hold a password.
    pub database_url: Secret,
    /// 32-byte key (64 hex digits) that seals API secret keys at rest; when unset, one is
    /// generated into `<data_dir>/secret.key` on first start.
    pub secret_key: Option<Secret>,
    /// Listen address of the web server.
    pub addr: String,
    /// `tracing` filter, e.g. `info` or `respack_store=debug`.
    pub log: String,
    /// How respackd sends email (`[mail]`).
    pub mail: MailSettings,
    /// respackd's schedule, clock and local HTTP port (`[daemon]`).
    pub daemon: DaemonSettings,
}

/// Where respackd's email goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// Each message as an `.eml` file in this directory (default `<data_dir>/mail`): a local
    /// sink that needs no setup, for development.
    File { dir: PathBuf },
    /// An SMTP server.
    Smtp(SmtpSettings),
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required), usually port 587.
    StartTls,
    /// TLS from the first byte ("SMTPS"), usually port 465.
    Tls,
    /// No encryption: only for a relay on the same host or a test server.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Seconds to wait for the server before a delivery attempt counts as failed.
    pub timeout_s: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    pub transport: MailTransport,
    /// The `From:` of every email, e.g. `respack <billing@example.com>`.
    pub from: String,
    /// Delivery attempts before an email is marked dead.
    pub max_attempts: u32,
    /// Wait after the first failure; doubles with each further failure, up to `backoff_max_s`.
    pub backoff_s: u64,
    pub backoff_max_s: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Local address of `/healthz` and `/metrics`.
    pub metrics_addr: String,
    /// Cron schedule (with seconds) of the pack sweep and the capacity-alert scan.
    pub sweep_schedule: String,
    /// Cron schedule (with seconds) of the outbox sender.
    pub outbox_schedule: String,
    /// Cron schedule (with seconds) of the monthly bill summary build.
    pub summary_schedule: String,
    /// Packs per sweep transaction; `None`: the store's default for its database
    /// (`Store::default_sweep_batch`: 750 on SQLite, 1,000 on PostgreSQL).
    pub batch_size: Option<u64>,
    /// `system`, `fixed:<RFC 3339>` or `offset:<seconds>`: what respackd takes as "now".
    pub clock: String,
}

/// What went wrong reading settings; each says which file or variable to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid respack settings: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{name}={value:?} is not valid: {expected}")]
    BadVariable { name: &'static str, value: String, expected: &'static str },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    database_url: Option<Secret>,
    secret_key: Option<Secret>,
    addr: Option<String>,
    log: Option<String>,
    #[serde(default)]
    mail: FileMail,
    #[serde(default)]
    daemon: FileDaemon,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMail {
    transport: Option<String>,
    dir: Option<PathBuf>,
    from: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_security: Option<String>,
    smtp_username: Option<String>,
    smtp_password: Option<Secret>,
    smtp_timeout_s: Option<u64>,
    max_attempts: Option<u32>,
    backoff_s: Option<u64>,
    backoff_max_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDaemon {
    metrics_addr: Option<String>,
    sweep_schedule: Option<String>,
    outbox_schedule: Option<String>,
    summary_schedule: Option<String>,
    batch_size: Option<u64>,
    clock: Option<String>,
}

fn parsed<T: std::str::FromStr>(
    name: &'static str,
    value: Option<String>,
    expected: &'static str,
) -> Result<Option<T>, SettingsError> {
    value
        .map(|text| text.trim().parse::<T>().map_err(|_| SettingsError::BadVariable { name, value: text, expected }))
        .transpose()
}

impl Settings {
    /// Reads `RESPACK_CONFIG` (default `respack.toml` in the working directory, which may be
    /// absent), then applies the process environment.
    pub fn load() -> Result<Settings, SettingsError> {
        let env: HashMap<String, String> = std::env::vars().filter(|(name, _)| name.starts_with("RESPACK_")).collect();
        let path = env.get("RESPACK_CONFIG").map_or_else(|| PathBuf::from("respack.toml"), PathBuf::from);
        let required = env.contains_key("RESPACK_CONFIG");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => None,
            Err(source) => return Err(SettingsError::Read { path, source }),
        };
        Settings::from_parts(text.as_deref().map(|text| (path.as_path(), text)), &env)
    }

    /// Builds settings from a file's text (with its path, for messages) and variables.
    pub fn from_parts(file: Option<(&Path, &str)>, env: &HashMap<String, String>) -> Result<Settings, SettingsError> {
        let file_settings = match file {
            Some((path, text)) => toml::from_str::<FileSettings>(text)
                .map_err(|error| SettingsError::Parse { path: path.to_owned(), message: error.to_string() })?,
            None => FileSettings::default(),
        };
        let var = |name: &str| env.get(name).filter(|value| !value.trim().is_empty()).cloned();

        let data_dir = var("RESPACK_DATA_DIR")
            .map(PathBuf::from)
            .or(file_settings.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let database_url = var("RESPACK_DATABASE_URL")
            .map(Secret)
            .or(file_settings.database_url)
            .unwrap_or_else(|| Secret(format!("sqlite://{}?mode=rwc", data_dir.join("respack.db").display())));
        let scheme_ok =
            ["sqlite:", "postgres://", "postgresql://"].iter().any(|scheme| database_url.expose().starts_with(scheme));
        if !scheme_ok {
            return Err(SettingsError::BadVariable {
                name: "RESPACK_DATABASE_URL",
                value: "(hidden)".into(),
                expected: "a sqlite://path or postgres://user@host/db URL",
            });
        }
        let secret_key = var("RESPACK_SECRET_KEY").map(Secret).or(file_settings.secret_key);
        if let Some(key) = &secret_key {
            let hex_ok = key.expose().len() == 64 && key.expose().bytes().all(|b| b.is_ascii_hexdigit());
            if !hex_ok {
                return Err(SettingsError::BadVariable {
                    name: "RESPACK_SECRET_KEY",
                    value: "(hidden)".into(),
                    expected: "64 hex digits (32 random bytes, e.g. `openssl rand -hex 32`)",
                });
            }
        }
        let mail = mail_settings(file_settings.mail, &var, &data_dir)?;
        let daemon = daemon_settings(file_settings.daemon, &var)?;
        Ok(Settings {
            data_dir,
            database_url,
            secret_key,
            addr: var("RESPACK_ADDR").or(file_settings.addr).unwrap_or_else(|| "127.0.0.1:3000".into()),
            log: var("RESPACK_LOG").or(file_settings.log).unwrap_or_else(|| "info".into()),
            mail,
            daemon,
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose().starts_with("sqlite:")
    }
}

fn mail_settings(
    file: FileMail,
    var: &impl Fn(&str) -> Option<String>,
    data_dir: &Path,
) -> Result<MailSettings, SettingsError> {
    let transport_name = var("RESPACK_MAIL_TRANSPORT").or(file.transport).unwrap_or_else(|| "file".into());
    let transport = match transport_name.trim() {
        "file" => MailTransport::File {
            dir: var("RESPACK_MAIL_DIR").map(PathBuf::from).or(file.dir).unwrap_or_else(|| data_dir.join("mail")),
        },
        "smtp" => {
            let host = var("RESPACK_SMTP_HOST").or(file.smtp_host).ok_or(SettingsError::BadVariable {
                name: "RESPACK_SMTP_HOST",
                value: String::new(),
                expected: "the SMTP server's host name ([mail] smtp_host), required with transport = \"smtp\"",
            })?;
            let security_text =
                var("RESPACK_SMTP_SECURITY").or(file.smtp_security).unwrap_or_else(|| "starttls".into());
            let security = match security_text.trim() {
                "starttls" => SmtpSecurity::StartTls,
                "tls" => SmtpSecurity::Tls,
                "none" => SmtpSecurity::None,
                _ => {
                    return Err(SettingsError::BadVariable {
                        name: "RESPACK_SMTP_SECURITY",
                        value: security_text,
                        expected: "starttls, tls or none",
                    })
                }
            };
            let default_port = match security {
                SmtpSecurity::StartTls => 587,
                SmtpSecurity::Tls => 465,
                SmtpSecurity::None => 25,
            };
            let port = parsed::<u16>("RESPACK_SMTP_PORT", var("RESPACK_SMTP_PORT"), "a TCP port")?
                .or(file.smtp_port)
                .unwrap_or(default_port);
            MailTransport::Smtp(SmtpSettings {
                host,
                port,
                security,
                username: var("RESPACK_SMTP_USERNAME").or(file.smtp_username),
                password: var("RESPACK_SMTP_PASSWORD").map(Secret).or(file.smtp_password),
                timeout_s: parsed("RESPACK_SMTP_TIMEOUT_S", var("RESPACK_SMTP_TIMEOUT_S"), "seconds")?
                    .or(file.smtp_timeout_s)
                    .unwrap_or(30),
            })
        }
        _ => {
            return Err(SettingsError::BadVariable {
                name: "RESPACK_MAIL_TRANSPORT",
                value: transport_name,
                expected: "smtp or file",
            })
        }
    };
    let max_attempts = parsed("RESPACK_MAIL_MAX_ATTEMPTS", var("RESPACK_MAIL_MAX_ATTEMPTS"), "a number of attempts")?
        .or(file.max_attempts)
        .unwrap_or(10);
    if max_attempts == 0 {
        return Err(SettingsError::BadVariable {
            name: "RESPACK_MAIL_MAX_ATTEMPTS",
            value: "0".into(),
            expected: "at least 1",
        });
    }
    Ok(MailSettings {
        transport,
        from: var("RESPACK_MAIL_FROM").or(file.from).unwrap_or_else(|| "respack <respack@localhost>".into()),
        max_attempts,
        backoff_s: parsed("RESPACK_MAIL_BACKOFF_S", var("RESPACK_MAIL_BACKOFF_S"), "seconds")?
            .or(file.backoff_s)
            .unwrap_or(60),
        backoff_max_s: parsed("RESPACK_MAIL_BACKOFF_MAX_S", var("RESPACK_MAIL_BACKOFF_MAX_S"), "seconds")?
            .or(file.backoff_max_s)
            .unwrap_or(6 * 3600),
    })
}

fn daemon_settings(file: FileDaemon, var: &impl Fn(&str) -> Option<String>) -> Result<DaemonSettings, SettingsError> {
    let batch_size =
        parsed("RESPACK_DAEMON_BATCH_SIZE", var("RESPACK_DAEMON_BATCH_SIZE"), "1 to 5000")?.or(file.batch_size);
    if let Some(batch_size) = batch_size.filter(|size| !(1..=5000).contains(size)) {
        return Err(SettingsError::BadVariable {
            name: "RESPACK_DAEMON_BATCH_SIZE",
            value: batch_size.to_string(),
            expected: "1 to 5000",
        });
    }
    Ok(DaemonSettings {
        metrics_addr: var("RESPACK_DAEMON_METRICS_ADDR")
            .or(file.metrics_addr)
            .unwrap_or_else(|| "127.0.0.1:9187".into()),
        sweep_schedule: var("RESPACK_DAEMON_SWEEP_SCHEDULE")
            .or(file.sweep_schedule)
            .unwrap_or_else(|| "0 * * * * *".into()),
        outbox_schedule: var("RESPACK_DAEMON_OUTBOX_SCHEDULE")
            .or(file.outbox_schedule)
            .unwrap_or_else(|| "*/10 * * * * *".into()),
        summary_schedule: var("RESPACK_DAEMON_SUMMARY_SCHEDULE")
            .or(file.summary_schedule)
            .unwrap_or_else(|| "0 */5 * * * *".into()),
        batch_size,
        clock: var("RESPACK_DAEMON_CLOCK").or(file.clock).unwrap_or_else(|| "system".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_use_an_embedded_sqlite_file_in_the_data_dir() {
        let settings = Settings::from_parts(None, &env(&[])).unwrap();
        assert_eq!(settings.data_dir, PathBuf::from("data"));
        assert_eq!(settings.database_url.expose(), "sqlite://data/respack.db?mode=rwc");
        assert!(settings.is_sqlite());
        assert_eq!(settings.addr, "127.0.0.1:3000");
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = "data_dir = \"/srv/respack\"\naddr = \"0.0.0.0:8080\"\n";
        let settings = Settings::from_parts(
            Some((Path::new("respack.toml"), file)),
            &env(&[("RESPACK_DATABASE_URL", "postgres://respack:pw@db/respack"), ("RESPACK_ADDR", "127.0.0.1:9")]),
        )
        .unwrap();
        assert_eq!(settings.data_dir, PathBuf::from("/srv/respack"));
        assert_eq!(settings.addr, "127.0.0.1:9");
        assert!(!settings.is_sqlite());
    }

    #[test]
    fn mail_and_daemon_sections_with_overrides() {
        let settings = Settings::from_parts(None, &env(&[])).unwrap();
        assert_eq!(settings.mail.transport, MailTransport::File { dir: PathBuf::from("data/mail") });
        assert_eq!(settings.daemon.batch_size, None, "unset: the store's default for its database");
        let file = "[mail]\ntransport = \"smtp\"\nsmtp_host = \"mail.example.com\"\nsmtp_security = \"tls\"\n\
                    smtp_username = \"billing\"\nsmtp_password = \"s3cret\"\n[daemon]\nclock = \"offset:60\"\n";
        let settings = Settings::from_parts(
            Some((Path::new("respack.toml"), file)),
            &env(&[("RESPACK_SMTP_PORT", "2465"), ("RESPACK_DAEMON_BATCH_SIZE", "50")]),
        )
        .unwrap();
        let MailTransport::Smtp(smtp) = &settings.mail.transport else { panic!("smtp expected") };
        assert_eq!((smtp.host.as_str(), smtp.port, smtp.security), ("mail.example.com", 2465, SmtpSecurity::Tls));
        assert_eq!(smtp.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{settings:?}").contains("s3cret"));
        assert_eq!((settings.daemon.batch_size, settings.daemon.clock.as_str()), (Some(50), "offset:60"));
        let error = Settings::from_parts(None, &env(&[("RESPACK_MAIL_TRANSPORT", "smtp")])).unwrap_err();
        assert!(error.to_string().contains("smtp_host"), "{error}");
        let error = Settings::from_parts(
            None,
            &env(&[("RESPACK_SMTP_SECURITY", "ssl"), ("RESPACK_MAIL_TRANSPORT", "smtp"), ("RESPACK_SMTP_HOST", "h")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("starttls, tls or none"), "{error}");
    }

    #[test]
    fn secrets_never_print() {
        let settings = Settings::from_parts(
            None,
            &env(&[("RESPACK_DATABASE_URL", "postgres://u:hunter2@db/x"), ("RESPACK_SECRET_KEY", &"ab".repeat(32))]),
        )
        .unwrap();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("abab"), "{shown}");
    }

    #[test]
    fn bad_values_name_what_to_fix() {
        let error = Settings::from_parts(None, &env(&[("RESPACK_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(error.to_string().contains("RESPACK_DATABASE_URL"), "{error}");
        let error = Settings::from_parts(None, &env(&[("RESPACK_SECRET_KEY", "short")])).unwrap_err();
        assert!(error.to_string().contains("64 hex digits"), "{error}");
        let error = Settings::from_parts(Some((Path::new("r.toml"), "colour = 1")), &env(&[])).unwrap_err();
        assert!(error.to_string().contains("r.toml"), "{error}");
    }
}
