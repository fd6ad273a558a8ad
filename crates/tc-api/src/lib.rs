//! respack's Tencent Cloud API 3.0 compatible billing API: `POST /` (and `/api/v3`, GET or
//! POST) with TC3-HMAC-SHA256 signatures by per-account API keys, the
//! `{"Response": {…, "RequestId"}}` envelope, the common and billing error codes, a request
//! limit per action and SecretId, and the billing actions (version 2018-07-09) over
//! [`respack_store::Store`]. The official Tencent Cloud SDKs work against it unchanged: point
//! their endpoint at respack.
//!
//! apps/web mounts [`router`] and applies [`intercept_signed_gets`]; everything else is in here.

mod actions;
pub mod error;
mod format;
pub mod params;
pub mod rate_limit;
pub mod request;
pub mod signature;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use respack_store::Store;
use serde_json::{json, Map, Value};

pub use actions::ACTIONS;
pub use error::ApiError;
use rate_limit::RateLimiter;
use request::RawRequest;

/// Largest request body: a CreateUsageRecords batch of 1000 records fits well.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How the API behaves; [`ApiConfig::default`] is what the Tencent documentation states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Requests per second per action per SecretId; 0 lifts the limit.
    pub rate_limit_per_second: u32,
    /// How far X-TC-Timestamp may be from the server's clock.
    pub max_clock_skew: Duration,
    /// A month's summary older than this is rebuilt in the background when asked for, until
    /// it has been built after the month was over.
    pub summary_refresh_after: Duration,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            rate_limit_per_second: 5,
            max_clock_skew: Duration::minutes(5),
            summary_refresh_after: Duration::minutes(5),
        }
    }
}

impl ApiConfig {
    /// The defaults, with `RESPACK_API_RATE_LIMIT` (requests per second per action per
    /// SecretId, 0 = unlimited) applied when set.
    pub fn from_env() -> Result<ApiConfig, String> {
        let mut config = ApiConfig::default();
        if let Ok(text) = std::env::var("RESPACK_API_RATE_LIMIT") {
            config.rate_limit_per_second = text.trim().parse().map_err(|_| {
                format!("RESPACK_API_RATE_LIMIT={text:?} is not valid: expected requests per second (0 = unlimited)")
            })?;
        }
        Ok(config)
    }
}

/// The API's state: the store, the clock, the limiter. Cheap to clone.
#[derive(Clone)]
pub struct TcApi {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Box<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    config: ApiConfig,
    limiter: RateLimiter,
    /// Months whose summary build this process started and that have not finished.
    building: Mutex<HashSet<String>>,
    /// When this process last recorded each key's use (it records at most once a minute).
    touched: Mutex<HashMap<String, std::time::Instant>>,
}

