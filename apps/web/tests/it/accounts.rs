//! Which accounts a key may record usage for: its own always; others only with an operator's
//! key, naming them by UIN.

use serde_json::json;

use crate::helpers::{dec, record, spawn_app};

#[tokio::test]
async fn an_operator_key_records_usage_for_the_accounts_it_names() {
    let app = spawn_app().await;
    let acme = app.customer("Acme Media").await;
    let globex = app.customer("Globex").await;
    let provider = app.operator_key().await;
    let mut for_acme = record("op-1", json!("10"));
    for_acme["account"] = json!(acme.account.uin);
    let mut for_globex = record("op-2", json!("4"));
    for_globex["account"] = json!(globex.account.uin);

    let (status, answer) = app.post_usage(&provider, &json!([for_acme, for_globex])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(app.remaining(&acme.pack_id).await, dec("90"));
    assert_eq!(app.remaining(&globex.pack_id).await, dec("96"));

    let mut unknown = record("op-3", json!("1"));
    unknown["account"] = json!("999999999999");
    let (status, answer) = app.post_usage(&provider, &json!([unknown])).await;
    assert_eq!((status.as_u16(), answer["error"]["code"].as_str()), (404, Some("UnknownAccount")), "{answer}");
}

#[tokio::test]
async fn a_customer_key_cannot_name_another_account() {
    let app = spawn_app().await;
    let acme = app.customer("Acme Media").await;
    let globex = app.customer("Globex").await;
    let mut own = record("c-1", json!("1"));
    own["account"] = json!(acme.account.uin);
    let mut other = record("c-2", json!("1"));
    other["account"] = json!(globex.account.uin);

    let (status, answer) = app.post_usage(&acme, &json!([own.clone()])).await;
    assert_eq!(status, 200, "naming its own account is fine: {answer}");
    let (status, answer) = app.post_usage(&acme, &json!([record("c-3", json!("1")), other])).await;
    assert_eq!((status.as_u16(), answer["error"]["code"].as_str()), (403, Some("Forbidden")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("operator"));
    assert_eq!(app.remaining(&globex.pack_id).await, dec("100"), "nothing taken from the other account");
    assert_eq!(app.remaining(&acme.pack_id).await, dec("99"), "and nothing of the refused batch recorded");
}
