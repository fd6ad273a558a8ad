//! respackd's sweep as the store runs it: activation, cycle rolls after downtime, auto-renewal
//! and its failure, expiry, exhaustion, the notices and their dedupe keys, the outbox's claim,
//! retry and dead states — driven by a moving clock across month ends, leap days and DST.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use respack_domain::{Lifecycle, PaymentMode, RenewalMethod, TimeUnit};
use respack_store::{Account, Charge, OutboxMessage, Store};

use crate::fixtures::*;

async fn alerted_account(store: &Store, name: &str, balance: &str, language: &str) -> Account {
    let account = account_with(store, name, balance).await;
    store
        .set_alert_settings(account.id, vec!["ops@acme.example".into()], language, vec![20, 10], &operator(), t0())
        .await
        .unwrap()
}

async fn issue(store: &Store, account: i64, spec: respack_domain::PackSpec, now: DateTime<Utc>) -> String {
    store.issue_pack(account, spec, Charge::Settled, None, &operator(), now).await.unwrap().pack_id
}

async fn mails(store: &Store) -> Vec<OutboxMessage> {
    let mut rows = store.outbox(None, 1000).await.unwrap();
    rows.reverse();
    rows
}

async fn kinds(store: &Store) -> Vec<String> {
    mails(store).await.into_iter().map(|mail| mail.kind).collect()
}

async fn audit_actions(store: &Store, account: i64, action: &str) -> Vec<serde_json::Value> {
    let mut rows: Vec<_> =
        store.audit_log(Some(account), 1000).await.unwrap().into_iter().filter(|row| row.action == action).collect();
    rows.reverse();
    rows.into_iter().map(|row| row.detail).collect()
}

fn sum_of_ledger(rows: &[respack_store::LedgerEntry]) -> respack_domain::Money {
    rows.iter().map(|row| row.amount).sum()
}

async fn activation_month_end_rolls_and_downtime_are_recorded_once(store: &Store) {
    let account = alerted_account(store, "Acme", "0", "en").await;
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 12, "100", at("2026-01-31T10:00:00Z"));
    let pack_id = issue(store, account.id, spec, at("2026-01-20T00:00:00Z")).await;

    let report = store.sweep_packs(at("2026-01-25T00:00:00Z"), 100).await.unwrap();
    assert_eq!((report.packs, report.activated), (1, 0), "seen once, not yet effective");
    assert_eq!(
        store.sweep_packs(at("2026-01-30T00:00:00Z"), 100).await.unwrap().packs,
        0,
        "not due again before activation"
    );

    let report = store.sweep_packs(at("2026-01-31T10:00:00Z"), 100).await.unwrap();
    assert_eq!(report.activated, 1);
    assert_eq!(store.pack(None, &pack_id).await.unwrap().lifecycle, Lifecycle::Valid);

    store
        .record_usage(account.id, &[usage("u1", "30", at("2026-02-01T00:00:00Z"))], at("2026-02-01T00:00:01Z"))
        .await
        .unwrap();
    assert_eq!(store.pack(None, &pack_id).await.unwrap().items[0].remaining, dec("70"));
    // Jan 31 clamps to Feb 28: the second period starts then.
    assert_eq!(store.sweep_packs(at("2026-02-28T09:59:59Z"), 100).await.unwrap().cycles_rolled, 0);
    let report = store.sweep_packs(at("2026-02-28T10:00:00Z"), 100).await.unwrap();
    assert_eq!(report.cycles_rolled, 1);
    let item = store.pack(None, &pack_id).await.unwrap().items[0].clone();
    assert_eq!((item.cycle_index, item.remaining), (1, dec("100")), "restored, nothing carried over");

    // Downtime from March to mid-June: one jump to period 4 (May 31 – Jun 30), audited once.
    let report = store.sweep_packs(at("2026-06-15T00:00:00Z"), 100).await.unwrap();
    assert_eq!(report.cycles_rolled, 1);
    assert_eq!(store.sweep_packs(at("2026-06-15T00:00:00Z"), 100).await.unwrap().packs, 0, "a rerun finds nothing");
    let rolls = audit_actions(store, account.id, "pack.roll_cycles").await;
    assert_eq!(rolls.len(), 2);
    assert_eq!((rolls[1]["from_cycle"].as_i64(), rolls[1]["to_cycle"].as_i64()), (Some(1), Some(4)));
    assert_eq!(rolls[1]["missed_cycles"].as_i64(), Some(2));
    assert_eq!(store.pack(None, &pack_id).await.unwrap().items[0].cycle_index, 4);

    // Manual renewal method: 7- and 1-day notices before the end (Jan 31, 2027), then expiry.
    store.sweep_packs(at("2027-01-24T10:00:00Z"), 100).await.unwrap();
    store.sweep_packs(at("2027-01-27T10:00:00Z"), 100).await.unwrap();
    store.sweep_packs(at("2027-01-30T10:00:00Z"), 100).await.unwrap();
    let report = store.sweep_packs(at("2027-02-01T00:00:00Z"), 100).await.unwrap();
    assert_eq!(report.expired, 1);
    assert_eq!(
        store.sweep_packs(at("2027-03-01T00:00:00Z"), 100).await.unwrap().packs,
        0,
        "an expired pack is never due"
    );
    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!((pack.lifecycle, pack.package_expired_at), (Lifecycle::Expired, Some(at("2027-01-31T10:00:00Z"))));
    assert_eq!(kinds(store).await, ["expiring_soon", "expiring_soon", "expired"]);
    let sent = mails(store).await;
    assert!(sent[0].subject.contains("expires in 7 days"), "{}", sent[0].subject);
    assert!(sent[1].subject.contains("expires in 1 day"), "{}", sent[1].subject);
    assert!(sent.iter().all(|mail| mail.status == "queued" && mail.recipients == ["ops@acme.example"]));
}

