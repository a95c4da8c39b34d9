//! Model aliases on Postgres.

use super::PgStores;
use crate::store::aliases::{validate, AliasRow};
use crate::store::traits::{AliasStore, Result};
use crate::store::{now_ms, StoreError};
use async_trait::async_trait;
use tokio_postgres::Row;

const COLUMNS: &str = "model, targets, strategy, weights, created_at, updated_at";

fn alias_row(r: &Row) -> AliasRow {
    let targets: String = r.get(1);
    let weights: Option<String> = r.get(3);
    AliasRow {
        model: r.get(0),
        targets: serde_json::from_str(&targets).unwrap_or_default(),
        strategy: r.get(2),
        weights: weights.and_then(|w| serde_json::from_str(&w).ok()),
        created_at: r.get(4),
        updated_at: r.get(5),
    }
}

#[async_trait]
impl AliasStore for PgStores {
    async fn list_aliases(&self) -> Result<Vec<AliasRow>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {COLUMNS} FROM model_aliases ORDER BY model"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(alias_row).collect())
    }

    async fn put_alias(
        &self,
        model: String,
        targets: Vec<String>,
        strategy: String,
        weights: Option<Vec<u32>>,
    ) -> Result<AliasRow> {
        validate(&model, &targets, &strategy, weights.as_deref())?;
        let c = self.client().await?;
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO model_aliases ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $5)
                     ON CONFLICT (model) DO UPDATE SET targets = excluded.targets, strategy = excluded.strategy,
                        weights = excluded.weights, updated_at = excluded.updated_at
                     RETURNING {COLUMNS}"
                ),
                &[
                    &model,
                    &serde_json::json!(targets).to_string(),
                    &strategy,
                    &weights.map(|w| serde_json::json!(w).to_string()),
                    &now_ms(),
                ],
            )
            .await?;
        Ok(alias_row(&row))
    }

    async fn delete_alias(&self, model: String) -> Result<()> {
        let c = self.client().await?;
        if c.execute("DELETE FROM model_aliases WHERE model = $1", &[&model])
            .await?
            == 0
        {
            return Err(StoreError::NotFound(format!("alias {model}")));
        }
        Ok(())
    }
}
