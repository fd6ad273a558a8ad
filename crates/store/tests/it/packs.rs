//! Issuing packs and the Resource Packages list: filters, sorting, paging, the three-month
//! rule for ended packs, and account scoping.

use chrono::Duration;
use respack_domain::{BillActionType, Lifecycle, PackStatus, PaymentMode, RuleViolation, TimeUnit};
use respack_store::{Charge, PackFilter, PackSort, Store, StoreError};

use crate::fixtures::*;

async fn issuing_debits_the_balance_with_ledger_bill_and_audit(store: &Store) {
    let account = account_with(store, "Acme", "500").await;
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 12, "100", t0());
    let issued = store.issue_pack(account.id, spec, Charge::Balance, None, &operator(), t0()).await.unwrap();
    assert_eq!((issued.price, issued.balance_after), (money("120"), Some(money("380"))));
    assert_eq!(store.account(account.id).await.unwrap().balance, money("380"));

    let pack = store.pack(Some(&[account.id]), &issued.pack_id).await.unwrap();
    assert_eq!(pack.lifecycle, Lifecycle::Valid, "effective now: valid at once");
    assert_eq!(pack.expires_at, at("2027-03-10T08:00:00Z"));
    assert_eq!(pack.items[0].remaining, dec("100"));

    let ledger = store.ledger(account.id, 10).await.unwrap();
    assert_eq!((ledger[0].amount, ledger[0].kind.as_str()), (-money("120"), "purchase"));
    let bills = store.bill_lines(account.id, "2026-03").await.unwrap();
    assert_eq!(bills.len(), 1);
    assert_eq!(bills[0].action_type, BillActionType::NewSubscription);
    assert_eq!((bills[0].total_cost, bills[0].resource_id.as_str()), (money("120"), issued.pack_id.as_str()));
    assert_eq!(bills[0].config_desc, "Period decrement: 100 minutes per month × 12 month");
    assert!(store.audit_log(Some(account.id), 10).await.unwrap().iter().any(|row| row.action == "pack.issue"));
}

async fn issuing_refuses_bad_requests_and_writes_nothing(store: &Store) {
    let account = account_with(store, "Acme", "50").await;
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 12, "100", t0());
    let poor = store.issue_pack(account.id, spec.clone(), Charge::Balance, None, &operator(), t0()).await;
    assert!(matches!(poor, Err(StoreError::Rule(RuleViolation::InsufficientBalance { .. }))), "{poor:?}");
    let mut unknown = spec.clone();
    unknown.subproduct = "sp_nothing".into();
    assert!(matches!(
        store.issue_pack(account.id, unknown, Charge::Balance, None, &operator(), t0()).await,
        Err(StoreError::NotFound { .. })
    ));
    let mut mismatch = spec.clone();
    mismatch.product = "p_clb".into();
    assert!(matches!(
        store.issue_pack(account.id, mismatch, Charge::Settled, None, &operator(), t0()).await,
        Err(StoreError::InvalidInput(_))
    ));
    let past = mps_spec(PaymentMode::TotalDecrement, 1, "100", t0() - Duration::days(60));
    assert!(matches!(
        store.issue_pack(account.id, past, Charge::Settled, None, &operator(), t0()).await,
        Err(StoreError::InvalidInput(_))
    ));
    let mut no_capacity = spec.clone();
    no_capacity.items.clear();
    assert!(matches!(
        store.issue_pack(account.id, no_capacity, Charge::Settled, None, &operator(), t0()).await,
        Err(StoreError::Pack(_))
    ));
    let all = PackFilter { account_ids: vec![account.id], ..Default::default() };
    assert_eq!(store.list_packs(&all, t0()).await.unwrap().total, 0, "nothing half-written");
    assert_eq!(store.account(account.id).await.unwrap().balance, money("50"));
    assert_eq!(store.ledger(account.id, 10).await.unwrap().len(), 1, "only the top-up");
    assert!(store.bill_lines(account.id, "2026-03").await.unwrap().is_empty());
}

async fn issuing_with_a_client_token_happens_once(store: &Store) {
    let account = account_with(store, "Acme", "500").await;
    let spec = mps_spec(PaymentMode::TotalDecrement, 12, "1000", t0() + Duration::days(3));
    let first =
        store.issue_pack(account.id, spec.clone(), Charge::Balance, Some("buy-1"), &operator(), t0()).await.unwrap();
    let again =
        store.issue_pack(account.id, spec.clone(), Charge::Balance, Some("buy-1"), &operator(), t0()).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(store.account(account.id).await.unwrap().balance, money("380"));
    let pack = store.pack(None, &first.pack_id).await.unwrap();
    assert_eq!(pack.status_at(t0()), PackStatus::Inactive, "effective in three days");

    let settled = store.issue_pack(account.id, spec, Charge::Settled, None, &operator(), t0()).await.unwrap();
    assert_eq!(settled.balance_after, None);
    assert_eq!(store.account(account.id).await.unwrap().balance, money("380"), "settled outside: balance untouched");
}

