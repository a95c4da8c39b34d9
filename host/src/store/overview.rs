//! The console's overview: one period's totals, a time series, the top models and apps,
//! and latency percentiles, all computed here so the browser never gets raw call rows.
//! Counts, tokens and cost come from the hourly rollup; latency and time to first byte
//! (not in the rollup) from the call log over the period, through its time index.

use super::{Store, StoreError};
use rusqlite::params;
use serde::Serialize;

/// Rows the top lists return.
pub(in crate::store) const TOP: i64 = 10;

#[derive(Debug, Clone, Copy)]
pub struct OverviewQuery {
    /// Unix ms, inclusive.
    pub since: i64,
    /// Unix ms, exclusive.
    pub until: i64,
    /// Bucket width in seconds (3600 or 86400).
    pub bucket_s: i64,
    pub app_id: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub calls: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
    pub ttfb_p50_ms: Option<i64>,
    pub ttfb_p95_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// Bucket start, Unix seconds.
    pub t: i64,
    pub calls: i64,
    pub errors: i64,
    pub tokens: i64,
    pub cost_micros: i64,
    pub latency_avg_ms: Option<f64>,
    pub ttfb_avg_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Top {
    /// Model name, or app id.
    pub key: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    pub calls: i64,
    pub errors: i64,
    pub tokens: i64,
    pub cost_micros: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overview {
    pub totals: Totals,
    pub previous: Totals,
    pub series: Vec<Point>,
    pub top_models: Vec<Top>,
    pub top_apps: Vec<Top>,
}

/// The rollup's hour range for a period of Unix ms: [since's hour, until).
pub(in crate::store) fn hours(since: i64, until: i64) -> (i64, i64) {
    (since.div_euclid(3_600_000) * 3600, until.div_euclid(1000))
}

impl Store {
    pub fn overview(&self, q: &OverviewQuery) -> Result<Overview, StoreError> {
        let span = q.until.saturating_sub(q.since).max(0);
        let prev = OverviewQuery {
            since: q.since.saturating_sub(span),
            until: q.since,
            ..*q
        };
        Ok(Overview {
            totals: self.totals(q)?,
            previous: self.totals(&prev)?,
            series: self.series(q)?,
            top_models: self.top(q, false)?,
            top_apps: self.top(q, true)?,
        })
    }

    fn totals(&self, q: &OverviewQuery) -> Result<Totals, StoreError> {
        let conn = self.conn()?;
        let (h0, h1) = hours(q.since, q.until);
        let mut t = conn.query_row(
            "SELECT coalesce(sum(calls),0), coalesce(sum(errors),0), coalesce(sum(input_tokens),0),
                    coalesce(sum(output_tokens),0), coalesce(sum(cost_micros),0)
             FROM usage_hourly WHERE hour >= ?1 AND hour < ?2 AND (?3 IS NULL OR app_id = ?3)",
            params![h0, h1, q.app_id],
            |r| {
                Ok(Totals {
                    calls: r.get(0)?,
                    errors: r.get(1)?,
                    input_tokens: r.get(2)?,
                    output_tokens: r.get(3)?,
                    cost_micros: r.get(4)?,
                    ..Totals::default()
                })
            },
        )?;
        let (p50, p95) = self.percentiles(q, "latency_ms")?;
        t.latency_p50_ms = p50;
        t.latency_p95_ms = p95;
        let (p50, p95) = self.percentiles(q, "ttfb_ms")?;
        t.ttfb_p50_ms = p50;
        t.ttfb_p95_ms = p95;
        Ok(t)
    }

    /// Nearest-rank p50 and p95 of a call-log column over the period: one count and two
    /// indexed seeks into the sorted period.
    fn percentiles(
        &self,
        q: &OverviewQuery,
        column: &'static str,
    ) -> Result<(Option<i64>, Option<i64>), StoreError> {
        let conn = self.conn()?;
        let filter = format!(
            "FROM model_calls WHERE created_at >= ?1 AND created_at < ?2
             AND (?3 IS NULL OR app_id = ?3) AND {column} IS NOT NULL"
        );
        let n: i64 = conn.query_row(
            &format!("SELECT count(*) {filter}"),
            params![q.since, q.until, q.app_id],
            |r| r.get(0),
        )?;
        if n == 0 {
            return Ok((None, None));
        }
        let mut stmt = conn.prepare(&format!(
            "SELECT {column} {filter} ORDER BY {column} LIMIT 1 OFFSET ?4"
        ))?;
        let mut at = |p: i64| -> Result<Option<i64>, StoreError> {
            // Nearest rank: ceil(p/100 * n), 1-based.
            let rank = (p * n + 99) / 100;
            let offset = (rank - 1).clamp(0, n - 1);
            Ok(Some(stmt.query_row(
                params![q.since, q.until, q.app_id, offset],
                |r| r.get(0),
            )?))
        };
        Ok((at(50)?, at(95)?))
    }

    fn series(&self, q: &OverviewQuery) -> Result<Vec<Point>, StoreError> {
        let conn = self.conn()?;
        let (h0, h1) = hours(q.since, q.until);
        let b = q.bucket_s.max(3600);
        let mut stmt = conn.prepare(
            "SELECT (hour / ?4) * ?4 AS t, sum(calls), sum(errors),
                    sum(input_tokens + output_tokens), sum(cost_micros)
             FROM usage_hourly WHERE hour >= ?1 AND hour < ?2 AND (?3 IS NULL OR app_id = ?3)
             GROUP BY t ORDER BY t",
        )?;
        let mut points = stmt
            .query_map(params![h0, h1, q.app_id, b], |r| {
                Ok(Point {
                    t: r.get(0)?,
                    calls: r.get(1)?,
                    errors: r.get(2)?,
                    tokens: r.get(3)?,
                    cost_micros: r.get(4)?,
                    latency_avg_ms: None,
                    ttfb_avg_ms: None,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare(
            "SELECT ((created_at / 1000) / ?4) * ?4 AS t, avg(latency_ms), avg(ttfb_ms)
             FROM model_calls WHERE created_at >= ?1 AND created_at < ?2
             AND (?3 IS NULL OR app_id = ?3) GROUP BY t",
        )?;
        let lat = stmt
            .query_map(params![q.since, q.until, q.app_id, b], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<f64>>(1)?,
                    r.get::<_, Option<f64>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (t, l, f) in lat {
            if let Some(p) = points.iter_mut().find(|p| p.t == t) {
                p.latency_avg_ms = l;
                p.ttfb_avg_ms = f;
            }
        }
        Ok(points)
    }

    fn top(&self, q: &OverviewQuery, apps: bool) -> Result<Vec<Top>, StoreError> {
        let conn = self.conn()?;
        let (h0, h1) = hours(q.since, q.until);
        let (key, name, join) = if apps {
            (
                "u.app_id",
                "max(a.name)",
                "LEFT JOIN apps a ON a.id = u.app_id",
            )
        } else {
            ("u.model", "NULL", "")
        };
        let sql = format!(
            "SELECT {key}, {name}, sum(u.calls), sum(u.errors), sum(u.input_tokens + u.output_tokens),
                    sum(u.cost_micros)
             FROM usage_hourly u {join}
             WHERE u.hour >= ?1 AND u.hour < ?2 AND (?3 IS NULL OR u.app_id = ?3)
             GROUP BY {key} ORDER BY sum(u.calls) DESC, {key} LIMIT ?4"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt
            .query_map(params![h0, h1, q.app_id, TOP], |r| {
                let key: rusqlite::types::Value = r.get(0)?;
                Ok(Top {
                    key: match key {
                        rusqlite::types::Value::Integer(i) => i.into(),
                        rusqlite::types::Value::Text(t) => t.into(),
                        _ => serde_json::Value::Null,
                    },
                    app_name: r.get(1)?,
                    calls: r.get(2)?,
                    errors: r.get(3)?,
                    tokens: r.get(4)?,
                    cost_micros: r.get(5)?,
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
    fn totals_series_percentiles_and_previous_period() {
        let (_d, s) = test_store();
        let hour = 3_600_000;
        let base = 1_700_000_000_000i64.div_euclid(hour) * hour;
        let mut batch = Vec::new();
        for i in 0..20 {
            let mut r = sample(1, "echo/echo-1", i % 10 != 0, base + i * 1000);
            r.latency_ms = (i as u64 + 1) * 10;
            batch.push(r);
        }
        batch.push(sample(1, "echo/other", true, base - hour)); // previous period
        s.write_calls(&batch).unwrap();
        let q = OverviewQuery {
            since: base,
            until: base + 2 * hour,
            bucket_s: 3600,
            app_id: None,
        };
        let o = s.overview(&q).unwrap();
        assert_eq!(o.totals.calls, 20);
        assert_eq!(o.totals.errors, 2);
        assert_eq!(o.totals.latency_p50_ms, Some(100));
        assert_eq!(o.totals.latency_p95_ms, Some(190));
        assert_eq!(o.totals.ttfb_p50_ms, Some(1));
        assert_eq!(o.previous.calls, 1);
        assert_eq!(o.series.len(), 1);
        assert_eq!(o.series[0].t, base / 1000);
        assert_eq!(o.series[0].latency_avg_ms, Some(105.0));
        assert_eq!(o.top_models[0].key, "echo/echo-1");
        assert_eq!(o.top_apps[0].key, 1);
        let empty = s
            .overview(&OverviewQuery {
                since: 0,
                until: 1000,
                bucket_s: 86400,
                app_id: Some(9),
            })
            .unwrap();
        assert_eq!(empty.totals, Totals::default());
    }
}