async fn auto_renewal_charges_once_then_fails_when_the_balance_runs_out(store: &Store) {
    let account = alerted_account(store, "Acme", "25", "zh-CN").await;
    let mut spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 1, "100", at("2026-03-31T00:00:00Z"));
    spec.renewal = RenewalMethod::Auto;
    spec.auto_renew_period = Some(1);
    let pack_id = issue(store, account.id, spec, at("2026-03-31T00:00:00Z")).await;
    store.sweep_packs(at("2026-03-31T00:00:00Z"), 100).await.unwrap();
    assert_eq!(store.pack(None, &pack_id).await.unwrap().expires_at, at("2026-04-30T00:00:00Z"));

    // The balance covers the renewal: no warning at 7 days.
    store.sweep_packs(at("2026-04-23T00:00:00Z"), 100).await.unwrap();
    assert!(kinds(store).await.is_empty());

    let report = store.sweep_packs(at("2026-04-30T00:00:00Z"), 100).await.unwrap();
    assert_eq!((report.renewed, report.expired), (1, 0));
    assert_eq!(store.sweep_packs(at("2026-04-30T00:00:00Z"), 100).await.unwrap().renewed, 0, "a rerun charges nothing");
    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!((pack.lifecycle, pack.expires_at, pack.term.count), (Lifecycle::Valid, at("2026-05-31T00:00:00Z"), 2));
    assert_eq!(store.account(account.id).await.unwrap().balance, money("15"));
    let renewals = store.bill_lines(account.id, "2026-04").await.unwrap();
    assert_eq!(
        renewals.iter().filter(|line| line.action_type == respack_domain::BillActionType::SubscriptionRenewal).count(),
        1
    );

    // Balance 15 covers one more month but not the warning's check after it: 5 < 10.
    store.sweep_packs(at("2026-05-31T00:00:00Z"), 100).await.unwrap();
    assert_eq!(store.account(account.id).await.unwrap().balance, money("5"));
    store.sweep_packs(at("2026-06-23T00:00:00Z"), 100).await.unwrap();
    store.sweep_packs(at("2026-06-27T00:00:00Z"), 100).await.unwrap();
    store.sweep_packs(at("2026-06-29T12:00:00Z"), 100).await.unwrap();
    let report = store.sweep_packs(at("2026-06-30T00:00:00Z"), 100).await.unwrap();
    assert_eq!((report.renewed, report.renewal_failed, report.expired), (0, 1, 1));
    store.sweep_packs(at("2026-07-30T00:00:00Z"), 100).await.unwrap();

    assert_eq!(
        kinds(store).await,
        [
            "renewal_receipt",
            "renewal_receipt",
            "renewal_warning",
            "renewal_warning",
            "renewal_warning",
            "renewal_failed"
        ]
    );
    let failed = mails(store).await.pop().unwrap();
    assert!(failed.subject.contains("余额不足"), "Chinese for 'insufficient balance': {}", failed.subject);
    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!(pack.lifecycle, Lifecycle::Expired);
    let account = store.account(account.id).await.unwrap();
    let ledger = store.ledger(account.id, 1000).await.unwrap();
    assert_eq!(ledger.iter().filter(|row| row.kind == "renewal").count(), 2);
    assert_eq!(account.balance, sum_of_ledger(&ledger), "balance == sum(ledger)");
}

