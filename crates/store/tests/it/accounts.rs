//! Accounts, top-ups, the ledger, users and API keys.

use chrono::Duration;
use chrono_tz::Tz;
use respack_domain::{Money, RuleViolation};
use respack_store::{AccountKind, Actor, FirstUser, NewAccount, NewUser, Role, Store, StoreError};

use crate::fixtures::*;

async fn top_up_credits_once_per_client_token(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    assert_eq!(account.balance, Money::ZERO);
    assert_eq!(account.uin.len(), 12);

    let first = store.top_up(account.id, money("100.50"), Some("tok-1"), &operator(), t0()).await.unwrap();
    let retry = store.top_up(account.id, money("100.50"), Some("tok-1"), &operator(), t0()).await.unwrap();
    assert_eq!(first, retry, "a retried top-up returns the first result");
    assert_eq!(store.account(account.id).await.unwrap().balance, money("100.50"));

    let reused = store.top_up(account.id, money("5"), Some("tok-1"), &operator(), t0()).await;
    assert!(matches!(reused, Err(StoreError::TokenReused { .. })), "{reused:?}");
    for bad in ["0", "-3"] {
        let refused = store.top_up(account.id, money(bad), None, &operator(), t0()).await;
        assert!(matches!(refused, Err(StoreError::Rule(RuleViolation::NonPositiveAmount))), "{refused:?}");
    }
    let ledger = store.ledger(account.id, 10).await.unwrap();
    assert_eq!(ledger.len(), 1, "one credit, one ledger row");
    assert_eq!(
        (ledger[0].amount, ledger[0].balance_after, ledger[0].kind.as_str()),
        (money("100.50"), money("100.50"), "top_up")
    );

    let audit = store.audit_log(Some(account.id), 10).await.unwrap();
    assert_eq!(audit.iter().filter(|row| row.action == "account.top_up").count(), 1);
    assert!(matches!(
        store.top_up(999_999, money("1"), None, &operator(), t0()).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn accounts_validate_input_and_link_organizations(store: &Store) {
    let org = store
        .create_account(
            NewAccount { kind: AccountKind::Organization, ..NewAccount::customer("Group", Tz::UTC) },
            &operator(),
            t0(),
        )
        .await
        .unwrap();
    let member = store
        .create_account(
            NewAccount { parent_account_id: Some(org.id), ..NewAccount::customer("Member", Tz::UTC) },
            &operator(),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(store.member_accounts(org.id).await.unwrap(), vec![member.clone()]);
    assert_eq!(store.account_by_uin(&member.uin).await.unwrap().id, member.id);

    let not_an_org = store
        .create_account(
            NewAccount { parent_account_id: Some(member.id), ..NewAccount::customer("X", Tz::UTC) },
            &operator(),
            t0(),
        )
        .await;
    assert!(matches!(not_an_org, Err(StoreError::InvalidInput(_))));
    let bad_language = store
        .create_account(NewAccount { language: "fr".into(), ..NewAccount::customer("X", Tz::UTC) }, &operator(), t0())
        .await;
    assert!(matches!(bad_language, Err(StoreError::InvalidInput(_))));
    let bad_email = store
        .create_account(
            NewAccount { alert_recipients: vec!["nope".into()], ..NewAccount::customer("X", Tz::UTC) },
            &operator(),
            t0(),
        )
        .await;
    assert!(matches!(bad_email, Err(StoreError::InvalidInput(_))));

    let updated = store
        .set_alert_settings(member.id, vec!["a@b.co".into()], "zh-CN", vec![10, 30, 10], &operator(), t0())
        .await
        .unwrap();
    assert_eq!((updated.language.as_str(), updated.alert_thresholds.clone()), ("zh-CN", vec![30, 10]));
    assert!(store.set_alert_settings(member.id, vec![], "en", vec![0], &operator(), t0()).await.is_err());
}

async fn users_sign_in_with_argon2_hashes(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let user = store
        .create_user(
            NewUser {
                account_id: account.id,
                email: " Ops@Acme.Example ",
                display_name: "Ops",
                password: "correct horse",
                role: Role::OrgAdmin,
            },
            &operator(),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(user.email, "ops@acme.example");
    assert_eq!(store.verify_login("ops@acme.example", "correct horse").await.unwrap().map(|u| u.id), Some(user.id));
    assert_eq!(store.verify_login("ops@acme.example", "wrong horse").await.unwrap(), None);
    assert_eq!(store.verify_login("nobody@acme.example", "correct horse").await.unwrap(), None);
    let duplicate = store
        .create_user(
            NewUser {
                account_id: account.id,
                email: "ops@acme.example",
                display_name: "Again",
                password: "another pass",
                role: Role::Customer,
            },
            &operator(),
            t0(),
        )
        .await;
    assert!(matches!(duplicate, Err(StoreError::InvalidInput(_))), "{duplicate:?}");
    let short = store
        .create_user(
            NewUser {
                account_id: account.id,
                email: "x@acme.example",
                display_name: "X",
                password: "short",
                role: Role::Customer,
            },
            &operator(),
            t0(),
        )
        .await;
    assert!(matches!(short, Err(StoreError::InvalidInput(_))));
}

async fn api_keys_show_the_secret_once_and_can_be_revoked(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let created = store.create_api_key(account.id, "ci", &Actor::user(1), t0()).await.unwrap();
    assert!(created.info.secret_id.starts_with("AKID"));
    assert_eq!(created.secret_key.expose().len(), 32);
    let signing = store.signing_key(&created.info.secret_id).await.unwrap().unwrap();
    assert_eq!(signing.secret_key.expose(), created.secret_key.expose());
    assert!(!signing.revoked);
    let listed = store.api_keys(account.id).await.unwrap();
    assert_eq!(listed, vec![created.info.clone()]);

    let other = account_with(store, "Other", "0").await;
    assert!(
        store.revoke_api_key(other.id, &created.info.secret_id, &operator(), t0()).await.is_err(),
        "only the owner revokes"
    );
    store.revoke_api_key(account.id, &created.info.secret_id, &operator(), t0() + Duration::minutes(1)).await.unwrap();
    assert!(store.signing_key(&created.info.secret_id).await.unwrap().unwrap().revoked);
    assert!(store.revoke_api_key(account.id, &created.info.secret_id, &operator(), t0()).await.is_err());
    assert!(store.signing_key("AKIDunknown").await.unwrap().is_none());
}

async fn an_account_and_its_first_user_are_created_together_or_not_at_all(store: &Store) {
    let first =
        |email: &'static str| FirstUser { email, display_name: "Owner", password: "long enough", role: Role::Customer };
    let (account, user) = store
        .create_account_with_user(
            NewAccount::customer("Initech", Tz::UTC),
            first(" Owner@Initech.Example "),
            &operator(),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!((user.account_id, user.email.as_str()), (account.id, "owner@initech.example"));
    assert!(store.verify_login("owner@initech.example", "long enough").await.unwrap().is_some());
    let before = store.accounts().await.unwrap().len();
    // A taken email fails inside the transaction, a bad one before it: neither leaves an account.
    for (email, reason) in [("owner@initech.example", "already exists"), ("not-an-email", "not an email address")] {
        let error = store
            .create_account_with_user(NewAccount::customer("Initech again", Tz::UTC), first(email), &operator(), t0())
            .await
            .unwrap_err();
        assert!(error.to_string().contains(reason), "{error}");
    }
    let short = FirstUser { password: "short", ..first("new@initech.example") };
    let error =
        store.create_account_with_user(NewAccount::customer("Initech", Tz::UTC), short, &operator(), t0()).await;
    assert!(error.unwrap_err().to_string().contains("at least 8 characters"));
    assert_eq!(store.accounts().await.unwrap().len(), before, "no account without its user");
}

crate::on_both_backends!(
    top_up_credits_once_per_client_token,
    accounts_validate_input_and_link_organizations,
    users_sign_in_with_argon2_hashes,
    api_keys_show_the_secret_once_and_can_be_revoked,
    an_account_and_its_first_user_are_created_together_or_not_at_all,
);
