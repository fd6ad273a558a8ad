//! `POST /v1/usage` accepting usage: deduction, replay, overage, the app's clock, and that a
//! key only ever touches its own account's packs.

use chrono::Duration;
use respack_domain::Lifecycle;
use respack_store::DeductionFilter;
use serde_json::{json, Value};

use crate::helpers::{dec, record, spawn_app, t0};

#[tokio::test]
async fn a_good_batch_deducts_and_the_same_batch_again_is_replayed() {
    let app = spawn_app().await;
    let customer = app.customer("Acme Media").await;
    // A decimal string, and a JSON number taken by its exact text.
    let batch = json!([record("u-1", json!("12.5")), record("u-2", json!(7.25))]);

    let (status, first) = app.post_usage(&customer, &batch).await;
    assert_eq!(status, 200, "{first}");
    let ids: Vec<i64> =
        first["records"].as_array().unwrap().iter().map(|r| r["usage_record_id"].as_i64().unwrap()).collect();
    assert_eq!(
        first,
        json!({ "records": [
            { "idempotency_key": "u-1", "usage_record_id": ids[0], "deducted": "12.5", "overage": "0",
              "overage_cost": "0.00", "replayed": false },
            { "idempotency_key": "u-2", "usage_record_id": ids[1], "deducted": "7.25", "overage": "0",
              "overage_cost": "0.00", "replayed": false },
        ]})
    );
    assert_eq!(app.remaining(&customer.pack_id).await, dec("80.25"));
    assert_eq!(app.deduction_count(customer.account.id).await, 2);

    let (status, again) = app.post_usage(&customer, &batch).await;
    assert_eq!(status, 200, "{again}");
    for (record, id) in again["records"].as_array().unwrap().iter().zip(&ids) {
        assert_eq!((record["replayed"].as_bool(), record["usage_record_id"].as_i64()), (Some(true), Some(*id)));
    }
    assert_eq!(again["records"][0]["deducted"], "12.5");
    assert_eq!(app.remaining(&customer.pack_id).await, dec("80.25"), "a replay changes nothing");
    assert_eq!(app.deduction_count(customer.account.id).await, 2);
}

#[tokio::test]
async fn usage_beyond_the_packs_is_overage_at_list_price() {
    let app = spawn_app().await;
    let customer = app.customer("Acme Media").await;
    let (status, body) = app.post_usage(&customer, &json!([record("big", json!("120"))])).await;
    assert_eq!(status, 200, "{body}");
    let outcome = &body["records"][0];
    assert_eq!(
        (&outcome["deducted"], &outcome["overage"], &outcome["overage_cost"]),
        (&json!("100"), &json!("20"), &json!("0.15")),
        "20 minutes over, at 0.0075 per minute"
    );
    let pack = app.store.pack(None, &customer.pack_id).await.unwrap();
    assert_eq!((pack.items[0].remaining, pack.lifecycle), (dec("0"), Lifecycle::Exhausted));
}

#[tokio::test]
async fn a_key_only_deducts_from_its_own_accounts_packs() {
    let app = spawn_app().await;
    let acme = app.customer("Acme Media").await;
    let globex = app.customer("Globex").await;

    let (status, body) = app.post_usage(&acme, &json!([record("shared-key", json!("30"))])).await;
    assert_eq!(status, 200, "{body}");
    // The same idempotency key from another account is that account's own record.
    let (status, body) = app.post_usage(&globex, &json!([record("shared-key", json!("5"))])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"][0]["replayed"], false);

    assert_eq!(app.remaining(&acme.pack_id).await, dec("70"));
    assert_eq!(app.remaining(&globex.pack_id).await, dec("95"));
    let acme_rows = app
        .store
        .list_deductions(&DeductionFilter { account_ids: vec![acme.account.id], ..Default::default() })
        .await
        .unwrap();
    assert_eq!(acme_rows.total, 1);
    assert!(acme_rows.items.iter().all(|row| row.pack_id == acme.pack_id && row.account_id == acme.account.id));

    // A record cannot name another account.
    let mut foreign = record("foreign", json!("1"));
    foreign["account_id"] = json!(globex.account.id);
    let (status, body) = app.post_usage(&acme, &json!([foreign])).await;
    assert_eq!((status.as_u16(), &body["error"]["code"]), (400, &json!("MalformedJson")), "{body}");
    assert_eq!(app.remaining(&globex.pack_id).await, dec("95"));
    assert_eq!(app.deduction_count(globex.account.id).await, 1);
}

#[tokio::test]
async fn records_are_checked_against_the_apps_clock() {
    let app = spawn_app().await;
    let customer = app.customer("Acme Media").await;
    let mut later = record("later", json!("1"));
    later["occurred_at"] = json!((t0() + Duration::hours(1)).to_rfc3339());

    let (status, body) = app.post_usage(&customer, &json!([later.clone()])).await;
    assert_eq!(status, 400, "{body}");
    app.clock.advance(Duration::hours(1));
    let (status, body) = app.post_usage(&customer, &json!([later])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.remaining(&customer.pack_id).await, dec("99"));
}

#[tokio::test]
async fn an_empty_batch_records_nothing() {
    let app = spawn_app().await;
    let customer = app.customer("Acme Media").await;
    let (status, body) = app.post_usage(&customer, &Value::Array(Vec::new())).await;
    assert_eq!((status.as_u16(), body), (200, json!({ "records": [] })));
}