async fn catch_up_after_downtime_renews_term_after_term(store: &Store) {
    let account = alerted_account(store, "Acme", "100", "en").await;
    let mut spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Day), 2, "10", at("2026-10-30T00:00:00Z"));
    spec.renewal = RenewalMethod::Auto;
    spec.auto_renew_period = Some(2);
    let pack_id = issue(store, account.id, spec, at("2026-10-30T00:00:00Z")).await;
    // Down from Oct 30 to Nov 5, 12:00: three 2-day renewals bring it to Nov 7.
    let report = store.sweep_packs(at("2026-11-05T12:00:00Z"), 100).await.unwrap();
    assert_eq!((report.renewed, report.expired), (3, 0));
    let pack = store.pack(None, &pack_id).await.unwrap();
    assert_eq!((pack.expires_at, pack.items[0].cycle_index), (at("2026-11-07T00:00:00Z"), 6));
    assert_eq!(store.account(account.id).await.unwrap().balance, money("40"));
    assert_eq!(audit_actions(store, account.id, "pack.roll_cycles").await.len(), 1, "one roll 0 → 6");
}

async fn dst_and_leap_day_boundaries(store: &Store) {
    let account = alerted_account(store, "Acme", "0", "en").await;
    let new_york: Tz = "America/New_York".parse().unwrap();
    let mut daily = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Day), 5, "50", at("2026-03-07T05:00:00Z"));
    daily.time_zone = new_york;
    let daily_id = issue(store, account.id, daily, at("2026-03-07T05:00:00Z")).await;
    let mut leap = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 3, "50", at("2028-01-31T00:00:00Z"));
    leap.name = "Leap".into();
    let leap_id = issue(store, account.id, leap, at("2026-03-07T05:00:00Z")).await;

    store.sweep_packs(at("2026-03-07T05:00:00Z"), 100).await.unwrap();
    // Midnight New York: 05:00Z before the spring-forward, 04:00Z after it.
    for (now, cycle) in [
        ("2026-03-08T04:59:59Z", 0),
        ("2026-03-08T05:00:00Z", 1),
        ("2026-03-09T03:59:59Z", 1),
        ("2026-03-09T04:00:00Z", 2),
    ] {
        store.sweep_packs(at(now), 100).await.unwrap();
        assert_eq!(store.pack(None, &daily_id).await.unwrap().items[0].cycle_index, cycle, "at {now}");
    }
    store.sweep_packs(at("2028-01-31T00:00:00Z"), 100).await.unwrap();
    store.sweep_packs(at("2028-02-28T23:59:59Z"), 100).await.unwrap();
    assert_eq!(store.pack(None, &leap_id).await.unwrap().items[0].cycle_index, 0);
    store.sweep_packs(at("2028-02-29T00:00:00Z"), 100).await.unwrap();
    assert_eq!(store.pack(None, &leap_id).await.unwrap().items[0].cycle_index, 1, "Jan 31 → Feb 29 in a leap year");
    store.sweep_packs(at("2028-03-31T00:00:00Z"), 100).await.unwrap();
    assert_eq!(store.pack(None, &leap_id).await.unwrap().items[0].cycle_index, 2, "and back to the 31st");
}

async fn capacity_alerts_once_per_threshold_then_exhausted(store: &Store) {
    let account = alerted_account(store, "Acme", "0", "en").await;
    let spec = mps_spec(PaymentMode::TotalDecrement, 12, "100", at("2026-03-01T00:00:00Z"));
    let pack_id = issue(store, account.id, spec, at("2026-03-01T00:00:00Z")).await;
    store.sweep_packs(t0(), 100).await.unwrap();

    store.record_usage(account.id, &[usage("a", "79", t0())], t0()).await.unwrap();
    assert_eq!(store.scan_capacity_alerts(t0(), 0).await.unwrap(), 0, "21% left: above both thresholds");
    store.record_usage(account.id, &[usage("b", "6", t0())], t0()).await.unwrap();
    assert_eq!(store.scan_capacity_alerts(t0(), 0).await.unwrap(), 1, "15% left");
    assert_eq!(store.scan_capacity_alerts(t0(), 1000).await.unwrap(), 0, "re-reading never repeats a mail");
    store.record_usage(account.id, &[usage("c", "1", t0())], t0()).await.unwrap();
    assert_eq!(store.scan_capacity_alerts(t0(), 0).await.unwrap(), 0, "still in the 20% band");
    store.record_usage(account.id, &[usage("d", "6", t0())], t0()).await.unwrap();
    assert_eq!(store.scan_capacity_alerts(t0(), 0).await.unwrap(), 1, "8% left");
    store.record_usage(account.id, &[usage("e", "20", t0())], t0()).await.unwrap();
    assert_eq!(store.pack(None, &pack_id).await.unwrap().lifecycle, Lifecycle::Exhausted, "usage exhausted it");
    let report = store.sweep_packs(t0() + Duration::minutes(1), 100).await.unwrap();
    assert_eq!(report.mails, 1);
    assert_eq!(store.sweep_packs(t0() + Duration::minutes(2), 100).await.unwrap().packs, 0);
    assert_eq!(kinds(store).await, ["capacity_low", "capacity_low", "exhausted"]);
    let subjects: Vec<String> = mails(store).await.into_iter().map(|mail| mail.subject).collect();
    assert!(subjects[0].contains("less than 20%") && subjects[1].contains("less than 10%"), "{subjects:?}");
}

