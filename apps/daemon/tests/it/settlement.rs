//! The sweep settles ended days' overage from the balance, once, and reports it.

use std::collections::BTreeMap;
use std::str::FromStr;

use respack_clock::Clock;
use respack_domain::rust_decimal::Decimal;
use respack_store::{SettlementReport, UsageInput};
use respackd::Daemon;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_after_midnight_pays_the_day_s_overage_once() {
    let dir = TempDir::new("settlement");
    let env = daemon_env(dir.path(), &sqlite_url(dir.path()), &[("RESPACK_MAIL_TRANSPORT", "file".into())]);
    let day = at("2026-05-10T09:00:00Z");
    let daemon = Daemon::build(&settings(&env), Clock::fixed(day)).await.unwrap();
    let store = daemon.store();
    let account = account(store, "1").await;
    // No pack covers it: 100 minutes of transcoding at 0.0075 are 0.75 of overage.
    let record = UsageInput {
        idempotency_key: "job-1".into(),
        product: "p_mps".into(),
        subproduct: "sp_mps_general_transcoding".into(),
        usage_type: Some("general".into()),
        unit: None,
        attributes: BTreeMap::new(),
        quantity: Decimal::from_str("100").unwrap(),
        occurred_at: day,
    };
    store.record_usage(account.id, &[record], day).await.unwrap();

    let same_day = daemon.pass(at("2026-05-10T23:59:00Z")).await.unwrap();
    assert_eq!(same_day.sweep.settlement, SettlementReport::default(), "the day has not ended");
    let after_midnight = daemon.pass(at("2026-05-11T00:01:00Z")).await.unwrap();
    assert_eq!(after_midnight.sweep.settlement, SettlementReport { lines: 1, charged: money("0.75"), short: 0 });
    let json = after_midnight.to_json();
    assert_eq!((json["overage_lines_settled"].as_u64(), json["overage_charged"].as_str()), (Some(1), Some("0.75")));
    assert_eq!(store.account(account.id).await.unwrap().balance, money("0.25"));
    let again = daemon.pass(at("2026-05-11T00:02:00Z")).await.unwrap();
    assert_eq!(again.sweep.settlement, SettlementReport::default(), "paid once");
}
