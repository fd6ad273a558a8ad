//! The demo seed covers every payment mode, status and renewal method, and runs once.

use std::collections::HashSet;

use chrono::Utc;
use respack_domain::{PackStatus, PaymentModeKind, RenewalMethod};
use respack_store::demo::DEMO_LOGINS;
use respack_store::{PackFilter, Store};

async fn demo_seed_covers_the_product_and_is_idempotent(store: &Store) {
    let now = Utc::now();
    let summary = store.seed_demo(now).await.unwrap();
    assert!(!summary.already_seeded);
    assert!(summary.packs >= 60, "{} packs", summary.packs);
    assert!(summary.usage_records > 500, "{} usage records", summary.usage_records);
    let (secret_id, secret_key) = summary.api_key.clone().unwrap();

    for login in DEMO_LOGINS {
        assert!(store.verify_login(login.email, login.password).await.unwrap().is_some(), "{}", login.email);
    }
    let accounts = store.accounts().await.unwrap();
    let customers: Vec<i64> = accounts.iter().map(|a| a.id).collect();
    // Every pack, ignoring the three-month rule, by looking far back.
    let mut packs = Vec::new();
    for account in &customers {
        let filter = PackFilter { account_ids: vec![*account], limit: 1000, ..Default::default() };
        packs.extend(store.list_packs(&filter, now - chrono::Duration::days(1)).await.unwrap().items);
    }
    let statuses: HashSet<PackStatus> = packs.iter().map(|p| p.status_at(now)).collect();
    for status in PackStatus::ALL {
        assert!(statuses.contains(&status), "a demo pack is {status}");
    }
    let modes: HashSet<PaymentModeKind> = packs.iter().map(|p| p.mode.kind()).collect();
    assert_eq!(modes.len(), 4);
    let methods: HashSet<RenewalMethod> = packs.iter().map(|p| p.renewal).collect();
    assert_eq!(methods.len(), 3);
    assert!(packs.iter().any(|p| p.items.len() > 1), "a combo package");

    let again = store.seed_demo(now).await.unwrap();
    assert!(again.already_seeded);
    assert_eq!(again.api_key, Some((secret_id, secret_key)), "the same key is shown again");
    assert_eq!(store.accounts().await.unwrap().len(), accounts.len());
}

crate::on_both_backends!(demo_seed_covers_the_product_and_is_idempotent);
