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
        Ok(Settings {
            data_dir,
            database_url,
            secret_key,
            addr: var("RESPACK_ADDR").or(file_settings.addr).unwrap_or_else(|| "127.0.0.1:3000".into()),
            log: var("RESPACK_LOG").or(file_settings.log).unwrap_or_else(|| "info".into()),
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose().starts_with("sqlite:")
    }
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
