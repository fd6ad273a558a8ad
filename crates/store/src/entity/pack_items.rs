//! `pack_items`: Capacity items of packs (several for a combo package).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pack_items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub pack_id: String,
    pub position: i32,
    pub name: String,
    pub unit: String,
    pub usage_type: Option<String>,
    pub capacity: Option<i64>,
    pub remaining: i64,
    pub cycle_index: i64,
    pub used: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::packs::Entity", from = "Column::PackId", to = "super::packs::Column::Id")]
    Pack,
}

impl Related<super::packs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Pack.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
