//! Fills the catalog with respack's built-in products and subproducts (respack-domain's
//! `catalog::CATALOG`). Later catalog edits are data, made by operators, not migrations.

use respack_domain::catalog::CATALOG;
use respack_domain::Money;
use sea_orm_migration::prelude::*;

use crate::m20261123_000001_create_tables::{Products, Subproducts};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut products = Query::insert();
        products.into_table(Products::Table).columns([Products::Code, Products::Name, Products::SortOrder]);
        let mut subproducts = Query::insert();
        subproducts.into_table(Subproducts::Table).columns([
            Subproducts::Code,
            Subproducts::ProductCode,
            Subproducts::Name,
            Subproducts::Unit,
            Subproducts::ListPrice,
            Subproducts::SortOrder,
        ]);
        let mut order = 0_i32;
        for product in CATALOG {
            order += 1;
            products.values_panic([product.code.into(), product.name.into(), order.into()]);
            for sub in product.subproducts {
                order += 1;
                let price = Money::parse(sub.list_price)
                    .and_then(|price| price.to_fixed().map_err(respack_domain::money::MoneyParseError::Precision))
                    .map_err(|error| DbErr::Migration(format!("catalog price of {}: {error}", sub.code)))?;
                subproducts.values_panic([
                    sub.code.into(),
                    product.code.into(),
                    sub.name.into(),
                    sub.unit.into(),
                    price.into(),
                    order.into(),
                ]);
            }
        }
        manager.exec_stmt(products.to_owned()).await?;
        manager.exec_stmt(subproducts.to_owned()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.exec_stmt(Query::delete().from_table(Subproducts::Table).to_owned()).await?;
        manager.exec_stmt(Query::delete().from_table(Products::Table).to_owned()).await?;
        Ok(())
    }
}
