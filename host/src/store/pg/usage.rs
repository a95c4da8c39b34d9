//! Usage reports from the hourly rollup on Postgres.

use super::{Conditions, PgStores};
use crate::store::traits::Result;
use crate::store::usage::{GroupBy, UsageFilter, UsageRow};

impl PgStores {
    pub(in crate::store) async fn usage_pg(
        &self,
        group: GroupBy,
        f: &UsageFilter,
    ) -> Result<Vec<UsageRow>> {
        let (key, join) = group.rollup_key();
        let name = if group == GroupBy::App {
            "max(a.name)"
        } else {
            "NULL::TEXT"
        };
        let mut w = Conditions::new();
        if let Some(a) = f.app_id {
            w.push("u.app_id =", a);
        }
        if let Some(s) = f.since {
            w.push("u.hour >=", s.div_euclid(3_600_000) * 3600);
        }
        if let Some(u) = f.until {
            w.push("u.hour <", u.div_euclid(1000));
        }
        // The key as text or a number, told apart by which column is set.
        let (text_key, int_key) = match group {
            GroupBy::Provider | GroupBy::Model => {
                (format!("{key}::TEXT"), "NULL::BIGINT".to_string())
            }
            _ => ("NULL::TEXT".to_string(), format!("({key})::BIGINT")),
        };
        let sql = format!(
            "SELECT {text_key}, {int_key}, {name}, sum(u.calls)::BIGINT, sum(u.errors)::BIGINT,
                    sum(u.input_tokens)::BIGINT, sum(u.output_tokens)::BIGINT,
                    sum(u.cached_tokens)::BIGINT, sum(u.cost_micros)::BIGINT
             FROM usage_hourly u {join}{} GROUP BY {key} ORDER BY {key}",
            w.sql
        );
        let c = self.client().await?;
        let rows = c.query(&sql, &w.params()).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let text: Option<String> = r.get(0);
                let int: Option<i64> = r.get(1);
                let cost: i64 = r.get(8);
                UsageRow {
                    key: match (text, int) {
                        (Some(t), _) => t.into(),
                        (None, Some(i)) => i.into(),
                        _ => serde_json::Value::Null,
                    },
                    app_name: r.get(2),
                    calls: r.get(3),
                    errors: r.get(4),
                    input_tokens: r.get(5),
                    output_tokens: r.get(6),
                    cached_tokens: r.get(7),
                    cost_micros: cost,
                    cost_usd: cost as f64 / 1e6,
                }
            })
            .collect())
    }
}
