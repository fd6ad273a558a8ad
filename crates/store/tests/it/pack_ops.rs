//! Renewal, renewal settings, refund, freeze and the passing of time, including the
//! guarantees under retries and concurrency.

use chrono::Duration;
use respack_domain::{BillActionType, Lifecycle, PackStatus, PaymentMode, RenewalMethod, RuleViolation, TimeUnit};
use respack_store::{Charge, Store, StoreError};

use crate::fixtures::*;

async fn monthly_pack(store: &Store, account: i64, effective: chrono::DateTime<chrono::Utc>) -> String {
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 2, "100", effective);
    store.issue_pack(account, spec, Charge::Balance, None, &operator(), effective).await.unwrap().pack_id
}

async fn renewal_extends_charges_and_bills_once_per_token(store: &Store) {
    let account = account_with(store, "Acme", "100").await;
    let pack_id = monthly_pack(store, account.id, at("2026-01-31T00:00:00Z")).await; // 20 paid
    let first = store.renew(Some(&[account.id]), &pack_id, 3, Some("renew-1"), &operator(), t0()).await.unwrap();
    assert_eq!((first.price, first.balance_after), (money("30"), money("50")));
    assert_eq!(first.expires_at, at("2026-06-30T00:00:00Z"), "5 months from Jan 31, clamped");
    let retry = store
        .renew(Some(&[account.id]), &pack_id, 3, Some("renew-1"), &operator(), t0() + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(first, retry, "the retry returns the first result");

    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!((pack.term.count, pack.expires_at, pack.price_paid), (5, first.expires_at, money("50")));
    assert_eq!(store.account(account.id).await.unwrap().balance, money("50"), "charged once");
    let renewals: Vec<_> =
        store.ledger(account.id, 20).await.unwrap().into_iter().filter(|row| row.kind == "renewal").collect();
    assert_eq!(renewals.len(), 1);
    let bills = store.bill_lines(account.id, "2026-03").await.unwrap();
    assert_eq!(bills.iter().filter(|b| b.action_type == BillActionType::SubscriptionRenewal).count(), 1);

    let other_request = store.renew(Some(&[account.id]), &pack_id, 1, Some("renew-1"), &operator(), t0()).await;
    assert!(matches!(other_request, Err(StoreError::TokenReused { .. })));
    let too_poor = store.renew(Some(&[account.id]), &pack_id, 6, None, &operator(), t0()).await;
    assert!(matches!(too_poor, Err(StoreError::Rule(RuleViolation::InsufficientBalance { .. }))), "{too_poor:?}");
    let stranger = account_with(store, "Stranger", "100").await;
    assert!(matches!(
        store.renew(Some(&[stranger.id]), &pack_id, 1, None, &operator(), t0()).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn total_decrement_packs_cannot_be_renewed(store: &Store) {
    let account = account_with(store, "Acme", "1000").await;
    let spec = mps_spec(PaymentMode::TotalDecrement, 12, "100", t0());
    let pack_id = store.issue_pack(account.id, spec, Charge::Balance, None, &operator(), t0()).await.unwrap().pack_id;
    let refused = store.renew(None, &pack_id, 1, None, &operator(), t0()).await;
    assert!(matches!(refused, Err(StoreError::Rule(RuleViolation::TotalDecrementNotRenewable))));
    let auto = store.set_renewal(None, &pack_id, RenewalMethod::Auto, Some(1), &operator(), t0()).await;
    assert!(matches!(auto, Err(StoreError::Rule(RuleViolation::TotalDecrementNotRenewable))));
}

async fn concurrent_renewals_never_lose_an_update_or_double_charge(store: &Store) {
    let account = account_with(store, "Acme", "1000").await;
    let pack_id = monthly_pack(store, account.id, t0()).await;
    // Four different renewals at once, and the same token sent four times at once.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..8 {
        let (store, pack_id) = (store.clone(), pack_id.clone());
        tasks.spawn(async move {
            let (token, periods) = if n < 4 { (format!("distinct-{n}"), 1) } else { ("same".to_owned(), 2) };
            (n, store.renew(None, &pack_id, periods, Some(&token), &operator(), t0()).await)
        });
    }
    let mut same_orders = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (n, result) = joined.unwrap();
        let receipt = result.unwrap_or_else(|error| panic!("renewal {n} failed: {error}"));
        if n >= 4 {
            same_orders.push(receipt.order_id);
        }
    }
    same_orders.dedup();
    assert_eq!(same_orders.len(), 1, "one order for one token");

    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!(pack.term.count, 2 + 4 + 2, "every distinct renewal applied once, the repeated one once");
    let balance = store.account(account.id).await.unwrap().balance;
    assert_eq!(balance, money("1000") - money("20") - money("40") - money("20"));
    let debits: Vec<_> =
        store.ledger(account.id, 50).await.unwrap().into_iter().filter(|r| r.kind == "renewal").collect();
    assert_eq!(debits.len(), 5);
    assert_eq!(debits[0].balance_after, balance, "the ledger agrees with the balance");
}

async fn renewal_settings_follow_the_seed_rules(store: &Store) {
    let account = account_with(store, "Acme", "100").await;
    let pack_id = monthly_pack(store, account.id, at("2026-03-01T00:00:00Z")).await; // expires 2026-05-01
    let auto = store.set_renewal(None, &pack_id, RenewalMethod::Auto, Some(3), &operator(), t0()).await.unwrap();
    assert_eq!((auto.renewal, auto.auto_renew_period), (RenewalMethod::Auto, Some(3)));
    let stored = store.pack(None, &pack_id).await.unwrap();
    assert_eq!(
        (stored.renewal, stored.auto_renew_period, stored.version),
        (RenewalMethod::Auto, Some(3), auto.version)
    );

    let manual = store.set_renewal(None, &pack_id, RenewalMethod::NotRenew, None, &operator(), t0()).await.unwrap();
    assert_eq!((manual.renewal, manual.auto_renew_period), (RenewalMethod::NotRenew, None));

    let last_day = at("2026-04-30T12:00:00Z");
    let refused = store.set_renewal(None, &pack_id, RenewalMethod::Auto, None, &operator(), last_day).await;
    assert!(matches!(refused, Err(StoreError::Rule(RuleViolation::TooCloseToExpiration { .. }))), "{refused:?}");
    let bad_period = store.set_renewal(None, &pack_id, RenewalMethod::Auto, Some(0), &operator(), t0()).await;
    assert!(matches!(bad_period, Err(StoreError::Rule(RuleViolation::BadPeriodCount { .. }))));
    assert_eq!(store.pack(None, &pack_id).await.unwrap().renewal, RenewalMethod::NotRenew, "refusals change nothing");
}

async fn refunds_within_five_days_credit_the_balance_once(store: &Store) {
    let account = account_with(store, "Acme", "100").await;
    let pack_id = monthly_pack(store, account.id, t0()).await; // 20
    let late = store.refund(None, &pack_id, None, &operator(), t0() + Duration::days(6)).await;
    assert!(matches!(late, Err(StoreError::Rule(RuleViolation::RefundWindowClosed { .. }))), "{late:?}");

    let refund = store.refund(None, &pack_id, Some("r-1"), &operator(), t0() + Duration::days(4)).await.unwrap();
    assert_eq!((refund.amount, refund.balance_after), (money("20"), money("100")));
    let retry = store.refund(None, &pack_id, Some("r-1"), &operator(), t0() + Duration::days(4)).await.unwrap();
    assert_eq!(refund, retry);
    let again = store.refund(None, &pack_id, Some("r-2"), &operator(), t0() + Duration::days(4)).await;
    assert!(
        matches!(again, Err(StoreError::Rule(RuleViolation::NotLive { status: PackStatus::Refunded, .. }))),
        "{again:?}"
    );

    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!((pack.lifecycle, pack.package_expired_at), (Lifecycle::Refunded, Some(t0() + Duration::days(4))));
    assert_eq!(store.account(account.id).await.unwrap().balance, money("100"));
    let bills = store.bill_lines(account.id, "2026-03").await.unwrap();
    let refund_line = bills.iter().find(|b| b.action_type == BillActionType::SubscriptionRefund).unwrap();
    assert_eq!(refund_line.total_cost, -money("20"));
}

async fn freezing_blocks_renewal_and_time_moves_the_lifecycle(store: &Store) {
    let account = account_with(store, "Acme", "100").await;
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 2, "100", t0() + Duration::days(1));
    let pack_id = store.issue_pack(account.id, spec, Charge::Balance, None, &operator(), t0()).await.unwrap().pack_id;
    assert_eq!(store.pack(None, &pack_id).await.unwrap().lifecycle, Lifecycle::Inactive);
    let frozen = store.set_frozen(None, &pack_id, true, &operator(), t0()).await.unwrap();
    assert_eq!(frozen.status_at(t0()), PackStatus::Frozen);
    assert!(matches!(
        store.set_frozen(None, &pack_id, true, &operator(), t0()).await,
        Err(StoreError::Rule(RuleViolation::Frozen))
    ));
    assert!(matches!(
        store.renew(None, &pack_id, 1, None, &operator(), t0()).await,
        Err(StoreError::Rule(RuleViolation::Frozen))
    ));
    store.set_frozen(None, &pack_id, false, &operator(), t0()).await.unwrap();

    assert_eq!(store.advance_lifecycle(&pack_id, &operator(), t0()).await.unwrap(), None, "not yet effective");
    let effective = t0() + Duration::days(1);
    assert_eq!(store.advance_lifecycle(&pack_id, &operator(), effective).await.unwrap(), Some(Lifecycle::Valid));
    assert_eq!(store.advance_lifecycle(&pack_id, &operator(), effective).await.unwrap(), None, "idempotent");
    let after_expiry = effective + Duration::days(70);
    assert_eq!(store.advance_lifecycle(&pack_id, &operator(), after_expiry).await.unwrap(), Some(Lifecycle::Expired));
    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!(pack.package_expired_at, Some(pack.expires_at));
    let actions: Vec<String> =
        store.audit_log(Some(account.id), 50).await.unwrap().into_iter().map(|r| r.action).collect();
    for action in ["pack.freeze", "pack.unfreeze", "pack.activate", "pack.expire"] {
        assert!(actions.iter().any(|a| a == action), "{action} audited");
    }
}

/// An operator's correction of a pack's bill moves the balance once per token, writes a bill
/// line of the right ActionType and a ledger row with the reason, leaves the pack alone, and
/// is refused with a reason when the balance cannot pay it or the request makes no sense.
async fn adjustments_charge_or_refund_once_with_a_bill_line(store: &Store) {
    let account = account_with(store, "Acme", "100").await;
    let pack_id = monthly_pack(store, account.id, t0()).await; // 20 paid: balance 80
    let before = store.pack(None, &pack_id).await.unwrap();
    let owner = [account.id];
    let scope = Some(owner.as_slice());

    let charged = store
        .adjust_pack_bill(scope, &pack_id, money("5.5"), " under-billed setup ", Some("adj-1"), &operator(), t0())
        .await
        .unwrap();
    assert_eq!(
        (charged.amount, charged.action_type, charged.balance_after),
        (money("5.5"), BillActionType::AdjustmentDeduction, money("74.5"))
    );
    let retry = store
        .adjust_pack_bill(scope, &pack_id, money("5.5"), "under-billed setup", Some("adj-1"), &operator(), t0())
        .await
        .unwrap();
    assert_eq!(retry, charged, "a retry returns the first receipt");
    let other = store.adjust_pack_bill(scope, &pack_id, money("6"), "other", Some("adj-1"), &operator(), t0()).await;
    assert!(matches!(other, Err(StoreError::TokenReused { .. })), "{other:?}");
    let refunded =
        store.adjust_pack_bill(None, &pack_id, money("-2"), "goodwill", None, &operator(), t0()).await.unwrap();
    assert_eq!((refunded.action_type, refunded.balance_after), (BillActionType::AdjustmentRefund, money("76.5")));
    assert_eq!(store.account(account.id).await.unwrap().balance, money("76.5"), "charged once, refunded once");

    let lines = store.bill_lines(account.id, "2026-03").await.unwrap();
    let adjustments: Vec<(BillActionType, respack_domain::Money, &str)> = lines
        .iter()
        .filter(|line| line.order_id.as_deref() == Some(&charged.order_id) || line.total_cost == -money("2"))
        .map(|line| (line.action_type, line.total_cost, line.resource_id.as_str()))
        .collect();
    assert_eq!(
        adjustments,
        [
            (BillActionType::AdjustmentDeduction, money("5.5"), pack_id.as_str()),
            (BillActionType::AdjustmentRefund, -money("2"), pack_id.as_str())
        ]
    );
    let ledger: Vec<_> =
        store.ledger(account.id, 20).await.unwrap().into_iter().filter(|row| row.kind == "adjustment").collect();
    assert_eq!(ledger.len(), 2);
    assert!(ledger.iter().any(|row| row.amount == -money("5.5") && row.note.ends_with(": under-billed setup")));
    let after = store.pack(None, &pack_id).await.unwrap();
    assert_eq!(
        (after.lifecycle, after.expires_at, after.price_paid),
        (before.lifecycle, before.expires_at, before.price_paid)
    );

    // Refused, writing nothing: more than the balance, no amount, no reason, another's pack.
    let too_much = store.adjust_pack_bill(None, &pack_id, money("100"), "late fee", None, &operator(), t0()).await;
    assert!(matches!(too_much, Err(StoreError::Rule(RuleViolation::InsufficientBalance { .. }))), "{too_much:?}");
    let zero = store.adjust_pack_bill(None, &pack_id, money("0"), "nothing", None, &operator(), t0()).await;
    assert!(matches!(zero, Err(StoreError::Rule(RuleViolation::ZeroAdjustment))), "{zero:?}");
    let silent = store.adjust_pack_bill(None, &pack_id, money("1"), " ", None, &operator(), t0()).await;
    assert!(matches!(silent, Err(StoreError::Rule(RuleViolation::AdjustmentReason { .. }))), "{silent:?}");
    let stranger = account_with(store, "Stranger", "100").await;
    let foreign =
        store.adjust_pack_bill(Some(&[stranger.id]), &pack_id, money("1"), "x", None, &operator(), t0()).await;
    assert!(matches!(foreign, Err(StoreError::NotFound { .. })), "{foreign:?}");
    assert_eq!(store.account(account.id).await.unwrap().balance, money("76.5"));
    assert_eq!(store.bill_lines(account.id, "2026-03").await.unwrap().len(), lines.len());
}

crate::on_both_backends!(
    adjustments_charge_or_refund_once_with_a_bill_line,
    renewal_extends_charges_and_bills_once_per_token,
    total_decrement_packs_cannot_be_renewed,
    concurrent_renewals_never_lose_an_update_or_double_charge,
    renewal_settings_follow_the_seed_rules,
    refunds_within_five_days_credit_the_balance_once,
    freezing_blocks_renewal_and_time_moves_the_lifecycle,
);
