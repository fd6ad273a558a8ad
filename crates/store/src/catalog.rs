//! Reading the catalog: products and their subproducts with units and list prices.

use respack_domain::Money;
use sea_orm::{EntityTrait, QueryOrder};

use crate::convert::money;
use crate::entity::{products, subproducts};
use crate::error::{StoreError, StoreResult};
use crate::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProduct {
    pub code: String,
    pub name: String,
    pub subproducts: Vec<CatalogSubproduct>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSubproduct {
    pub code: String,
    pub product_code: String,
    pub name: String,
    pub unit: String,
    pub list_price: Money,
}

fn to_subproduct(row: subproducts::Model) -> CatalogSubproduct {
    CatalogSubproduct {
        code: row.code,
        product_code: row.product_code,
        name: row.name,
        unit: row.unit,
        list_price: money(row.list_price),
    }
}

impl Store {
    /// Every product with its subproducts, in catalog order. Read once per process: only the
    /// migrations write the catalog, and they run before a store is handed out.
    pub async fn catalog(&self) -> StoreResult<Vec<CatalogProduct>> {
        let catalog = self.catalog.get_or_try_init(|| read_catalog(self)).await?;
        Ok(catalog.clone())
    }

    pub async fn subproduct(&self, code: &str) -> StoreResult<CatalogSubproduct> {
        self.catalog()
            .await?
            .into_iter()
            .flat_map(|product| product.subproducts)
            .find(|subproduct| subproduct.code == code)
            .ok_or_else(|| StoreError::not_found("subproduct", code))
    }
}

async fn read_catalog(store: &Store) -> StoreResult<Vec<CatalogProduct>> {
    let products = products::Entity::find().order_by_asc(products::Column::SortOrder).all(store.read()).await?;
    let subs = subproducts::Entity::find().order_by_asc(subproducts::Column::SortOrder).all(store.read()).await?;
    Ok(products
        .into_iter()
        .map(|product| CatalogProduct {
            subproducts: subs
                .iter()
                .filter(|sub| sub.product_code == product.code)
                .cloned()
                .map(to_subproduct)
                .collect(),
            code: product.code,
            name: product.name,
        })
        .collect())
}
