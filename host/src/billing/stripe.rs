//! Top-ups paid through Stripe Checkout: `POST /api/billing/stripe` takes Stripe's webhook
//! events, checks their `Stripe-Signature` (HMAC-SHA256 over `"{t}.{body}"` with the
//! endpoint's secret, the timestamp within five minutes) and grants the credits a paid
//! session names in its metadata (`aihub_app_id`, `credits`), exactly once per event id.

use crate::error::ApiError;
use crate::server::http::{self, Body};
use crate::state::AppState;
use hmac::{Hmac, Mac};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a signature's timestamp may be from now (Stripe's own libraries use 300 s).
pub const TOLERANCE_SECS: i64 = 300;

/// Checks a `Stripe-Signature` header (`t=...,v1=...[,v1=...]`) for `body`.
pub fn verify(header: &str, body: &[u8], secret: &str, now_secs: i64) -> Result<(), String> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.push(s),
            _ => {}
        }
    }
    let t = timestamp.ok_or("the Stripe-Signature header has no timestamp (t=...)")?;
    if signatures.is_empty() {
        return Err("the Stripe-Signature header has no v1 signature".into());
    }
    if (now_secs - t).abs() > TOLERANCE_SECS {
        return Err(format!(
            "the signature's timestamp is more than {TOLERANCE_SECS} s from now (a replay, or a clock off)"
        ));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| "the webhook secret cannot key an HMAC".to_string())?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    let ok = signatures
        .iter()
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
    if ok {
        Ok(())
    } else {
        Err("no signature in the Stripe-Signature header matches this body".into())
    }
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Session,
}

#[derive(Deserialize)]
struct Session {
    #[serde(default)]
    payment_status: Option<String>,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field: "body",
        message: message.into(),
    }
}

/// The webhook endpoint (no app key: the signature is the authentication).
pub async fn webhook(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let Some(secret) = &state.config.billing.stripe_webhook_secret else {
        return Err(ApiError::NotFound {
            method: "POST".into(),
            path: "/api/billing/stripe (set billing.stripe_webhook_secret to enable it)".into(),
        });
    };
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = crate::inbound::openai::read_body(req, 1024 * 1024).await?;
    let now = crate::store::now_ms() / 1000;
    verify(&header, &body, secret.expose(), now).map_err(|m| ApiError::InvalidField {
        field: "stripe-signature",
        message: m,
    })?;
    let event: Event =
        serde_json::from_slice(&body).map_err(|e| bad(format!("not a Stripe event: {e}")))?;
    let paid = match event.kind.as_str() {
        "checkout.session.completed" => event.data.object.payment_status.as_deref() == Some("paid"),
        "checkout.session.async_payment_succeeded" => true,
        // Stripe sends what the endpoint subscribed to; anything else is acknowledged.
        _ => false,
    };
    if !paid {
        return Ok(http::json(
            200,
            &serde_json::json!({"received": true, "granted": false}),
        ));
    }
    let meta = &event.data.object.metadata;
    let app_id: i64 = meta
        .get("aihub_app_id")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| bad("the session's metadata has no numeric 'aihub_app_id'"))?;
    let credits = meta
        .get("credits")
        .ok_or_else(|| bad("the session's metadata has no 'credits'"))?;
    let amount = crate::billing::parse_credits(credits)
        .map_err(|m| bad(format!("metadata 'credits': {m}")))?;
    let note = format!("stripe {}", event.id);
    let grant = state
        .stores
        .credits
        .grant_credits_once(event.id.clone(), app_id, amount, Some(note))
        .await?;
    if grant.is_some() {
        state.credits.invalidate(app_id);
    }
    Ok(http::json(
        200,
        &serde_json::json!({"received": true, "granted": grant.is_some(), "event": event.id}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(t: i64, body: &[u8], secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_with_their_timestamp() {
        let body = br#"{"id":"evt_1"}"#;
        let now = 1_800_000_000;
        assert!(verify(&sign(now, body, "whsec_x"), body, "whsec_x", now).is_ok());
        assert!(verify(&sign(now, body, "whsec_y"), body, "whsec_x", now).is_err());
        assert!(verify(&sign(now, b"{}", "whsec_x"), body, "whsec_x", now).is_err());
        assert!(verify(&sign(now - 301, body, "whsec_x"), body, "whsec_x", now).is_err());
        // Several v1 signatures (secret rotation): one matching is enough.
        let h = format!("{},v1=00ff", sign(now, body, "whsec_x"));
        assert!(verify(&h, body, "whsec_x", now).is_ok());
        assert!(verify("v1=abc", body, "whsec_x", now).is_err());
        assert!(verify("t=1", body, "whsec_x", now).is_err());
    }
}
