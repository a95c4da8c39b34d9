//! The call log. Requests hand records to a bounded queue and never wait for the disk;
//! one writer thread commits them in batches (by size or every ~25 ms) and updates the
//! hourly usage rollup in the same transaction, so the rollup always equals the log.
//!
//! What can be lost: records still queued when the process is killed without SIGTERM
//! (about one batch window, ~25 ms of traffic, plus the batch being written), and records refused because the queue
//! was full (counted in `dropped`, logged). SIGTERM drains the queue before exit.

use super::health::StoreHealth;
use super::traits::CallSink;
use super::{Store, StoreError};
use crate::billing::Credits;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, OptionalExtension, Row};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, SendError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Larger transactions cost less per record; at ~30k calls/s one batch is ~70 ms of calls.
const BATCH_MAX: usize = 2048;
/// How long the writer lets records gather before a write.
const BATCH_WINDOW: Duration = Duration::from_millis(25);
/// No record for this long: the traffic has paused (see `IdleTrim`).
const QUIET: Duration = Duration::from_millis(100);
/// A batch buffer grown past this by a burst is let go when the writer goes idle.
const IDLE_BATCH_CAPACITY: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Ok,
    Error,
    Cancelled,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Ok => "ok",
            CallStatus::Error => "error",
            CallStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub request_id: String,
    pub app_id: Option<i64>,
    pub key_id: Option<i64>,
    /// The routing prefix; empty when the call never reached a provider.
    pub provider: String,
    /// As the client named it (`prefix/model`).
    pub model: String,
    pub credential_id: Option<i64>,
    pub endpoint: &'static str,
    pub stream: bool,
    pub status: CallStatus,
    pub http_status: u16,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_micros: i64,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub attempts: u32,
    pub created_at: i64,
    /// Store ids of the credentials tried, in order (keys from the environment have none).
    pub credentials_tried: smallvec::SmallVec<[i64; 4]>,
    /// The model as the client named it, when it differs from the one served.
    pub requested_model: Option<String>,
    /// The client's wire format (`openai_chat`, `anthropic_messages`, ...).
    pub format: &'static str,
    /// Answered from the response cache: no upstream call, no upstream cost.
    pub cache_hit: bool,
    /// Credit billing: nano-credits to charge the app, in the record's transaction.
    pub charge_nanos: i64,
    /// Credit billing: what admission held for the call, released once it is written.
    pub hold_nanos: i64,
    /// The hold's id when the store keeps holds (Postgres): the charge's transaction
    /// removes it. `None`: the hold is this instance's memory.
    pub hold_id: Option<i64>,
}

/// Token counts above this are an upstream's nonsense, not usage: clamped so that sums in
/// the rollup cannot overflow (an overflow would fail the whole batch's transaction).
pub const MAX_TOKENS_PER_CALL: u64 = 1_000_000_000_000;

impl CallRecord {
    /// Caps every client- or upstream-chosen field, so a hostile call stores a bounded row.
    fn bound(&mut self) {
        use crate::bounds::{truncate_owned, MAX_ERROR_MESSAGE, MAX_LABEL, MAX_MODEL_NAME};
        truncate_owned(&mut self.request_id, MAX_LABEL);
        truncate_owned(&mut self.provider, MAX_LABEL);
        truncate_owned(&mut self.model, MAX_MODEL_NAME);
        for s in [&mut self.requested_model, &mut self.error_class]
            .into_iter()
            .flatten()
        {
            truncate_owned(s, MAX_MODEL_NAME);
        }
        if let Some(m) = &mut self.error_message {
            truncate_owned(m, MAX_ERROR_MESSAGE);
        }
        for t in [
            &mut self.input_tokens,
            &mut self.output_tokens,
            &mut self.cached_tokens,
        ] {
            *t = (*t).min(MAX_TOKENS_PER_CALL);
        }
        self.credentials_tried.truncate(64);
    }
}

/// Records travel by value: the channel keeps them in blocks of 31, so a record costs
/// no allocation of its own on the way to the writer.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Record(CallRecord),
    Shutdown,
}