async fn outbox_claims_lease_retry_and_dead(store: &Store) {
    let account = alerted_account(store, "Acme", "0", "en").await;
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Day), 1, "10", at("2026-03-01T00:00:00Z"));
    issue(store, account.id, spec.clone(), at("2026-03-01T00:00:00Z")).await;
    issue(store, account.id, spec, at("2026-03-01T00:00:00Z")).await;
    store.sweep_packs(t0(), 100).await.unwrap();
    assert_eq!(kinds(store).await, ["expired", "expired"]);

    let lease = Duration::minutes(10);
    let claimed = store.claim_outbox(t0(), 10, lease).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|mail| mail.attempts == 1 && !mail.body_html.is_empty() && !mail.body_text.is_empty()));
    assert!(store.claim_outbox(t0(), 10, lease).await.unwrap().is_empty(), "claimed rows are leased");

    let (first, second) = (&claimed[0], &claimed[1]);
    assert!(store
        .mark_outbox_failed(first.id, 1, "connection refused", Some(t0() + Duration::minutes(1)))
        .await
        .unwrap());
    assert!(store.claim_outbox(t0() + Duration::seconds(59), 10, lease).await.unwrap().is_empty(), "backing off");
    let again = store.claim_outbox(t0() + Duration::minutes(1), 10, lease).await.unwrap();
    assert_eq!((again.len(), again[0].id, again[0].attempts), (1, first.id, 2));
    assert!(store.mark_outbox_failed(first.id, 2, "still refused", None).await.unwrap());

    // The second one's sender "crashed" after claiming: after the lease it is handed out again,
    // and the stale sender can no longer mark it.
    let reclaimed = store.claim_outbox(t0() + lease, 10, lease).await.unwrap();
    assert_eq!((reclaimed.len(), reclaimed[0].id, reclaimed[0].attempts), (1, second.id, 2));
    assert!(!store.mark_outbox_sent(second.id, 1, t0() + lease).await.unwrap());
    assert!(store.mark_outbox_sent(second.id, 2, t0() + lease).await.unwrap());

    let rows = mails(store).await;
    let by_id = |id: i64| rows.iter().find(|row| row.id == id).unwrap().clone();
    let dead = by_id(first.id);
    assert_eq!((dead.status.as_str(), dead.attempts, dead.last_error.as_deref()), ("dead", 2, Some("still refused")));
    let sent = by_id(second.id);
    assert_eq!((sent.status.as_str(), sent.sent_at), ("sent", Some(t0() + lease)));
    let counts = store.outbox_counts().await.unwrap();
    assert!(counts.contains(&("dead".into(), 1)) && counts.contains(&("sent".into(), 1)), "{counts:?}");
}

async fn notices_without_recipients_are_kept_as_dead(store: &Store) {
    let account = account_with(store, "Quiet", "0").await;
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Day), 1, "10", at("2026-03-01T00:00:00Z"));
    issue(store, account.id, spec, at("2026-03-01T00:00:00Z")).await;
    store.sweep_packs(t0(), 100).await.unwrap();
    let rows = mails(store).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "dead");
    assert!(rows[0].last_error.as_deref().unwrap_or_default().contains("no alert recipients"));
    assert!(store.claim_outbox(t0(), 10, Duration::minutes(1)).await.unwrap().is_empty());
}

