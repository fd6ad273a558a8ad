//! From an HTTP request to an authenticated API call: the common headers (`X-TC-Action`,
//! `X-TC-Version`, `X-TC-Timestamp`, `X-TC-Region`, `X-TC-Token`, `X-TC-Language`), the
//! `Authorization` header, the parameters (JSON body for POST, query string for GET), and the
//! signature check against the key's secret with the timestamp window.
//!
//! Everything here is pure (no IO, time is a parameter), so the property tests can feed it
//! arbitrary input.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::params::unflatten_query;
use crate::signature::{self, Authorization, SignedRequest};

/// The only API version served.
pub const VERSION: &str = "2018-07-09";
/// The service name of the credential scope (`date/billing/tc3_request`).
pub const SERVICE: &str = "billing";

/// An HTTP request as received; header names lower-case.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl RawRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// A request whose common parameters are well formed (its signature not yet checked).
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub action: String,
    pub timestamp: i64,
    pub region: Option<String>,
    pub language: Option<String>,
    pub authorization: Authorization,
    pub params: Map<String, Value>,
}

fn header_text<'a>(raw: &'a RawRequest<'_>, name: &str) -> Option<&'a str> {
    raw.header(name).map(str::trim).filter(|value| !value.is_empty())
}

/// Reads the common parameters and the parameters of the action.
pub fn parse(raw: &RawRequest<'_>) -> Result<ParsedRequest, ApiError> {
    let action = header_text(raw, "x-tc-action")
        .ok_or_else(|| ApiError::MissingParameter("the header X-TC-Action (the action to call) is required".into()))?;
    if action.len() > 100 || !action.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::InvalidAction(format!("{:?} is not an action name", truncate(action))));
    }
    let version = header_text(raw, "x-tc-version")
        .ok_or_else(|| ApiError::MissingParameter("the header X-TC-Version is required (2018-07-09)".into()))?;
    if version != VERSION {
        return Err(ApiError::NoSuchVersion(truncate(version)));
    }
    let timestamp_text = header_text(raw, "x-tc-timestamp").ok_or_else(|| {
        ApiError::MissingParameter("the header X-TC-Timestamp (Unix time in seconds) is required".into())
    })?;
    let timestamp = timestamp_text.parse::<i64>().map_err(|_| {
        ApiError::InvalidParameter(format!(
            "X-TC-Timestamp must be Unix time in seconds, not {:?}",
            truncate(timestamp_text)
        ))
    })?;
    if header_text(raw, "x-tc-token").is_some() {
        return Err(ApiError::TokenFailure);
    }
    let language = header_text(raw, "x-tc-language").map(str::to_owned);
    if let Some(language) = &language {
        if language != "zh-CN" && language != "en-US" {
            return Err(ApiError::InvalidParameterValue(format!(
                "X-TC-Language must be zh-CN or en-US, not {:?}",
                truncate(language)
            )));
        }
    }
    let region = header_text(raw, "x-tc-region").map(str::to_owned);
    let authorization_text = header_text(raw, "authorization").ok_or_else(|| {
        ApiError::SignatureFailure(
            "the request is not signed: send an Authorization header with a TC3-HMAC-SHA256 signature".into(),
        )
    })?;
    let authorization =
        Authorization::parse(authorization_text).map_err(|error| ApiError::SignatureFailure(error.to_string()))?;
    let content_type = raw.header("content-type").unwrap_or("").trim().to_ascii_lowercase();
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let params = match raw.method {
        "POST" => {
            if media_type != "application/json" {
                return Err(ApiError::InvalidParameter(format!(
                    "send the parameters as a JSON object with Content-Type: application/json (got {:?})",
                    truncate(&content_type)
                )));
            }
            parse_body(raw.body)?
        }
        "GET" => {
            if !media_type.is_empty() && media_type != "application/x-www-form-urlencoded" {
                return Err(ApiError::InvalidParameter(format!(
                    "a GET request carries its parameters in the query string with Content-Type: \
                     application/x-www-form-urlencoded (got {:?})",
                    truncate(&content_type)
                )));
            }
            unflatten_query(raw.query)?
        }
        other => {
            return Err(ApiError::UnsupportedOperation(format!(
                "the HTTP method {:?} is not supported; use POST (JSON) or GET (query string)",
                truncate(other)
            )))
        }
    };
    Ok(ParsedRequest { action: action.to_owned(), timestamp, region, language, authorization, params })
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::InvalidParameter("the body must be a JSON object of parameters".into())),
        Err(error) => Err(ApiError::InvalidParameter(format!("the body is not valid JSON: {error}"))),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}

