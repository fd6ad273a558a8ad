//! TC3-HMAC-SHA256 (Tencent Cloud signature v3): the canonical request, the string to sign,
//! the derived signing key and the `Authorization` header, exactly as the public algorithm
//! describes them. Verification compares in constant time and never logs a secret.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";

/// What the caller put in `Authorization: TC3-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub secret_id: String,
    /// `yyyy-mm-dd` (UTC) of the credential scope.
    pub date: String,
    pub service: String,
    /// Lower-case header names, in the order given.
    pub signed_headers: Vec<String>,
    /// 64 lower-case hex digits.
    pub signature: String,
}

/// Why an `Authorization` header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("the Authorization header uses {0:?}; respack accepts only TC3-HMAC-SHA256 signatures")]
    UnsupportedAlgorithm(String),
    #[error("the Authorization header is malformed: {0}")]
    Malformed(&'static str),
}

impl Authorization {
    pub fn parse(header: &str) -> Result<Authorization, AuthorizationError> {
        let header = header.trim();
        let (algorithm, rest) = header.split_once(' ').ok_or(AuthorizationError::Malformed(
            "expected `TC3-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`",
        ))?;
        if algorithm != ALGORITHM {
            return Err(AuthorizationError::UnsupportedAlgorithm(algorithm.chars().take(40).collect()));
        }
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (name, value) =
                part.trim().split_once('=').ok_or(AuthorizationError::Malformed("each part is name=value"))?;
            let slot = match name.trim() {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => {
                    return Err(AuthorizationError::Malformed(
                        "unknown part (expected Credential, SignedHeaders, Signature)",
                    ))
                }
            };
            if slot.replace(value.trim()).is_some() {
                return Err(AuthorizationError::Malformed("a part is given twice"));
            }
        }
        let credential = credential.ok_or(AuthorizationError::Malformed("Credential is missing"))?;
        let signed_headers = signed_headers.ok_or(AuthorizationError::Malformed("SignedHeaders is missing"))?;
        let signature = signature.ok_or(AuthorizationError::Malformed("Signature is missing"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [secret_id, date, service, terminator] = scope[..] else {
            return Err(AuthorizationError::Malformed("Credential is SecretId/yyyy-mm-dd/service/tc3_request"));
        };
        if terminator != "tc3_request" || secret_id.is_empty() || service.is_empty() {
            return Err(AuthorizationError::Malformed("Credential is SecretId/yyyy-mm-dd/service/tc3_request"));
        }
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthorizationError::Malformed("Signature is 64 hex digits"));
        }
        let signed_headers: Vec<String> = signed_headers.split(';').map(|h| h.trim().to_ascii_lowercase()).collect();
        if signed_headers.iter().any(String::is_empty) {
            return Err(AuthorizationError::Malformed("SignedHeaders is a ;-separated list of header names"));
        }
        Ok(Authorization {
            secret_id: secret_id.to_owned(),
            date: date.to_owned(),
            service: service.to_owned(),
            signed_headers,
            signature: signature.to_ascii_lowercase(),
        })
    }
}

/// The parts of an HTTP request a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path, `/` for API 3.0.
    pub uri: &'a str,
    /// The query string as sent (empty for POST).
    pub query: &'a str,
    /// `(lower-case name, value)` of every signed header, in the order signed.
    pub headers: &'a [(String, String)],
    /// The body, or `UNSIGNED-PAYLOAD` when `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` was sent.
    pub payload: &'a [u8],
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// `HTTPRequestMethod\nCanonicalURI\nCanonicalQueryString\nCanonicalHeaders\nSignedHeaders\nHashedRequestPayload`
pub fn canonical_request(request: &SignedRequest<'_>) -> String {
    let mut canonical_headers = String::new();
    for (name, value) in request.headers {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&value.trim().to_ascii_lowercase());
        canonical_headers.push('\n');
    }
    let signed: Vec<&str> = request.headers.iter().map(|(name, _)| name.as_str()).collect();
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        request.uri,
        request.query,
        canonical_headers,
        signed.join(";"),
        sha256_hex(request.payload)
    )
}

