//! Stored providers and keys through the admin API, as most end-to-end tests set them up.

use super::*;

impl TestServer {
    /// A stored provider `prefix` (plugin openai) pointing at `base_url`, listing `gpt-x`;
    /// its id.
    pub async fn stored_provider(&self, prefix: &str, base_url: &str) -> i64 {
        let p = self
            .admin_ok(
                reqwest::Method::POST,
                "/api/admin/providers",
                Some(&json!({"prefix": prefix, "plugin": "openai", "base_url": base_url, "models": ["gpt-x"]})),
                201,
            )
            .await;
        p["id"].as_i64().unwrap_or_else(|| panic!("no id in {p}"))
    }

    /// A key `name` with `secret` (and `weight`, default when `None`) on provider `pid`;
    /// its id.
    pub async fn add_key(&self, pid: i64, name: &str, secret: &str, weight: Option<i64>) -> i64 {
        let mut body = json!({"name": name, "secret": secret});
        if let Some(w) = weight {
            body["weight"] = json!(w);
        }
        let c = self
            .admin_ok(
                reqwest::Method::POST,
                &format!("/api/admin/providers/{pid}/credentials"),
                Some(&body),
                201,
            )
            .await;
        c["id"].as_i64().unwrap_or_else(|| panic!("no id in {c}"))
    }
}