/// Checks the timestamp window, the credential scope and the signature with `secret_key`.
pub fn verify(
    raw: &RawRequest<'_>,
    parsed: &ParsedRequest,
    secret_key: &str,
    now: DateTime<Utc>,
    max_skew: Duration,
) -> Result<(), ApiError> {
    let skew = now.timestamp().saturating_sub(parsed.timestamp);
    if skew.unsigned_abs() > max_skew.num_seconds().unsigned_abs() {
        return Err(ApiError::SignatureExpire(format!(
            "the signature expired: X-TC-Timestamp {} is {} seconds {} the server's time {}; \
             requests must be signed within {} seconds (check the client's clock)",
            parsed.timestamp,
            skew.unsigned_abs(),
            if skew > 0 { "behind" } else { "ahead of" },
            now.timestamp(),
            max_skew.num_seconds()
        )));
    }
    let auth = &parsed.authorization;
    let date =
        DateTime::from_timestamp(parsed.timestamp, 0).map(|at| at.format("%Y-%m-%d").to_string()).unwrap_or_default();
    if auth.date != date {
        return Err(ApiError::SignatureFailure(format!(
            "the credential date {} is not the UTC date of X-TC-Timestamp ({date})",
            truncate(&auth.date)
        )));
    }
    if auth.service != SERVICE {
        return Err(ApiError::SignatureFailure(format!(
            "the credential scope names the service {:?}; sign for \"{SERVICE}\"",
            truncate(&auth.service)
        )));
    }
    for required in ["content-type", "host"] {
        if !auth.signed_headers.iter().any(|name| name == required) {
            return Err(ApiError::SignatureFailure(format!("SignedHeaders must include {required}")));
        }
    }
    let mut headers = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = raw.header(name).ok_or_else(|| {
            ApiError::SignatureFailure(format!("the signed header {} is not in the request", truncate(name)))
        })?;
        headers.push((name.clone(), value.to_owned()));
    }
    let unsigned = raw.header("x-tc-content-sha256").is_some_and(|value| value.trim() == "UNSIGNED-PAYLOAD");
    let payload: &[u8] = if unsigned {
        b"UNSIGNED-PAYLOAD"
    } else if raw.method == "GET" {
        b""
    } else {
        raw.body
    };
    let query = if raw.method == "GET" { raw.query } else { "" };
    let request = SignedRequest { method: raw.method, uri: raw.path, query, headers: &headers, payload };
    let canonical = signature::canonical_request(&request);
    let to_sign = signature::string_to_sign(parsed.timestamp, &auth.date, &auth.service, &canonical);
    if signature::verify(secret_key, &auth.date, &auth.service, &to_sign, &auth.signature) {
        Ok(())
    } else {
        Err(ApiError::SignatureFailure(
            "the signature does not match the request: sign the exact method, path, query string, \
             signed headers and body with the SecretKey of this SecretId (TC3-HMAC-SHA256)"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::authorization_header;

    fn signed(method: &str, query: &str, body: &[u8], timestamp: i64) -> Vec<(String, String)> {
        let content_type = if method == "GET" { "application/x-www-form-urlencoded" } else { "application/json" };
        let mut headers = vec![
            ("content-type".to_owned(), content_type.to_owned()),
            ("host".to_owned(), "127.0.0.1:3000".to_owned()),
        ];
        let request = SignedRequest {
            method,
            uri: "/",
            query,
            headers: &headers,
            payload: if method == "GET" { b"" } else { body },
        };
        let authorization = authorization_header("AKIDtest", "secret", SERVICE, timestamp, &request);
        headers.extend([
            ("authorization".to_owned(), authorization),
            ("x-tc-action".to_owned(), "DescribeAccountBalance".to_owned()),
            ("x-tc-version".to_owned(), VERSION.to_owned()),
            ("x-tc-timestamp".to_owned(), timestamp.to_string()),
        ]);
        headers
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap()
    }

    #[test]
    fn a_signed_post_and_get_verify_and_any_change_breaks_them() {
        let ts = now().timestamp();
        let body = br#"{"Offset": 0}"#;
        let headers = signed("POST", "", body, ts);
        let raw = RawRequest { method: "POST", path: "/", query: "", headers: &headers, body };
        let parsed = parse(&raw).unwrap();
        assert_eq!(parsed.params.get("Offset"), Some(&Value::from(0)));
        verify(&raw, &parsed, "secret", now(), Duration::minutes(5)).unwrap();
        assert_eq!(
            verify(&raw, &parsed, "wrong", now(), Duration::minutes(5)).unwrap_err().code(),
            "AuthFailure.SignatureFailure"
        );
        let tampered = RawRequest { body: br#"{"Offset": 1}"#, ..raw };
        let parsed_tampered = parse(&tampered).unwrap();
        assert_eq!(
            verify(&tampered, &parsed_tampered, "secret", now(), Duration::minutes(5)).unwrap_err().code(),
            "AuthFailure.SignatureFailure"
        );

        let get_headers = signed("GET", "Limit=10&Ids.0=a", b"", ts);
        let get = RawRequest { method: "GET", path: "/", query: "Limit=10&Ids.0=a", headers: &get_headers, body: b"" };
        let parsed_get = parse(&get).unwrap();
        assert_eq!(parsed_get.params.get("Ids"), Some(&serde_json::json!(["a"])));
        verify(&get, &parsed_get, "secret", now(), Duration::minutes(5)).unwrap();
    }

    #[test]
    fn timestamps_more_than_five_minutes_off_expire() {
        for (offset, ok) in [(-300, true), (300, true), (-301, false), (301, false)] {
            let ts = now().timestamp() + offset;
            let headers = signed("POST", "", b"{}", ts);
            let raw = RawRequest { method: "POST", path: "/", query: "", headers: &headers, body: b"{}" };
            let parsed = parse(&raw).unwrap();
            let outcome = verify(&raw, &parsed, "secret", now(), Duration::minutes(5));
            assert_eq!(outcome.is_ok(), ok, "offset {offset}: {outcome:?}");
            if !ok {
                assert_eq!(outcome.unwrap_err().code(), "AuthFailure.SignatureExpire");
            }
        }
    }

    #[test]
    fn missing_and_bad_common_parameters_are_named() {
        let ts = now().timestamp();
        let base = signed("POST", "", b"{}", ts);
        let without = |name: &str| base.iter().filter(|(key, _)| key != name).cloned().collect::<Vec<_>>();
        let replaced = |name: &str, value: &str| {
            base.iter()
                .map(|(key, old)| (key.clone(), if key == name { value.to_owned() } else { old.clone() }))
                .collect::<Vec<_>>()
        };
        let cases = [
            (without("x-tc-action"), "MissingParameter"),
            (without("x-tc-version"), "MissingParameter"),
            (replaced("x-tc-version", "2017-03-12"), "NoSuchVersion"),
            (without("x-tc-timestamp"), "MissingParameter"),
            (replaced("x-tc-timestamp", "soon"), "InvalidParameter"),
            (without("authorization"), "AuthFailure.SignatureFailure"),
            (replaced("content-type", "text/plain"), "InvalidParameter"),
            (replaced("x-tc-action", "Describe Bills"), "InvalidAction"),
        ];
        for (headers, code) in cases {
            let raw = RawRequest { method: "POST", path: "/", query: "", headers: &headers, body: b"{}" };
            assert_eq!(parse(&raw).unwrap_err().code(), code, "{headers:?}");
        }
        let mut with_token = base.clone();
        with_token.push(("x-tc-token".into(), "t".into()));
        let raw = RawRequest { method: "POST", path: "/", query: "", headers: &with_token, body: b"{}" };
        assert_eq!(parse(&raw).unwrap_err().code(), "AuthFailure.TokenFailure");
        let raw = RawRequest { method: "POST", path: "/", query: "", headers: &base, body: b"[1]" };
        assert_eq!(parse(&raw).unwrap_err().code(), "InvalidParameter");
    }
}