/// The sending side, shared by all requests.
pub struct CallLog {
    /// An unbounded channel whose bound is `queued` against `capacity`: its memory follows
    /// the backlog (a preallocated ring of `capacity` slots stays resident once the
    /// traffic has gone round it).
    tx: Sender<Msg>,
    /// Records sent and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    depth: Arc<AtomicI64>,
    dropped: AtomicU64,
    written: Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
    credits: Option<Arc<Credits>>,
    health: Arc<StoreHealth>,
    /// Set by [`CallLog::shutdown`]: a writer waiting out an outage gives up in time.
    stopping: Arc<AtomicBool>,
}

impl CallLog {
    pub fn start(sink: impl CallSink + 'static, capacity: usize) -> CallLog {
        Self::start_billing(sink, capacity, None)
    }

    /// With credit billing: records' holds are released (and balances re-read) once
    /// their charges are written.
    pub fn start_billing(
        sink: impl CallSink + 'static,
        capacity: usize,
        credits: Option<Arc<Credits>>,
    ) -> CallLog {
        let sink: Box<dyn CallSink> = Box::new(sink);
        let (tx, rx) = channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let depth = Arc::new(AtomicI64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let health = Arc::new(StoreHealth::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let w = Writer {
            store: sink,
            queued: queued.clone(),
            depth: depth.clone(),
            written: written.clone(),
            credits: credits.clone(),
            health: health.clone(),
            stopping: stopping.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("aihub-call-log".into())
            .spawn(move || w.run(rx))
            .ok();
        if writer.is_none() {
            tracing::error!("cannot start the call log writer thread; calls will not be recorded");
        }
        CallLog {
            tx,
            queued,
            capacity: capacity.max(1),
            depth,
            dropped: AtomicU64::new(0),
            written,
            writer: Mutex::new(writer),
            credits,
            health,
            stopping,
        }
    }

    /// The database's reachability as the writer (and whoever else reports to it) sees it.
    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    /// Never blocks: a full queue drops the record and counts it.
    pub fn record(&self, mut rec: CallRecord) {
        rec.bound();
        let refuse = |rec: &CallRecord| {
            // The charge is lost with the record; the hold must not be.
            settle_holds(self.credits.as_deref(), std::slice::from_ref(rec), false);
            self.count_dropped();
        };
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return refuse(&rec);
        }
        match self.tx.send(Msg::Record(rec)) {
            Ok(()) => {
                self.depth.fetch_add(1, Ordering::Relaxed);
            }
            Err(SendError(msg)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                if let Msg::Record(r) = msg {
                    refuse(&r);
                }
            }
        }
    }

    fn count_dropped(&self) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                dropped_total = n,
                "call log queue full: call records dropped"
            );
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed).max(0)
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Writes everything queued, then stops the writer. Blocks until done.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Shutdown);
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// After a batch is written (or given up on): balances that were charged are re-read,
/// then the records' holds are released (in that order, so admission never sees the
/// hold gone before the charge).
/// Holds the store keeps went with a written batch's transaction; those of records not
/// written are released now.
fn settle_holds(credits: Option<&Credits>, batch: &[CallRecord], written: bool) {
    let Some(c) = credits else { return };
    let mut unwritten = Vec::new();
    for r in batch {
        if let Some(id) = r.hold_id {
            if !written {
                unwritten.push(id);
            }
            continue;
        }
        if let Some(app) = r.app_id {
            if r.charge_nanos != 0 {
                c.invalidate(app);
            }
            if r.hold_nanos != 0 {
                c.holds.release(app, r.hold_nanos);
            }
        }
    }
    if let Some(s) = &c.store_holds {
        s.release_later(unwritten);
    }
}

/// How long a stopping writer keeps trying an unreachable database before it gives up
/// the records it holds.
const STOP_PATIENCE: Duration = Duration::from_secs(10);
/// The longest pause between two tries while the database is unreachable.
const OUTAGE_RETRY_MAX: Duration = Duration::from_secs(2);
/// Tries of a batch the database refuses (not an outage) before it is given up.
const REFUSED_TRIES: u32 = 4;

