//! The Tencent Cloud API 3.0 endpoint is mounted: `POST /`, `GET /` with X-TC-Action (the
//! SDKs' GET mode) and `/api/v3` answer signed calls on the app's clock.

use respack_tc_api::signature::{authorization_header, SignedRequest};
use serde_json::Value;

use crate::helpers::{spawn_app, t0};

#[tokio::test]
async fn signed_calls_reach_the_api_on_post_root_get_root_and_api_v3() {
    let app = spawn_app().await;
    let customer = app.customer("Acme Media").await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let timestamp = t0().timestamp();
    for (method, path, content_type, body) in [
        ("POST", "/", "application/json", "{}"),
        ("GET", "/", "application/x-www-form-urlencoded", ""),
        ("GET", "/api/v3", "application/x-www-form-urlencoded", ""),
        ("POST", "/api/v3", "application/json", "{}"),
    ] {
        let headers = vec![("content-type".to_owned(), content_type.to_owned()), ("host".to_owned(), host.clone())];
        let signed = SignedRequest { method, uri: path, query: "", headers: &headers, payload: body.as_bytes() };
        let authorization =
            authorization_header(&customer.secret_id, &customer.secret_key, "billing", timestamp, &signed);
        let request = match method {
            "POST" => app.client.post(app.url(path)).body(body),
            _ => app.client.get(app.url(path)),
        };
        let response = request
            .header("Content-Type", content_type)
            .header("Authorization", authorization)
            .header("X-TC-Action", "DescribeAccountBalance")
            .header("X-TC-Version", "2018-07-09")
            .header("X-TC-Timestamp", timestamp.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["Response"]["Uin"].as_str().map(str::to_owned), None, "{method} {path}: {answer}");
        assert_eq!(
            answer["Response"]["Uin"],
            customer.account.uin.parse::<i64>().unwrap(),
            "{method} {path}: {answer}"
        );
        assert!(answer["Response"]["RequestId"].as_str().is_some_and(|id| id.len() == 36));
    }
    // Unsigned: the envelope says so.
    let response = app.client.post(app.url("/")).header("Content-Type", "application/json").body("{}").send().await;
    let answer: Value = response.unwrap().json().await.unwrap();
    assert_eq!(answer["Response"]["Error"]["Code"], "MissingParameter", "{answer}");
    // A GET of / without X-TC-Action is not an API call: it is the console (which sends a
    // visitor without a session on to its sign-in page).
    let plain = app.client.get(app.url("/")).send().await.unwrap();
    let content_type = plain.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = plain.text().await.unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}: {body}");
    assert!(!body.contains("\"RequestId\""), "the console answered, not the API: {body}");
}