/// `TC3-HMAC-SHA256\nTimestamp\nDate/service/tc3_request\nSHA256(CanonicalRequest)`
pub fn string_to_sign(timestamp: i64, date: &str, service: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// `HMAC(HMAC(HMAC("TC3" + SecretKey, Date), Service), "tc3_request")`
pub fn signing_key(secret_key: &str, date: &str, service: &str) -> Vec<u8> {
    let secret_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let secret_service = hmac(&secret_date, service.as_bytes());
    hmac(&secret_service, b"tc3_request")
}

/// The hex signature of `string_to_sign`.
pub fn sign(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    hex::encode(hmac(&signing_key(secret_key, date, service), string_to_sign.as_bytes()))
}

/// Whether `signature` (hex) is the signature of `string_to_sign`, compared in constant time.
pub fn verify(secret_key: &str, date: &str, service: &str, string_to_sign: &str, signature: &str) -> bool {
    let Ok(expected) = hex::decode(signature) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(&signing_key(secret_key, date, service)) else {
        return false;
    };
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// The `Authorization` header for a request: what a client (and the tests) send.
pub fn authorization_header(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    timestamp: i64,
    request: &SignedRequest<'_>,
) -> String {
    let date = chrono::DateTime::from_timestamp(timestamp, 0).unwrap_or_default().format("%Y-%m-%d").to_string();
    let to_sign = string_to_sign(timestamp, &date, service, &canonical_request(request));
    let signed: Vec<&str> = request.headers.iter().map(|(name, _)| name.as_str()).collect();
    format!(
        "{ALGORITHM} Credential={secret_id}/{date}/{service}/tc3_request, SignedHeaders={}, Signature={}",
        signed.join(";"),
        sign(secret_key, &date, service, &to_sign)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the public "Signature v3" documentation (CVM DescribeInstances,
    /// timestamp 1551113065): every intermediate value and the final signature.
    #[test]
    fn reproduces_the_published_worked_example() {
        let payload = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        assert_eq!(sha256_hex(payload), "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064");
        let headers = vec![
            ("content-type".to_owned(), "application/json; charset=utf-8".to_owned()),
            ("host".to_owned(), "cvm.tencentcloudapi.com".to_owned()),
        ];
        let request = SignedRequest { method: "POST", uri: "/", query: "", headers: &headers, payload };
        let canonical = canonical_request(&request);
        assert_eq!(
            canonical,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n\
             content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let to_sign = string_to_sign(1551113065, "2019-02-25", "cvm", &canonical);
        assert_eq!(
            to_sign,
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n\
             5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        let secret_key = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
        let signature = sign(secret_key, "2019-02-25", "cvm", &to_sign);
        assert_eq!(signature, "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168");
        assert!(verify(secret_key, "2019-02-25", "cvm", &to_sign, &signature));
        assert!(!verify("another key", "2019-02-25", "cvm", &to_sign, &signature));
        assert!(!verify(secret_key, "2019-02-26", "cvm", &to_sign, &signature));

        let header =
            authorization_header("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", secret_key, "cvm", 1551113065, &request);
        assert_eq!(
            header,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host, \
             Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
        let parsed = Authorization::parse(&header).unwrap();
        assert_eq!(parsed.secret_id, "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE");
        assert_eq!(parsed.date, "2019-02-25");
        assert_eq!(parsed.service, "cvm");
        assert_eq!(parsed.signed_headers, ["content-type", "host"]);
    }

    #[test]
    fn malformed_authorization_headers_are_named() {
        let cases = [
            ("", "malformed"),
            ("HmacSHA256 Credential=a/b/c/tc3_request", "only TC3"),
            ("TC3-HMAC-SHA256 Credential=a/2019-02-25/billing/tc3_request", "SignedHeaders is missing"),
            (
                "TC3-HMAC-SHA256 Credential=a/2019-02-25/billing, SignedHeaders=host, Signature=00",
                "SecretId/yyyy-mm-dd",
            ),
            ("TC3-HMAC-SHA256 Credential=a/2019-02-25/billing/tc3_request, SignedHeaders=host, Signature=zz", "64 hex"),
        ];
        for (header, expected) in cases {
            let error = Authorization::parse(header).unwrap_err().to_string();
            assert!(error.contains(expected), "{header:?}: {error}");
        }
    }
}