async fn concurrent_sweeps_never_renew_or_mail_twice(store: &Store) {
    let account = alerted_account(store, "Acme", "1000", "en").await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        let mut spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 1, "100", at("2026-02-10T08:00:00Z"));
        spec.renewal = RenewalMethod::Auto;
        ids.push(issue(store, account.id, spec, at("2026-02-10T08:00:00Z")).await);
    }
    let now = at("2026-03-10T08:00:00Z");
    let sweeps: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.sweep_packs(now, 7).await.unwrap() })
        })
        .collect();
    let mut renewed = 0;
    for sweep in sweeps {
        renewed += sweep.await.unwrap().renewed;
    }
    assert_eq!(renewed, 30);
    let account = store.account(account.id).await.unwrap();
    assert_eq!(account.balance, money("700"));
    let ledger = store.ledger(account.id, 1000).await.unwrap();
    assert_eq!(ledger.iter().filter(|row| row.kind == "renewal").count(), 30);
    assert_eq!(account.balance, sum_of_ledger(&ledger));
    assert_eq!(kinds(store).await.len(), 30);
    for id in ids {
        assert_eq!(store.pack(None, &id).await.unwrap().term.count, 2, "{id} renewed once");
    }
}

async fn a_pass_stops_when_told_and_the_next_one_finishes(store: &Store) {
    let account = alerted_account(store, "Acme", "0", "en").await;
    for _ in 0..20 {
        let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 12, "100", at("2026-02-10T08:00:00Z"));
        issue(store, account.id, spec, at("2026-02-10T08:00:00Z")).await;
    }
    let now = at("2026-03-10T08:00:00Z");
    let lanes = store.sweep_lanes() as u64;
    assert!(lanes >= 2, "the pass runs lanes side by side: {lanes}");
    // Told to stop after its first batch: the second lane never starts.
    let first = store.sweep_packs_while(now, 3, |_| false).await.unwrap();
    assert_eq!((first.packs, first.cycles_rolled), (3, 3), "{first:?}");
    // Told to stop once 9 more are done: the lanes finish the batches they have, no more.
    let second = store.sweep_packs_while(now, 3, |total| total.packs < 9).await.unwrap();
    assert!((9..=9 + 3 * (lanes - 1)).contains(&second.packs), "{second:?}");
    let swept = first.packs + second.packs;
    let rest = store.sweep_packs(now, 3).await.unwrap();
    assert_eq!(swept + rest.packs, 20, "every due pack once: {swept} then {rest:?}");
    assert_eq!(rest.cycles_rolled, rest.packs);
    assert_eq!(audit_actions(store, account.id, "pack.roll_cycles").await.len(), 20, "one roll each, never two");
    assert_eq!(store.sweep_packs(now, 3).await.unwrap().packs, 0, "nothing left due");
}

/// The lanes split the due packs by account: a lane whose accounts run out of due packs ends
/// without stopping the other, which sweeps the rest of its own; renewals of one account stay
/// in one lane, charged in due order against one balance.
async fn lanes_split_by_account_and_each_finishes_its_own(store: &Store) {
    let few = alerted_account(store, "Few", "1000", "en").await;
    let many = alerted_account(store, "Many", "1000", "en").await;
    assert_ne!(few.id % 2, many.id % 2, "consecutive accounts fall in different lanes");
    for _ in 0..2 {
        let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 12, "100", at("2026-02-10T08:00:00Z"));
        issue(store, few.id, spec, at("2026-02-10T08:00:00Z")).await;
    }
    for _ in 0..17 {
        let mut spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 1, "100", at("2026-02-10T08:00:00Z"));
        spec.renewal = RenewalMethod::Auto;
        issue(store, many.id, spec, at("2026-02-10T08:00:00Z")).await;
    }
    let now = at("2026-03-10T08:00:00Z");
    let report = store.sweep_packs(now, 3).await.unwrap();
    assert_eq!((report.packs, report.cycles_rolled, report.renewed), (19, 19, 17), "{report:?}");
    assert_eq!(store.due_pack_count(now).await.unwrap(), 0, "the pass left nothing due");
    assert_eq!(store.account(many.id).await.unwrap().balance, money("830"));
    assert_eq!(assert_ledger_chain(store, many.id).await.len(), 18, "a top-up and 17 renewals");
    assert_eq!(store.account(few.id).await.unwrap().balance, money("1000"));
}

