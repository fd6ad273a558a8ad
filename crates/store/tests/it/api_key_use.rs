//! `touch_api_key`: the last use of a key is recorded, at most once a minute.

use chrono::Duration;
use respack_store::Store;

use crate::fixtures::*;

async fn last_use_is_recorded_at_most_once_a_minute(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let key = store.create_api_key(account.id, "ci", &operator(), t0()).await.unwrap();
    let last_used = || async { store.api_keys(account.id).await.unwrap()[0].last_used_at };
    assert_eq!(last_used().await, None);
    store.touch_api_key(&key.info.secret_id, t0()).await.unwrap();
    assert_eq!(last_used().await, Some(t0()));
    store.touch_api_key(&key.info.secret_id, t0() + Duration::seconds(30)).await.unwrap();
    assert_eq!(last_used().await, Some(t0()), "within the minute nothing is written");
    store.touch_api_key(&key.info.secret_id, t0() + Duration::seconds(61)).await.unwrap();
    assert_eq!(last_used().await, Some(t0() + Duration::seconds(61)));
    store.touch_api_key("AKIDunknown", t0()).await.unwrap();
}

crate::on_both_backends!(last_use_is_recorded_at_most_once_a_minute);
