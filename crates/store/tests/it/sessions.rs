//! Console sessions and the sign-in throttle; the monthly bill summary per resource.

use chrono::Duration;
use respack_store::{NewUser, Role, SignIn, Store, MAX_FAILED_SIGN_INS, SESSION_LIFETIME, THROTTLE_LOCKOUT};

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

on_both_backends!(sessions_open_expire_end_and_failures_lock_sign_in);
