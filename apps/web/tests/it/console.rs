//! The web console over HTTP: sign-in and its throttle, the sign-in gate and security headers,
//! server-side rendering, and tenancy — a customer's session cannot read or change another
//! customer's packs through any server function or download — and the CSRF checks.

use chrono::Duration;
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use respack_domain::chrono_tz::Tz;
use respack_store::{Charge, NewUser, Role};

use crate::helpers::{operator, spawn_app, t0, transcoding_pack, TestApp};

/// `application/x-www-form-urlencoded` of these pairs.
pub(crate) fn encode(pairs: &[(&str, &str)]) -> String {
    let escape = |text: &str| {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
                _ => format!("%{byte:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(key, value)| format!("{}={}", escape(key), escape(value))).collect::<Vec<_>>().join("&")
}

/// A client that does not follow redirects, so sign-in answers can be inspected.
fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// A customer account with a user, a balance and a renewable (period) pack.
struct Tenant {
    account_id: i64,
    email: String,
    pack_id: String,
}

async fn tenant(app: &TestApp, name: &str) -> Tenant {
    tenant_with_balance(app, name, "1000").await
}

async fn tenant_with_balance(app: &TestApp, name: &str, balance: &str) -> Tenant {
    let since = t0() - Duration::days(30);
    let account =
        app.store.create_account(respack_store::NewAccount::customer(name, Tz::UTC), &operator(), since).await.unwrap();
    let email = format!("{}@example.com", name.to_lowercase());
    app.store
        .create_user(
            NewUser {
                account_id: account.id,
                email: &email,
                display_name: name,
                password: "correct-horse",
                role: Role::Customer,
            },
            &operator(),
            since,
        )
        .await
        .unwrap();
    app.store
        .top_up(account.id, respack_domain::Money::parse(balance).unwrap(), None, &operator(), since)
        .await
        .unwrap();
    let mut spec = transcoding_pack("100");
    spec.name = format!("{name} pack");
    spec.mode = respack_domain::PaymentMode::PeriodDecrement(respack_domain::TimeUnit::Month);
    let pack_id =
        app.store.issue_pack(account.id, spec, Charge::Settled, None, &operator(), since).await.unwrap().pack_id;
    Tenant { account_id: account.id, email, pack_id }
}

/// Signs in and returns the `Cookie` header value of the session.
pub(crate) async fn sign_in(app: &TestApp, email: &str, password: &str) -> Result<String, String> {
    let response = client()
        .post(app.url("/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("email", email), ("password", password)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|value| value.starts_with("respack_session="));
    match cookie {
        Some(cookie) => {
            assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
            Ok(cookie.split(';').next().unwrap().to_owned())
        }
        None => Err(location),
    }
}

/// Calls a server function (form-encoded POST); returns the status and the body.
pub(crate) async fn call(app: &TestApp, cookie: &str, endpoint: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let response = client()
        .post(app.url(&format!("/api/{endpoint}")))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(form))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn csrf(app: &TestApp, cookie: &str) -> String {
    let (status, body) = call(app, cookie, "current_user", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    me["csrf"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_customer_cannot_read_or_change_another_customers_packs() {
    let app = spawn_app().await;
    let alice = tenant(&app, "Alice").await;
    let bob = tenant(&app, "Bob").await;
    let cookie = sign_in(&app, &alice.email, "correct-horse").await.unwrap();
    let token = csrf(&app, &cookie).await;

    // Listing shows Alice's pack only, also when searching for Bob's ID.
    let (status, body) = call(&app, &cookie, "list_packs", &[("query[page]", "1")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(&alice.pack_id) && !body.contains(&bob.pack_id), "{body}");
    let (_, body) = call(&app, &cookie, "list_packs", &[("query[search]", &bob.pack_id)]).await;
    assert!(!body.contains(&bob.pack_id), "{body}");

    // Bob's pack cannot be quoted, opened, renewed, switched to auto-renewal or downloaded.
    let (status, body) =
        call(&app, &cookie, "quote_operation", &[("operation", "renew"), ("pack_id", &bob.pack_id), ("periods", "1")])
            .await;
    assert!(!status.is_success() && body.contains("not found"), "{status} {body}");
    let (status, body) = call(&app, &cookie, "load_pack_detail", &[("pack_id", &bob.pack_id)]).await;
    assert!(!status.is_success() && body.contains("not found"), "{status} {body}");
    let bob_before = app.store.pack(None, &bob.pack_id).await.unwrap();
    let bob_balance = app.store.account(bob.account_id).await.unwrap().balance;
    for operation in ["renew", "set_auto", "set_not_renew"] {
        let (status, body) = call(
            &app,
            &cookie,
            "apply_operation",
            &[
                ("csrf", &token),
                ("operation", operation),
                ("pack_id", &bob.pack_id),
                ("periods", "1"),
                ("client_token", "t-1"),
            ],
        )
        .await;
        assert!(!status.is_success() && body.contains("not found"), "{operation}: {status} {body}");
    }
    assert_eq!(app.store.pack(None, &bob.pack_id).await.unwrap(), bob_before);
    assert_eq!(app.store.account(bob.account_id).await.unwrap().balance, bob_balance);
    let csv = client().get(app.url("/packs.csv")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(csv.contains(&alice.pack_id) && !csv.contains(&bob.pack_id), "{csv}");
    // Operator-only functions are refused.
    let (status, body) = call(&app, &cookie, "operator_overview", &[]).await;
    assert!(!status.is_success() && body.contains("only operators"), "{status} {body}");

    // Her own pack she can renew: the balance falls by the quoted price.
    let (status, body) = call(
        &app,
        &cookie,
        "apply_operation",
        &[
            ("csrf", &token),
            ("operation", "renew"),
            ("pack_id", &alice.pack_id),
            ("periods", "2"),
            ("client_token", "t-2"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.store.account(alice.account_id).await.unwrap().balance,
        respack_domain::Money::parse("980").unwrap()
    );
    // The same ClientToken again charges nothing more.
    call(
        &app,
        &cookie,
        "apply_operation",
        &[
            ("csrf", &token),
            ("operation", "renew"),
            ("pack_id", &alice.pack_id),
            ("periods", "2"),
            ("client_token", "t-2"),
        ],
    )
    .await;
    assert_eq!(
        app.store.account(alice.account_id).await.unwrap().balance,
        respack_domain::Money::parse("980").unwrap()
    );
}

#[tokio::test]
async fn state_changes_need_the_sessions_csrf_token_and_the_same_origin() {
    let app = spawn_app().await;
    let alice = tenant(&app, "Alice").await;
    let cookie = sign_in(&app, &alice.email, "correct-horse").await.unwrap();
    let before = app.store.pack(None, &alice.pack_id).await.unwrap();
    let (status, body) = call(
        &app,
        &cookie,
        "apply_operation",
        &[
            ("csrf", "forged"),
            ("operation", "set_not_renew"),
            ("pack_id", &alice.pack_id),
            ("periods", "1"),
            ("client_token", ""),
        ],
    )
    .await;
    assert!(!status.is_success() && body.contains("CSRF"), "{status} {body}");
    assert_eq!(app.store.pack(None, &alice.pack_id).await.unwrap(), before);

    let response = client()
        .post(app.url("/api/apply_operation"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", "x")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_in_is_throttled_after_repeated_failures() {
    let app = spawn_app().await;
    let alice = tenant(&app, "Alice").await;
    for _ in 0..respack_store::MAX_FAILED_SIGN_INS {
        assert_eq!(sign_in(&app, &alice.email, "wrong").await.unwrap_err(), "/signin?error=refused");
    }
    let refused = sign_in(&app, &alice.email, "correct-horse").await.unwrap_err();
    assert!(refused.starts_with("/signin?error=throttled"), "{refused}");
    // After the lockout the right password works again.
    app.clock.advance(respack_store::THROTTLE_LOCKOUT + Duration::seconds(1));
    assert!(sign_in(&app, &alice.email, "correct-horse").await.is_ok());
}

#[tokio::test]
async fn pages_need_a_session_and_are_rendered_on_the_server_with_security_headers() {
    let app = spawn_app().await;
    let alice = tenant(&app, "Alice").await;
    let response = client().get(app.url("/packs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/signin");

    let cookie = sign_in(&app, &alice.email, "correct-horse").await.unwrap();
    let response = client().get(app.url("/packs")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("'nonce-"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("Alice pack") && html.contains("Remaining/Total Periods"), "{html}");

    // Signing out ends the session on the server.
    let token = csrf(&app, &cookie).await;
    let response = client()
        .post(app.url("/signout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", token.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = client().get(app.url("/packs")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_account_page_shows_overage_the_balance_could_not_pay() {
    let app = spawn_app().await;
    let carol = tenant_with_balance(&app, "Carol", "0.5").await;
    let cookie = sign_in(&app, &carol.email, "correct-horse").await.unwrap();
    let (_, body) = call(&app, &cookie, "account_overview", &[]).await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["owed"], "", "nothing owed yet: {body}");

    // Yesterday's usage beyond the pack (100 minutes a month) is overage at 0.0075 a minute; the
    // day's settlement takes the 0.50 there is, the rest stays owed.
    let usage = |key: &str| respack_store::UsageInput {
        idempotency_key: key.into(),
        product: "p_mps".into(),
        subproduct: "sp_mps_general_transcoding".into(),
        usage_type: None,
        unit: None,
        attributes: Default::default(),
        quantity: 200.into(),
        occurred_at: t0() - Duration::days(1),
    };
    let outcomes = app.store.record_usage(carol.account_id, &[usage("a"), usage("b")], t0()).await.unwrap();
    assert_eq!(outcomes[1].overage_cost, respack_domain::Money::parse("1.5").unwrap(), "{outcomes:?}");
    let overage: respack_domain::Money = outcomes.iter().map(|outcome| outcome.overage_cost).sum();
    let owed = overage - respack_domain::Money::parse("0.5").unwrap();
    let settled = app.store.settle_overage(t0(), 500).await.unwrap();
    assert_eq!((settled.lines, settled.short), (1, 1));

    let (_, body) = call(&app, &cookie, "account_overview", &[]).await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (page["balance"].as_str(), page["owed"].as_str()),
        (Some("0.00"), Some(owed.to_string().as_str())),
        "{body}"
    );
    let html = client().get(app.url("/account")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("data-testid=\"account-owed\"") && html.contains("Owed for overage"), "{html}");
    assert!(html.contains("<td>Overage settlement"), "the payment is in the balance history, by its name: {html}");
}

#[tokio::test]
async fn auto_renewal_can_be_set_on_a_low_balance_with_a_warning_but_renewing_now_is_refused() {
    let app = spawn_app().await;
    let dave = tenant_with_balance(&app, "Dave", "0.5").await;
    let cookie = sign_in(&app, &dave.email, "correct-horse").await.unwrap();
    let token = csrf(&app, &cookie).await;
    let quote = |operation: &'static str| {
        let (app, cookie, pack_id) = (&app, &cookie, &dave.pack_id);
        async move {
            let form = [("operation", operation), ("pack_id", pack_id.as_str()), ("periods", "1")];
            let (status, body) = call(app, cookie, "quote_operation", &form).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        }
    };

    // Renewing now is paid now: refused for want of balance.
    let renew = quote("renew").await;
    assert!(renew["refusal"].as_str().is_some_and(|reason| reason.contains("balance")), "{renew}");
    // Auto-renewal is paid at expiration: allowed, with a warning to top up before then.
    let auto = quote("set_auto").await;
    assert_eq!(auto["refusal"], serde_json::Value::Null, "{auto}");
    let warning = auto["warning"].as_str().unwrap_or_else(|| panic!("a warning: {auto}"));
    assert!(warning.contains("top up before the pack expires") && warning.contains("0.50"), "{warning}");
    let form = [
        ("csrf", token.as_str()),
        ("operation", "set_auto"),
        ("pack_id", dave.pack_id.as_str()),
        ("periods", "1"),
        ("client_token", "auto-1"),
    ];
    let (status, body) = call(&app, &cookie, "apply_operation", &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pack = app.store.pack(None, &dave.pack_id).await.unwrap();
    assert_eq!(pack.renewal, respack_domain::RenewalMethod::Auto);
    assert_eq!(app.store.account(dave.account_id).await.unwrap().balance.to_string(), "0.50", "nothing charged");

    // With enough balance there is nothing to warn about.
    app.store
        .top_up(dave.account_id, respack_domain::Money::parse("100").unwrap(), None, &operator(), t0())
        .await
        .unwrap();
    let auto = quote("modify_period").await;
    assert_eq!((&auto["refusal"], &auto["warning"]), (&serde_json::Value::Null, &serde_json::Value::Null), "{auto}");
}

#[tokio::test]
async fn an_operator_adjusts_a_packs_bill_and_a_customer_cannot() {
    let app = spawn_app().await;
    let erin = tenant(&app, "Erin").await;
    let since = t0() - Duration::days(30);
    let provider = app
        .store
        .create_account(respack_store::NewAccount::customer("Provider", Tz::UTC), &operator(), since)
        .await
        .unwrap();
    let staff = NewUser {
        account_id: provider.id,
        email: "staff@example.com",
        display_name: "Staff",
        password: "correct-horse",
        role: Role::Operator,
    };
    app.store.create_user(staff, &operator(), since).await.unwrap();
    let adjust =
        |cookie: String, token: String, amount: &'static str, reason: &'static str, client_token: &'static str| {
            let (app, pack_id) = (&app, erin.pack_id.clone());
            async move {
                let form = [
                    ("csrf", token.as_str()),
                    ("pack_id", pack_id.as_str()),
                    ("amount", amount),
                    ("reason", reason),
                    ("client_token", client_token),
                ];
                call(app, &cookie, "adjust_bill", &form).await
            }
        };

    // The customer cannot adjust their own bill.
    let customer = sign_in(&app, &erin.email, "correct-horse").await.unwrap();
    let customer_token = csrf(&app, &customer).await;
    let (status, body) = adjust(customer.clone(), customer_token, "-50", "please", "c-1").await;
    assert!(!status.is_success() && body.contains("only operators"), "{status} {body}");

    let staff = sign_in(&app, "staff@example.com", "correct-horse").await.unwrap();
    let token = csrf(&app, &staff).await;
    let (status, body) = adjust(staff.clone(), token.clone(), "12.5", "setup fee not billed", "a-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Adjustment - deduction of 12.50") && body.contains("balance now 987.50"), "{body}");
    let (status, again) = adjust(staff.clone(), token.clone(), "12.5", "setup fee not billed", "a-1").await;
    assert_eq!((status, &again), (StatusCode::OK, &body), "a double submit is one adjustment");
    let (status, body) = adjust(staff.clone(), token.clone(), "-2.5", "goodwill", "a-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Adjustment - refund of 2.50") && body.contains("balance now 990.00"), "{body}");
    let (status, body) = adjust(staff.clone(), token.clone(), "5", "", "a-3").await;
    assert!(!status.is_success() && body.contains("say why the bill is adjusted"), "{status} {body}");
    let (status, body) = adjust(staff, token, "lots", "typo", "a-4").await;
    assert!(!status.is_success() && body.contains("lots"), "{status} {body}");
    assert_eq!(app.store.account(erin.account_id).await.unwrap().balance.to_string(), "990.00");

    // The customer's bill shows both, by their ActionTypes.
    let (status, body) = call(&app, &customer, "bill_summary", &[("query[month]", "2026-11")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Adjustment - deduction") && body.contains("Adjustment - refund"), "{body}");
}

#[tokio::test]
async fn packs_and_their_usage_can_be_listed_by_type() {
    let app = spawn_app().await;
    let fay = tenant(&app, "Fay").await;
    let mut spec = transcoding_pack("50");
    spec.name = "Fay TSC pack".into();
    spec.subproduct = "sp_mps_tsc_transcoding".into();
    let since = t0() - Duration::days(3);
    let tsc =
        app.store.issue_pack(fay.account_id, spec, Charge::Settled, None, &operator(), since).await.unwrap().pack_id;
    let cookie = sign_in(&app, &fay.email, "correct-horse").await.unwrap();
    let list = |pairs: Vec<(&'static str, &'static str)>| {
        let (app, cookie) = (&app, &cookie);
        async move {
            let (status, body) = call(app, cookie, "list_packs", &pairs).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        }
    };
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["rows"].as_array().unwrap().iter().map(|row| row["id"].as_str().unwrap().to_owned()).collect()
    };

    let all = list(vec![("query[page]", "1")]).await;
    assert_eq!(all["total"], 2, "{all}");
    let types: Vec<&str> =
        all["subproducts"].as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap()).collect();
    assert!(types.contains(&"sp_mps_tsc_transcoding") && types.contains(&"sp_mps_general_transcoding"), "{types:?}");
    let tsc_only = list(vec![("query[subproduct]", "sp_mps_tsc_transcoding"), ("query[page]", "1")]).await;
    assert_eq!(ids(&tsc_only), vec![tsc.clone()]);
    let general = list(vec![("query[product]", "p_mps"), ("query[subproduct]", "sp_mps_general_transcoding")]).await;
    assert_eq!(ids(&general), vec![fay.pack_id.clone()]);
    let mps_types: Vec<&str> =
        general["subproducts"].as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap()).collect();
    assert!(mps_types.iter().all(|code| code.starts_with("sp_mps_")), "the chosen product's types: {mps_types:?}");

    // The download follows the same filter.
    let csv = client()
        .get(app.url("/packs.csv?subproduct=sp_mps_tsc_transcoding"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.contains(&tsc) && !csv.contains(&fay.pack_id), "{csv}");

    // Usage details by type: a record of each type, each deducted from its own pack.
    let usage = |key: &str, subproduct: &str| respack_store::UsageInput {
        idempotency_key: key.into(),
        product: "p_mps".into(),
        subproduct: subproduct.into(),
        usage_type: None,
        unit: None,
        attributes: Default::default(),
        quantity: 3.into(),
        occurred_at: t0() - Duration::hours(1),
    };
    let batch = [usage("g", "sp_mps_general_transcoding"), usage("t", "sp_mps_tsc_transcoding")];
    app.store.record_usage(fay.account_id, &batch, t0()).await.unwrap();
    let details = |subproduct: &'static str| {
        let (app, cookie) = (&app, &cookie);
        async move {
            let (status, body) =
                call(app, cookie, "usage_details", &[("query[subproduct]", subproduct), ("query[page]", "1")]).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        }
    };
    let packs_of = |page: &serde_json::Value| -> Vec<String> {
        page["deductions"].as_array().unwrap().iter().map(|row| row["pack_id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(packs_of(&details("").await).len(), 2);
    let tsc_usage = details("sp_mps_tsc_transcoding").await;
    assert_eq!(packs_of(&tsc_usage), vec![tsc.clone()], "{tsc_usage}");
    assert_eq!(tsc_usage["daily"].as_array().unwrap().len(), 1, "{tsc_usage}");
    assert_eq!(packs_of(&details("sp_mps_general_transcoding").await), vec![fay.pack_id.clone()]);
}

#[tokio::test]
async fn a_customer_refunds_their_own_pack_within_five_days() {
    let app = spawn_app().await;
    let gus = tenant(&app, "Gus").await;
    let hal = tenant(&app, "Hal").await;
    // Bought two days ago from the balance: refundable; the tenant's own pack is a month old.
    let mut spec = transcoding_pack("50");
    spec.effective_at = t0() - Duration::days(2);
    let fresh = app
        .store
        .issue_pack(gus.account_id, spec, Charge::Balance, None, &operator(), t0() - Duration::days(2))
        .await
        .unwrap()
        .pack_id;
    let balance = app.store.account(gus.account_id).await.unwrap().balance;
    let cookie = sign_in(&app, &gus.email, "correct-horse").await.unwrap();
    let token = csrf(&app, &cookie).await;
    let quote = |pack_id: String| {
        let (app, cookie) = (&app, &cookie);
        async move {
            let form = [("operation", "refund"), ("pack_id", pack_id.as_str()), ("periods", "1")];
            call(app, cookie, "quote_operation", &form).await
        }
    };
    let (status, body) = quote(gus.pack_id.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("refunds are possible within 5 days"), "a month-old pack: {body}");
    let (status, body) = quote(fresh.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let quoted: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(quoted["refusal"], serde_json::Value::Null, "{quoted}");
    let (status, body) = quote(hal.pack_id.clone()).await;
    assert!(!status.is_success() && body.contains("not found"), "another's pack: {status} {body}");

    let apply = |pack_id: String| {
        let (app, cookie, token) = (&app, &cookie, &token);
        async move {
            let form = [
                ("csrf", token.as_str()),
                ("operation", "refund"),
                ("pack_id", pack_id.as_str()),
                ("periods", "1"),
                ("client_token", "refund-1"),
            ];
            call(app, cookie, "apply_operation", &form).await
        }
    };
    let (status, body) = apply(fresh.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Refunded"), "{body}");
    let pack = app.store.pack(None, &fresh).await.unwrap();
    assert_eq!(pack.lifecycle, respack_domain::Lifecycle::Refunded);
    assert!(app.store.account(gus.account_id).await.unwrap().balance > balance, "the price is back");
    let (status, body) = apply(hal.pack_id.clone()).await;
    assert!(!status.is_success() && body.contains("not found"), "{status} {body}");
    assert_ne!(app.store.pack(None, &hal.pack_id).await.unwrap().lifecycle, respack_domain::Lifecycle::Refunded);
}
