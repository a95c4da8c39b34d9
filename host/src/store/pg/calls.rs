//! The call log on Postgres: the writer's batch (records, charges, rollups, last use,
//! balance alerts) in one transaction of set-based statements (`unnest` arrays, never a
//! round trip per call), and the call log read back.

use super::credits::{flush, load_books};
use super::{Conditions, PgDb, PgStores};
use crate::store::calls::{
    CallFilter, CallRecord, CallRow, CallStatus, ExportWindow, Sums, CALL_COLUMNS,
};
use crate::store::overview::{Overview, OverviewQuery};
use crate::store::traits::{CallQueries, CallSink, Result};
use crate::store::usage::{GroupBy, UsageFilter, UsageRow};
use crate::store::{now_ms, StoreError};
use async_trait::async_trait;
use std::collections::BTreeMap;
use tokio_postgres::Row;

/// The writer thread's handle on Postgres: it blocks on the server's runtime for each
/// batch (the writer is a plain thread, never a runtime worker).
pub struct PgSink {
    db: PgDb,
    handle: Option<tokio::runtime::Handle>,
}

impl PgSink {
    /// Call inside the runtime the pool's connections run on.
    pub fn new(db: PgDb) -> PgSink {
        PgSink {
            db,
            handle: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

impl CallSink for PgSink {
    fn write_calls(&self, batch: &[CallRecord]) -> Result<()> {
        match &self.handle {
            Some(h) => h.block_on(self.db.write_calls(batch)),
            None => Err(StoreError::Task(
                "the call log was started outside the server's runtime".into(),
            )),
        }
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgDb {
    /// One transaction: the records, their charges and balance alerts, the hourly and
    /// per-key daily rollups, and key/credential last use.
    pub async fn write_calls(&self, batch: &[CallRecord]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Ids up front, so charges can name their calls without relying on RETURNING order.
        let mut ids: Vec<i64> = tx
            .query(
                "SELECT nextval(pg_get_serial_sequence('model_calls', 'id')) FROM generate_series(1, $1::BIGINT)",
                &[&(batch.len() as i64)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.sort_unstable();
        if ids.len() != batch.len() {
            return Err(StoreError::Task(
                "the database handed out too few call ids".into(),
            ));
        }

        let n = batch.len();
        let mut request_id = Vec::with_capacity(n);
        let mut app_id = Vec::with_capacity(n);
        let mut provider = Vec::with_capacity(n);
        let mut model = Vec::with_capacity(n);
        let mut credential_id = Vec::with_capacity(n);
        let mut endpoint = Vec::with_capacity(n);
        let mut stream = Vec::with_capacity(n);
        let mut status = Vec::with_capacity(n);
        let mut http_status = Vec::with_capacity(n);
        let mut error_class = Vec::with_capacity(n);
        let mut error_message = Vec::with_capacity(n);
        let mut input = Vec::with_capacity(n);
        let mut output = Vec::with_capacity(n);
        let mut cached = Vec::with_capacity(n);
        let mut cost = Vec::with_capacity(n);
        let mut latency = Vec::with_capacity(n);
        let mut ttfb = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut tried = Vec::with_capacity(n);
        let mut requested = Vec::with_capacity(n);
        let mut format = Vec::with_capacity(n);
        let mut cache_hit = Vec::with_capacity(n);

        // Sorted maps: every instance takes the rollup rows' locks in one order.
        let mut rollup: BTreeMap<(i64, &str, &str, i64), Sums> = BTreeMap::new();
        let mut keys: BTreeMap<i64, i64> = BTreeMap::new();
        let mut key_days: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
        let mut creds: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for r in batch {
            request_id.push(r.request_id.as_str());
            app_id.push(r.app_id);
            provider.push(r.provider.as_str());
            model.push(r.model.as_str());
            credential_id.push(r.credential_id);
            endpoint.push(r.endpoint);
            stream.push(r.stream);
            status.push(r.status.as_str());
            http_status.push(i64::from(r.http_status));
            error_class.push(r.error_class.as_deref());
            error_message.push(r.error_message.as_deref());
            input.push(clamp_i64(r.input_tokens));
            output.push(clamp_i64(r.output_tokens));
            cached.push(clamp_i64(r.cached_tokens));
            cost.push(r.cost_micros);
            latency.push(clamp_i64(r.latency_ms));
            ttfb.push(r.ttfb_ms.map(clamp_i64));
            attempts.push(i64::from(r.attempts));
            created.push(r.created_at);
            tried.push(
                (!r.credentials_tried.is_empty())
                    .then(|| serde_json::json!(r.credentials_tried.as_slice()).to_string()),
            );
            requested.push(r.requested_model.as_deref());
            format.push(r.format);
            cache_hit.push(r.cache_hit);

            let hour = r.created_at.div_euclid(3_600_000) * 3600;
            let s = rollup
                .entry((
                    r.app_id.unwrap_or(0),
                    r.provider.as_str(),
                    r.model.as_str(),
                    hour,
                ))
                .or_default();
            s.calls += 1;
            s.errors += (r.status != CallStatus::Ok) as i64;
            s.input = s.input.saturating_add(clamp_i64(r.input_tokens));
            s.output = s.output.saturating_add(clamp_i64(r.output_tokens));
            s.cached = s.cached.saturating_add(clamp_i64(r.cached_tokens));
            s.cost = s.cost.saturating_add(r.cost_micros);
            if let Some(k) = r.key_id {
                let t = keys.entry(k).or_insert(0);
                *t = (*t).max(r.created_at);
                let day = r.created_at.div_euclid(86_400_000) * 86_400;
                let d = key_days.entry((k, day)).or_insert((0, 0));
                d.0 += 1;
                d.1 = d.1.saturating_add(r.cost_micros);
            }
            if let Some(cr) = r.credential_id {
                let e = creds.entry(cr).or_insert((0, 0));
                e.0 = e.0.max(r.created_at);
                e.1 += 1;
            }
        }
        tx.execute(
            "INSERT INTO model_calls (id, request_id, app_id, provider, model, credential_id, endpoint, stream, status,
                http_status, error_class, error_message, input_tokens, output_tokens, cached_tokens, cost_micros,
                latency_ms, ttfb_ms, attempts, created_at, credentials_tried, requested_model, format, cache_hit)
             SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[],
                $7::TEXT[], $8::BOOL[], $9::TEXT[], $10::BIGINT[], $11::TEXT[], $12::TEXT[], $13::BIGINT[],
                $14::BIGINT[], $15::BIGINT[], $16::BIGINT[], $17::BIGINT[], $18::BIGINT[], $19::BIGINT[],
                $20::BIGINT[], $21::TEXT[], $22::TEXT[], $23::TEXT[], $24::BOOL[])",
            &[
                &ids, &request_id, &app_id, &provider, &model, &credential_id, &endpoint, &stream,
                &status, &http_status, &error_class, &error_message, &input, &output, &cached, &cost,
                &latency, &ttfb, &attempts, &created, &tried, &requested, &format, &cache_hit,
            ],
        )
        .await?;

        // Charges, in the records' order, each exactly once (the unique index guards it).
        let charged: Vec<i64> = batch
            .iter()
            .filter(|r| r.charge_nanos > 0)
            .filter_map(|r| r.app_id)
            .collect();
        if !charged.is_empty() {
            let mut books = load_books(&tx, &charged).await?;
            let (mut a_event, mut a_data) = (Vec::new(), Vec::new());
            for (r, id) in batch.iter().zip(&ids) {
                let (Some(app), true) = (r.app_id, r.charge_nanos > 0) else {
                    continue;
                };
                // An app deleted since the call is not charged.
                let Some(book) = books.get_mut(&app) else {
                    continue;
                };
                let (before, after) = book.charge(*id, r.charge_nanos, now);
                for event in self.charge_alerts.crossed(before, after) {
                    a_event.push(event);
                    a_data.push(
                        serde_json::json!({
                            "app_id": app,
                            "balance": crate::billing::format_nanos(after),
                            "balance_nanos": after,
                        })
                        .to_string(),
                    );
                }
            }
            let mut ordered: Vec<_> = books.values().collect();
            ordered.sort_by_key(|b| b.app_id);
            flush(&tx, ordered, now).await?;
            if !a_event.is_empty() {
                tx.execute(
                    "INSERT INTO alert_outbox (event, data, next_attempt_at, created_at)
                     SELECT e, d, $3::BIGINT, $3::BIGINT FROM unnest($1::TEXT[], $2::TEXT[]) WITH ORDINALITY AS v(e, d, o)
                     ORDER BY o",
                    &[&a_event, &a_data, &now],
                )
                .await?;
            }
        }
        // The calls' shared holds go with their charges: another instance locking the
        // balance sees both or neither.
        let holds: Vec<i64> = batch.iter().filter_map(|r| r.hold_id).collect();
        if !holds.is_empty() {
            tx.execute("DELETE FROM credit_holds WHERE id = ANY($1)", &[&holds])
                .await?;
        }

        let mut u_app = Vec::with_capacity(rollup.len());
        let mut u_provider = Vec::with_capacity(rollup.len());
        let mut u_model = Vec::with_capacity(rollup.len());
        let mut u_hour = Vec::with_capacity(rollup.len());
        let mut u = [(); 6].map(|_| Vec::with_capacity(rollup.len()));
        for ((app, provider, model, hour), s) in &rollup {
            u_app.push(*app);
            u_provider.push(*provider);
            u_model.push(*model);
            u_hour.push(*hour);
            for (col, v) in u
                .iter_mut()
                .zip([s.calls, s.errors, s.input, s.output, s.cached, s.cost])
            {
                col.push(v);
            }
        }
        tx.execute(
            "INSERT INTO usage_hourly AS t (app_id, provider, model, hour, calls, errors, input_tokens,
                output_tokens, cached_tokens, cost_micros)
             SELECT a, p, m, h, c, e, i, o, ca, co FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[],
                $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::BIGINT[])
                WITH ORDINALITY AS v(a, p, m, h, c, e, i, o, ca, co, ord) ORDER BY ord
             ON CONFLICT (app_id, provider, model, hour) DO UPDATE SET
                calls = t.calls + excluded.calls, errors = t.errors + excluded.errors,
                input_tokens = t.input_tokens + excluded.input_tokens,
                output_tokens = t.output_tokens + excluded.output_tokens,
                cached_tokens = t.cached_tokens + excluded.cached_tokens,
                cost_micros = t.cost_micros + excluded.cost_micros",
            &[
                &u_app, &u_provider, &u_model, &u_hour, &u[0], &u[1], &u[2], &u[3], &u[4], &u[5],
            ],
        )
        .await?;

        if !keys.is_empty() {
            let (k_id, k_at): (Vec<i64>, Vec<i64>) = keys.into_iter().unzip();
            tx.execute(
                "UPDATE app_keys k SET last_used_at = greatest(coalesce(k.last_used_at, 0), v.at)
                 FROM unnest($1::BIGINT[], $2::BIGINT[]) AS v(id, at) WHERE k.id = v.id",
                &[&k_id, &k_at],
            )
            .await?;
            let mut d_key = Vec::with_capacity(key_days.len());
            let mut d_day = Vec::with_capacity(key_days.len());
            let mut d_calls = Vec::with_capacity(key_days.len());
            let mut d_cost = Vec::with_capacity(key_days.len());
            for ((k, day), (calls, cost)) in key_days {
                d_key.push(k);
                d_day.push(day);
                d_calls.push(calls);
                d_cost.push(cost);
            }
            tx.execute(
                "INSERT INTO key_usage_daily AS t (key_id, day, calls, cost_micros)
                 SELECT k, d, c, co FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[])
                    WITH ORDINALITY AS v(k, d, c, co, ord) ORDER BY ord
                 ON CONFLICT (key_id, day) DO UPDATE SET calls = t.calls + excluded.calls,
                    cost_micros = t.cost_micros + excluded.cost_micros",
                &[&d_key, &d_day, &d_calls, &d_cost],
            )
            .await?;
        }
        if !creds.is_empty() {
            let mut c_id = Vec::with_capacity(creds.len());
            let mut c_at = Vec::with_capacity(creds.len());
            let mut c_n = Vec::with_capacity(creds.len());
            for (id, (at, n)) in creds {
                c_id.push(id);
                c_at.push(at);
                c_n.push(n);
            }
            tx.execute(
                "UPDATE credentials c SET last_used_at = greatest(coalesce(c.last_used_at, 0), v.at),
                    use_count = c.use_count + v.n
                 FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS v(id, at, n) WHERE c.id = v.id",
                &[&c_id, &c_at, &c_n],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn call_row(r: &Row) -> CallRow {
    CallRow {
        id: r.get(0),
        request_id: r.get(1),
        app_id: r.get(2),
        provider: r.get(3),
        model: r.get(4),
        credential_id: r.get(5),
        endpoint: r.get(6),
        stream: r.get(7),
        status: r.get(8),
        http_status: r.get(9),
        error_class: r.get(10),
        error_message: r.get(11),
        input_tokens: r.get(12),
        output_tokens: r.get(13),
        cached_tokens: r.get(14),
        cost_micros: r.get(15),
        latency_ms: r.get(16),
        ttfb_ms: r.get(17),
        attempts: r.get(18),
        created_at: r.get(19),
        credentials_tried: r.get(20),
        requested_model: r.get(21),
        format: r.get(22),
        cache_hit: r.get(23),
    }
}

/// The `WHERE` clause of a call filter.
fn conditions(f: &CallFilter) -> Conditions {
    let mut w = Conditions::new();
    if let Some(a) = f.app_id {
        w.push("app_id =", a);
    }
    for (clause, v) in [
        ("provider =", &f.provider),
        ("model =", &f.model),
        ("status =", &f.status),
        ("request_id =", &f.request_id),
    ] {
        if let Some(v) = v {
            w.push(clause, v.clone());
        }
    }
    for (clause, v) in [
        ("created_at >=", f.since),
        ("created_at <", f.until),
        ("id <", f.cursor),
        ("id >=", f.min_id),
    ] {
        if let Some(v) = v {
            w.push(clause, v);
        }
    }
    w
}

impl PgStores {
    pub(in crate::store) async fn list_calls_pg(
        &self,
        f: &CallFilter,
    ) -> Result<(Vec<CallRow>, Option<i64>)> {
        let w = conditions(f);
        let limit = f.limit.clamp(1, 1000);
        let sql = format!(
            "SELECT {} FROM model_calls{} ORDER BY id DESC LIMIT {}",
            CALL_COLUMNS.join(", "),
            w.sql,
            limit + 1
        );
        let c = self.client().await?;
        let rows: Vec<CallRow> = c
            .query(&sql, &w.params())
            .await?
            .iter()
            .map(call_row)
            .collect();
        Ok(super::page(rows, limit, |r| r.id))
    }

    /// Both bounds in one snapshot (REPEATABLE READ), like SQLite's read transaction.
    pub(in crate::store) async fn call_export_window_pg(
        &self,
        f: &CallFilter,
    ) -> Result<ExportWindow> {
        let w = conditions(f);
        let mut c = self.client().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let top: Option<i64> = tx
            .query_opt(
                &format!(
                    "SELECT id FROM model_calls{} ORDER BY id DESC LIMIT 1",
                    w.sql
                ),
                &w.params(),
            )
            .await?
            .map(|r| r.get(0));
        let offset = f.limit.max(1) - 1;
        let ids: Vec<i64> = tx
            .query(
                &format!(
                    "SELECT id FROM model_calls{} ORDER BY id DESC LIMIT 2 OFFSET {offset}",
                    w.sql
                ),
                &w.params(),
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.commit().await?;
        Ok(ExportWindow {
            top,
            next_cursor: (ids.len() == 2).then(|| ids[0]),
        })
    }
}

#[async_trait]
impl CallQueries for PgStores {
    async fn list_calls(&self, filter: CallFilter) -> Result<(Vec<CallRow>, Option<i64>)> {
        self.list_calls_pg(&filter).await
    }
    async fn call_export_window(&self, filter: CallFilter) -> Result<ExportWindow> {
        self.call_export_window_pg(&filter).await
    }
    async fn usage(&self, group: GroupBy, filter: UsageFilter) -> Result<Vec<UsageRow>> {
        self.usage_pg(group, &filter).await
    }
    async fn overview(&self, q: OverviewQuery) -> Result<Overview> {
        self.overview_pg(&q).await
    }
}