impl std::fmt::Debug for TcApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcApi").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl TcApi {
    /// `clock` is the app's "now" (tests move it).
    pub fn new(store: Store, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static, config: ApiConfig) -> TcApi {
        let limiter = RateLimiter::new(config.rate_limit_per_second);
        TcApi {
            inner: Arc::new(Inner {
                store,
                clock: Box::new(clock),
                config,
                limiter,
                building: Mutex::new(HashSet::new()),
                touched: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    pub(crate) fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// Builds a month's summary in the background unless this process is already at it.
    pub(crate) fn start_summary_build(&self, month: &str) {
        {
            let mut building = self.inner.building.lock().unwrap_or_else(PoisonError::into_inner);
            if !building.insert(month.to_owned()) {
                return;
            }
        }
        let api = self.clone();
        let month = month.to_owned();
        tokio::spawn(async move {
            if let Err(error) = api.store().build_bill_summary(&month, api.now()).await {
                tracing::error!(%error, month, "building the bill summary failed");
            }
            api.inner.building.lock().unwrap_or_else(PoisonError::into_inner).remove(&month);
        });
    }

    /// Records the key's last use in the background, at most once a minute per key.
    fn record_key_use(&self, secret_id: &str, now: DateTime<Utc>) {
        let at = std::time::Instant::now();
        {
            let mut touched = self.inner.touched.lock().unwrap_or_else(PoisonError::into_inner);
            if touched.get(secret_id).is_some_and(|last| at.duration_since(*last).as_secs() < 60) {
                return;
            }
            if touched.len() > 100_000 {
                touched.clear();
            }
            touched.insert(secret_id.to_owned(), at);
        }
        let api = self.clone();
        let secret_id = secret_id.to_owned();
        tokio::spawn(async move {
            if let Err(error) = api.store().touch_api_key(&secret_id, now).await {
                tracing::warn!(%error, secret_id, "cannot record the API key's last use");
            }
        });
    }

    /// Answers one request: authenticate, limit, dispatch, wrap in the envelope.
    pub async fn handle(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let headers: Vec<(String, String)> = headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_ascii_lowercase(), value.to_str().ok()?.to_owned())))
            .collect();
        let raw = RawRequest {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers: &headers,
            body,
        };
        let outcome = self.answer(&raw).await;
        let (action, secret_id) = match &outcome {
            Ok((action, secret_id, _)) | Err((Some((action, secret_id)), _)) => (action.as_str(), secret_id.as_str()),
            Err((None, _)) => ("-", "-"),
        };
        match &outcome {
            Ok(_) => tracing::info!(request_id, action, secret_id, "API call answered"),
            Err((_, error @ ApiError::Internal(source))) => {
                tracing::error!(request_id, action, secret_id, code = error.code(), error = %source, "API call failed");
            }
            Err((_, error)) => tracing::info!(request_id, action, secret_id, code = error.code(), "API call refused"),
        }
        let response = match outcome {
            Ok((_, _, mut fields)) => {
                fields.insert("RequestId".into(), Value::String(request_id));
                json!({ "Response": Value::Object(fields) })
            }
            Err((_, error)) => error_body(&error, &request_id),
        };
        json_response(&response)
    }

    #[allow(clippy::type_complexity)]
    async fn answer(
        &self,
        raw: &RawRequest<'_>,
    ) -> Result<(String, String, Map<String, Value>), (Option<(String, String)>, ApiError)> {
        let parsed = request::parse(raw).map_err(|error| (None, error))?;
        let secret_id = parsed.authorization.secret_id.clone();
        let who = Some((parsed.action.clone(), secret_id.clone()));
        let fail = |error: ApiError| (who.clone(), error);
        if secret_id.len() > 128 || !secret_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(fail(ApiError::InvalidSecretId(format!(
                "{:?} is not a SecretId",
                secret_id.chars().take(40).collect::<String>()
            ))));
        }
        let key = self.store().signing_key(&secret_id).await.map_err(|error| fail(ApiError::from(error)))?;
        let Some(key) = key else {
            return Err(fail(ApiError::SecretIdNotFound(secret_id)));
        };
        let now = self.now();
        request::verify(raw, &parsed, key.secret_key.expose(), now, self.config().max_clock_skew).map_err(fail)?;
        if key.revoked {
            return Err(fail(ApiError::SecretIdRevoked(secret_id)));
        }
        self.record_key_use(&secret_id, now);
        if !ACTIONS.contains(&parsed.action.as_str()) {
            return Err(fail(ApiError::InvalidAction(format!(
                "the action {} does not exist in version {}; see docs/api.md for the actions respack serves",
                parsed.action,
                request::VERSION
            ))));
        }
        if !self.inner.limiter.try_acquire(&secret_id, &parsed.action, std::time::Instant::now()) {
            return Err(fail(ApiError::RequestLimitExceeded(format!(
                "more than {} requests per second for {} with this SecretId; slow down and retry",
                self.inner.limiter.per_second(),
                parsed.action
            ))));
        }
        let caller = actions::Caller::load(self, key.account_id, &secret_id).await.map_err(fail)?;
        let fields = actions::dispatch(self, &caller, &parsed.action, parsed.params, now).await.map_err(fail)?;
        Ok((parsed.action, secret_id, fields))
    }
}

fn error_body(error: &ApiError, request_id: &str) -> Value {
    json!({
        "Response": {
            "Error": {"Code": error.code(), "Message": error.to_string()},
            "RequestId": request_id,
        }
    })
}

/// Always 200 with `Content-Type: application/json`: the SDKs read errors from the body.
fn json_response(body: &Value) -> Response {
    let mut response = body.to_string().into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn serve(
    State(api): State<TcApi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => api.handle(&method, &uri, &headers, &body).await,
        Err(rejection) => {
            let request_id = uuid::Uuid::new_v4().to_string();
            let error = if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::RequestSizeLimitExceeded(MAX_BODY_BYTES)
            } else {
                ApiError::InvalidParameter(format!("the request body could not be read ({rejection})"))
            };
            json_response(&error_body(&error, &request_id))
        }
    }
}

/// The API's routes: `POST /`, and `GET`/`POST` on `/api/v3`. `GET /` belongs to the web
/// console; the official SDKs' GET mode reaches the API there through
/// [`intercept_signed_gets`], which the app applies as its outermost layer.
pub fn router<S: Clone + Send + Sync + 'static>(api: TcApi) -> Router<S> {
    Router::new()
        .route("/", post(serve))
        .route("/api/v3", get(serve).post(serve))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

/// Middleware: a `GET /` that carries `X-TC-Action` is an API 3.0 call (the SDKs send GETs to
/// `/` with the parameters in the query string) and is answered by the API; every other
/// request goes on. Apply it with `axum::middleware::from_fn_with_state(api, intercept_signed_gets)`.
pub async fn intercept_signed_gets(State(api): State<TcApi>, request: Request, next: Next) -> Response {
    if request.method() == Method::GET && request.uri().path() == "/" && request.headers().contains_key("x-tc-action") {
        return api.handle(&Method::GET, request.uri(), request.headers(), b"").await;
    }
    next.run(request).await
}
