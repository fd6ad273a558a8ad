//! The monthly bill summary: building it from bill lines (idempotent, marker states), and the
//! paged, filtered query at shallow and deep offsets.

use chrono::Duration;
use respack_domain::{BillActionType, PayMode, PaymentMode, TimeUnit};
use respack_store::{BillSummaryFilter, Charge, PeriodType, Store, StoreError, SummaryState};

use crate::fixtures::*;

fn filter(account_id: i64, month: &str) -> BillSummaryFilter {
    BillSummaryFilter { account_id, month: month.into(), limit: 100, with_total: true, ..Default::default() }
}

async fn summary_groups_lines_by_resource_and_action(store: &Store) {
    let acme = account_with(store, "Acme", "1000").await;
    let other = account_with(store, "Other", "1000").await;
    let march = t0() - Duration::days(5); // 2026-03-05
    let mut tagged = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 2, "100", march);
    tagged.tags.insert("team".into(), "media".into());
    let first = store.issue_pack(acme.id, tagged, Charge::Balance, None, &operator(), march).await.unwrap();
    let second_spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 1, "50", march);
    let second = store.issue_pack(acme.id, second_spec, Charge::Balance, None, &operator(), march).await.unwrap();
    store.renew(Some(&[acme.id]), &first.pack_id, 1, None, &operator(), t0()).await.unwrap();
    store.renew(Some(&[acme.id]), &first.pack_id, 2, None, &operator(), t0()).await.unwrap();
    let spec = mps_spec(PaymentMode::TotalDecrement, 1, "10", march);
    store.issue_pack(other.id, spec, Charge::Balance, None, &operator(), march).await.unwrap();

    assert_eq!(store.bill_summary_state("2026-03").await.unwrap(), SummaryState::NotBuilt);
    let build = store.build_bill_summary("2026-03", t0()).await.unwrap();
    assert!(build.built);
    assert_eq!((build.lines, build.summaries), (5, 4), "two renewals of one pack share a row");
    assert_eq!(
        store.bill_summary_state("2026-03").await.unwrap(),
        SummaryState::Ready { built_at: t0(), rebuilding: false }
    );

    let page = store.bill_summaries(&filter(acme.id, "2026-03")).await.unwrap();
    assert_eq!(page.total, Some(3));
    let positions: Vec<i64> = page.rows.iter().map(|row| row.position).collect();
    assert_eq!(positions, [0, 1, 2]);
    let renewals: Vec<_> =
        page.rows.iter().filter(|row| row.action_type == BillActionType::SubscriptionRenewal).collect();
    assert_eq!(renewals.len(), 1);
    let renewal = renewals[0];
    assert_eq!((renewal.resource_id.as_str(), renewal.line_count), (first.pack_id.as_str(), 2));
    assert_eq!(renewal.total_cost, money("30"), "10 + 20");
    assert_eq!(renewal.order_id, None, "two orders: no single OrderId");
    assert_eq!(renewal.pay_mode, PayMode::PrePay);
    assert_eq!(renewal.owner_uin, acme.uin);
    assert_eq!(renewal.tags, [("team".to_owned(), "media".to_owned())]);
    let purchase = page.rows.iter().find(|row| row.resource_id == second.pack_id).unwrap();
    assert_eq!(purchase.order_id.as_deref(), Some(second.order_id.as_str()));
    assert_eq!(purchase.action_type, BillActionType::NewSubscription);

    // Filters, each alone.
    let by_action =
        BillSummaryFilter { action_type: Some(BillActionType::NewSubscription), ..filter(acme.id, "2026-03") };
    assert_eq!(store.bill_summaries(&by_action).await.unwrap().total, Some(2));
    let by_resource = BillSummaryFilter { resource_id: Some(second.pack_id.clone()), ..filter(acme.id, "2026-03") };
    assert_eq!(store.bill_summaries(&by_resource).await.unwrap().total, Some(1));
    let postpaid = BillSummaryFilter { pay_mode: Some(PayMode::PostPay), ..filter(acme.id, "2026-03") };
    assert_eq!(store.bill_summaries(&postpaid).await.unwrap().total, Some(0));
    let by_code = BillSummaryFilter { business_code: Some("p_mps".into()), ..filter(acme.id, "2026-03") };
    assert_eq!(store.bill_summaries(&by_code).await.unwrap().total, Some(3));
    let untagged = BillSummaryFilter { tag_key: Some("team".into()), ..filter(acme.id, "2026-03") };
    assert_eq!(store.bill_summaries(&untagged).await.unwrap().total, Some(1), "the row of the pack with no team");
    let tagged_value = |value: &str| BillSummaryFilter {
        tag_key: Some("team".into()),
        tag_value: Some(value.into()),
        ..filter(acme.id, "2026-03")
    };
    assert_eq!(
        store.bill_summaries(&tagged_value("media")).await.unwrap().total,
        Some(2),
        "both rows of the tagged pack"
    );
    assert_eq!(store.bill_summaries(&tagged_value("ops")).await.unwrap().total, Some(0));
    let before_tags = BillSummaryFilter { tag_key: Some("team".into()), ..filter(acme.id, "2020-12") };
    let refused = store.bill_summaries(&before_tags).await;
    assert!(matches!(&refused, Err(StoreError::InvalidInput(message)) if message.contains("2021-01")), "{refused:?}");

    // Paging: unfiltered pages are position ranges; filtered ones skip rows.
    let second_page = BillSummaryFilter { offset: 1, limit: 1, with_total: false, ..filter(acme.id, "2026-03") };
    let page = store.bill_summaries(&second_page).await.unwrap();
    assert_eq!((page.total, page.rows.len(), page.rows[0].position), (None, 1, 1));
    let filtered_page = BillSummaryFilter { offset: 1, limit: 5, ..by_action };
    let page = store.bill_summaries(&filtered_page).await.unwrap();
    assert_eq!((page.total, page.rows.len()), (Some(2), 1));
    let beyond = BillSummaryFilter { offset: 100_000, ..filter(acme.id, "2026-03") };
    assert!(store.bill_summaries(&beyond).await.unwrap().rows.is_empty());

    // Tenancy: each account sees its own rows only.
    assert_eq!(store.bill_summaries(&filter(other.id, "2026-03")).await.unwrap().total, Some(1));

    // Building again gives the same rows; new lines show after the next build only.
    store.refund(Some(&[acme.id]), &second.pack_id, None, &operator(), t0()).await.unwrap();
    assert_eq!(store.bill_summaries(&filter(acme.id, "2026-03")).await.unwrap().total, Some(3));
    let again = store.build_bill_summary("2026-03", t0() + Duration::minutes(10)).await.unwrap();
    assert_eq!((again.lines, again.summaries), (6, 5));
    let page = store.bill_summaries(&filter(acme.id, "2026-03")).await.unwrap();
    assert_eq!(page.total, Some(4));
    let refund = page.rows.iter().find(|row| row.action_type == BillActionType::SubscriptionRefund).unwrap();
    assert_eq!(refund.total_cost, money("-10"));
    let twice = store.build_bill_summary("2026-03", t0() + Duration::minutes(11)).await.unwrap();
    assert_eq!((twice.lines, twice.summaries), (6, 5));
    assert_eq!(store.bill_summaries(&filter(acme.id, "2026-03")).await.unwrap(), page);

    // A month without lines builds to nothing; a bad month is refused.
    let empty = store.build_bill_summary("2026-01", t0()).await.unwrap();
    assert_eq!((empty.lines, empty.summaries), (0, 0));
    assert!(store.build_bill_summary("2026-13", t0()).await.is_err());
    assert!(store.bill_summary_state("March").await.is_err());
}