/// Two processes sweeping the same due packs at once (on SQLite each decides its batches
/// before it writes, so their decisions overlap): each pack is renewed or rolled once, the
/// balance and ledger agree, each receipt is queued once.
async fn two_processes_sweeping_at_once_handle_each_pack_once(store: &Store, other: &Store) {
    let account = alerted_account(store, "Acme", "1000", "en").await;
    for _ in 0..40 {
        let mut spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 1, "100", at("2026-02-10T08:00:00Z"));
        spec.renewal = RenewalMethod::Auto;
        issue(store, account.id, spec, at("2026-02-10T08:00:00Z")).await;
    }
    for _ in 0..20 {
        let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 12, "100", at("2026-02-10T08:00:00Z"));
        issue(store, account.id, spec, at("2026-02-10T08:00:00Z")).await;
    }
    let now = at("2026-03-10T08:00:00Z");
    let sweeps: Vec<_> = [store.clone(), other.clone()]
        .into_iter()
        .map(|handle| tokio::spawn(async move { handle.sweep_packs(now, 4).await.unwrap() }))
        .collect();
    let mut total = respack_store::SweepReport::default();
    for sweep in sweeps {
        total += sweep.await.unwrap();
    }
    assert_eq!((total.renewed, total.cycles_rolled, total.mails), (40, 60, 40), "{total:?}");
    let ledger = assert_ledger_chain(store, account.id).await;
    assert_eq!(ledger.iter().filter(|row| row.kind == "renewal").count(), 40);
    assert_eq!(store.account(account.id).await.unwrap().balance, money("600"));
    assert_eq!(audit_actions(store, account.id, "pack.roll_cycles").await.len(), 60);
    assert_eq!(kinds(store).await.len(), 40);
    assert_eq!(store.sweep_packs(now, 4).await.unwrap().packs, 0, "nothing left due");
}

/// Issues a monthly auto-renewing pack effective at `effective` whose renewal costs
/// 10 × `period`, and sweeps once so its next sweep instant follows its own calendar.
async fn auto_pack(store: &Store, account: i64, effective: &str, period: u32) -> String {
    let mut spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 1, "100", at(effective));
    spec.renewal = RenewalMethod::Auto;
    spec.auto_renew_period = Some(period);
    issue(store, account, spec, at("2026-02-10T12:00:00Z")).await
}

/// Each ledger row's balance after is the previous one's plus its amount, in ID order, and the
/// last is the balance: no charge was decided on a balance that had moved.
async fn assert_ledger_chain(store: &Store, account: i64) -> Vec<respack_store::LedgerEntry> {
    let mut ledger = store.ledger(account, 1000).await.unwrap();
    ledger.reverse();
    let mut balance = respack_domain::Money::ZERO;
    for row in &ledger {
        balance = balance + row.amount;
        assert_eq!(row.balance_after, balance, "ledger row {} of account {account}", row.id);
    }
    assert_eq!(store.account(account).await.unwrap().balance, balance, "balance == last balance after");
    ledger
}

