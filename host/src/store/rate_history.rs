//! The history of every rate and app-price change: one row per change, written in the
//! change's own transaction by the functions that make it (so a change without its row,
//! or a row without its change, cannot be committed).

use super::rates::{rate_row, Rate, PRICE_FIELDS};
use super::{Store, StoreError};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection};

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Put,
    Delete,
    Import,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Put => "put",
            Action::Delete => "delete",
            Action::Import => "import",
        }
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub id: i64,
    pub model: String,
    /// `None`: the model's rate (micro-USD); else this app's explicit price (micro-credits).
    pub app_id: Option<i64>,
    /// `put`, `delete` or `import`.
    pub action: String,
    /// The prices after the change; `None` after a delete.
    pub prices: Option<Rate>,
    pub note: Option<String>,
    pub created_at: i64,
}

impl HistoryEntry {
    /// The API's shape: every price field, `null` after a delete.
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("id".into(), self.id.into());
        o.insert("model".into(), self.model.clone().into());
        o.insert("app_id".into(), self.app_id.into());
        o.insert(
            "currency".into(),
            if self.app_id.is_some() {
                "credits"
            } else {
                "usd"
            }
            .into(),
        );
        o.insert("action".into(), self.action.clone().into());
        let prices = self.prices.as_ref().map(Rate::prices);
        for (i, field) in PRICE_FIELDS.iter().enumerate() {
            let v = prices.and_then(|p| p[i]);
            o.insert((*field).into(), v.into());
        }
        o.insert("note".into(), self.note.clone().into());
        o.insert("created_at".into(), self.created_at.into());
        serde_json::Value::Object(o)
    }
}

#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub model: Option<String>,
    pub app_id: Option<i64>,
    /// Entries older than this id (the previous page's `next_cursor`).
    pub cursor: Option<i64>,
    pub limit: usize,
}

/// Appends a change's row; called inside the change's transaction.
pub(super) fn record(
    conn: &Connection,
    app_id: Option<i64>,
    model: &str,
    action: Action,
    after: Option<&Rate>,
    note: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let p = after.map(Rate::prices).unwrap_or_default();
    conn.execute(
        "INSERT INTO rate_history (model, app_id, action, input_per_mtok_micros, output_per_mtok_micros,
            cached_per_mtok_micros, cache_write_per_mtok_micros, per_image_micros, per_second_micros,
            per_mchar_micros, note, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            model,
            app_id,
            action.as_str(),
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            p[5],
            p[6],
            note,
            now
        ],
    )?;
    Ok(())
}

impl Store {
    /// Newest first; the next page's cursor when there are more.
    pub fn rate_history(
        &self,
        f: &HistoryFilter,
    ) -> Result<(Vec<HistoryEntry>, Option<i64>), StoreError> {
        let mut sql = String::from(
            "SELECT id, app_id, action, note, created_at, model, input_per_mtok_micros, output_per_mtok_micros,
                cached_per_mtok_micros, cache_write_per_mtok_micros, per_image_micros, per_second_micros,
                per_mchar_micros, created_at
             FROM rate_history WHERE 1 = 1",
        );
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(m) = &f.model {
            args.push(m.clone().into());
            sql.push_str(&format!(" AND model = ?{}", args.len()));
        }
        for (clause, v) in [("app_id =", f.app_id), ("id <", f.cursor)] {
            if let Some(v) = v {
                args.push(v.into());
                sql.push_str(&format!(" AND {clause} ?{}", args.len()));
            }
        }
        let limit = f.limit.clamp(1, 1000);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt
            .query_map(params_from_iter(args), |r| {
                let action: String = r.get(2)?;
                // A row's input price is NULL exactly when it records a delete.
                let priced = r.get::<_, Option<i64>>(6)?.is_some();
                Ok(HistoryEntry {
                    id: r.get(0)?,
                    app_id: r.get(1)?,
                    note: r.get(3)?,
                    created_at: r.get(4)?,
                    model: r.get(5)?,
                    prices: if priced { Some(rate_row(r, 5)?) } else { None },
                    action,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok((rows, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;

    #[test]
    fn history_pages_newest_first_and_filters_by_model() {
        let (_d, s) = test_store();
        for i in 0..5 {
            let model = if i % 2 == 0 { "a/x" } else { "b/y" };
            s.put_rate(&Rate {
                model: model.into(),
                input_per_mtok_micros: i,
                ..Rate::default()
            })
            .unwrap();
        }
        let page = |cursor, model: Option<&str>| {
            s.rate_history(&HistoryFilter {
                model: model.map(String::from),
                cursor,
                limit: 2,
                ..Default::default()
            })
            .unwrap()
        };
        let (first, next) = page(None, None);
        assert_eq!(
            first
                .iter()
                .map(|e| e.prices.as_ref().unwrap().input_per_mtok_micros)
                .collect::<Vec<_>>(),
            [4, 3]
        );
        let (second, next) = page(next, None);
        assert_eq!(second.len(), 2);
        let (third, next) = page(next, None);
        assert_eq!((third.len(), next), (1, None));
        let (only_a, _) = page(None, Some("a/x"));
        assert!(only_a.iter().all(|e| e.model == "a/x"));
        let v = first[0].to_json();
        assert_eq!(v["currency"], "usd");
        assert_eq!(v["cache_write_per_mtok_micros"], serde_json::Value::Null);
        assert_eq!(v["input_per_mtok_micros"], 4);
    }
}