async fn list_filters_sorts_pages_and_hides_packs_ended_over_three_months_ago(store: &Store) {
    let acme = account_with(store, "Acme", "10000").await;
    let other = account_with(store, "Other", "10000").await;
    let now = t0();
    let issue =
        |account: i64, name: &'static str, mode: PaymentMode, count: u32, effective: chrono::DateTime<chrono::Utc>| {
            let mut spec = mps_spec(mode, count, "100", effective);
            spec.name = name.into();
            async move {
                store.issue_pack(account, spec, Charge::Settled, None, &operator(), effective).await.unwrap().pack_id
            }
        };
    let valid =
        issue(acme.id, "Valid monthly", PaymentMode::PeriodDecrement(TimeUnit::Month), 12, now - Duration::days(10))
            .await;
    let recently_expired =
        issue(acme.id, "Recently expired", PaymentMode::TotalDecrement, 1, now - Duration::days(50)).await;
    let long_expired = issue(acme.id, "Long expired", PaymentMode::TotalDecrement, 1, now - Duration::days(150)).await;
    let future = issue(acme.id, "Frozen unlimited", PaymentMode::Unlimited, 1, now - Duration::days(1)).await;
    let _others = issue(other.id, "Other's pack", PaymentMode::TotalDecrement, 12, now - Duration::days(1)).await;
    let inactive = {
        let spec = mps_spec(PaymentMode::TotalDecrement, 12, "5", now + Duration::days(5));
        store.issue_pack(acme.id, spec, Charge::Settled, None, &operator(), now).await.unwrap().pack_id
    };
    for pack in [&recently_expired, &long_expired] {
        store.advance_lifecycle(pack, &operator(), now).await.unwrap();
    }
    let frozen = store.set_frozen(Some(&[acme.id]), &future, true, &operator(), now).await.unwrap();
    assert!(frozen.frozen);

    let scope = |f: PackFilter| PackFilter { account_ids: vec![acme.id], ..f };
    let ids = |page: respack_store::Page<respack_domain::Pack>| {
        page.items.into_iter().map(|p| p.id.to_string()).collect::<Vec<_>>()
    };

    let all =
        store.list_packs(&scope(PackFilter { sort: PackSort::NameAsc, ..Default::default() }), now).await.unwrap();
    assert_eq!(all.total, 4, "the pack that ended 4 months ago is hidden; the other account's too");
    assert!(!ids(all.clone()).contains(&long_expired));

    let by_status = |statuses: Vec<PackStatus>| {
        let filter = scope(PackFilter { statuses, ..Default::default() });
        async move { store.list_packs(&filter, now).await }
    };
    assert_eq!(ids(by_status(vec![PackStatus::Valid]).await.unwrap()), vec![valid.clone()]);
    assert_eq!(ids(by_status(vec![PackStatus::Expired]).await.unwrap()), vec![recently_expired.clone()]);
    assert_eq!(ids(by_status(vec![PackStatus::Frozen]).await.unwrap()), vec![future.clone()]);
    assert_eq!(ids(by_status(vec![PackStatus::Inactive]).await.unwrap()), vec![inactive.clone()]);
    assert_eq!(by_status(vec![PackStatus::Valid, PackStatus::Expired]).await.unwrap().total, 2);

    let search = store
        .list_packs(&scope(PackFilter { search: Some("MONTHLY".into()), ..Default::default() }), now)
        .await
        .unwrap();
    assert_eq!(ids(search), vec![valid.clone()]);
    let by_id = store
        .list_packs(&scope(PackFilter { search: Some(valid[3..12].to_owned()), ..Default::default() }), now)
        .await
        .unwrap();
    assert_eq!(ids(by_id), vec![valid.clone()]);

    let expiring = PackFilter {
        expires_from: Some(now),
        expires_to: Some(now + Duration::days(400)),
        sort: PackSort::ExpiresAsc,
        ..Default::default()
    };
    let expiring = store.list_packs(&scope(expiring), now).await.unwrap();
    assert_eq!(ids(expiring), vec![future.clone(), valid.clone(), inactive.clone()]);

    let product = store
        .list_packs(&scope(PackFilter { product: Some("p_clb".into()), ..Default::default() }), now)
        .await
        .unwrap();
    assert_eq!(product.total, 0);

    let page = store
        .list_packs(&scope(PackFilter { sort: PackSort::NameAsc, offset: 1, limit: 2, ..Default::default() }), now)
        .await
        .unwrap();
    assert_eq!((page.total, page.items.len()), (4, 2));
    assert_eq!(page.items[0].name, "Recently expired");

    // By type (subproduct): a TSC transcoding pack beside the general ones.
    let mut spec = mps_spec(PaymentMode::TotalDecrement, 12, "100", now - Duration::days(1));
    spec.subproduct = "sp_mps_tsc_transcoding".into();
    let tsc = store.issue_pack(acme.id, spec, Charge::Settled, None, &operator(), now).await.unwrap().pack_id;
    let by_type = |subproduct: &'static str| {
        let filter = scope(PackFilter { subproduct: Some(subproduct.into()), ..Default::default() });
        async move { ids(store.list_packs(&filter, now).await.unwrap()) }
    };
    assert_eq!(by_type("sp_mps_tsc_transcoding").await, vec![tsc.clone()]);
    let general = by_type("sp_mps_general_transcoding").await;
    assert_eq!(general.len(), 4, "{general:?}");
    assert!(!general.contains(&tsc));
    assert!(by_type("sp_clb_lcu").await.is_empty());

    assert!(store.pack(Some(&[other.id]), &valid).await.is_err(), "another account's pack is not found");
    assert!(store.list_packs(&PackFilter::default(), now).await.is_err(), "a scope is required");
}

crate::on_both_backends!(
    issuing_debits_the_balance_with_ledger_bill_and_audit,
    issuing_refuses_bad_requests_and_writes_nothing,
    issuing_with_a_client_token_happens_once,
    list_filters_sorts_pages_and_hides_packs_ended_over_three_months_ago,
);
