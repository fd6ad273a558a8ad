//! The seeded catalog and per-user column settings.

use respack_store::{NewUser, Role, Store};

use crate::fixtures::*;

async fn migrations_seed_the_whole_catalog(store: &Store) {
    let catalog = store.catalog().await.unwrap();
    assert_eq!(catalog.len(), respack_domain::catalog::CATALOG.len());
    let subproducts: usize = catalog.iter().map(|p| p.subproducts.len()).sum();
    assert_eq!(subproducts, 31);
    let tsc = store.subproduct("sp_mps_tsc_transcoding").await.unwrap();
    assert_eq!((tsc.product_code.as_str(), tsc.unit.as_str(), tsc.list_price), ("p_mps", "minutes", money("0.0128")));
    assert!(store.subproduct("sp_nothing").await.is_err());
}

async fn column_settings_are_saved_per_user_and_page(store: &Store) {
    let account = account_with(store, "Acme", "0").await;
    let user = store
        .create_user(
            NewUser {
                account_id: account.id,
                email: "a@acme.example",
                display_name: "A",
                password: "password1",
                role: Role::Customer,
            },
            &operator(),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(store.columns(user.id, "packs").await.unwrap(), None, "all columns by default");
    let chosen = vec!["name".to_owned(), "status".to_owned()];
    store.set_columns(account.id, user.id, "packs", &chosen, t0()).await.unwrap();
    assert_eq!(store.columns(user.id, "packs").await.unwrap(), Some(chosen));
    store.set_columns(account.id, user.id, "packs", &["status".to_owned()], t0()).await.unwrap();
    assert_eq!(store.columns(user.id, "packs").await.unwrap(), Some(vec!["status".to_owned()]));
    assert_eq!(store.columns(user.id, "usage").await.unwrap(), None);
    assert!(store.set_columns(account.id, user.id, "packs", &[], t0()).await.is_err());
}

crate::on_both_backends!(migrations_seed_the_whole_catalog, column_settings_are_saved_per_user_and_page);
