//! Recording usage: deduction order, splitting, overage, exhaustion, exactly-once, rollups,
//! bad input, and concurrent writers.

use chrono::{Duration, NaiveDate};
use respack_domain::rust_decimal::Decimal;
use respack_domain::{BillActionType, Lifecycle, PaymentMode, TimeUnit};
use respack_store::{Account, Charge, DeductionFilter, Store, StoreError, UsageInput};

use crate::fixtures::*;
use crate::harness::TestDb;

async fn usage_spans_packs_in_expiry_order_then_overflows(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let issue = |months: u32, capacity: &'static str| {
        let spec = mps_spec(PaymentMode::TotalDecrement, months, capacity, t0() - Duration::days(1));
        async move {
            store
                .issue_pack(account.id, spec, Charge::Settled, None, &operator(), t0() - Duration::days(1))
                .await
                .unwrap()
                .pack_id
        }
    };
    let later = issue(12, "100").await;
    let sooner = issue(3, "30").await;

    let outcomes = store.record_usage(account.id, &[usage("u-1", "50", t0())], t0()).await.unwrap();
    assert_eq!((outcomes[0].deducted, outcomes[0].overage, outcomes[0].replayed), (dec("50"), Decimal::ZERO, false));
    let rows =
        store.list_deductions(&DeductionFilter { account_ids: vec![account.id], ..Default::default() }).await.unwrap();
    let mut lines: Vec<_> = rows.items.iter().map(|d| (d.pack_id.clone(), d.amount, d.before, d.after)).collect();
    lines.sort_by_key(|line| line.0 != sooner);
    assert_eq!(
        lines,
        vec![
            (sooner.clone(), dec("30"), Some(dec("30")), Some(Decimal::ZERO)),
            (later.clone(), dec("20"), Some(dec("100")), Some(dec("80"))),
        ]
    );
    let drained = store.pack(None, &sooner).await.unwrap();
    assert_eq!((drained.lifecycle, drained.package_expired_at), (Lifecycle::Exhausted, Some(t0())));

    let over = store
        .record_usage(account.id, &[usage("u-2", "100.5", t0() + Duration::minutes(1))], t0() + Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!((over[0].deducted, over[0].overage), (dec("80"), dec("20.5")));
    assert_eq!(over[0].overage_cost, money("0.15375"), "20.5 minutes at 0.0075");
    let bills = store.bill_lines(account.id, "2026-03").await.unwrap();
    let overage = bills.iter().find(|b| b.action_type == BillActionType::DailySettlement).unwrap();
    assert_eq!((overage.total_cost, overage.pay_mode.as_str()), (money("0.15375"), "postPay"));
    assert_eq!(store.pack(None, &later).await.unwrap().lifecycle, Lifecycle::Exhausted);
}

/// An account with one total-decrement pack of 100, valid since the day before `t0`.
async fn account_with_one_pack_of_100(store: &Store) -> (Account, String) {
    let account = account_with(store, "Acme", "0").await;
    let spec = mps_spec(PaymentMode::TotalDecrement, 12, "100", t0() - Duration::days(1));
    let pack_id = store
        .issue_pack(account.id, spec, Charge::Settled, None, &operator(), t0() - Duration::days(1))
        .await
        .unwrap()
        .pack_id;
    (account, pack_id)
}

async fn a_repeated_idempotency_key_changes_nothing(store: &Store) {
    let (account, pack_id) = account_with_one_pack_of_100(store).await;
    let first = store.record_usage(account.id, &[usage("same", "10", t0())], t0()).await.unwrap();
    let again =
        store.record_usage(account.id, &[usage("same", "10", t0()), usage("new", "1", t0())], t0()).await.unwrap();
    assert!(again[0].replayed);
    assert_eq!((again[0].usage_record_id, again[0].deducted), (first[0].usage_record_id, dec("10")));
    assert!(!again[1].replayed);
    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!(pack.items[0].remaining, dec("89"));
    let all = DeductionFilter { account_ids: vec![account.id], ..Default::default() };
    let deductions = store.list_deductions(&all).await.unwrap();
    assert_eq!(deductions.total, 2);
    let mut linked: Vec<i64> = deductions.items.iter().map(|d| d.usage_record_id).collect();
    linked.sort_unstable();
    assert_eq!(linked, vec![first[0].usage_record_id, again[1].usage_record_id], "each deduction names its record");
    // A record partly deducted, partly overage, answers again with both parts.
    let over = store.record_usage(account.id, &[usage("over", "95", t0())], t0()).await.unwrap();
    assert_eq!((over[0].deducted, over[0].overage), (dec("89"), dec("6")));
    let over_again = store.record_usage(account.id, &[usage("over", "95", t0())], t0()).await.unwrap();
    assert_eq!(over_again[0], respack_store::UsageOutcome { replayed: true, ..over[0].clone() });
}

