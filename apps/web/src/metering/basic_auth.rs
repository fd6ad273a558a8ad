//! HTTP Basic authentication with an API key (user = SecretId, password = SecretKey), so
//! `curl -u "$SecretId:$SecretKey"` works. The SecretKey is compared in constant time and
//! never logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::Engine;
use respack_store::{Secret, Store};

use super::MeteringError;
use crate::AppState;

const MISSING: &str = "this endpoint needs your API key as HTTP Basic credentials: user = SecretId, \
                       password = SecretKey (curl -u \"$SecretId:$SecretKey\")";
const MALFORMED: &str = "the Authorization header is not valid HTTP Basic credentials; send \
                         `Authorization: Basic base64(SecretId:SecretKey)` (curl -u \"$SecretId:$SecretKey\")";
const WRONG: &str = "unknown SecretId or wrong SecretKey";
const REVOKED: &str = "this API key was revoked; use an active key of this account";

/// SecretIds are short; anything longer is not worth a database lookup.
const MAX_SECRET_ID_LEN: usize = 128;

/// The API key a request authenticated with, and so the account its usage is recorded for.
#[derive(Debug, Clone)]
pub(crate) struct ApiCaller {
    pub account_id: i64,
    pub secret_id: String,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = MeteringError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<ApiCaller, MeteringError> {
        let (secret_id, secret_key) = basic_credentials(&parts.headers)?;
        let caller = authenticate(&state.store, &secret_id, &secret_key).await;
        if let Err(MeteringError::Unauthorized(reason)) = &caller {
            // Escaped and cut short: the SecretId is whatever the caller sent.
            let secret_id: String = secret_id.chars().take(MAX_SECRET_ID_LEN).collect();
            tracing::info!(?secret_id, reason, "API key refused");
        }
        caller
    }
}

/// `(SecretId, SecretKey)` from `Authorization: Basic …`.
fn basic_credentials(headers: &HeaderMap) -> Result<(String, Secret), MeteringError> {
    let value = headers.get(AUTHORIZATION).ok_or(MeteringError::Unauthorized(MISSING))?;
    let malformed = || MeteringError::Unauthorized(MALFORMED);
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = text.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (secret_id, secret_key) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok((secret_id.to_owned(), Secret::new(secret_key)))
}

async fn authenticate(store: &Store, secret_id: &str, secret_key: &Secret) -> Result<ApiCaller, MeteringError> {
    if secret_id.is_empty() || secret_id.len() > MAX_SECRET_ID_LEN {
        return Err(MeteringError::Unauthorized(WRONG));
    }
    let key = store.signing_key(secret_id).await?.ok_or(MeteringError::Unauthorized(WRONG))?;
    if !constant_time_eq(key.secret_key.expose().as_bytes(), secret_key.expose().as_bytes()) {
        return Err(MeteringError::Unauthorized(WRONG));
    }
    // Only a caller who knows the secret learns that the key was revoked.
    if key.revoked {
        return Err(MeteringError::Unauthorized(REVOKED));
    }
    Ok(ApiCaller { account_id: key.account_id, secret_id: key.secret_id })
}

/// Equal contents, in time that depends only on the lengths (SecretKeys all have one length),
/// so response timing does not reveal how much of a guess was right.
fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    if expected.len() != given.len() {
        return false;
    }
    let difference = expected.iter().zip(given).fold(0_u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn basic(user_and_password: &str) -> HeaderMap {
        header(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_and_password)))
    }

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        let (id, key) = basic_credentials(&basic("AKIDabc:s3cr:et")).unwrap();
        assert_eq!((id.as_str(), key.expose()), ("AKIDabc", "s3cr:et"));
        let (id, key) = basic_credentials(&header("basic   QUtJRDp4")).unwrap();
        assert_eq!((id.as_str(), key.expose()), ("AKID", "x"));
    }

    #[test]
    fn missing_and_malformed_headers_say_how_to_authenticate() {
        let reason = |headers: &HeaderMap| match basic_credentials(headers) {
            Err(MeteringError::Unauthorized(reason)) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(&HeaderMap::new()), MISSING);
        for bad in ["Bearer abc", "Basic", "Basic !!!", "Basic QUtJRA==" /* no colon */] {
            assert_eq!(reason(&header(bad)), MALFORMED, "{bad}");
        }
        assert!(MISSING.contains("curl -u") && MALFORMED.contains("Basic base64(SecretId:SecretKey)"));
    }

    #[test]
    fn constant_time_eq_compares_whole_contents() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"Secret"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(!constant_time_eq(b"secret", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
