//! Spend caps per app and per key on Postgres, and the recorded spend they are checked
//! against (an app's from the hourly rollup, a key's from its daily rollup).

use super::limits::scope_exists;
use super::PgStores;
use crate::store::budgets::{table_of, Budget, StoredBudgets};
use crate::store::limits::Scope;
use crate::store::traits::{BudgetStore, Result};
use crate::store::{now_ms, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;

#[async_trait]
impl BudgetStore for PgStores {
    async fn get_budget(&self, scope: Scope) -> Result<Budget> {
        let c = self.client().await?;
        scope_exists(&c, scope).await?;
        let (table, column, id) = table_of(scope);
        Ok(c.query_opt(
            &format!("SELECT daily_micros, monthly_micros FROM {table} WHERE {column} = $1"),
            &[&id],
        )
        .await?
        .map(|r| Budget {
            daily_micros: r.get(0),
            monthly_micros: r.get(1),
        })
        .unwrap_or_default())
    }

    async fn put_budget(&self, scope: Scope, budget: Budget) -> Result<Budget> {
        if [budget.daily_micros, budget.monthly_micros]
            .iter()
            .flatten()
            .any(|v| *v < 0)
        {
            return Err(StoreError::invalid("budget", "caps must not be negative"));
        }
        let c = self.client().await?;
        scope_exists(&c, scope).await?;
        let (table, column, id) = table_of(scope);
        if budget.is_empty() {
            c.execute(&format!("DELETE FROM {table} WHERE {column} = $1"), &[&id])
                .await?;
        } else {
            c.execute(
                &format!(
                    "INSERT INTO {table} ({column}, daily_micros, monthly_micros, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT ({column}) DO UPDATE SET daily_micros = excluded.daily_micros,
                        monthly_micros = excluded.monthly_micros, updated_at = excluded.updated_at"
                ),
                &[&id, &budget.daily_micros, &budget.monthly_micros, &now_ms()],
            )
            .await?;
        }
        Ok(budget)
    }

    async fn all_budgets(&self) -> Result<StoredBudgets> {
        let c = self.client().await?;
        let mut out = (HashMap::new(), HashMap::new());
        for (sql, map) in [
            (
                "SELECT app_id, daily_micros, monthly_micros FROM app_budgets",
                &mut out.0,
            ),
            (
                "SELECT key_id, daily_micros, monthly_micros FROM key_budgets",
                &mut out.1,
            ),
        ] {
            for r in c.query(sql, &[]).await? {
                map.insert(
                    r.get::<_, i64>(0),
                    Budget {
                        daily_micros: r.get(1),
                        monthly_micros: r.get(2),
                    },
                );
            }
        }
        Ok(out)
    }

    async fn spent_since(&self, scope: Scope, since_ms: i64) -> Result<i64> {
        let c = self.client().await?;
        let since_s = since_ms.div_euclid(1000);
        let (sql, id) = match scope {
            Scope::App(app) => (
                "SELECT sum(cost_micros)::BIGINT FROM usage_hourly WHERE app_id = $1 AND hour >= $2",
                app,
            ),
            Scope::Key(_, key) => (
                "SELECT sum(cost_micros)::BIGINT FROM key_usage_daily WHERE key_id = $1 AND day >= $2",
                key,
            ),
        };
        let stmt = c.prepare_cached(sql).await?;
        let spent: Option<i64> = c.query_one(&stmt, &[&id, &since_s]).await?.get(0);
        Ok(spent.unwrap_or(0))
    }
}