/// Keys are the client's text: quotes, backslashes, commas, braces and spaces (the parts of a
/// PostgreSQL array literal) are looked up and replayed like any other key.
async fn keys_of_any_text_are_replayed(store: &Store) {
    let (account, pack_id) = account_with_one_pack_of_100(store).await;
    let keys = ["say \"hi\"", "back\\slash\\", "a,b", "{x}", "NULL", " spaced ", "中文"];
    let batch: Vec<UsageInput> = keys.iter().map(|key| usage(key, "1", t0())).collect();
    let first = store.record_usage(account.id, &batch, t0()).await.unwrap();
    assert!(first.iter().all(|outcome| !outcome.replayed));
    let again = store.record_usage(account.id, &batch, t0()).await.unwrap();
    for ((key, first), again) in keys.iter().zip(&first).zip(&again) {
        assert!(again.replayed, "{key:?} is replayed");
        assert_eq!((again.idempotency_key.as_str(), again.usage_record_id), (*key, first.usage_record_id));
        assert_eq!(again.deducted, dec("1"));
    }
    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!(pack.items[0].remaining, dec("93"), "seven records deducted once each");
}

async fn period_packs_deduct_per_cycle_and_roll_up_per_day(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let start = at("2026-03-01T00:00:00Z");
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Day), 3, "10", start);
    let pack_id = store.issue_pack(account.id, spec, Charge::Settled, None, &operator(), start).await.unwrap().pack_id;
    let day = |d: i64, h: i64| start + Duration::days(d) + Duration::hours(h);
    let batch = [
        usage("d0-a", "4", day(0, 1)),
        usage("d0-b", "4", day(0, 2)),
        usage("d1-a", "7", day(1, 1)),
        usage("d0-late", "1", day(0, 3)),
        usage("d2-a", "12", day(2, 1)),
    ];
    let outcomes = store.record_usage(account.id, &batch, day(2, 2)).await.unwrap();
    let summary: Vec<_> = outcomes.iter().map(|o| (o.deducted, o.overage)).collect();
    assert_eq!(
        summary,
        vec![
            (dec("4"), dec("0")),
            (dec("4"), dec("0")),
            (dec("7"), dec("0")),
            (dec("0"), dec("1")), // day 0 closed once day 1 was deducted
            (dec("10"), dec("2")),
        ]
    );
    assert_eq!(store.pack(None, &pack_id).await.unwrap().lifecycle, Lifecycle::Exhausted, "final period drained");

    let daily = store
        .daily_usage(
            &[account.id],
            Some(&pack_id),
            None,
            NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 3).unwrap(),
        )
        .await
        .unwrap();
    let totals: Vec<_> = daily.iter().map(|d| (d.day.to_string(), d.usage_type.clone(), d.amount, d.records)).collect();
    assert_eq!(
        totals,
        vec![
            ("2026-03-01".into(), "general".into(), dec("8"), 2),
            ("2026-03-02".into(), "general".into(), dec("7"), 1),
            ("2026-03-03".into(), "general".into(), dec("10"), 1),
        ]
    );
    let window = DeductionFilter {
        account_ids: vec![account.id],
        pack_id: Some(pack_id.clone()),
        from: Some(day(1, 0)),
        to: Some(day(2, 0)),
        ..Default::default()
    };
    let in_window = store.list_deductions(&window).await.unwrap();
    assert_eq!(in_window.total, 1);
    assert_eq!((in_window.items[0].before, in_window.items[0].after), (Some(dec("10")), Some(dec("3"))));

    // By type (the pack's subproduct): all of this general transcoding pack's, none of TSC.
    let (first, last) = (NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(), NaiveDate::from_ymd_opt(2026, 3, 3).unwrap());
    for (subproduct, deductions, days) in [("sp_mps_general_transcoding", 4, 3), ("sp_mps_tsc_transcoding", 0, 0)] {
        let filter = DeductionFilter {
            account_ids: vec![account.id],
            subproduct: Some(subproduct.into()),
            ..Default::default()
        };
        assert_eq!(store.list_deductions(&filter).await.unwrap().total, deductions, "{subproduct}");
        let daily = store.daily_usage(&[account.id], None, Some(subproduct), first, last).await.unwrap();
        assert_eq!(daily.len(), days, "{subproduct}");
    }
}

