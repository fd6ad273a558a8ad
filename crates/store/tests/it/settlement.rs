//! Overage settlement: a day's pay-as-you-go overage is paid from the balance once the day
//! has ended, in part when the balance is short (the rest stays owed until a top-up), in full
//! on accounts allowed arrears; late usage is settled for the difference; never twice.

use chrono::{Duration, TimeZone, Utc};
use chrono_tz::Tz;
use respack_domain::{BillActionType, Money};
use respack_store::{NewAccount, SettlementReport, Store, SETTLEMENT_LEDGER_KIND};

use crate::fixtures::*;

/// The day after `t0()` begins (the accounts here keep UTC).
fn next_day() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).unwrap()
}

async fn settlement_line(store: &Store, account_id: i64) -> (Money, Money) {
    let lines = store.bill_lines(account_id, "2026-03").await.unwrap();
    let line = lines.iter().find(|line| line.action_type == BillActionType::DailySettlement).unwrap();
    (line.total_cost, line.cash_pay_amount)
}

async fn overage_is_paid_after_its_day_in_part_when_short_and_the_rest_after_a_top_up(store: &Store) {
    let account = account_with(store, "Acme", "1").await;
    // No pack: 100 minutes at 0.0075 are 0.75 of overage.
    store.record_usage(account.id, &[usage("u-1", "100", t0())], t0()).await.unwrap();
    assert_eq!(settlement_line(store, account.id).await, (money("0.75"), Money::ZERO), "billed, not paid yet");

    let report = store.settle_overage(t0() + Duration::hours(1), 500).await.unwrap();
    assert_eq!(report, SettlementReport::default(), "the day has not ended");
    assert_eq!(store.owed_overage(account.id, t0() + Duration::hours(1)).await.unwrap(), Money::ZERO);

    let report = store.settle_overage(next_day(), 500).await.unwrap();
    assert_eq!(report, SettlementReport { lines: 1, charged: money("0.75"), short: 0 });
    assert_eq!(store.account(account.id).await.unwrap().balance, money("0.25"));
    assert_eq!(settlement_line(store, account.id).await, (money("0.75"), money("0.75")));
    let ledger = store.ledger(account.id, 1).await.unwrap();
    assert_eq!(
        (ledger[0].kind.as_str(), ledger[0].amount, ledger[0].balance_after),
        (SETTLEMENT_LEDGER_KIND, money("-0.75"), money("0.25"))
    );
    assert!(ledger[0].note.contains("2026-03-10"), "the note names the day: {}", ledger[0].note);
    assert_eq!(store.settle_overage(next_day(), 500).await.unwrap(), SettlementReport::default(), "paid once");

    // Usage of that day arriving late raises the line; the balance covers only part of it.
    let late = next_day() + Duration::hours(2);
    store.record_usage(account.id, &[usage("u-2", "100", t0() + Duration::hours(3))], late).await.unwrap();
    let report = store.settle_overage(late, 500).await.unwrap();
    assert_eq!(report, SettlementReport { lines: 1, charged: money("0.25"), short: 1 });
    assert_eq!(store.account(account.id).await.unwrap().balance, Money::ZERO, "never below zero");
    assert_eq!(settlement_line(store, account.id).await, (money("1.5"), money("1")));
    assert_eq!(store.owed_overage(account.id, late).await.unwrap(), money("0.5"));
    assert_eq!(store.settle_overage(late, 500).await.unwrap(), SettlementReport::default(), "nothing to pay with");

    store.top_up(account.id, money("2"), None, &operator(), late).await.unwrap();
    let report = store.settle_overage(late + Duration::minutes(5), 500).await.unwrap();
    assert_eq!(report, SettlementReport { lines: 1, charged: money("0.5"), short: 0 });
    assert_eq!(store.account(account.id).await.unwrap().balance, money("1.5"));
    assert_eq!(store.owed_overage(account.id, late).await.unwrap(), Money::ZERO);
    let amounts: Vec<Money> = store.ledger(account.id, 10).await.unwrap().iter().map(|row| row.amount).collect();
    assert_eq!(amounts, vec![money("-0.5"), money("2"), money("-0.25"), money("-0.75"), money("1")]);
}

async fn accounts_allowed_arrears_pay_in_full_and_batches_cover_every_account(store: &Store) {
    let mut arrears = NewAccount::customer("Initech", Tz::UTC);
    arrears.allow_arrears = true;
    let initech = store.create_account(arrears, &operator(), t0() - Duration::days(30)).await.unwrap();
    let mut others = Vec::new();
    for name in ["A", "B", "C", "D", "E"] {
        let account = account_with(store, name, "10").await;
        store.record_usage(account.id, &[usage("u", "200", t0())], t0()).await.unwrap();
        others.push(account.id);
    }
    store.record_usage(initech.id, &[usage("u", "200", t0())], t0()).await.unwrap();

    // Batches of two lines: every line is still paid, each once.
    let report = store.settle_overage(next_day(), 2).await.unwrap();
    assert_eq!(report, SettlementReport { lines: 6, charged: money("9"), short: 0 });
    let initech = store.account(initech.id).await.unwrap();
    assert_eq!(initech.balance, money("-1.5"), "arrears allowed: paid in full below zero");
    for id in others {
        assert_eq!(store.account(id).await.unwrap().balance, money("8.5"));
    }
    assert_eq!(store.owed_overage(initech.id, next_day()).await.unwrap(), Money::ZERO);
}

/// Two settlers at once (two daemons, or a rerun racing the first pass) pay each line once.
async fn two_settlers_at_once_pay_once(store: &Store, other: &Store) {
    let mut ids = Vec::new();
    for n in 0..20 {
        let account = account_with(store, &format!("Customer {n}"), "5").await;
        let batch: Vec<_> = (0..3).map(|k| usage(&format!("u-{k}"), "100", t0() + Duration::minutes(k))).collect();
        store.record_usage(account.id, &batch, t0()).await.unwrap();
        ids.push(account.id);
    }
    let (first, second) = tokio::join!(store.settle_overage(next_day(), 3), other.settle_overage(next_day(), 3));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.lines + second.lines, 20);
    assert_eq!(first.charged + second.charged, money("45"));
    for id in ids {
        assert_eq!(store.account(id).await.unwrap().balance, money("2.75"));
        let settled: Vec<Money> = store
            .ledger(id, 10)
            .await
            .unwrap()
            .iter()
            .filter(|row| row.kind == SETTLEMENT_LEDGER_KIND)
            .map(|row| row.amount)
            .collect();
        assert_eq!(settled, vec![money("-2.25")]);
    }
}

crate::on_both_backends_with_two_handles!(two_settlers_at_once_pay_once);

crate::on_both_backends!(
    overage_is_paid_after_its_day_in_part_when_short_and_the_rest_after_a_top_up,
    accounts_allowed_arrears_pay_in_full_and_batches_cover_every_account,
);
