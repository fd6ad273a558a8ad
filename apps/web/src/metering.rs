//! The metering endpoint, `POST /v1/usage`: a metering system sends a batch of usage records
//! with its API key (HTTP Basic), and each is deducted from its account's packs — the key's
//! own, or for an operator's key the UIN a record names — exactly once per idempotency key,
//! all or nothing (`Store::record_usage_of_accounts`).

mod basic_auth;
mod records;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use std::collections::HashMap;

use respack_store::{AccountKind, StoreError, UsageInput};

use crate::AppState;
use basic_auth::ApiCaller;
use records::RecordedBatch;

/// Largest request body accepted: 1000 records (the store's batch limit) with generous
/// attributes fit well within it.
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/usage", post(record_usage).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
}

/// Everything `POST /v1/usage` can answer besides success; each maps to one status and code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MeteringError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("the body is not a valid usage batch (a JSON array of usage records): {0}")]
    MalformedJson(String),
    #[error("{0}; nothing in this batch was recorded")]
    InvalidUsage(String),
    #[error("{0}")]
    UnknownAccount(String),
    #[error(
        "this API key may record usage only for its own account (UIN {0}); use an operator's key \
         to record usage for other accounts"
    )]
    Forbidden(String),
    #[error(
        "the body is larger than {} MiB; send at most 1000 records per request",
        MAX_BODY_BYTES / (1024 * 1024)
    )]
    PayloadTooLarge,
    #[error("send the batch as JSON with `Content-Type: application/json` (got {0})")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Conflict(String),
    #[error(
        "the usage could not be recorded because of an internal error; nothing in this batch \
         was recorded, and sending it again with the same idempotency keys is safe"
    )]
    Internal(#[source] StoreError),
}

impl MeteringError {
    fn status(&self) -> StatusCode {
        match self {
            MeteringError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            MeteringError::MalformedJson(_) | MeteringError::InvalidUsage(_) => StatusCode::BAD_REQUEST,
            MeteringError::UnknownAccount(_) => StatusCode::NOT_FOUND,
            MeteringError::Forbidden(_) => StatusCode::FORBIDDEN,
            MeteringError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            MeteringError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            MeteringError::Conflict(_) => StatusCode::CONFLICT,
            MeteringError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            MeteringError::Unauthorized(_) => "Unauthorized",
            MeteringError::MalformedJson(_) => "MalformedJson",
            MeteringError::InvalidUsage(_) => "InvalidUsage",
            MeteringError::UnknownAccount(_) => "UnknownAccount",
            MeteringError::Forbidden(_) => "Forbidden",
            MeteringError::PayloadTooLarge => "PayloadTooLarge",
            MeteringError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            MeteringError::Conflict(_) => "Conflict",
            MeteringError::Internal(_) => "InternalError",
        }
    }

    fn from_body(rejection: BytesRejection) -> MeteringError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            MeteringError::PayloadTooLarge
        } else {
            MeteringError::MalformedJson(format!("the request body could not be read ({rejection})"))
        }
    }
}

impl From<StoreError> for MeteringError {
    fn from(error: StoreError) -> MeteringError {
        match error {
            StoreError::InvalidInput(_) | StoreError::Usage(_) | StoreError::Precision(_) | StoreError::Rule(_) => {
                MeteringError::InvalidUsage(error.to_string())
            }
            StoreError::NotFound { .. } => MeteringError::UnknownAccount(error.to_string()),
            StoreError::Conflict { .. } | StoreError::TokenReused { .. } => MeteringError::Conflict(error.to_string()),
            // Lock waits and serialization failures that outlasted the store's retries.
            StoreError::Database(_) if error.is_transient() => {
                tracing::warn!(%error, "the database stayed busy through every retry");
                MeteringError::Conflict(
                    "the database was busy with other writers; nothing in this batch was recorded, send it again"
                        .into(),
                )
            }
            StoreError::Pack(_) | StoreError::Corrupt(_) | StoreError::Database(_) => MeteringError::Internal(error),
        }
    }
}

impl IntoResponse for MeteringError {
    fn into_response(self) -> Response {
        let (status, code) = (self.status(), self.code());
        match &self {
            // The cause stays in the log; the caller only learns that it was not their fault.
            MeteringError::Internal(cause) => tracing::error!(code, error = %cause, "recording usage failed"),
            // `ApiCaller` logs refused keys with their SecretId.
            MeteringError::Unauthorized(_) => {}
            _ => tracing::info!(code, reason = %self, "usage batch refused"),
        }
        let body = serde_json::json!({ "error": { "code": code, "message": self.to_string() } });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="respack""#));
        }
        response
    }
}