async fn frozen_scoped_and_unlimited_packs_deduct_by_their_rules(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let issued_at = t0() - Duration::days(1);
    let mut scoped = mps_spec(PaymentMode::TotalDecrement, 12, "100", issued_at);
    scoped.scope.0.insert("region".into(), ["ap-beijing".to_owned()].into());
    let scoped =
        store.issue_pack(account.id, scoped, Charge::Settled, None, &operator(), issued_at).await.unwrap().pack_id;
    let frozen = mps_spec(PaymentMode::TotalDecrement, 1, "100", issued_at);
    let frozen =
        store.issue_pack(account.id, frozen, Charge::Settled, None, &operator(), issued_at).await.unwrap().pack_id;
    store.set_frozen(None, &frozen, true, &operator(), issued_at).await.unwrap();
    let unlimited = mps_spec(PaymentMode::Unlimited, 1, "0", issued_at);
    let unlimited =
        store.issue_pack(account.id, unlimited, Charge::Settled, None, &operator(), issued_at).await.unwrap().pack_id;

    let outcome = store.record_usage(account.id, &[usage("x", "500", t0())], t0()).await.unwrap();
    assert_eq!((outcome[0].deducted, outcome[0].overage), (dec("500"), Decimal::ZERO));
    let rows =
        store.list_deductions(&DeductionFilter { account_ids: vec![account.id], ..Default::default() }).await.unwrap();
    assert_eq!(rows.items.len(), 1);
    assert_eq!((rows.items[0].pack_id.as_str(), rows.items[0].before), (unlimited.as_str(), None));
    assert_eq!(store.pack(None, &scoped).await.unwrap().items[0].remaining, dec("100"), "region not in scope");
    assert_eq!(store.pack(None, &frozen).await.unwrap().items[0].remaining, dec("100"), "frozen");
}

