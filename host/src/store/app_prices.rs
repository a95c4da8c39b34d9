//! Explicit prices per app and model, in micro-credits: an app with one is charged it
//! instead of the model's rate × (1 + margin) ÷ `usd_per_credit`. Each change writes its
//! history row in the same transaction.

use super::rate_history::{self, Action};
use super::rates::{rate_row, Rate};
use super::{now_ms, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// An app's price for one model; the amounts of `price` are micro-credits.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AppPrice {
    pub app_id: i64,
    #[serde(flatten)]
    pub price: Rate,
}

const COLUMNS: &str =
    "app_id, model, input_per_mtok_micros, output_per_mtok_micros, cached_per_mtok_micros,
    cache_write_per_mtok_micros, per_image_micros, per_second_micros, per_mchar_micros, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AppPrice> {
    Ok(AppPrice {
        app_id: r.get(0)?,
        price: rate_row(r, 1)?,
    })
}

fn app_exists(conn: &rusqlite::Connection, app_id: i64) -> Result<(), StoreError> {
    conn.query_row("SELECT 1 FROM apps WHERE id = ?1", [app_id], |_| Ok(()))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("app {app_id}")))
}

impl Store {
    /// One app's prices (404 for an unknown app), or every app's (`None`).
    pub fn list_app_prices(&self, app_id: Option<i64>) -> Result<Vec<AppPrice>, StoreError> {
        let conn = self.conn()?;
        let mut stmt;
        let rows = match app_id {
            Some(id) => {
                app_exists(&conn, id)?;
                stmt = conn.prepare(&format!(
                    "SELECT {COLUMNS} FROM app_prices WHERE app_id = ?1 ORDER BY model"
                ))?;
                stmt.query_map([id], row)?.collect::<Result<Vec<_>, _>>()?
            }
            None => {
                stmt = conn.prepare(&format!(
                    "SELECT {COLUMNS} FROM app_prices ORDER BY app_id, model"
                ))?;
                stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(rows)
    }

    pub fn put_app_price(&self, app_id: i64, price: &Rate) -> Result<AppPrice, StoreError> {
        price.check()?;
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        app_exists(&tx, app_id)?;
        let now = now_ms();
        tx.execute(
            &format!(
                "INSERT INTO app_prices ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (app_id, model) DO UPDATE SET
                    input_per_mtok_micros = excluded.input_per_mtok_micros,
                    output_per_mtok_micros = excluded.output_per_mtok_micros,
                    cached_per_mtok_micros = excluded.cached_per_mtok_micros,
                    cache_write_per_mtok_micros = excluded.cache_write_per_mtok_micros,
                    per_image_micros = excluded.per_image_micros,
                    per_second_micros = excluded.per_second_micros,
                    per_mchar_micros = excluded.per_mchar_micros,
                    updated_at = excluded.updated_at"
            ),
            params![
                app_id,
                price.model,
                price.input_per_mtok_micros,
                price.output_per_mtok_micros,
                price.cached_per_mtok_micros,
                price.cache_write_per_mtok_micros,
                price.per_image_micros,
                price.per_second_micros,
                price.per_mchar_micros,
                now
            ],
        )?;
        rate_history::record(
            &tx,
            Some(app_id),
            &price.model,
            Action::Put,
            Some(price),
            None,
            now,
        )?;
        let saved = tx.query_row(
            &format!("SELECT {COLUMNS} FROM app_prices WHERE app_id = ?1 AND model = ?2"),
            params![app_id, price.model],
            row,
        )?;
        tx.commit()?;
        Ok(saved)
    }

    pub fn delete_app_price(&self, app_id: i64, model: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        app_exists(&tx, app_id)?;
        let n = tx.execute(
            "DELETE FROM app_prices WHERE app_id = ?1 AND model = ?2",
            params![app_id, model],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "price of app {app_id} for {model}"
            )));
        }
        rate_history::record(
            &tx,
            Some(app_id),
            model,
            Action::Delete,
            None,
            None,
            now_ms(),
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rate_history::HistoryFilter;
    use crate::store::test_store;

    #[test]
    fn app_prices_round_trip_with_history_and_need_the_app() {
        let (_d, s) = test_store();
        let app = s.create_app("a").unwrap();
        let price = Rate {
            model: "echo/echo-1".into(),
            input_per_mtok_micros: 5_000_000,
            output_per_mtok_micros: 7_000_000,
            ..Rate::default()
        };
        let saved = s.put_app_price(app.id, &price).unwrap();
        assert_eq!(saved.app_id, app.id);
        assert_eq!(saved.price.input_per_mtok_micros, 5_000_000);
        assert_eq!(s.list_app_prices(Some(app.id)).unwrap(), vec![saved]);
        assert!(matches!(
            s.put_app_price(app.id + 1, &price),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.list_app_prices(Some(app.id + 1)),
            Err(StoreError::NotFound(_))
        ));
        s.delete_app_price(app.id, "echo/echo-1").unwrap();
        assert!(matches!(
            s.delete_app_price(app.id, "echo/echo-1"),
            Err(StoreError::NotFound(_))
        ));
        let (h, _) = s
            .rate_history(&HistoryFilter {
                app_id: Some(app.id),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].action, "delete");
        assert_eq!(h[1].to_json()["currency"], "credits");
        // Deleting the app takes its prices with it; the history stays.
        s.put_app_price(app.id, &price).unwrap();
        s.delete_app(app.id).unwrap();
        assert!(s.list_app_prices(None).unwrap().is_empty());
    }
}
