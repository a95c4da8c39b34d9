//! Alert webhooks: `credits.low`, `credits.exhausted`, `credential.invalid`,
//! `credential.recovered` and `budget.reached`, POSTed as JSON to `billing.webhook_url`.
//!
//! Never on the request path: callers hand an event to a bounded channel (`emit`, which
//! does not wait), a background task writes it to the store's outbox, and delivers from
//! there — balance events are written to the outbox by the charge's own transaction. An
//! event stays in the outbox until the receiver answers 2xx, retried with exponential
//! backoff (1 s doubling, at most 5 min apart) for 24 hours, so delivery is at least
//! once; receivers deduplicate on the event `id` (also `x-aihub-delivery`).
//!
//! Each delivery is signed like Stripe's: `x-aihub-signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256 of "<t>.<body>" under billing.webhook_secret>`.

use crate::state::AppState;
use crate::store::alerts::PendingAlert;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Events waiting for the outbox writer; beyond this `emit` drops (and logs) them.
const QUEUE: usize = 1024;
/// How long an event is retried before it is given up.
const GIVE_UP_AFTER_MS: i64 = 24 * 3_600_000;
const MAX_BACKOFF_MS: i64 = 300_000;
/// Each delivery's time limit.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

type Event = (&'static str, Value);

/// The sending side, shared by everything that raises alerts.
pub struct Alerts {
    tx: Option<mpsc::Sender<Event>>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
}

impl Alerts {
    /// On when `billing.webhook_url` is set.
    pub fn new(config: &crate::config::BillingConfig) -> Alerts {
        if config.webhook_url.is_none() {
            return Alerts {
                tx: None,
                rx: Mutex::new(None),
            };
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        Alerts {
            tx: Some(tx),
            rx: Mutex::new(Some(rx)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues an event without waiting; a full queue drops it (and says so).
    pub fn emit(&self, event: &'static str, data: Value) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send((event, data)).is_err() {
            tracing::warn!(event, "the alert queue is full; an alert was dropped");
        }
    }
}

/// The signature header's value for `body` sent at `t` (Unix seconds).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this cannot fail.
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delay before attempt `attempts + 1`.
fn backoff_ms(attempts: i64) -> i64 {
    1000i64
        .saturating_mul(1i64 << attempts.clamp(0, 20))
        .min(MAX_BACKOFF_MS)
}

/// Starts the outbox writer and deliverer (when alerts are on).
pub fn spawn(state: Arc<AppState>) {
    let rx = state.alerts.rx.lock().ok().and_then(|mut r| r.take());
    let Some(mut rx) = rx else { return };
    tokio::spawn(async move {
        loop {
            let wait = match state.stores.alerts.next_alert_due().await {
                Ok(Some(at)) => (at - crate::store::now_ms()).clamp(0, 1000),
                _ => 1000,
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some((event, data)) => {
                        if let Err(e) = state.stores.alerts.enqueue_alert(event.to_string(), data.to_string()).await {
                            tracing::error!(event, error = %e, "an alert could not be queued");
                        }
                    }
                    None => return,
                },
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            }
            deliver_due(&state).await;
        }
    });
}

async fn deliver_due(state: &AppState) {
    let now = crate::store::now_ms();
    let due = match state.stores.alerts.due_alerts(now, 32).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "the alert outbox could not be read");
            return;
        }
    };
    for alert in due {
        let outcome = deliver(state, &alert).await;
        let store = &state.stores.alerts;
        let result = match outcome {
            Ok(()) => {
                state.metrics.alerts_delivered.inc();
                store.alert_delivered(alert.id).await
            }
            Err(why) => {
                let now = crate::store::now_ms();
                let next = (now - alert.created_at < GIVE_UP_AFTER_MS)
                    .then(|| now + backoff_ms(alert.attempts));
                if next.is_none() {
                    state.metrics.alerts_given_up.inc();
                    tracing::error!(event = %alert.event, id = alert.id, error = %why, "an alert could not be delivered for 24 hours and is given up");
                } else {
                    tracing::warn!(event = %alert.event, id = alert.id, attempts = alert.attempts + 1, error = %why, "alert delivery failed; retrying");
                }
                store.alert_failed(alert.id, next, why).await
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "the alert outbox could not be updated");
        }
    }
}

/// One POST of one event; `Err` says why it did not count as delivered.
async fn deliver(state: &AppState, alert: &PendingAlert) -> Result<(), String> {
    let b = &state.config.billing;
    let (Some(url), Some(secret)) = (&b.webhook_url, &b.webhook_secret) else {
        return Err("billing.webhook_url is not set".into());
    };
    let data: Value = serde_json::from_str(&alert.data).unwrap_or(Value::Null);
    let id = format!("evt_{}", alert.id);
    let body = serde_json::json!({
        "id": id,
        "type": alert.event,
        "created_at": alert.created_at / 1000,
        "data": data,
    })
    .to_string()
    .into_bytes();
    let t = crate::store::now_ms() / 1000;
    let mut req = plugin_api::HttpRequest::post(url.as_str());
    req.headers = vec![
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), "aihub-alerts".into()),
        ("x-aihub-event".into(), alert.event.clone()),
        ("x-aihub-delivery".into(), id),
        (
            "x-aihub-signature".into(),
            signature(secret.expose(), t, &body),
        ),
    ];
    req.body = body;
    let send = async {
        let resp = state.upstream.send(req.into(), &[], DELIVERY_TIMEOUT).await;
        match resp {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("the receiver answered {}", r.status())),
            // The URL is the operator's own; the error names no secret.
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(DELIVERY_TIMEOUT, send)
        .await
        .unwrap_or_else(|_| Err("the receiver did not answer within 10 s".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_time_and_the_body() {
        let s = signature("whsec_test_secret_1234", 1700000000, b"{\"a\":1}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(
            s,
            signature("whsec_test_secret_1234", 1700000001, b"{\"a\":1}")
        );
        assert_ne!(
            s,
            signature("whsec_test_secret_1234", 1700000000, b"{\"a\":2}")
        );
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(3), 8000);
        assert_eq!(backoff_ms(50), MAX_BACKOFF_MS);
    }

    #[test]
    fn events_are_dropped_not_waited_for_when_off() {
        let a = Alerts::new(&crate::config::BillingConfig::default());
        assert!(!a.enabled());
        a.emit("credits.low", serde_json::json!({}));
    }
}
