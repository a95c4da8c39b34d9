//! The console's overview on Postgres: totals, series and top lists from the hourly
//! rollup; latency and time to first byte percentiles from the call log.

use super::PgStores;
use crate::store::overview::{hours, Overview, OverviewQuery, Point, Top, Totals, TOP};
use crate::store::traits::Result;

impl PgStores {
    pub(in crate::store) async fn overview_pg(&self, q: &OverviewQuery) -> Result<Overview> {
        let span = q.until.saturating_sub(q.since).max(0);
        let prev = OverviewQuery {
            since: q.since.saturating_sub(span),
            until: q.since,
            ..*q
        };
        Ok(Overview {
            totals: self.totals(q).await?,
            previous: self.totals(&prev).await?,
            series: self.series(q).await?,
            top_models: self.top(q, false).await?,
            top_apps: self.top(q, true).await?,
        })
    }

    async fn totals(&self, q: &OverviewQuery) -> Result<Totals> {
        let c = self.client().await?;
        let (h0, h1) = hours(q.since, q.until);
        let r = c
            .query_one(
                "SELECT coalesce(sum(calls), 0)::BIGINT, coalesce(sum(errors), 0)::BIGINT,
                    coalesce(sum(input_tokens), 0)::BIGINT, coalesce(sum(output_tokens), 0)::BIGINT,
                    coalesce(sum(cost_micros), 0)::BIGINT
                 FROM usage_hourly WHERE hour >= $1 AND hour < $2 AND ($3::BIGINT IS NULL OR app_id = $3)",
                &[&h0, &h1, &q.app_id],
            )
            .await?;
        // Nearest rank, as on SQLite: percentile_disc is the ceil(p·n)-th value.
        let p = c
            .query_one(
                "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms),
                        percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms),
                        percentile_disc(0.5) WITHIN GROUP (ORDER BY ttfb_ms),
                        percentile_disc(0.95) WITHIN GROUP (ORDER BY ttfb_ms)
                 FROM model_calls WHERE created_at >= $1 AND created_at < $2
                    AND ($3::BIGINT IS NULL OR app_id = $3)",
                &[&q.since, &q.until, &q.app_id],
            )
            .await?;
        Ok(Totals {
            calls: r.get(0),
            errors: r.get(1),
            input_tokens: r.get(2),
            output_tokens: r.get(3),
            cost_micros: r.get(4),
            latency_p50_ms: p.get(0),
            latency_p95_ms: p.get(1),
            ttfb_p50_ms: p.get(2),
            ttfb_p95_ms: p.get(3),
        })
    }

    async fn series(&self, q: &OverviewQuery) -> Result<Vec<Point>> {
        let c = self.client().await?;
        let (h0, h1) = hours(q.since, q.until);
        let b = q.bucket_s.max(3600);
        let mut points: Vec<Point> = c
            .query(
                "SELECT (hour / $4) * $4 AS t, sum(calls)::BIGINT, sum(errors)::BIGINT,
                        sum(input_tokens + output_tokens)::BIGINT, sum(cost_micros)::BIGINT
                 FROM usage_hourly WHERE hour >= $1 AND hour < $2 AND ($3::BIGINT IS NULL OR app_id = $3)
                 GROUP BY t ORDER BY t",
                &[&h0, &h1, &q.app_id, &b],
            )
            .await?
            .iter()
            .map(|r| Point {
                t: r.get(0),
                calls: r.get(1),
                errors: r.get(2),
                tokens: r.get(3),
                cost_micros: r.get(4),
                latency_avg_ms: None,
                ttfb_avg_ms: None,
            })
            .collect();
        let lat = c
            .query(
                "SELECT ((created_at / 1000) / $4) * $4 AS t, avg(latency_ms)::FLOAT8, avg(ttfb_ms)::FLOAT8
                 FROM model_calls WHERE created_at >= $1 AND created_at < $2
                 AND ($3::BIGINT IS NULL OR app_id = $3) GROUP BY t",
                &[&q.since, &q.until, &q.app_id, &b],
            )
            .await?;
        for r in lat {
            let t: i64 = r.get(0);
            if let Some(p) = points.iter_mut().find(|p| p.t == t) {
                p.latency_avg_ms = r.get(1);
                p.ttfb_avg_ms = r.get(2);
            }
        }
        Ok(points)
    }

    async fn top(&self, q: &OverviewQuery, apps: bool) -> Result<Vec<Top>> {
        let c = self.client().await?;
        let (h0, h1) = hours(q.since, q.until);
        let (key, text_key, int_key, name, join) = if apps {
            (
                "u.app_id",
                "NULL::TEXT",
                "u.app_id",
                "max(a.name)",
                "LEFT JOIN apps a ON a.id = u.app_id",
            )
        } else {
            ("u.model", "u.model", "NULL::BIGINT", "NULL::TEXT", "")
        };
        let sql = format!(
            "SELECT {text_key}, {int_key}, {name}, sum(u.calls)::BIGINT, sum(u.errors)::BIGINT,
                    sum(u.input_tokens + u.output_tokens)::BIGINT, sum(u.cost_micros)::BIGINT
             FROM usage_hourly u {join}
             WHERE u.hour >= $1 AND u.hour < $2 AND ($3::BIGINT IS NULL OR u.app_id = $3)
             GROUP BY {key} ORDER BY sum(u.calls) DESC, {key} LIMIT $4"
        );
        let rows = c.query(&sql, &[&h0, &h1, &q.app_id, &TOP]).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let text: Option<String> = r.get(0);
                let int: Option<i64> = r.get(1);
                Top {
                    key: match (text, int) {
                        (Some(t), _) => t.into(),
                        (None, Some(i)) => i.into(),
                        _ => serde_json::Value::Null,
                    },
                    app_name: r.get(2),
                    calls: r.get(3),
                    errors: r.get(4),
                    tokens: r.get(5),
                    cost_micros: r.get(6),
                }
            })
            .collect())
    }
}
