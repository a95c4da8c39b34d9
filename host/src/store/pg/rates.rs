//! Model rates, app prices and their history on Postgres. Every change writes its
//! history row in the change's own transaction (see `store::rate_history`).

use super::{page, Conditions, PgStores};
use crate::store::app_prices::AppPrice;
use crate::store::rate_history::{Action, HistoryEntry, HistoryFilter};
use crate::store::rates::Rate;
use crate::store::traits::{RateStore, Result};
use crate::store::{now_ms, StoreError};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

const RATE_COLUMNS: &str =
    "model, input_per_mtok_micros, output_per_mtok_micros, cached_per_mtok_micros,
    cache_write_per_mtok_micros, per_image_micros, per_second_micros, per_mchar_micros, updated_at";

const PRICE_COLUMNS: &str =
    "app_id, model, input_per_mtok_micros, output_per_mtok_micros, cached_per_mtok_micros,
    cache_write_per_mtok_micros, per_image_micros, per_second_micros, per_mchar_micros, updated_at";

const UPDATE_PRICES: &str = "input_per_mtok_micros = excluded.input_per_mtok_micros,
    output_per_mtok_micros = excluded.output_per_mtok_micros,
    cached_per_mtok_micros = excluded.cached_per_mtok_micros,
    cache_write_per_mtok_micros = excluded.cache_write_per_mtok_micros,
    per_image_micros = excluded.per_image_micros,
    per_second_micros = excluded.per_second_micros,
    per_mchar_micros = excluded.per_mchar_micros,
    updated_at = excluded.updated_at";

/// A row of [`RATE_COLUMNS`] from `offset`.
fn rate_row(r: &Row, offset: usize) -> Rate {
    Rate {
        model: r.get(offset),
        input_per_mtok_micros: r.get(offset + 1),
        output_per_mtok_micros: r.get(offset + 2),
        cached_per_mtok_micros: r.get(offset + 3),
        cache_write_per_mtok_micros: r.get(offset + 4),
        per_image_micros: r.get(offset + 5),
        per_second_micros: r.get(offset + 6),
        per_mchar_micros: r.get(offset + 7),
        updated_at: r.get(offset + 8),
    }
}

fn price_row(r: &Row) -> AppPrice {
    AppPrice {
        app_id: r.get(0),
        price: rate_row(r, 1),
    }
}

async fn upsert_rate(c: &impl GenericClient, rate: &Rate, now: i64) -> Result<Rate> {
    rate.check()?;
    let row = c
        .query_one(
            &format!(
                "INSERT INTO model_rates ({RATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (model) DO UPDATE SET {UPDATE_PRICES} RETURNING {RATE_COLUMNS}"
            ),
            &[
                &rate.model,
                &rate.input_per_mtok_micros,
                &rate.output_per_mtok_micros,
                &rate.cached_per_mtok_micros,
                &rate.cache_write_per_mtok_micros,
                &rate.per_image_micros,
                &rate.per_second_micros,
                &rate.per_mchar_micros,
                &now,
            ],
        )
        .await?;
    Ok(rate_row(&row, 0))
}

/// Appends a change's history row; called inside the change's transaction.
async fn record(
    c: &impl GenericClient,
    app_id: Option<i64>,
    model: &str,
    action: Action,
    after: Option<&Rate>,
    note: Option<&str>,
    now: i64,
) -> Result<()> {
    let p = after.map(Rate::prices).unwrap_or_default();
    c.execute(
        "INSERT INTO rate_history (model, app_id, action, input_per_mtok_micros, output_per_mtok_micros,
            cached_per_mtok_micros, cache_write_per_mtok_micros, per_image_micros, per_second_micros,
            per_mchar_micros, note, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &model,
            &app_id,
            &action.as_str(),
            &p[0],
            &p[1],
            &p[2],
            &p[3],
            &p[4],
            &p[5],
            &p[6],
            &note,
            &now,
        ],
    )
    .await?;
    Ok(())
}

async fn app_exists(c: &impl GenericClient, app_id: i64) -> Result<()> {
    c.query_opt("SELECT 1 FROM apps WHERE id = $1", &[&app_id])
        .await?
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(format!("app {app_id}")))
}