async fn one_batch_charges_each_account_pack_by_pack_in_due_order(store: &Store) {
    let payer = alerted_account(store, "Payer", "25", "en").await;
    let broke = alerted_account(store, "Broke", "5", "en").await;
    // Due order (expiry): a 08:00, manual 08:15, d 08:30, b 09:00, c 10:00 on Mar 10.
    let a = auto_pack(store, payer.id, "2026-02-10T08:00:00Z", 1).await;
    let mut manual_spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 1, "100", at("2026-02-10T08:15:00Z"));
    manual_spec.name = "Manual".into();
    let manual = issue(store, payer.id, manual_spec, at("2026-02-10T12:00:00Z")).await;
    let d = auto_pack(store, broke.id, "2026-02-10T08:30:00Z", 1).await;
    let b = auto_pack(store, payer.id, "2026-02-10T09:00:00Z", 2).await;
    let c = auto_pack(store, payer.id, "2026-02-10T10:00:00Z", 1).await;
    store.sweep_packs(at("2026-02-10T12:00:00Z"), 100).await.unwrap();

    // All five in one transaction. The payer's 25 pays a (10), then cannot pay b (20 > 15),
    // then still pays c (10 <= 15): each renewal is decided against what the earlier ones left.
    let report = store.sweep_packs(at("2026-03-10T11:00:00Z"), 100).await.unwrap();
    assert_eq!(
        (report.packs, report.renewed, report.renewal_failed, report.expired, report.mails),
        (5, 2, 2, 3, 5),
        "{report:?}"
    );
    let state = |id: String| async move {
        let pack = store.pack(None, &id).await.unwrap();
        (pack.lifecycle, pack.term.count)
    };
    assert_eq!(state(a.clone()).await, (Lifecycle::Valid, 2));
    assert_eq!(state(c.clone()).await, (Lifecycle::Valid, 2));
    assert_eq!(state(b.clone()).await, (Lifecycle::Expired, 1));
    assert_eq!(state(d.clone()).await, (Lifecycle::Expired, 1));
    assert_eq!(state(manual.clone()).await, (Lifecycle::Expired, 1));

    let ledger = assert_ledger_chain(store, payer.id).await;
    let renewals: Vec<_> = ledger.iter().filter(|row| row.kind == "renewal").collect();
    assert_eq!(renewals.len(), 2);
    assert_eq!(
        renewals.iter().map(|row| (row.pack_id.clone().unwrap(), row.amount, row.balance_after)).collect::<Vec<_>>(),
        [(a.clone(), money("-10"), money("15")), (c.clone(), money("-10"), money("5"))]
    );
    assert_eq!(store.account(payer.id).await.unwrap().balance, money("5"));
    assert_eq!(assert_ledger_chain(store, broke.id).await.len(), 1, "only the broke account's top-up");
    assert_eq!(store.account(broke.id).await.unwrap().balance, money("5"));

    let lines = store.bill_lines(payer.id, "2026-03").await.unwrap();
    let renewed: Vec<_> = lines
        .iter()
        .filter(|line| line.action_type == respack_domain::BillActionType::SubscriptionRenewal)
        .map(|line| (line.resource_id.clone(), line.total_cost, line.order_id.clone()))
        .collect();
    assert_eq!(renewed.len(), 2);
    assert_eq!((renewed[0].0.as_str(), renewed[0].1), (a.as_str(), money("10")));
    assert_eq!((renewed[1].0.as_str(), renewed[1].1), (c.as_str(), money("10")));
    // The bill line, the ledger row and the receipt carry the same order.
    assert_eq!(renewed[0].2, renewals[0].order_id);
    assert_eq!(renewed[1].2, renewals[1].order_id);

    let rows = mails(store).await;
    let mut by_kind: Vec<(String, String)> =
        rows.iter().map(|mail| (mail.kind.clone(), mail.subject.clone())).collect();
    by_kind.sort();
    assert_eq!(
        by_kind.iter().map(|(kind, _)| kind.as_str()).collect::<Vec<_>>(),
        ["expired", "renewal_failed", "renewal_failed", "renewal_receipt", "renewal_receipt"]
    );
    assert!(by_kind.iter().filter(|(kind, _)| kind == "renewal_failed").all(|(_, subject)| {
        (subject.contains(&b) || subject.contains(&d)) && subject.ends_with("insufficient balance")
    }));
    let audits = audit_actions(store, payer.id, "pack.auto_renew").await;
    assert_eq!(audits.len(), 2);

    let again = store.sweep_packs(at("2026-03-10T11:00:00Z"), 100).await.unwrap();
    assert_eq!((again.packs, again.renewed, again.mails), (0, 0, 0), "a rerun finds nothing to do");
    assert_eq!(store.account(payer.id).await.unwrap().balance, money("5"));
}

