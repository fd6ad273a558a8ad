//! The console's Bills page and `DescribeBillResourceSummary` show the same figures: both read
//! the month's built summary through `Store::bill_summaries`, so for the same bill lines they
//! give the same rows (resource, ActionType, cost, cash) and the same totals — including after
//! later activity, which both show only once the summary is rebuilt — by payment month and by
//! usage month alike, on the page and in its CSV download.

use std::collections::BTreeSet;

use chrono::Duration;
use reqwest::StatusCode;
use respack_domain::chrono_tz::Tz;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{Money, PaymentMode, Term, TimeUnit};
use respack_store::{Charge, NewAccount, NewUser, Role};
use respack_tc_api::signature::{authorization_header, SignedRequest};
use serde_json::{json, Value};

use crate::console::{call, sign_in};
use crate::helpers::{dec, operator, spawn_app, t0, transcoding_pack, Customer, TestApp};

/// One signed API 3.0 call with the customer's key; the `Response` object. A call over the
/// API's 5 requests a second is sent again a little later, as a client would.
async fn api(app: &TestApp, customer: &Customer, action: &str, body: &Value) -> Value {
    loop {
        let answer = api_once(app, customer, action, body).await;
        if answer["Error"]["Code"] != "RequestLimitExceeded" {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn api_once(app: &TestApp, customer: &Customer, action: &str, body: &Value) -> Value {
    let host = app.address.trim_start_matches("http://").to_owned();
    let payload = body.to_string();
    let headers = vec![("content-type".to_owned(), "application/json".to_owned()), ("host".to_owned(), host)];
    let signed = SignedRequest { method: "POST", uri: "/", query: "", headers: &headers, payload: payload.as_bytes() };
    let timestamp = t0().timestamp();
    let authorization = authorization_header(&customer.secret_id, &customer.secret_key, "billing", timestamp, &signed);
    let answer: Value = app
        .client
        .post(app.url("/"))
        .header("Content-Type", "application/json")
        .header("Authorization", authorization)
        .header("X-TC-Action", action)
        .header("X-TC-Version", "2018-07-09")
        .header("X-TC-Timestamp", timestamp.to_string())
        .body(payload)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["Response"].clone()
}

/// (resource, ActionType, total cost, cash paid) of every row, as a set.
type Figures = BTreeSet<(String, String, Decimal, Decimal)>;

fn amount(value: &Value) -> Decimal {
    dec(value.as_str().unwrap_or_else(|| panic!("an amount as text, not {value}")))
}

async fn page_figures(app: &TestApp, cookie: &str, month: &str) -> (Figures, Value) {
    page_figures_by(app, cookie, month, "").await
}

/// The page's figures under a period type (`""`: the page's default).
async fn page_figures_by(app: &TestApp, cookie: &str, month: &str, period: &str) -> (Figures, Value) {
    let (status, body) =
        call(app, cookie, "bill_summary", &[("query[month]", month), ("query[period]", period), ("query[page]", "1")])
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let rows = page["rows"].as_array().unwrap();
    let figures = rows
        .iter()
        .map(|row| {
            (
                row["resource_id"].as_str().unwrap().to_owned(),
                row["action_type"].as_str().unwrap().to_owned(),
                amount(&row["total_cost"]),
                amount(&row["cash_paid"]),
            )
        })
        .collect();
    (figures, page)
}

async fn api_figures(app: &TestApp, customer: &Customer, month: &str) -> (Figures, u64) {
    api_figures_by(app, customer, month, "byPayTime").await
}

async fn api_figures_by(app: &TestApp, customer: &Customer, month: &str, period: &str) -> (Figures, u64) {
    let body = json!({"Month": month, "PeriodType": period, "Offset": 0, "Limit": 1000, "NeedRecordNum": 1});
    let answer = api(app, customer, "DescribeBillResourceSummary", &body).await;
    let rows = answer["ResourceSummarySet"].as_array().unwrap_or_else(|| panic!("{answer}"));
    let figures = rows
        .iter()
        .map(|row| {
            (
                row["ResourceId"].as_str().unwrap().to_owned(),
                row["ActionTypeName"].as_str().unwrap().to_owned(),
                amount(&row["TotalCost"]),
                amount(&row["CashPayAmount"]),
            )
        })
        .collect();
    (figures, answer["Total"].as_u64().unwrap())
}

/// A customer account with 1000 on its balance, an API key, and a user who signs in with
/// `email` and "correct-horse".
async fn customer_who_signs_in(app: &TestApp, name: &str, email: &str) -> Customer {
    let store = &app.store;
    let day_before = t0() - Duration::days(1);
    let account = store.create_account(NewAccount::customer(name, Tz::UTC), &operator(), day_before).await.unwrap();
    let user =
        NewUser { account_id: account.id, email, display_name: name, password: "correct-horse", role: Role::Customer };
    store.create_user(user, &operator(), day_before).await.unwrap();
    store.top_up(account.id, Money::parse("1000").unwrap(), None, &operator(), day_before).await.unwrap();
    let key = store.create_api_key(account.id, "bills", &operator(), day_before).await.unwrap();
    Customer {
        account,
        pack_id: String::new(),
        secret_id: key.info.secret_id,
        secret_key: key.secret_key.expose().to_owned(),
    }
}

/// A GET of `path` in the signed-in session of `cookie`.
async fn download(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).header("cookie", cookie).send().await.unwrap()
}

fn sums(figures: &Figures) -> (Decimal, Decimal) {
    figures.iter().fold((Decimal::ZERO, Decimal::ZERO), |(cost, cash), row| (cost + row.2, cash + row.3))
}

#[tokio::test]
async fn the_bills_page_and_describe_bill_resource_summary_give_the_same_figures() {
    let app = spawn_app().await;
    let day_before = t0() - Duration::days(1);
    let store = &app.store;
    let customer = customer_who_signs_in(&app, "Bills Co", "bills@example.com").await;
    let account = customer.account.clone();
    // A purchase and two renewals of one pack, a purchase and a refund of another, and
    // overage settled pay-as-you-go beyond a third.
    let mut spec = transcoding_pack("100");
    spec.mode = PaymentMode::PeriodDecrement(TimeUnit::Month);
    spec.effective_at = day_before;
    let renewed = store.issue_pack(account.id, spec, Charge::Balance, None, &operator(), day_before).await.unwrap();
    store.renew(None, &renewed.pack_id, 1, None, &operator(), day_before + Duration::hours(1)).await.unwrap();
    store.renew(None, &renewed.pack_id, 2, None, &operator(), day_before + Duration::hours(2)).await.unwrap();
    let mut spec = transcoding_pack("50");
    spec.effective_at = day_before;
    let refunded = store.issue_pack(account.id, spec, Charge::Balance, None, &operator(), day_before).await.unwrap();
    store.refund(None, &refunded.pack_id, None, &operator(), day_before + Duration::hours(3)).await.unwrap();
    let mut spec = transcoding_pack("10");
    spec.effective_at = day_before;
    store.issue_pack(account.id, spec, Charge::Settled, None, &operator(), day_before).await.unwrap();
    let usage = json!([{
        "idempotency_key": "bills-1", "product": "p_mps", "subproduct": "sp_mps_general_transcoding",
        "quantity": "200", "occurred_at": "2026-11-23T09:00:00Z"
    }]);
    let (status, answer) = app.post_usage(&customer, &usage).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let month = "2026-11";
    let cookie = sign_in(&app, "bills@example.com", "correct-horse").await.unwrap();
    // The page reads a month nobody built yet: it builds it, as the API would.
    let (page, page_json) = page_figures(&app, &cookie, month).await;
    assert!(page_json["built_at"].as_str().is_some(), "{page_json}");
    let (api, api_total) = api_figures(&app, &customer, month).await;
    assert_eq!(page, api, "the page's rows are the API's rows");
    assert_eq!(page_json["total"].as_u64(), Some(api_total));
    let actions: BTreeSet<&str> = api.iter().map(|row| row.1.as_str()).collect();
    for expected in [
        "New yearly/monthly subscription",
        "Yearly/monthly subscription renewal",
        "Yearly/monthly subscription refund",
        "Daily settlement",
    ] {
        assert!(actions.contains(expected), "{expected} in {api:?}");
    }
    let lines = store.bill_lines(account.id, month).await.unwrap();
    let groups: BTreeSet<(&str, &str)> =
        lines.iter().map(|line| (line.resource_id.as_str(), line.action_type.as_str())).collect();
    assert_eq!(api.len(), groups.len(), "one row per resource and ActionType of the month's lines: {api:?}");
    let (cost, cash) = sums(&api);
    assert_eq!(amount(&page_json["total_cost"]), cost);
    assert_eq!(amount(&page_json["cash_paid"]), cash);
    let from_lines = lines.iter().fold(Decimal::ZERO, |sum, line| sum + dec(&line.total_cost.to_string()));
    assert_eq!(cost, from_lines, "both add up to the month's bill lines");

    // Later activity: neither shows it before the summary is rebuilt, both do after.
    store.renew(None, &renewed.pack_id, 1, None, &operator(), t0()).await.unwrap();
    let (page_before, _) = page_figures(&app, &cookie, month).await;
    assert_eq!(page_before, page, "the built summary, not the live lines");
    store.build_bill_summary(month, t0()).await.unwrap();
    let (page_after, page_json) = page_figures(&app, &cookie, month).await;
    let (api_after, _) = api_figures(&app, &customer, month).await;
    assert_eq!(page_after, api_after);
    assert_ne!(page_after, page, "the rebuild shows the renewal");
    assert_eq!(amount(&page_json["total_cost"]), sums(&api_after).0);
    assert_eq!(page_json["period"], "byPayTime", "by payment month unless asked");

    // Filtered as the API filters: the same rows, and totals of those rows only.
    let renewal_id = renewed.pack_id.as_str();
    for (form, api_filter) in [
        (("query[action]", "Daily settlement"), json!({"ActionType": "Daily settlement"})),
        (("query[pay_mode]", "prePay"), json!({"PayMode": "prePay"})),
        (("query[resource]", renewal_id), json!({"ResourceId": renewal_id})),
        (("query[product]", "p_mps"), json!({"BusinessCode": "p_mps"})),
    ] {
        let (status, body) = call(&app, &cookie, "bill_summary", &[("query[month]", month), form]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        let mut request = json!({"Month": month, "Offset": 0, "Limit": 1000, "NeedRecordNum": 1});
        request.as_object_mut().unwrap().extend(api_filter.as_object().unwrap().clone());
        let answer = self::api(&app, &customer, "DescribeBillResourceSummary", &request).await;
        let api_ids: BTreeSet<(String, String)> = answer["ResourceSummarySet"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|row| (row["ResourceId"].as_str().unwrap().into(), row["ActionTypeName"].as_str().unwrap().into()))
            .collect();
        let page_ids: BTreeSet<(String, String)> = page["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| (row["resource_id"].as_str().unwrap().into(), row["action_type"].as_str().unwrap().into()))
            .collect();
        assert_eq!(page_ids, api_ids, "{form:?}");
        assert!(!page_ids.is_empty(), "{form:?}");
        assert_eq!(page["total"].as_u64(), answer["Total"].as_u64(), "{form:?}");
        let cost: Decimal = page["rows"].as_array().unwrap().iter().map(|row| amount(&row["total_cost"])).sum();
        assert_eq!(amount(&page["total_cost"]), cost, "the totals are the selected rows': {form:?}");
    }
    let response = download(&app, &cookie, &format!("/bills.csv?month={month}&action=Daily%20settlement")).await;
    let csv = response.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(!rows.is_empty() && rows.iter().all(|row| row.contains("Daily settlement")), "{csv}");
    let (status, body) =
        call(&app, &cookie, "bill_summary", &[("query[month]", month), ("query[action]", "Free lunch")]).await;
    assert!(!status.is_success() && body.contains("unknown transaction type"), "{status} {body}");
    let (status, body) =
        call(&app, &cookie, "bill_summary", &[("query[month]", month), ("query[tag_value]", "blue")]).await;
    assert!(!status.is_success() && body.contains("a tag value needs its tag key"), "{status} {body}");
}

#[tokio::test]
async fn by_usage_month_the_bills_page_its_csv_and_the_api_agree() {
    let app = spawn_app().await;
    let store = &app.store;
    let customer = customer_who_signs_in(&app, "Used Co", "used@example.com").await;
    let account = customer.account.clone();
    // Bought and renewed in October: the purchase is used from October, the renewal's month
    // only once the pack's month is over, in November.
    let october = t0() - Duration::days(44);
    let mut spec = transcoding_pack("100");
    spec.mode = PaymentMode::PeriodDecrement(TimeUnit::Month);
    spec.term = Term { unit: TimeUnit::Month, count: 1 };
    spec.effective_at = october;
    let pack = store.issue_pack(account.id, spec, Charge::Balance, None, &operator(), october).await.unwrap();
    store.renew(None, &pack.pack_id, 1, None, &operator(), october + Duration::hours(1)).await.unwrap();
    let cookie = sign_in(&app, "used@example.com", "correct-horse").await.unwrap();

    let (paid_in_october, _) = page_figures_by(&app, &cookie, "2026-10", "byPayTime").await;
    assert_eq!(paid_in_october.len(), 2, "purchase and renewal: {paid_in_october:?}");
    for month in ["2026-10", "2026-11"] {
        store.build_bill_summary(month, t0()).await.unwrap();
        let (page, page_json) = page_figures_by(&app, &cookie, month, "byUsedTime").await;
        let (api, api_total) = api_figures_by(&app, &customer, month, "byUsedTime").await;
        assert_eq!(page, api, "{month}: the page's rows are the API's rows");
        assert_eq!(page_json["total"].as_u64(), Some(api_total));
        assert_eq!(page_json["period"], "byUsedTime");
        let row = &page_json["rows"][0];
        assert_eq!(
            (&row["subproduct"], &row["subproduct_name"]),
            (&json!("sp_mps_general_transcoding"), &json!("General transcoding")),
            "codes and names: {row}"
        );
        assert_eq!(amount(&page_json["total_cost"]), sums(&api).0);
        let actions: Vec<&str> = page.iter().map(|row| row.1.as_str()).collect();
        let expected =
            if month == "2026-10" { "New yearly/monthly subscription" } else { "Yearly/monthly subscription renewal" };
        assert_eq!(actions, [expected], "{month}");

        let response = download(&app, &cookie, &format!("/bills.csv?month={month}&period=byUsedTime")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
        assert_eq!(disposition, format!("attachment; filename=\"bills-{month}-byUsedTime.csv\""));
        let csv = response.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2, "a header and one row: {csv}");
        assert!(lines[1].contains(&pack.pack_id) && lines[1].contains(expected), "{csv}");
    }

    let (status, body) =
        call(&app, &cookie, "bill_summary", &[("query[month]", "2026-11"), ("query[period]", "byMoon")]).await;
    assert!(status.is_client_error() || status.is_server_error(), "{status}");
    assert!(body.contains("unknown period type") && body.contains("byUsedTime"), "{body}");
}