/// The writer thread's state.
struct Writer {
    store: Box<dyn CallSink>,
    queued: Arc<AtomicUsize>,
    depth: Arc<AtomicI64>,
    written: Arc<AtomicU64>,
    credits: Option<Arc<Credits>>,
    health: Arc<StoreHealth>,
    stopping: Arc<AtomicBool>,
}

impl Writer {
    fn run(self, rx: Receiver<Msg>) {
        let mut batch: Vec<CallRecord> = Vec::new();
        let mut idle = crate::memory::IdleTrim::default();
        let take = |batch: &mut Vec<CallRecord>, r: CallRecord| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            batch.push(r);
        };
        let mut stopping = false;
        while !stopping {
            // Block only while idle. Once a record arrives, sleep through the batch window
            // and then drain: a sender never has to wake a waiting receiver, which on a busy
            // server would cost a futex wake and a context switch per request.
            let first = match rx.recv_timeout(QUIET) {
                Err(RecvTimeoutError::Timeout) => {
                    // The traffic has paused: what a burst made the process take goes
                    // back now, not at its next burst.
                    if batch.capacity() > IDLE_BATCH_CAPACITY {
                        batch = Vec::new();
                    }
                    idle.now_idle();
                    rx.recv().ok()
                }
                other => other.ok(),
            };
            match first {
                Some(Msg::Record(r)) => take(&mut batch, r),
                Some(Msg::Shutdown) | None => stopping = true,
            }
            loop {
                if !stopping {
                    std::thread::sleep(BATCH_WINDOW);
                }
                loop {
                    match rx.try_recv() {
                        Ok(Msg::Record(r)) => take(&mut batch, r),
                        Ok(Msg::Shutdown) => stopping = true,
                        Err(TryRecvError::Disconnected) => {
                            stopping = true;
                            break;
                        }
                        Err(TryRecvError::Empty) => break,
                    }
                    if batch.len() >= BATCH_MAX && !stopping {
                        break;
                    }
                }
                if batch.is_empty() {
                    break;
                }
                let n = batch.len();
                idle.busy(n);
                let ok = self.write(&batch);
                self.depth.fetch_sub(n as i64, Ordering::Relaxed);
                settle_holds(self.credits.as_deref(), &batch, ok);
                batch.clear();
                // A full batch means more is waiting: go on without blocking.
                if n < BATCH_MAX || stopping {
                    break;
                }
            }
        }
    }

    /// Writes one batch; whether it was. While the database is unreachable the batch is
    /// kept and tried again (new records wait in the queue, up to its bound, and are
    /// dropped and counted beyond it) until it answers or the server stops; a batch the
    /// database refuses is given up after a few tries.
    fn write(&self, batch: &[CallRecord]) -> bool {
        let mut pause = Duration::from_millis(50);
        let mut refused = 0;
        let mut waiting = false;
        let mut give_up_at: Option<std::time::Instant> = None;
        loop {
            let result = self.store.write_calls(batch);
            self.health.saw(&result);
            match result {
                Ok(()) => {
                    self.written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return true;
                }
                Err(e) if e.is_unreachable() => {
                    if self.stopping.load(Ordering::Relaxed) {
                        let at = *give_up_at
                            .get_or_insert_with(|| std::time::Instant::now() + STOP_PATIENCE);
                        if std::time::Instant::now() >= at {
                            tracing::error!(records = batch.len(), error = %e, "stopping with the database unreachable: call records are lost");
                            return false;
                        }
                    }
                    if !waiting {
                        tracing::warn!(records = batch.len(), error = %e, "call records wait in memory until the database answers");
                        waiting = true;
                    }
                }
                Err(e) => {
                    refused += 1;
                    if refused >= REFUSED_TRIES {
                        tracing::error!(records = batch.len(), error = %e, "call records could not be written and are lost");
                        return false;
                    }
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(OUTAGE_RETRY_MAX);
        }
    }
}

/// One rollup row's sums.
#[derive(Default)]
pub(in crate::store) struct Sums {
    pub calls: i64,
    pub errors: i64,
    pub input: i64,
    pub output: i64,
    pub cached: i64,
    pub cost: i64,
}

impl Store {
    /// One transaction: the records, their usage rollup, and key/credential last use.
    pub fn write_calls(&self, batch: &[CallRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let mut rollup: HashMap<(i64, &str, &str, i64), Sums> = HashMap::new();
        let mut keys: HashMap<i64, i64> = HashMap::new();
        // Per key and UTC day: (calls, cost), for key budgets.
        let mut key_days: HashMap<(i64, i64), (i64, i64)> = HashMap::new();
        let mut creds: HashMap<i64, (i64, i64)> = HashMap::new();
        let now = super::now_ms();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO model_calls (request_id, app_id, provider, model, credential_id, endpoint, stream, status,
                    http_status, error_class, error_message, input_tokens, output_tokens, cached_tokens, cost_micros,
                    latency_ms, ttfb_ms, attempts, created_at, credentials_tried, requested_model, format, cache_hit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
            )?;
            for r in batch {
                insert.execute(params![
                    r.request_id,
                    r.app_id,
                    r.provider,
                    r.model,
                    r.credential_id,
                    r.endpoint,
                    r.stream,
                    r.status.as_str(),
                    r.http_status,
                    r.error_class,
                    r.error_message,
                    r.input_tokens as i64,
                    r.output_tokens as i64,
                    r.cached_tokens as i64,
                    r.cost_micros,
                    r.latency_ms as i64,
                    r.ttfb_ms.map(|t| t as i64),
                    r.attempts,
                    r.created_at,
                    (!r.credentials_tried.is_empty())
                        .then(|| serde_json::json!(r.credentials_tried.as_slice()).to_string()),
                    r.requested_model,
                    r.format,
                    r.cache_hit,
                ])?;
                if let (Some(app), true) = (r.app_id, r.charge_nanos > 0) {
                    let moved = super::credits::charge_in(
                        &tx,
                        app,
                        tx.last_insert_rowid(),
                        r.charge_nanos,
                        now,
                    )?;
                    if let Some((before, after)) = moved {
                        for event in self.charge_alerts.crossed(before, after) {
                            let data = serde_json::json!({
                                "app_id": app,
                                "balance": crate::billing::format_nanos(after),
                                "balance_nanos": after,
                            });
                            super::alerts::enqueue_in(&tx, event, &data.to_string(), now)?;
                        }
                    }
                }
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
                // Bounded per record (`bound`); saturating so no batch can fail on a sum.
                s.input = s.input.saturating_add(r.input_tokens as i64);
                s.output = s.output.saturating_add(r.output_tokens as i64);
                s.cached = s.cached.saturating_add(r.cached_tokens as i64);
                s.cost = s.cost.saturating_add(r.cost_micros);
                if let Some(k) = r.key_id {
                    let t = keys.entry(k).or_insert(0);
                    *t = (*t).max(r.created_at);
                    let day = r.created_at.div_euclid(86_400_000) * 86_400;
                    let d = key_days.entry((k, day)).or_insert((0, 0));
                    d.0 += 1;
                    d.1 = d.1.saturating_add(r.cost_micros);
                }
                if let Some(c) = r.credential_id {
                    let e = creds.entry(c).or_insert((0, 0));
                    e.0 = e.0.max(r.created_at);
                    e.1 += 1;
                }
            }
        }
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO usage_hourly (app_id, provider, model, hour, calls, errors, input_tokens, output_tokens, cached_tokens, cost_micros)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (app_id, provider, model, hour) DO UPDATE SET
                    calls = calls + excluded.calls, errors = errors + excluded.errors,
                    input_tokens = input_tokens + excluded.input_tokens,
                    output_tokens = output_tokens + excluded.output_tokens,
                    cached_tokens = cached_tokens + excluded.cached_tokens,
                    cost_micros = cost_micros + excluded.cost_micros",
            )?;
            for ((app, provider, model, hour), s) in &rollup {
                upsert.execute(params![
                    app, provider, model, hour, s.calls, s.errors, s.input, s.output, s.cached,
                    s.cost
                ])?;
            }
            let mut touch_key = tx.prepare_cached(
                "UPDATE app_keys SET last_used_at = max(coalesce(last_used_at, 0), ?1) WHERE id = ?2",
            )?;
            for (id, at) in &keys {
                touch_key.execute(params![at, id])?;
            }
            let mut key_day = tx.prepare_cached(
                "INSERT INTO key_usage_daily (key_id, day, calls, cost_micros) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key_id, day) DO UPDATE SET calls = calls + excluded.calls,
                    cost_micros = cost_micros + excluded.cost_micros",
            )?;
            for ((key, day), (calls, cost)) in &key_days {
                key_day.execute(params![key, day, calls, cost])?;
            }
            let mut touch_cred = tx.prepare_cached(
                "UPDATE credentials SET last_used_at = max(coalesce(last_used_at, 0), ?1), use_count = use_count + ?2 WHERE id = ?3",
            )?;
            for (id, (at, n)) in &creds {
                touch_cred.execute(params![at, n, id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// A stored call as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallRow {
    pub id: i64,
    pub request_id: String,
    pub app_id: Option<i64>,
    pub provider: String,
    pub model: String,
    pub credential_id: Option<i64>,
    pub endpoint: String,
    pub stream: bool,
    pub status: String,
    pub http_status: i64,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_micros: i64,
    pub latency_ms: i64,
    pub ttfb_ms: Option<i64>,
    pub attempts: i64,
    pub created_at: i64,
    /// JSON array of credential ids.
    pub credentials_tried: Option<String>,
    pub requested_model: Option<String>,
    pub format: String,
    pub cache_hit: bool,
}

/// Columns in CSV order; also the CSV header.
pub const CALL_COLUMNS: [&str; 24] = [
    "id",
    "request_id",
    "app_id",
    "provider",
    "model",
    "credential_id",
    "endpoint",
    "stream",
    "status",
    "http_status",
    "error_class",
    "error_message",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_micros",
    "latency_ms",
    "ttfb_ms",
    "attempts",
    "created_at",
    "credentials_tried",
    "requested_model",
    "format",
    "cache_hit",
];

fn call_row(r: &Row<'_>) -> rusqlite::Result<CallRow> {
    Ok(CallRow {
        id: r.get(0)?,
        request_id: r.get(1)?,
        app_id: r.get(2)?,
        provider: r.get(3)?,
        model: r.get(4)?,
        credential_id: r.get(5)?,
        endpoint: r.get(6)?,
        stream: r.get(7)?,
        status: r.get(8)?,
        http_status: r.get(9)?,
        error_class: r.get(10)?,
        error_message: r.get(11)?,
        input_tokens: r.get(12)?,
        output_tokens: r.get(13)?,
        cached_tokens: r.get(14)?,
        cost_micros: r.get(15)?,
        latency_ms: r.get(16)?,
        ttfb_ms: r.get(17)?,
        attempts: r.get(18)?,
        created_at: r.get(19)?,
        credentials_tried: r.get(20)?,
        requested_model: r.get(21)?,
        format: r.get(22)?,
        cache_hit: r.get(23)?,
    })
}

#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub app_id: Option<i64>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: Option<String>,
    /// One request's record (the `x-request-id` a client was given).
    pub request_id: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    /// Return calls older than this id (the previous page's `next_cursor`).
    pub cursor: Option<i64>,
    /// Return calls with at least this id (an export's lower bound).
    pub min_id: Option<i64>,
    pub limit: usize,
}

/// Where an export of `limit` calls starts and ends, fixed at its start so rows arriving
/// while it streams do not shift it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExportWindow {
    /// The newest matching id; `None` when nothing matches.
    pub top: Option<i64>,
    /// The oldest id the export includes when more rows match beyond `limit`: also the
    /// cursor that continues after it.
    pub next_cursor: Option<i64>,
}

impl Store {
    /// The `WHERE` clause and its arguments for a filter.
    fn call_conditions(f: &CallFilter) -> (String, Vec<SqlValue>) {
        let mut sql = String::from(" WHERE 1 = 1");
        let mut args: Vec<SqlValue> = Vec::new();
        let mut cond = |clause: &str, v: SqlValue| {
            sql.push_str(&format!(" AND {clause} ?{}", args.len() + 1));
            args.push(v);
        };
        if let Some(a) = f.app_id {
            cond("app_id =", a.into());
        }
        if let Some(p) = &f.provider {
            cond("provider =", p.clone().into());
        }
        if let Some(m) = &f.model {
            cond("model =", m.clone().into());
        }
        if let Some(s) = &f.status {
            cond("status =", s.clone().into());
        }
        if let Some(r) = &f.request_id {
            cond("request_id =", r.clone().into());
        }
        if let Some(s) = f.since {
            cond("created_at >=", s.into());
        }
        if let Some(u) = f.until {
            cond("created_at <", u.into());
        }
        if let Some(c) = f.cursor {
            cond("id <", c.into());
        }
        if let Some(m) = f.min_id {
            cond("id >=", m.into());
        }
        (sql, args)
    }

    /// Fixes the bounds of an export of `f.limit` rows, in one read snapshot.
    pub fn call_export_window(&self, f: &CallFilter) -> Result<ExportWindow, StoreError> {
        let (cond, args) = Self::call_conditions(f);
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let top: Option<i64> = tx
            .query_row(
                &format!("SELECT id FROM model_calls{cond} ORDER BY id DESC LIMIT 1"),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )
            .optional()?;
        let offset = f.limit.max(1) - 1;
        let mut stmt = tx.prepare(&format!(
            "SELECT id FROM model_calls{cond} ORDER BY id DESC LIMIT 2 OFFSET {offset}"
        ))?;
        let ids = stmt
            .query_map(params_from_iter(args.iter()), |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        drop(stmt);
        tx.commit()?;
        Ok(ExportWindow {
            top,
            next_cursor: (ids.len() == 2).then(|| ids[0]),
        })
    }

    /// Newest first. Paging by id is stable while new calls arrive.
    pub fn list_calls(&self, f: &CallFilter) -> Result<(Vec<CallRow>, Option<i64>), StoreError> {
        let (cond, args) = Self::call_conditions(f);
        let mut sql = format!("SELECT {} FROM model_calls{cond}", CALL_COLUMNS.join(", "));
        let limit = f.limit.clamp(1, 1000);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt
            .query_map(params_from_iter(args), call_row)?
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
pub(crate) fn sample(app: i64, model: &str, ok: bool, at: i64) -> CallRecord {
    CallRecord {
        request_id: format!("r-{at}"),
        app_id: Some(app),
        key_id: None,
        provider: model.split('/').next().unwrap_or("").into(),
        model: model.into(),
        credential_id: None,
        endpoint: "chat",
        stream: false,
        status: if ok {
            CallStatus::Ok
        } else {
            CallStatus::Error
        },
        http_status: if ok { 200 } else { 502 },
        error_class: None,
        error_message: None,
        input_tokens: 10,
        output_tokens: 5,
        cached_tokens: 2,
        cost_micros: 7,
        latency_ms: 3,
        ttfb_ms: Some(1),
        attempts: 1,
        created_at: at,
        credentials_tried: Default::default(),
        requested_model: None,
        format: "openai_chat",
        cache_hit: false,
        charge_nanos: 0,
        hold_nanos: 0,
        hold_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;

    #[test]
    fn writer_batches_and_drains_on_shutdown() {
        let (_d, s) = test_store();
        let log = CallLog::start(s.clone(), 10_000);
        for i in 0..1500 {
            log.record(sample(
                1 + i % 3,
                "echo/echo-1",
                i % 10 != 0,
                1_700_000_000_000 + i,
            ));
        }
        log.shutdown();
        assert_eq!(log.dropped(), 0);
        assert_eq!(log.written(), 1500);
        let conn = s.conn().unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM model_calls", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1500);
        let (calls, errors, input): (i64, i64, i64) = conn
            .query_row(
                "SELECT sum(calls), sum(errors), sum(input_tokens) FROM usage_hourly",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((calls, errors, input), (1500, 150, 15_000));
    }

    #[test]
    fn full_queue_drops_and_counts_without_blocking() {
        let (_d, s) = test_store();
        // Hold the writer up by keeping a write lock on the database.
        let blocker = s.conn().unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let log = CallLog::start(s.clone(), 4);
        let t = std::time::Instant::now();
        for i in 0..100 {
            log.record(sample(1, "echo/echo-1", true, i));
        }
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(log.dropped() > 0);
        blocker.execute_batch("ROLLBACK").unwrap();
        log.shutdown();
        assert_eq!(log.dropped() + log.written(), 100);
    }

    #[test]
    fn charges_commit_with_their_records_and_holds_are_released_after() {
        let (_d, s) = test_store();
        let app = s.create_app("payer").unwrap().id;
        s.grant_credits(app, 1_000, None, None).unwrap();
        let credits = Arc::new(Credits::new(&crate::config::BillingConfig {
            enabled: true,
            ..Default::default()
        }));
        let log = CallLog::start_billing(s.clone(), 100, Some(credits.clone()));
        for i in 0..3 {
            assert_eq!(credits.holds.try_hold(app, 1_000, 100), Ok(()));
            let mut r = sample(app, "echo/echo-1", true, 1000 + i);
            r.charge_nanos = 30;
            r.hold_nanos = 100;
            log.record(r);
        }
        // A failed call: its hold goes, no charge is written.
        let mut failed = sample(app, "echo/echo-1", false, 2000);
        failed.hold_nanos = 100;
        assert_eq!(credits.holds.try_hold(app, 1_000, 100), Ok(()));
        log.record(failed);
        log.shutdown();
        assert_eq!(credits.holds.held(app), 0);
        assert_eq!(s.credit_summary(app).unwrap().balance, 910);
        let (rows, _) = s
            .list_ledger(&crate::store::credits::LedgerFilter {
                app_id: Some(app),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        let charged: Vec<_> = rows.iter().filter(|e| e.kind == "charge").collect();
        assert_eq!(charged.len(), 3);
        let (calls, _) = s
            .list_calls(&CallFilter {
                status: Some("ok".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        let mut ids: Vec<_> = charged.iter().filter_map(|e| e.call_id).collect();
        ids.sort();
        let mut call_ids: Vec<_> = calls.iter().map(|c| c.id).collect();
        call_ids.sort();
        assert_eq!(ids, call_ids);
    }

    #[test]
    fn a_dropped_record_releases_its_hold() {
        let (_d, s) = test_store();
        let credits = Arc::new(Credits::new(&crate::config::BillingConfig::default()));
        let blocker = s.conn().unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let log = CallLog::start_billing(s.clone(), 2, Some(credits.clone()));
        for i in 0..50 {
            assert_eq!(credits.holds.try_hold(1, i64::MAX, 10), Ok(()));
            let mut r = sample(1, "echo/echo-1", true, i);
            r.hold_nanos = 10;
            log.record(r);
        }
        assert!(log.dropped() > 0);
        assert!(credits.holds.held(1) <= (50 - log.dropped() as i64) * 10);
        blocker.execute_batch("ROLLBACK").unwrap();
        log.shutdown();
        assert_eq!(credits.holds.held(1), 0);
    }

    #[test]
    fn paging_is_stable_and_filters_apply() {
        let (_d, s) = test_store();
        let batch: Vec<_> = (0..25)
            .map(|i| sample(1 + i % 2, "echo/echo-1", true, 1000 + i))
            .collect();
        s.write_calls(&batch).unwrap();
        let mut f = CallFilter {
            app_id: Some(1),
            limit: 5,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let (rows, next) = s.list_calls(&f).unwrap();
            // A call arriving mid-paging does not shift later pages.
            s.write_calls(&[sample(1, "echo/echo-1", true, 5000)])
                .unwrap();
            seen.extend(rows.iter().map(|r| r.id));
            match next {
                Some(c) => f.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 13);
        let mut sorted = seen.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.dedup();
        assert_eq!(sorted, seen);
    }
}