async fn bad_usage_is_refused_with_a_reason_and_writes_nothing(store: &Store) {
    let (account, pack_id) = account_with_one_pack_of_100(store).await;
    let good = usage("good", "1", t0());
    let mut unknown = usage("unknown", "1", t0());
    unknown.subproduct = "sp_nothing".into();
    let mut wrong_product = usage("wrong", "1", t0());
    wrong_product.product = "p_clb".into();
    let zero = usage("zero", "0", t0());
    let negative = usage("negative", "-2", t0());
    let too_precise = usage("precise", "0.0000001", t0());
    let future = usage("future", "1", t0() + Duration::hours(1));
    let huge = usage("huge", "99999999999999999999", t0());
    let control = usage("tab\there", "1", t0());
    let nul = usage("nul\0", "1", t0());
    let long_key = usage(&"k".repeat(129), "1", t0());
    // Storable as a quantity, but not its cost at this subproduct's list price (30 per seat-month).
    let mut costly = usage("costly", "9000000000000", t0());
    (costly.product, costly.subproduct) = ("p_ccc".into(), "sp_ccc_voice_agent_monthly".into());
    let cases = [
        (vec![good.clone(), unknown], "unknown subproduct"),
        (vec![good.clone(), wrong_product], "belongs to product"),
        (vec![good.clone(), zero], "greater than zero"),
        (vec![good.clone(), negative], "greater than zero"),
        (vec![good.clone(), too_precise], "decimal places"),
        (vec![good.clone(), future], "in the future"),
        (vec![good.clone(), huge], "too large"),
        (vec![good.clone(), costly], "(30.00 per seat-months) is too large to bill"),
        (vec![good.clone(), good.clone()], "appears twice"),
        (vec![good.clone(), control], "record 1 (tab\\there): the idempotency key must not contain control characters"),
        (vec![good.clone(), nul], "control characters"),
        (vec![good.clone(), long_key], "1 to 128 characters"),
    ];
    for (batch, reason) in cases {
        let error = store.record_usage(account.id, &batch, t0()).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
        assert!(error.to_string().contains(reason), "{error} should say {reason}");
    }
    let too_many: Vec<_> = (0..1001).map(|n| usage(&format!("k{n}"), "1", t0())).collect();
    assert!(store.record_usage(account.id, &too_many, t0()).await.unwrap_err().to_string().contains("at most 1000"));
    assert!(matches!(store.record_usage(987_654, &[good], t0()).await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.pack(None, &pack_id).await.unwrap().items[0].remaining, dec("100"), "nothing deducted");
    let all = DeductionFilter { account_ids: vec![account.id], ..Default::default() };
    assert_eq!(store.list_deductions(&all).await.unwrap().total, 0);
    // 128 characters of three bytes each: a key's limit is in characters, not bytes.
    let wide = [usage(&"键".repeat(128), "1", t0())];
    assert!(!store.record_usage(account.id, &wide, t0()).await.unwrap()[0].replayed);
    assert!(store.record_usage(account.id, &wide, t0()).await.unwrap()[0].replayed);
}

async fn concurrent_writers_never_overdraw_or_lose_usage(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let issued_at = t0() - Duration::days(1);
    let mut packs = Vec::new();
    for capacity in ["50", "75", "100"] {
        let spec = mps_spec(PaymentMode::TotalDecrement, 12, capacity, issued_at);
        packs.push(
            store.issue_pack(account.id, spec, Charge::Settled, None, &operator(), issued_at).await.unwrap().pack_id,
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..6 {
        let store = store.clone();
        tasks.spawn(async move {
            for batch in 0..5 {
                let records: Vec<_> = (0..4)
                    .map(|n| usage(&format!("c{client}-b{batch}-{n}"), "3.5", t0() + Duration::seconds(n)))
                    .collect();
                store.record_usage(account.id, &records, t0() + Duration::minutes(1)).await.unwrap();
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    let all = DeductionFilter { account_ids: vec![account.id], limit: 1000, ..Default::default() };
    let deducted: Decimal = store.list_deductions(&all).await.unwrap().items.iter().map(|d| d.amount).sum();
    let bills = store.bill_lines(account.id, "2026-03").await.unwrap();
    let overage_lines = bills.iter().filter(|b| b.action_type == BillActionType::DailySettlement).count();
    assert_eq!(deducted, dec("225"), "every pack drained exactly");
    assert!(overage_lines > 0);
    let total_quantity = dec("3.5") * Decimal::from(6 * 5 * 4);
    let overage: Decimal = {
        let mut sum = Decimal::ZERO;
        for client in 0..6 {
            for batch in 0..5 {
                let records: Vec<_> = (0..4)
                    .map(|n| usage(&format!("c{client}-b{batch}-{n}"), "3.5", t0() + Duration::seconds(n)))
                    .collect();
                for outcome in store.record_usage(account.id, &records, t0() + Duration::minutes(2)).await.unwrap() {
                    assert!(outcome.replayed);
                    sum += outcome.overage;
                }
            }
        }
        sum
    };
    assert_eq!(deducted + overage, total_quantity, "deductions plus overage equal the usage");
    for pack_id in &packs {
        let pack = store.pack(None, pack_id).await.unwrap();
        assert_eq!((pack.items[0].remaining, pack.lifecycle), (Decimal::ZERO, Lifecycle::Exhausted));
    }
}

async fn batches_sent_together_are_written_together_and_answered_each_on_its_own(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let issued_at = t0() - Duration::days(1);
    let spec = mps_spec(PaymentMode::TotalDecrement, 12, "1000", issued_at);
    let pack_id =
        store.issue_pack(account.id, spec, Charge::Settled, None, &operator(), issued_at).await.unwrap().pack_id;
    // Ten callers at once: eight distinct batches, and two carrying the same key (a client's
    // retry racing its first attempt), which may land in one group.
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..10 {
        let store = store.clone();
        tasks.spawn(async move {
            let keys: Vec<String> = match caller {
                0 | 1 => vec!["raced".to_owned()],
                _ => (0..3).map(|n| format!("b{caller}-{n}")).collect(),
            };
            let records: Vec<_> = keys.iter().map(|key| usage(key, "2", t0())).collect();
            let outcomes = store.record_usage(account.id, &records, t0()).await.unwrap();
            (keys, outcomes)
        });
    }
    let mut raced = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (keys, outcomes) = joined.unwrap();
        let answered: Vec<&str> = outcomes.iter().map(|o| o.idempotency_key.as_str()).collect();
        assert_eq!(answered, keys, "each caller gets its own outcomes, in its order");
        assert!(outcomes.iter().all(|o| o.deducted == dec("2")));
        if keys == ["raced"] {
            raced.push((outcomes[0].replayed, outcomes[0].usage_record_id));
        } else {
            assert!(outcomes.iter().all(|o| !o.replayed));
        }
    }
    raced.sort_unstable();
    assert_eq!(raced.len(), 2);
    assert_eq!((raced[0].0, raced[1].0), (false, true), "the raced key is written once and replayed once");
    assert_eq!(raced[0].1, raced[1].1, "both answers name the same usage record");
    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!(pack.items[0].remaining, dec("1000") - dec("2") * Decimal::from(8 * 3 + 1));
    let all = DeductionFilter { account_ids: vec![account.id], limit: 100, ..Default::default() };
    assert_eq!(store.list_deductions(&all).await.unwrap().total, 8 * 3 + 1);
}

/// A batch that cannot be written (here a trigger refuses one of its records: any error of the
/// batch's own making) fails alone. The writer groups batches that arrive together into one
/// transaction; when that fails, it writes the group's batches one by one, so the others are
/// stored and answered, and nothing of the failed batch is.
async fn a_batch_that_cannot_be_written_fails_alone_not_with_its_group(db: &TestDb) {
    let store = &db.store;
    let account = account_with(store, "Acme", "0").await;
    let issued_at = t0() - Duration::days(1);
    let spec = mps_spec(PaymentMode::TotalDecrement, 12, "1000", issued_at);
    let pack_id =
        store.issue_pack(account.id, spec, Charge::Settled, None, &operator(), issued_at).await.unwrap().pack_id;
    if db.is_sqlite() {
        db.execute(
            "CREATE TRIGGER poison_usage BEFORE INSERT ON usage_records WHEN NEW.idempotency_key = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned record'); END",
        )
        .await;
    } else {
        db.execute(
            "CREATE FUNCTION poison_usage() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.idempotency_key = 'poison' THEN RAISE EXCEPTION 'poisoned record'; END IF; RETURN NEW; END $$",
        )
        .await;
        db.execute(
            "CREATE TRIGGER poison_usage BEFORE INSERT ON usage_records FOR EACH ROW EXECUTE FUNCTION poison_usage()",
        )
        .await;
    }
    // Ten callers at once, so that batches queue behind the one being written and are grouped
    // (on SQLite, with its one writer, caller 3's batch was in a group of 5 to 9 in every run
    // checked; PostgreSQL's four writers may take it alone). Caller 3's batch carries the
    // poisoned record between two good ones.
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..10 {
        let store = store.clone();
        tasks.spawn(async move {
            let keys: Vec<String> = match caller {
                3 => vec!["b3-0".to_owned(), "poison".to_owned(), "b3-1".to_owned()],
                _ => (0..3).map(|n| format!("b{caller}-{n}")).collect(),
            };
            let records: Vec<_> = keys.iter().map(|key| usage(key, "2", t0())).collect();
            (caller, store.record_usage(account.id, &records, t0()).await)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (3, result) => {
                let error = result.expect_err("the poisoned batch fails");
                assert!(error.to_string().contains("poisoned record"), "{error}");
            }
            (caller, result) => {
                let outcomes = result.unwrap_or_else(|error| panic!("caller {caller}'s batch failed: {error}"));
                assert!(outcomes.iter().all(|o| o.deducted == dec("2") && !o.replayed));
            }
        }
    }
    let all = DeductionFilter { account_ids: vec![account.id], limit: 100, ..Default::default() };
    assert_eq!(store.list_deductions(&all).await.unwrap().total, 9 * 3, "the nine good batches, nothing of caller 3's");
    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!(pack.items[0].remaining, dec("1000") - dec("2") * Decimal::from(9 * 3));
    // Caller 3's good records were not stored: sent again, they are new.
    let again = store.record_usage(account.id, &[usage("b3-0", "2", t0())], t0()).await.unwrap();
    assert!(!again[0].replayed);
}

async fn a_mixed_batch_deducts_each_account_and_settles_overage_per_day(store: &Store) {
    let acme = account_with(store, "Acme", "0").await;
    let globex = account_with(store, "Globex", "0").await;
    let issued_at = t0() - Duration::days(1);
    let spec = mps_spec(PaymentMode::TotalDecrement, 12, "10", issued_at);
    let acme_pack =
        store.issue_pack(acme.id, spec, Charge::Settled, None, &operator(), issued_at).await.unwrap().pack_id;
    let batch = [
        (acme.id, usage("a-1", "6", t0())),
        (globex.id, usage("g-1", "2", t0())),
        (acme.id, usage("a-2", "6", t0() + Duration::minutes(1))),
        (globex.id, usage("g-2", "3", t0() + Duration::minutes(2))),
    ];
    let records: Vec<(i64, &respack_store::UsageInput)> =
        batch.iter().map(|(account, input)| (*account, input)).collect();
    let outcomes = store.record_usage_of_accounts(&records, t0() + Duration::minutes(5)).await.unwrap();
    let summary: Vec<_> = outcomes.iter().map(|o| (o.idempotency_key.as_str(), o.deducted, o.overage)).collect();
    assert_eq!(
        summary,
        vec![
            ("a-1", dec("6"), dec("0")),
            ("g-1", dec("0"), dec("2")),
            ("a-2", dec("4"), dec("2")),
            ("g-2", dec("0"), dec("3"))
        ]
    );
    assert_eq!(store.pack(None, &acme_pack).await.unwrap().lifecycle, Lifecycle::Exhausted);
    // Globex's two overages on one day are one "Daily settlement" line.
    let lines = store.bill_lines(globex.id, "2026-03").await.unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].action_type, lines[0].total_cost), (BillActionType::DailySettlement, money("0.0375")));
    let more = store
        .record_usage(globex.id, &[usage("g-3", "1", t0() + Duration::hours(1))], t0() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(more[0].overage_cost, money("0.0075"));
    let lines = store.bill_lines(globex.id, "2026-03").await.unwrap();
    assert_eq!((lines.len(), lines[0].total_cost), (1, money("0.045")));
    // One group adding to lines that exist and starting new ones: Globex's day again, a new
    // day for Acme, Acme's first day again.
    let next_day = t0() + Duration::days(1);
    let batch = [
        (globex.id, usage("g-4", "2", t0() + Duration::hours(2))),
        (acme.id, usage("a-3", "4", next_day)),
        (acme.id, usage("a-4", "1", t0() + Duration::hours(3))),
    ];
    let records: Vec<(i64, &respack_store::UsageInput)> =
        batch.iter().map(|(account, input)| (*account, input)).collect();
    store.record_usage_of_accounts(&records, next_day).await.unwrap();
    let lines = store.bill_lines(globex.id, "2026-03").await.unwrap();
    assert_eq!((lines.len(), lines[0].total_cost), (1, money("0.06")));
    let mut acme_lines: Vec<_> = store
        .bill_lines(acme.id, "2026-03")
        .await
        .unwrap()
        .into_iter()
        .filter(|line| line.action_type == BillActionType::DailySettlement)
        .map(|line| (line.fee_begin_at, line.total_cost))
        .collect();
    acme_lines.sort();
    assert_eq!(acme_lines.iter().map(|(_, cost)| *cost).collect::<Vec<_>>(), [money("0.0225"), money("0.03")]);
    let ids: std::collections::HashSet<i64> = outcomes.iter().map(|o| o.usage_record_id).collect();
    assert_eq!(ids.len(), 4, "every record got its own ID");
}

/// What another process writes (respackd, a second web node, an operator's change) is what
/// the next batch deducts from, however the previous batches were planned.
async fn the_next_batch_sees_what_another_writer_changed(store: &Store, other: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let issued_at = t0() - Duration::days(1);
    let spec = mps_spec(PaymentMode::TotalDecrement, 12, "100", issued_at);
    let first =
        store.issue_pack(account.id, spec, Charge::Settled, None, &operator(), issued_at).await.unwrap().pack_id;
    let deducted = |outcomes: Vec<respack_store::UsageOutcome>| (outcomes[0].deducted, outcomes[0].overage);

    let mine = store.record_usage(account.id, &[usage("u-1", "10", t0())], t0()).await.unwrap();
    assert_eq!(deducted(mine), (dec("10"), dec("0")));
    let theirs = other.record_usage(account.id, &[usage("u-2", "60", t0())], t0()).await.unwrap();
    assert_eq!(deducted(theirs), (dec("60"), dec("0")), "the other handle sees the first deduction");
    let mine = store.record_usage(account.id, &[usage("u-3", "50", t0())], t0()).await.unwrap();
    assert_eq!(deducted(mine), (dec("30"), dec("20")), "only the 30 the other handle left");
    assert_eq!(store.pack(None, &first).await.unwrap().lifecycle, Lifecycle::Exhausted);

    // A pack issued elsewhere is deducted from at once; one frozen elsewhere is not.
    let spec = mps_spec(PaymentMode::TotalDecrement, 12, "100", issued_at);
    let second =
        other.issue_pack(account.id, spec, Charge::Settled, None, &operator(), issued_at).await.unwrap().pack_id;
    let mine = store.record_usage(account.id, &[usage("u-4", "5", t0())], t0()).await.unwrap();
    assert_eq!(deducted(mine), (dec("5"), dec("0")));
    other.set_frozen(None, &second, true, &operator(), t0()).await.unwrap();
    let mine = store.record_usage(account.id, &[usage("u-5", "5", t0())], t0()).await.unwrap();
    assert_eq!(deducted(mine), (dec("0"), dec("5")), "frozen by the other handle");
    // The same handle's own changes count too.
    store.set_frozen(None, &second, false, &operator(), t0()).await.unwrap();
    let mine = store.record_usage(account.id, &[usage("u-6", "5", t0())], t0()).await.unwrap();
    assert_eq!(deducted(mine), (dec("5"), dec("0")));
    assert_eq!(other.pack(None, &second).await.unwrap().items[0].remaining, dec("90"));
}

/// Callers keep the writer busy, so on SQLite each group is planned while the one before it is
/// written, while another handle deducts from, freezes and issues packs of the same account,
/// and callers re-send keys of batches still being written: every pack ends holding exactly its
/// capacity less its deductions, every key is written once, and nothing is lost.
async fn groups_planned_ahead_stay_exact_beside_another_writer(store: &Store, other: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let issued_at = t0() - Duration::days(1);
    let mut capacities = std::collections::HashMap::new();
    for _ in 0..3 {
        let spec = mps_spec(PaymentMode::TotalDecrement, 12, "400", issued_at);
        let pack = store.issue_pack(account.id, spec, Charge::Settled, None, &operator(), issued_at).await.unwrap();
        capacities.insert(pack.pack_id, dec("400"));
    }
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..8 {
        let store = store.clone();
        callers.spawn(async move {
            let mut written = (Decimal::ZERO, Decimal::ZERO, Vec::new());
            for batch in 0..12 {
                let mut keys: Vec<String> = (0..25).map(|n| format!("c{caller}-b{batch}-{n}")).collect();
                let resend = batch % 4 == 3;
                if resend {
                    // The last batch's first key again: a retry of a batch written just before.
                    keys.push(format!("c{caller}-b{}-0", batch - 1));
                }
                let records: Vec<_> = keys.iter().map(|key| usage(key, "1.5", t0())).collect();
                let outcomes = store.record_usage(account.id, &records, t0()).await.unwrap();
                assert_eq!(outcomes.len(), keys.len());
                assert_eq!(outcomes.last().unwrap().replayed, resend, "a re-sent key is a replay");
                for outcome in outcomes.iter().filter(|o| !o.replayed) {
                    written.0 += outcome.deducted;
                    written.1 += outcome.overage;
                    written.2.push((outcome.usage_record_id, outcome.deducted));
                }
            }
            written
        });
    }
    let meddler = {
        let (other, capacities) = (other.clone(), capacities.keys().cloned().collect::<Vec<_>>());
        tokio::spawn(async move {
            let mut issued = Vec::new();
            let mut written = (Decimal::ZERO, Decimal::ZERO, Vec::new());
            for round in 0..12 {
                let records: Vec<_> = (0..5).map(|n| usage(&format!("o{round}-{n}"), "2", t0())).collect();
                let outcomes = other.record_usage(account.id, &records, t0()).await.unwrap();
                for outcome in &outcomes {
                    written.0 += outcome.deducted;
                    written.1 += outcome.overage;
                    written.2.push((outcome.usage_record_id, outcome.deducted));
                }
                let pack = &capacities[round % capacities.len()];
                // Frozen for a moment, unless the callers have used it up by now.
                match other.set_frozen(None, pack, true, &operator(), t0()).await {
                    Ok(_) => {
                        tokio::task::yield_now().await;
                        other.set_frozen(None, pack, false, &operator(), t0()).await.unwrap();
                    }
                    Err(StoreError::Rule(_)) => {}
                    Err(error) => panic!("freezing {pack}: {error}"),
                }
                if round % 4 == 0 {
                    let spec = mps_spec(PaymentMode::TotalDecrement, 12, "100", issued_at);
                    issued.push(
                        other
                            .issue_pack(account.id, spec, Charge::Settled, None, &operator(), t0())
                            .await
                            .unwrap()
                            .pack_id,
                    );
                }
            }
            (issued, written)
        })
    };
    let (mut answered_deducted, mut answered_overage) = (Decimal::ZERO, Decimal::ZERO);
    let mut by_record = std::collections::BTreeMap::new();
    while let Some(joined) = callers.join_next().await {
        let (deducted, overage, records) = joined.unwrap();
        answered_deducted += deducted;
        answered_overage += overage;
        by_record.extend(records.into_iter().filter(|(_, deducted)| !deducted.is_zero()));
    }
    let (issued, by_other) = meddler.await.unwrap();
    by_record.extend(by_other.2.iter().copied().filter(|(_, deducted)| !deducted.is_zero()));
    assert_eq!(
        answered_deducted + answered_overage,
        dec("1.5") * Decimal::from(8 * 12 * 25),
        "every caller's new record was deducted or billed, once"
    );
    assert_eq!(by_other.0 + by_other.1, dec("2") * Decimal::from(12 * 5));
    assert!(answered_overage + by_other.1 > Decimal::ZERO, "the packs ran out: exhaustion was part of it");
    capacities.extend(issued.into_iter().map(|id| (id, dec("100"))));

    let mut deducted = Decimal::ZERO;
    let mut from_rows = std::collections::BTreeMap::new();
    for (pack_id, capacity) in &capacities {
        let filter = DeductionFilter {
            account_ids: vec![account.id],
            pack_id: Some(pack_id.clone()),
            limit: 1000,
            ..Default::default()
        };
        let page = store.list_deductions(&filter).await.unwrap();
        assert!(page.total <= 1000);
        let from_pack: Decimal = page.items.iter().map(|d| d.amount).sum();
        for row in &page.items {
            *from_rows.entry(row.usage_record_id).or_insert(Decimal::ZERO) += row.amount;
        }
        let remaining = store.pack(None, pack_id).await.unwrap().items[0].remaining;
        assert!(remaining >= Decimal::ZERO);
        assert_eq!(remaining, capacity - from_pack, "pack {pack_id}: what is left is its capacity less its deductions");
        deducted += from_pack;
    }
    assert_eq!(deducted, answered_deducted + by_other.0, "the deduction rows are what the answers said");
    assert_eq!(from_rows, by_record, "each record's deduction rows point at it and add up to its answer");
}

crate::on_both_backends_with_db!(a_batch_that_cannot_be_written_fails_alone_not_with_its_group);

crate::on_both_backends_with_two_handles!(
    the_next_batch_sees_what_another_writer_changed,
    groups_planned_ahead_stay_exact_beside_another_writer,
);

crate::on_both_backends!(
    a_mixed_batch_deducts_each_account_and_settles_overage_per_day,
    usage_spans_packs_in_expiry_order_then_overflows,
    a_repeated_idempotency_key_changes_nothing,
    keys_of_any_text_are_replayed,
    period_packs_deduct_per_cycle_and_roll_up_per_day,
    frozen_scoped_and_unlimited_packs_deduct_by_their_rules,
    bad_usage_is_refused_with_a_reason_and_writes_nothing,
    concurrent_writers_never_overdraw_or_lose_usage,
    batches_sent_together_are_written_together_and_answered_each_on_its_own,
);
