//! Per-user choice of the columns a console page shows (seed: "click the settings button …
//! check the fields you want to display and click Save").

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};

use crate::convert::millis;
use crate::entity::column_settings;
use crate::error::{StoreError, StoreResult};
use crate::Store;

impl Store {
    /// The saved columns, or `None` when the user never chose (show all, the default).
    pub async fn columns(&self, user_id: i64, page: &str) -> StoreResult<Option<Vec<String>>> {
        let row = column_settings::Entity::find_by_id((user_id, page.to_owned())).one(self.read()).await?;
        Ok(row.and_then(|row| serde_json::from_str(&row.columns).ok()))
    }

    pub async fn set_columns(
        &self,
        account_id: i64,
        user_id: i64,
        page: &str,
        columns: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if columns.is_empty() {
            return Err(StoreError::invalid("choose at least one column to display"));
        }
        let tx = self.write().await?;
        column_settings::Entity::insert(column_settings::ActiveModel {
            account_id: Set(account_id),
            user_id: Set(user_id),
            page: Set(page.to_owned()),
            columns: Set(serde_json::to_string(columns).unwrap_or_default()),
            updated_at: Set(millis(now)),
        })
        .on_conflict(
            OnConflict::columns([column_settings::Column::UserId, column_settings::Column::Page])
                .update_columns([column_settings::Column::Columns, column_settings::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(&*tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