async fn concurrent_builders_build_once(store: &Store) {
    let acme = account_with(store, "Acme", "1000").await;
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 1, "100", t0());
    store.issue_pack(acme.id, spec, Charge::Balance, None, &operator(), t0()).await.unwrap();
    let (a, b) = tokio::join!(store.build_bill_summary("2026-03", t0()), store.build_bill_summary("2026-03", t0()));
    let (a, b) = (a.unwrap(), b.unwrap());
    // Either both built one after the other, or the second found the first at work.
    assert!(a.built || b.built);
    for build in [a, b].iter().filter(|b| b.built) {
        assert_eq!((build.lines, build.summaries), (1, 1));
    }
    assert!(matches!(store.bill_summary_state("2026-03").await.unwrap(), SummaryState::Ready { .. }));
    assert_eq!(store.bill_summaries(&filter(acme.id, "2026-03")).await.unwrap().total, Some(1));
}

/// What the console's Bills page reads: a never-built month is built on first read, and the
/// totals are the sums of the summary's rows (as built: later lines wait for the next build).
async fn readers_build_a_never_built_month_and_totals_add_up_its_rows(store: &Store) {
    let acme = account_with(store, "Acme", "1000").await;
    let march = t0() - Duration::days(5);
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 2, "100", march);
    let first = store.issue_pack(acme.id, spec, Charge::Balance, None, &operator(), march).await.unwrap();
    store.renew(Some(&[acme.id]), &first.pack_id, 1, None, &operator(), t0()).await.unwrap();
    let spec = mps_spec(PaymentMode::TotalDecrement, 1, "10", march);
    let second = store.issue_pack(acme.id, spec, Charge::Balance, None, &operator(), march).await.unwrap();
    store.refund(Some(&[acme.id]), &second.pack_id, None, &operator(), march + Duration::hours(1)).await.unwrap();

    assert_eq!(
        store.bill_summary_totals(&filter(acme.id, "2026-03")).await.unwrap(),
        Default::default(),
        "nothing built"
    );
    let state = store.readable_bill_summary("2026-03", t0()).await.unwrap();
    assert_eq!(state, SummaryState::Ready { built_at: t0(), rebuilding: false });
    let totals = store.bill_summary_totals(&filter(acme.id, "2026-03")).await.unwrap();
    let page = store.bill_summaries(&filter(acme.id, "2026-03")).await.unwrap();
    assert_eq!(totals.rows, page.total.unwrap());
    assert_eq!(totals.rows, 4, "purchase and renewal of one pack, purchase and refund of the other");
    assert_eq!(totals.total_cost, page.rows.iter().map(|row| row.total_cost).sum());
    assert_eq!(totals.cash_pay_amount, page.rows.iter().map(|row| row.cash_pay_amount).sum());
    let lines = store.bill_lines(acme.id, "2026-03").await.unwrap();
    assert_eq!(totals.total_cost, lines.iter().map(|line| line.total_cost).sum(), "the month's lines add up");
    // With filters, the totals are those of the rows the filters select.
    let base = filter(acme.id, "2026-03");
    for (narrowed, rows) in [
        (BillSummaryFilter { action_type: Some(BillActionType::NewSubscription), ..base.clone() }, 2),
        (BillSummaryFilter { action_type: Some(BillActionType::SubscriptionRefund), ..base.clone() }, 1),
        (BillSummaryFilter { resource_id: Some(first.pack_id.clone()), ..base.clone() }, 2),
        (BillSummaryFilter { pay_mode: Some(PayMode::PostPay), ..base.clone() }, 0),
        (BillSummaryFilter { business_code: Some("p_mps".into()), ..base.clone() }, 4),
    ] {
        let totals = store.bill_summary_totals(&narrowed).await.unwrap();
        let page = store.bill_summaries(&narrowed).await.unwrap();
        assert_eq!((totals.rows, page.total.unwrap()), (rows, rows), "{narrowed:?}");
        assert_eq!(totals.total_cost, page.rows.iter().map(|row| row.total_cost).sum(), "{narrowed:?}");
    }

    // A later line waits for the next build; reading again does not rebuild a built month.
    store.renew(Some(&[acme.id]), &first.pack_id, 1, None, &operator(), t0() + Duration::minutes(1)).await.unwrap();
    let again = store.readable_bill_summary("2026-03", t0() + Duration::minutes(2)).await.unwrap();
    assert_eq!(again, state);
    assert_eq!(store.bill_summary_totals(&filter(acme.id, "2026-03")).await.unwrap(), totals);
    store.build_bill_summary("2026-03", t0() + Duration::minutes(3)).await.unwrap();
    let rebuilt = store.bill_summary_totals(&filter(acme.id, "2026-03")).await.unwrap();
    assert_eq!(rebuilt.rows, 4, "the second renewal joins the renewal row");
    assert_eq!(rebuilt.total_cost, totals.total_cost + money("10"));
}

