//! Usage reports from the hourly rollup.

use super::{Store, StoreError};
use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    App,
    Provider,
    Model,
    Hour,
    Day,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "app" => GroupBy::App,
            "provider" => GroupBy::Provider,
            "model" => GroupBy::Model,
            "hour" => GroupBy::Hour,
            "day" => GroupBy::Day,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UsageRow {
    /// App id, provider prefix, model name, or the bucket's start (Unix seconds).
    pub key: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    pub calls: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_micros: i64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub app_id: Option<i64>,
    /// Unix ms; rounded down to the hour (the rollup's resolution).
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl GroupBy {
    /// The `usage_hourly u` expression a report groups by, and the join it needs (the
    /// same SQL on both stores).
    pub(crate) fn rollup_key(self) -> (&'static str, &'static str) {
        match self {
            GroupBy::App => ("u.app_id", "LEFT JOIN apps a ON a.id = u.app_id"),
            GroupBy::Provider => ("u.provider", ""),
            GroupBy::Model => ("u.model", ""),
            GroupBy::Hour => ("u.hour", ""),
            GroupBy::Day => ("(u.hour / 86400) * 86400", ""),
        }
    }
}

impl Store {
    pub fn usage(&self, group: GroupBy, f: &UsageFilter) -> Result<Vec<UsageRow>, StoreError> {
        let (key, join) = group.rollup_key();
        let name = if group == GroupBy::App {
            "max(a.name)"
        } else {
            "NULL"
        };
        let mut sql = format!(
            "SELECT {key}, {name}, sum(u.calls), sum(u.errors), sum(u.input_tokens), sum(u.output_tokens),
                    sum(u.cached_tokens), sum(u.cost_micros)
             FROM usage_hourly u {join} WHERE 1 = 1"
        );
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(a) = f.app_id {
            args.push(a.into());
            sql.push_str(&format!(" AND u.app_id = ?{}", args.len()));
        }
        if let Some(s) = f.since {
            args.push((s.div_euclid(3_600_000) * 3600).into());
            sql.push_str(&format!(" AND u.hour >= ?{}", args.len()));
        }
        if let Some(u) = f.until {
            args.push((u.div_euclid(1000)).into());
            sql.push_str(&format!(" AND u.hour < ?{}", args.len()));
        }
        sql.push_str(&format!(" GROUP BY {key} ORDER BY {key}"));
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                let key: SqlValue = r.get(0)?;
                let cost: i64 = r.get(7)?;
                Ok(UsageRow {
                    key: match key {
                        SqlValue::Integer(i) => i.into(),
                        SqlValue::Text(t) => t.into(),
                        _ => serde_json::Value::Null,
                    },
                    app_name: r.get(1)?,
                    calls: r.get(2)?,
                    errors: r.get(3)?,
                    input_tokens: r.get(4)?,
                    output_tokens: r.get(5)?,
                    cached_tokens: r.get(6)?,
                    cost_micros: cost,
                    cost_usd: cost as f64 / 1e6,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::calls::sample;
    use crate::store::test_store;

    #[test]
    fn groups_sum_the_log() {
        let (_d, s) = test_store();
        let h = 1_700_000_000_000 / 3_600_000 * 3_600_000;
        let batch = vec![
            sample(1, "echo/echo-1", true, h),
            sample(1, "openai/gpt-4o", false, h + 10),
            sample(2, "echo/echo-1", true, h + 3_600_000),
        ];
        s.write_calls(&batch).unwrap();
        let by_app = s.usage(GroupBy::App, &UsageFilter::default()).unwrap();
        assert_eq!(by_app.len(), 2);
        assert_eq!(by_app[0].calls, 2);
        assert_eq!(by_app[0].errors, 1);
        let by_model = s.usage(GroupBy::Model, &UsageFilter::default()).unwrap();
        assert_eq!(by_model[0].key, "echo/echo-1");
        assert_eq!(by_model[0].input_tokens, 20);
        let by_hour = s
            .usage(
                GroupBy::Hour,
                &UsageFilter {
                    since: Some(h + 1),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(by_hour.len(), 2, "since rounds down to the hour");
        let later = s
            .usage(
                GroupBy::Day,
                &UsageFilter {
                    since: Some(h + 3_600_000),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(later.iter().map(|r| r.calls).sum::<i64>(), 1);
    }
}