async fn renewal_charges_stay_exact_while_top_ups_move_the_balance(store: &Store) {
    let account = alerted_account(store, "Acme", "150", "en").await;
    let other = alerted_account(store, "Globex", "1000", "en").await;
    let mut ids = Vec::new();
    for minute in 0..24 {
        ids.push(auto_pack(store, account.id, &format!("2026-02-10T08:{minute:02}:00Z"), 1).await);
        ids.push(auto_pack(store, other.id, &format!("2026-02-10T08:{minute:02}:30Z"), 1).await);
    }
    store.sweep_packs(at("2026-02-10T12:00:00Z"), 100).await.unwrap();

    let now = at("2026-03-10T09:00:00Z");
    let sweeps: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.sweep_packs(now, 5).await.unwrap() })
        })
        .collect();
    let top_ups = {
        let store = store.clone();
        let account = account.id;
        tokio::spawn(async move {
            for _ in 0..10 {
                store.top_up(account, money("10"), None, &operator(), now).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut total = respack_store::SweepReport::default();
    for sweep in sweeps {
        total += sweep.await.unwrap();
    }
    top_ups.await.unwrap();

    // Whatever the interleaving: every pack renewed once or failed once, nothing twice, and
    // every ledger row's balance after follows from the one before.
    assert_eq!(total.packs, 48);
    assert_eq!(total.renewed + total.renewal_failed, 48, "{total:?}");
    let ledger = assert_ledger_chain(store, account.id).await;
    let charged = ledger.iter().filter(|row| row.kind == "renewal").count() as u64;
    let other_ledger = assert_ledger_chain(store, other.id).await;
    let other_charged = other_ledger.iter().filter(|row| row.kind == "renewal").count() as u64;
    assert_eq!(other_charged, 24, "the other account pays for all of its own");
    assert_eq!(charged + other_charged, total.renewed);
    assert!(charged >= 15, "at least the first 150 paid for 15 renewals, got {charged}");
    assert!(store.account(account.id).await.unwrap().balance >= respack_domain::Money::ZERO);
    let receipts = mails(store).await.into_iter().filter(|mail| mail.kind == "renewal_receipt").count() as u64;
    assert_eq!(receipts, total.renewed);
    let mut renewed_packs = 0;
    for id in &ids {
        let pack = store.pack(None, id).await.unwrap();
        match pack.lifecycle {
            Lifecycle::Valid => {
                assert_eq!(pack.term.count, 2, "{id} renewed once");
                renewed_packs += 1;
            }
            lifecycle => assert_eq!((lifecycle, pack.term.count), (Lifecycle::Expired, 1), "{id}"),
        }
    }
    assert_eq!(renewed_packs, total.renewed);
}

/// Batches after the first see what earlier ones of the pass decided for the same account —
/// on SQLite, where a batch is decided while the ones before it are still being written (the
/// sweep stream), as on PostgreSQL, where one lane's batches follow each other. Batches of one
/// pack: each renewal is charged on the balance the earlier ones leave, and the last pack's
/// renewal warning is decided on it too (only that balance, 5, falls short of its price, 10).
async fn later_batches_see_the_balance_earlier_ones_leave(store: &Store) {
    let other = alerted_account(store, "Other", "0", "en").await;
    let payer = alerted_account(store, "Payer", "25", "en").await;
    // Due first: the pass's first batch, swept before the rest.
    let spec = mps_spec(PaymentMode::PeriodDecrement(TimeUnit::Month), 12, "100", at("2026-02-10T07:00:00Z"));
    issue(store, other.id, spec, at("2026-02-10T12:00:00Z")).await;
    let renewed = [
        auto_pack(store, payer.id, "2026-02-10T08:00:00Z", 1).await,
        auto_pack(store, payer.id, "2026-02-10T08:10:00Z", 1).await,
    ];
    let failed = auto_pack(store, payer.id, "2026-02-10T08:20:00Z", 1).await;
    // Expires a week after the sweep: its 7-day renewal warning falls due at the sweep, after
    // the others (due since their own warnings, a week before their expiry).
    let warned = auto_pack(store, payer.id, "2026-02-17T09:00:00Z", 1).await;
    store.sweep_packs(at("2026-02-17T09:00:00Z"), 100).await.unwrap();
    assert!(kinds(store).await.is_empty());

    let report = store.sweep_packs(at("2026-03-10T09:00:00Z"), 1).await.unwrap();
    assert_eq!(
        (report.packs, report.renewed, report.renewal_failed, report.expired, report.mails),
        (5, 2, 1, 1, 4),
        "{report:?}"
    );
    let ledger = assert_ledger_chain(store, payer.id).await;
    let charged: Vec<_> = ledger.iter().filter_map(|row| row.pack_id.clone()).collect();
    assert_eq!(charged, renewed, "charged in due order");
    assert_eq!(store.account(payer.id).await.unwrap().balance, money("5"));
    assert_eq!(store.pack(None, &failed).await.unwrap().lifecycle, Lifecycle::Expired);
    let warning: Vec<_> = mails(store).await.into_iter().filter(|mail| mail.kind == "renewal_warning").collect();
    assert_eq!(warning.len(), 1, "{:?}", kinds(store).await);
    assert!(warning[0].subject.contains(&warned), "{}", warning[0].subject);
    assert_eq!(store.sweep_packs(at("2026-03-10T09:00:00Z"), 1).await.unwrap().packs, 0, "nothing left due");
}

crate::on_both_backends!(
    activation_month_end_rolls_and_downtime_are_recorded_once,
    auto_renewal_charges_once_then_fails_when_the_balance_runs_out,
    catch_up_after_downtime_renews_term_after_term,
    dst_and_leap_day_boundaries,
    capacity_alerts_once_per_threshold_then_exhausted,
    outbox_claims_lease_retry_and_dead,
    notices_without_recipients_are_kept_as_dead,
    concurrent_sweeps_never_renew_or_mail_twice,
    later_batches_see_the_balance_earlier_ones_leave,
    a_pass_stops_when_told_and_the_next_one_finishes,
    lanes_split_by_account_and_each_finishes_its_own,
    one_batch_charges_each_account_pack_by_pack_in_due_order,
    renewal_charges_stay_exact_while_top_ups_move_the_balance,
);

crate::on_both_backends_with_two_handles!(two_processes_sweeping_at_once_handle_each_pack_once);