async fn by_used_time_a_line_counts_in_the_month_its_fee_period_begins(store: &Store) {
    let acme = account_with(store, "Acme", "1000").await;
    let march = t0() - Duration::days(5); // 2026-03-05
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 2, "100", march);
    let current = store.issue_pack(acme.id, spec, Charge::Balance, None, &operator(), march).await.unwrap();
    // Bought in March for use from April 20.
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 1, "50", at("2026-04-20T00:00:00Z"));
    let upcoming = store.issue_pack(acme.id, spec, Charge::Balance, None, &operator(), march).await.unwrap();
    // Renewed in March: the added month begins when the pack expires, on May 5.
    store.renew(Some(&[acme.id]), &current.pack_id, 1, None, &operator(), t0()).await.unwrap();
    for month in ["2026-03", "2026-04", "2026-05"] {
        store.build_bill_summary(month, t0()).await.unwrap();
    }
    let rows = |month: &str, period_type: PeriodType| {
        let filter = BillSummaryFilter { period_type, ..filter(acme.id, month) };
        async move {
            let page = store.bill_summaries(&filter).await.unwrap();
            let mut rows: Vec<(String, BillActionType)> =
                page.rows.iter().map(|row| (row.resource_id.clone(), row.action_type)).collect();
            rows.sort_by_key(|(resource, action)| (resource.clone(), action.as_str()));
            assert_eq!(page.total, Some(rows.len() as u64));
            rows
        }
    };
    let purchase = |pack: &str| (pack.to_owned(), BillActionType::NewSubscription);
    let renewal = (current.pack_id.clone(), BillActionType::SubscriptionRenewal);
    let mut paid_in_march = vec![purchase(&current.pack_id), purchase(&upcoming.pack_id), renewal.clone()];
    paid_in_march.sort_by_key(|(resource, action)| (resource.clone(), action.as_str()));
    assert_eq!(rows("2026-03", PeriodType::ByPayTime).await, paid_in_march);
    assert_eq!(rows("2026-03", PeriodType::ByUsedTime).await, [purchase(&current.pack_id)]);
    assert_eq!(rows("2026-04", PeriodType::ByUsedTime).await, [purchase(&upcoming.pack_id)]);
    assert_eq!(rows("2026-05", PeriodType::ByUsedTime).await, [renewal]);
    assert!(rows("2026-05", PeriodType::ByPayTime).await.is_empty());
    for (month, period_type, rows) in [
        ("2026-03", PeriodType::ByPayTime, 3),
        ("2026-03", PeriodType::ByUsedTime, 1),
        ("2026-04", PeriodType::ByUsedTime, 1),
        ("2026-05", PeriodType::ByUsedTime, 1),
        ("2026-05", PeriodType::ByPayTime, 0),
    ] {
        let by = BillSummaryFilter { period_type, ..filter(acme.id, month) };
        let totals = store.bill_summary_totals(&by).await.unwrap();
        assert_eq!(totals.rows, rows, "{month} {period_type:?}");
        let page = store.bill_summaries(&by).await.unwrap();
        assert_eq!(totals.total_cost, page.rows.iter().map(|row| row.total_cost).sum(), "{month} {period_type:?}");
    }
}

crate::on_both_backends!(
    summary_groups_lines_by_resource_and_action,
    by_used_time_a_line_counts_in_the_month_its_fee_period_begins,
    concurrent_builders_build_once,
    readers_build_a_never_built_month_and_totals_add_up_its_rows
);
