//! Spend caps per app and per app key, and the spend they are checked against: an app's
//! from the hourly usage rollup, a key's from its daily rollup (written with the calls).

use super::limits::Scope;
use super::{now_ms, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use std::collections::HashMap;

/// A spend cap in micro-USD per UTC day and per UTC month; `None`: no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub daily_micros: Option<i64>,
    pub monthly_micros: Option<i64>,
}

impl Budget {
    pub fn is_empty(&self) -> bool {
        self.daily_micros.is_none() && self.monthly_micros.is_none()
    }
}

/// Every stored budget: (per app, per key).
pub type StoredBudgets = (HashMap<i64, Budget>, HashMap<i64, Budget>);

pub(in crate::store) fn table_of(scope: Scope) -> (&'static str, &'static str, i64) {
    match scope {
        Scope::App(app) => ("app_budgets", "app_id", app),
        Scope::Key(_, key) => ("key_budgets", "key_id", key),
    }
}

impl Store {
    fn scope_exists(&self, scope: Scope) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let found: Option<i64> = match scope {
            Scope::App(app) => conn
                .query_row("SELECT id FROM apps WHERE id = ?1", [app], |r| r.get(0))
                .optional()?,
            Scope::Key(app, key) => conn
                .query_row(
                    "SELECT id FROM app_keys WHERE id = ?1 AND app_id = ?2",
                    params![key, app],
                    |r| r.get(0),
                )
                .optional()?,
        };
        found.map(|_| ()).ok_or_else(|| match scope {
            Scope::App(app) => StoreError::NotFound(format!("app {app}")),
            Scope::Key(app, key) => StoreError::NotFound(format!("key {key} of app {app}")),
        })
    }

    /// The scope's budget (none set: empty); 404 when the app or key does not exist.
    pub fn get_budget(&self, scope: Scope) -> Result<Budget, StoreError> {
        self.scope_exists(scope)?;
        let (table, column, id) = table_of(scope);
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                &format!("SELECT daily_micros, monthly_micros FROM {table} WHERE {column} = ?1"),
                [id],
                |r| {
                    Ok(Budget {
                        daily_micros: r.get(0)?,
                        monthly_micros: r.get(1)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    /// Replaces the scope's budget (an empty one deletes the row).
    pub fn put_budget(&self, scope: Scope, budget: Budget) -> Result<Budget, StoreError> {
        if [budget.daily_micros, budget.monthly_micros]
            .iter()
            .flatten()
            .any(|v| *v < 0)
        {
            return Err(StoreError::invalid("budget", "caps must not be negative"));
        }
        self.scope_exists(scope)?;
        let (table, column, id) = table_of(scope);
        let conn = self.conn()?;
        if budget.is_empty() {
            conn.execute(&format!("DELETE FROM {table} WHERE {column} = ?1"), [id])?;
        } else {
            conn.execute(
                &format!(
                    "INSERT INTO {table} ({column}, daily_micros, monthly_micros, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT ({column}) DO UPDATE SET daily_micros = excluded.daily_micros,
                        monthly_micros = excluded.monthly_micros, updated_at = excluded.updated_at"
                ),
                params![id, budget.daily_micros, budget.monthly_micros, now_ms()],
            )?;
        }
        Ok(budget)
    }

    pub fn all_budgets(&self) -> Result<StoredBudgets, StoreError> {
        let conn = self.conn()?;
        let read = |sql: &str| -> Result<HashMap<i64, Budget>, StoreError> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Budget {
                        daily_micros: r.get(1)?,
                        monthly_micros: r.get(2)?,
                    },
                ))
            })?;
            Ok(rows.collect::<Result<HashMap<_, _>, _>>()?)
        };
        Ok((
            read("SELECT app_id, daily_micros, monthly_micros FROM app_budgets")?,
            read("SELECT key_id, daily_micros, monthly_micros FROM key_budgets")?,
        ))
    }

    /// What the scope has spent (micro-USD, the recorded cost) since `since_ms`, which
    /// must be the start of a UTC hour (app) or day (key) to count whole rollup rows.
    pub fn spent_since(&self, scope: Scope, since_ms: i64) -> Result<i64, StoreError> {
        let conn = self.conn()?;
        let since_s = since_ms.div_euclid(1000);
        let spent: Option<i64> = match scope {
            Scope::App(app) => conn
                .prepare_cached(
                    "SELECT sum(cost_micros) FROM usage_hourly WHERE app_id = ?1 AND hour >= ?2",
                )?
                .query_row(params![app, since_s], |r| r.get(0))?,
            Scope::Key(_, key) => conn
                .prepare_cached(
                    "SELECT sum(cost_micros) FROM key_usage_daily WHERE key_id = ?1 AND day >= ?2",
                )?
                .query_row(params![key, since_s], |r| r.get(0))?,
        };
        Ok(spent.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;

    #[test]
    fn budgets_are_kept_per_app_and_key_and_an_empty_one_deletes() {
        let (_d, s) = test_store();
        let app = s.create_app("a").unwrap().id;
        let (key, _) = s.create_key(app, None).unwrap();
        let b = Budget {
            daily_micros: Some(5),
            monthly_micros: None,
        };
        assert_eq!(s.put_budget(Scope::App(app), b).unwrap(), b);
        assert_eq!(s.get_budget(Scope::App(app)).unwrap(), b);
        s.put_budget(Scope::Key(app, key.id), b).unwrap();
        let (apps, keys) = s.all_budgets().unwrap();
        assert_eq!((apps[&app], keys[&key.id]), (b, b));
        s.put_budget(Scope::App(app), Budget::default()).unwrap();
        assert!(s.all_budgets().unwrap().0.is_empty());
        assert!(matches!(
            s.get_budget(Scope::Key(app + 1, key.id)),
            Err(StoreError::NotFound(_))
        ));
        assert!(s
            .put_budget(
                Scope::App(app),
                Budget {
                    daily_micros: Some(-1),
                    monthly_micros: None
                }
            )
            .is_err());
    }
}
