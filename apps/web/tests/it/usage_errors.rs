//! `POST /v1/usage` refusing requests: each failure gets its status, code and a message that
//! says what to fix, and none of them writes anything.

use chrono::Duration;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{json, Value};

use crate::helpers::{dec, operator, record, spawn_app, t0, Customer, TestApp};

enum Auth {
    Nothing,
    Header(&'static str),
    Key { id: String, secret: String },
}

struct Case {
    name: &'static str,
    auth: Auth,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// A piece of the message.
    says: &'static str,
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    body: Value,
}

async fn send(app: &TestApp, case: &Case) -> Answer {
    let mut request = app.client.post(app.url("/v1/usage")).body(case.body.clone());
    request = match &case.auth {
        Auth::Nothing => request,
        Auth::Header(value) => request.header(AUTHORIZATION, *value),
        Auth::Key { id, secret } => request.basic_auth(id, Some(secret)),
    };
    if let Some(content_type) = case.content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    let response = request.send().await.unwrap_or_else(|error| panic!("{}: {error}", case.name));
    let status = response.status().as_u16();
    let challenge = response.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or_else(|error| panic!("{}: not JSON: {error}", case.name));
    Answer { status, challenge, body }
}

fn key_of(customer: &Customer) -> Auth {
    Auth::Key { id: customer.secret_id.clone(), secret: customer.secret_key.clone() }
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// A good record first, then `field` of a second record set to `value`: the good one must not
/// be recorded either.
fn batch_with(field: &str, value: Value) -> Vec<u8> {
    let mut bad = record("bad", json!("1"));
    bad[field] = value;
    json_bytes(&json!([record("good", json!("1")), bad]))
}

#[tokio::test]
async fn every_refusal_has_its_status_code_and_message_and_writes_nothing() {
    let app = spawn_app().await;
    let customer = app.customer("Acme Media").await;
    let revoked = app.store.create_api_key(customer.account.id, "old", &operator(), t0()).await.unwrap();
    app.store.revoke_api_key(customer.account.id, &revoked.info.secret_id, &operator(), t0()).await.unwrap();
    let good = json_bytes(&json!([record("good", json!("1"))]));
    let json = Some("application/json");

    let cases = vec![
        Case {
            name: "no credentials",
            auth: Auth::Nothing,
            content_type: json,
            body: good.clone(),
            status: 401,
            code: "Unauthorized",
            says: "curl -u",
        },
        Case {
            name: "not Basic",
            auth: Auth::Header("Bearer abc"),
            content_type: json,
            body: good.clone(),
            status: 401,
            code: "Unauthorized",
            says: "Basic base64(SecretId:SecretKey)",
        },
        Case {
            name: "wrong secret",
            auth: Auth::Key { id: customer.secret_id.clone(), secret: "not-the-secret".into() },
            content_type: json,
            body: good.clone(),
            status: 401,
            code: "Unauthorized",
            says: "unknown SecretId or wrong SecretKey",
        },
        Case {
            name: "unknown SecretId",
            auth: Auth::Key { id: "AKIDnobody".into(), secret: customer.secret_key.clone() },
            content_type: json,
            body: good.clone(),
            status: 401,
            code: "Unauthorized",
            says: "unknown SecretId or wrong SecretKey",
        },
        Case {
            name: "revoked key",
            auth: Auth::Key { id: revoked.info.secret_id.clone(), secret: revoked.secret_key.expose().to_owned() },
            content_type: json,
            body: good.clone(),
            status: 401,
            code: "Unauthorized",
            says: "this API key was revoked",
        },
        Case {
            name: "truncated JSON",
            auth: key_of(&customer),
            content_type: json,
            body: good[..good.len() - 5].to_vec(),
            status: 400,
            code: "MalformedJson",
            says: "line 1 column",
        },
        Case {
            name: "not an array",
            auth: key_of(&customer),
            content_type: json,
            body: json_bytes(&record("good", json!("1"))),
            status: 400,
            code: "MalformedJson",
            says: "expected a sequence",
        },
        Case {
            name: "unknown field",
            auth: key_of(&customer),
            content_type: json,
            body: batch_with("colour", json!("blue")),
            status: 400,
            code: "MalformedJson",
            says: "at [1].colour: unknown field `colour`",
        },
        Case {
            name: "quantity not a number",
            auth: key_of(&customer),
            content_type: json,
            body: batch_with("quantity", json!("ten")),
            status: 400,
            code: "MalformedJson",
            says: "[1].quantity",
        },
        Case {
            name: "form content type",
            auth: key_of(&customer),
            content_type: Some("application/x-www-form-urlencoded"),
            body: good.clone(),
            status: 415,
            code: "UnsupportedMediaType",
            says: "Content-Type: application/json",
        },
        Case {
            name: "no content type",
            auth: key_of(&customer),
            content_type: None,
            body: good.clone(),
            status: 415,
            code: "UnsupportedMediaType",
            says: "no Content-Type",
        },
        Case {
            name: "unknown subproduct",
            auth: key_of(&customer),
            content_type: json,
            body: batch_with("subproduct", json!("sp_nope")),
            status: 400,
            code: "InvalidUsage",
            says: "record 1 (bad): unknown subproduct",
        },
        Case {
            name: "zero quantity",
            auth: key_of(&customer),
            content_type: json,
            body: batch_with("quantity", json!("0")),
            status: 400,
            code: "InvalidUsage",
            says: "greater than zero",
        },
        Case {
            name: "negative quantity",
            auth: key_of(&customer),
            content_type: json,
            body: batch_with("quantity", json!(-2)),
            status: 400,
            code: "InvalidUsage",
            says: "greater than zero",
        },
        Case {
            name: "too many decimals",
            auth: key_of(&customer),
            content_type: json,
            body: batch_with("quantity", json!("1.0000001")),
            status: 400,
            code: "InvalidUsage",
            says: "more than 6 decimal places",
        },
        Case {
            name: "far future",
            auth: key_of(&customer),
            content_type: json,
            body: batch_with("occurred_at", json!((t0() + Duration::days(2)).to_rfc3339())),
            status: 400,
            code: "InvalidUsage",
            says: "in the future",
        },
        Case {
            name: "duplicate key in one batch",
            auth: key_of(&customer),
            content_type: json,
            body: batch_with("idempotency_key", json!("good")),
            status: 400,
            code: "InvalidUsage",
            says: "appears twice",
        },
        Case {
            name: "1001 records",
            auth: key_of(&customer),
            content_type: json,
            body: json_bytes(&Value::Array((0..1001).map(|i| record(&format!("k{i}"), json!("0.01"))).collect())),
            status: 400,
            code: "InvalidUsage",
            says: "at most 1000 records",
        },
        Case {
            name: "body over 4 MiB",
            auth: key_of(&customer),
            content_type: json,
            body: vec![b' '; 5 * 1024 * 1024],
            status: 413,
            code: "PayloadTooLarge",
            says: "larger than 4 MiB",
        },
    ];

    for case in &cases {
        let answer = send(&app, case).await;
        let (code, message) = (&answer.body["error"]["code"], answer.body["error"]["message"].as_str().unwrap_or(""));
        assert_eq!((answer.status, code.as_str()), (case.status, Some(case.code)), "{}: {}", case.name, answer.body);
        assert!(message.contains(case.says), "{}: {message:?} should say {:?}", case.name, case.says);
        if case.status == 401 {
            assert_eq!(answer.challenge.as_deref(), Some(r#"Basic realm="respack""#), "{}", case.name);
        }
        assert!(!message.contains(&customer.secret_key), "{}: the secret must never be echoed", case.name);
        assert_eq!(app.deduction_count(customer.account.id).await, 0, "{} wrote a deduction", case.name);
    }
    assert_eq!(app.remaining(&customer.pack_id).await, dec("100"));

    // The same key still works afterwards: nothing above was half-recorded.
    let (status, body) = app.post_usage(&customer, &json!([record("good", json!("1"))])).await;
    assert_eq!((status.as_u16(), &body["records"][0]["replayed"]), (200, &json!(false)), "{body}");
}