#[async_trait]
impl RateStore for PgStores {
    async fn list_rates(&self) -> Result<Vec<Rate>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {RATE_COLUMNS} FROM model_rates ORDER BY model"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| rate_row(r, 0)).collect())
    }

    async fn put_rate(&self, rate: Rate) -> Result<Rate> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_ms();
        let saved = upsert_rate(&tx, &rate, now).await?;
        record(&tx, None, &rate.model, Action::Put, Some(&rate), None, now).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn delete_rate(&self, model: String) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if tx
            .execute("DELETE FROM model_rates WHERE model = $1", &[&model])
            .await?
            == 0
        {
            return Err(StoreError::NotFound(format!("rate for {model}")));
        }
        record(&tx, None, &model, Action::Delete, None, None, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn import_rates(&self, rates: Vec<Rate>, source: String) -> Result<usize> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_ms();
        for rate in &rates {
            upsert_rate(&tx, rate, now).await?;
            record(
                &tx,
                None,
                &rate.model,
                Action::Import,
                Some(rate),
                Some(&source),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rates.len())
    }

    async fn list_app_prices(&self, app_id: Option<i64>) -> Result<Vec<AppPrice>> {
        let c = self.client().await?;
        let rows = match app_id {
            Some(id) => {
                app_exists(&c, id).await?;
                c.query(
                    &format!(
                        "SELECT {PRICE_COLUMNS} FROM app_prices WHERE app_id = $1 ORDER BY model"
                    ),
                    &[&id],
                )
                .await?
            }
            None => {
                c.query(
                    &format!("SELECT {PRICE_COLUMNS} FROM app_prices ORDER BY app_id, model"),
                    &[],
                )
                .await?
            }
        };
        Ok(rows.iter().map(price_row).collect())
    }

    async fn put_app_price(&self, app_id: i64, price: Rate) -> Result<AppPrice> {
        price.check()?;
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        app_exists(&tx, app_id).await?;
        let now = now_ms();
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO app_prices ({PRICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (app_id, model) DO UPDATE SET {UPDATE_PRICES} RETURNING {PRICE_COLUMNS}"
                ),
                &[
                    &app_id,
                    &price.model,
                    &price.input_per_mtok_micros,
                    &price.output_per_mtok_micros,
                    &price.cached_per_mtok_micros,
                    &price.cache_write_per_mtok_micros,
                    &price.per_image_micros,
                    &price.per_second_micros,
                    &price.per_mchar_micros,
                    &now,
                ],
            )
            .await?;
        record(
            &tx,
            Some(app_id),
            &price.model,
            Action::Put,
            Some(&price),
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(price_row(&row))
    }

    async fn delete_app_price(&self, app_id: i64, model: String) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        app_exists(&tx, app_id).await?;
        let n = tx
            .execute(
                "DELETE FROM app_prices WHERE app_id = $1 AND model = $2",
                &[&app_id, &model],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "price of app {app_id} for {model}"
            )));
        }
        record(
            &tx,
            Some(app_id),
            &model,
            Action::Delete,
            None,
            None,
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rate_history(&self, f: HistoryFilter) -> Result<(Vec<HistoryEntry>, Option<i64>)> {
        let mut w = Conditions::new();
        if let Some(m) = &f.model {
            w.push("model =", m.clone());
        }
        if let Some(a) = f.app_id {
            w.push("app_id =", a);
        }
        if let Some(cur) = f.cursor {
            w.push("id <", cur);
        }
        let limit = f.limit.clamp(1, 1000);
        let sql = format!(
            "SELECT id, app_id, action, note, created_at, model, input_per_mtok_micros,
                output_per_mtok_micros, cached_per_mtok_micros, cache_write_per_mtok_micros,
                per_image_micros, per_second_micros, per_mchar_micros
             FROM rate_history{} ORDER BY id DESC LIMIT {}",
            w.sql,
            limit + 1
        );
        let c = self.client().await?;
        let rows = c.query(&sql, &w.params()).await?;
        let entries: Vec<HistoryEntry> = rows
            .iter()
            .map(|r| {
                // A row's input price is NULL exactly when it records a delete.
                let priced = r.get::<_, Option<i64>>(6).is_some();
                let prices = priced.then(|| Rate {
                    model: r.get(5),
                    input_per_mtok_micros: r.get::<_, Option<i64>>(6).unwrap_or(0),
                    output_per_mtok_micros: r.get::<_, Option<i64>>(7).unwrap_or(0),
                    cached_per_mtok_micros: r.get(8),
                    cache_write_per_mtok_micros: r.get(9),
                    per_image_micros: r.get(10),
                    per_second_micros: r.get(11),
                    per_mchar_micros: r.get(12),
                    updated_at: r.get(4),
                });
                HistoryEntry {
                    id: r.get(0),
                    app_id: r.get(1),
                    action: r.get(2),
                    note: r.get(3),
                    created_at: r.get(4),
                    model: r.get(5),
                    prices,
                }
            })
            .collect();
        Ok(page(entries, limit, |e| e.id))
    }
}