/// The body is read only after the API key checks out (extractors run in order).
#[tracing::instrument(name = "record_usage", skip_all, fields(secret_id = %caller.secret_id, account_id = caller.account_id))]
async fn record_usage(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RecordedBatch>, MeteringError> {
    require_json(&headers)?;
    let body = body.map_err(MeteringError::from_body)?;
    let parsed = records::parse_batch(&body)?;
    let accounts = resolve_accounts(&state, &caller, &parsed).await?;
    let batch: Vec<(i64, &UsageInput)> = accounts.into_iter().zip(parsed.iter().map(|record| &record.input)).collect();
    let outcomes = state.store.record_usage_of_accounts(&batch, state.clock.now()).await?;
    let replayed = outcomes.iter().filter(|outcome| outcome.replayed).count();
    tracing::info!(records = outcomes.len(), replayed, "usage batch recorded");
    Ok(Json(RecordedBatch::from(outcomes)))
}

/// The account of each record: the key's own, or the UIN a record names — which only an
/// operator's key may do for another account.
async fn resolve_accounts(
    state: &AppState,
    caller: &ApiCaller,
    records: &[records::ParsedRecord],
) -> Result<Vec<i64>, MeteringError> {
    let own = state.store.account(caller.account_id).await?;
    let mut by_uin: HashMap<&str, i64> = HashMap::from([(own.uin.as_str(), own.id)]);
    let mut accounts = Vec::with_capacity(records.len());
    for record in records {
        let Some(uin) = record.account.as_deref() else {
            accounts.push(own.id);
            continue;
        };
        if let Some(id) = by_uin.get(uin) {
            accounts.push(*id);
            continue;
        }
        if own.kind != AccountKind::Operator {
            return Err(MeteringError::Forbidden(own.uin.clone()));
        }
        let account = state.store.account_by_uin(uin).await.map_err(|error| match error {
            StoreError::NotFound { .. } => MeteringError::UnknownAccount(format!(
                "there is no account with UIN {uin:?}; nothing in this batch was recorded"
            )),
            other => MeteringError::from(other),
        })?;
        by_uin.insert(uin, account.id);
        accounts.push(account.id);
    }
    Ok(accounts)
}

/// `application/json`, with or without parameters such as `charset=utf-8`.
fn require_json(headers: &HeaderMap) -> Result<(), MeteringError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(MeteringError::UnsupportedMediaType("no Content-Type".into()));
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(MeteringError::UnsupportedMediaType(format!("{text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use respack_domain::{PrecisionError, UsageError};

    use super::*;

    #[test]
    fn store_errors_map_to_codes_a_caller_can_act_on() {
        let cases: Vec<(StoreError, StatusCode, &str)> = vec![
            (StoreError::InvalidInput("record 0 (k): bad".into()), StatusCode::BAD_REQUEST, "InvalidUsage"),
            (StoreError::Usage(UsageError::Empty { field: "unit" }), StatusCode::BAD_REQUEST, "InvalidUsage"),
            (
                StoreError::Precision(PrecisionError::Overflow { value: 1.into() }),
                StatusCode::BAD_REQUEST,
                "InvalidUsage",
            ),
            (StoreError::NotFound { what: "account", id: "7".into() }, StatusCode::NOT_FOUND, "UnknownAccount"),
            (StoreError::Conflict { what: "capacity".into() }, StatusCode::CONFLICT, "Conflict"),
            (StoreError::Corrupt("day".into()), StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        ];
        for (error, status, code) in cases {
            let mapped = MeteringError::from(error);
            assert_eq!((mapped.status(), mapped.code()), (status, code), "{mapped}");
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let error = MeteringError::from(StoreError::Corrupt("secret detail".into()));
        assert!(!error.to_string().contains("secret detail"));
        assert_eq!(error.into_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn only_json_content_types_pass() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            require_json(&headers).is_ok()
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("text/plain"));
        assert!(require_json(&HeaderMap::new()).is_err());
    }

    #[test]
    fn unauthorized_answers_carry_the_basic_challenge() {
        let response = MeteringError::Unauthorized("who are you").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], r#"Basic realm="respack""#);
    }
}
