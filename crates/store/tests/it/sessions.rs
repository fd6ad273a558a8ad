//! Console sessions and the sign-in throttle; the monthly bill summary per resource.

use chrono::Duration;
use respack_domain::PaymentMode;
use respack_store::{Charge, NewUser, Role, SignIn, Store, MAX_FAILED_SIGN_INS, SESSION_LIFETIME, THROTTLE_LOCKOUT};

use crate::fixtures::*;
use crate::on_both_backends;

async fn sessions_open_expire_end_and_failures_lock_sign_in(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let new = NewUser {
        account_id: account.id,
        email: "ann@acme.example",
        display_name: "Ann",
        password: "correct-horse",
        role: Role::Customer,
    };
    store.create_user(new, &operator(), t0()).await.unwrap();

    let SignIn::SignedIn { token, session } =
        store.sign_in("Ann@Acme.example", "correct-horse", "10.0.0.1", t0()).await.unwrap()
    else {
        panic!("the right password signs in");
    };
    assert_eq!(session.user.email, "ann@acme.example");
    let found = store.session(&token, t0() + Duration::hours(1)).await.unwrap().expect("a live session");
    assert_eq!(found.csrf_token, session.csrf_token);
    assert!(store.session(&token, t0() + SESSION_LIFETIME).await.unwrap().is_none(), "expired");
    assert!(store.session("not-a-token", t0()).await.unwrap().is_none());
    store.set_session_language(&token, "zh-CN").await.unwrap();
    assert_eq!(store.session(&token, t0()).await.unwrap().unwrap().language, "zh-CN");
    store.sign_out(&token).await.unwrap();
    assert!(store.session(&token, t0()).await.unwrap().is_none(), "signed out");

    for _ in 0..MAX_FAILED_SIGN_INS {
        assert_eq!(store.sign_in("ann@acme.example", "wrong", "10.0.0.2", t0()).await.unwrap(), SignIn::Refused);
    }
    let throttled = store.sign_in("ann@acme.example", "correct-horse", "10.0.0.3", t0()).await.unwrap();
    assert!(matches!(throttled, SignIn::Throttled { .. }), "{throttled:?}");
    let later = t0() + THROTTLE_LOCKOUT + Duration::seconds(1);
    assert!(matches!(
        store.sign_in("ann@acme.example", "correct-horse", "10.0.0.3", later).await.unwrap(),
        SignIn::SignedIn { .. }
    ));
}

async fn the_bill_summary_sums_a_months_lines_per_resource(store: &Store) {
    let account = account_with(store, "Acme", "1000").await;
    let spec = mps_spec(PaymentMode::PeriodDecrement(respack_domain::TimeUnit::Month), 3, "100", t0());
    let issued = store.issue_pack(account.id, spec, Charge::Balance, None, &operator(), t0()).await.unwrap();
    store.renew(None, &issued.pack_id, 1, None, &operator(), t0() + Duration::hours(1)).await.unwrap();
    let month = t0().format("%Y-%m").to_string();
    let lines = store.bill_lines(account.id, &month).await.unwrap();
    let summary = store.bill_resource_summary(account.id, &month).await.unwrap();
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].resource_id, issued.pack_id);
    assert_eq!(summary[0].action_types.len(), 2, "purchase and renewal");
    let total = lines.iter().fold(respack_domain::Money::ZERO, |sum, line| sum + line.total_cost);
    assert_eq!(summary[0].total_cost, total);
}

on_both_backends!(
    sessions_open_expire_end_and_failures_lock_sign_in,
    the_bill_summary_sums_a_months_lines_per_resource
);
