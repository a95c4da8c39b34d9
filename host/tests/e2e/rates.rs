//! Rates against the real binary: cache-write and per-image prices (set, shown, costed and
//! charged), the rate history and its paging, per-app explicit prices overriding the
//! charge (not the cost), and `aihub rates import` from a small file in LiteLLM's format.

use crate::common;

use common::formats::anthropic_fixture;
use common::scripted::{Act, ScriptedUpstream};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn put(s: &TestServer, path: &str, body: Value) -> Value {
    s.admin_ok(Method::PUT, path, Some(&body), 200).await
}

/// The field a 400 names.
async fn bad_param(s: &TestServer, method: Method, path: &str, body: Value) -> String {
    let resp = s.admin(method, path, Some(&body)).await;
    assert_eq!(resp.status(), 400, "{path} {body}");
    let v: Value = resp.json().await.unwrap();
    v["error"]["param"].as_str().unwrap_or_default().to_string()
}

async fn grant(s: &TestServer, app: i64, credits: &str) {
    s.admin_ok(
        Method::POST,
        &format!("/api/admin/apps/{app}/credits"),
        Some(&json!({"amount": credits})),
        201,
    )
    .await;
}

/// The amounts of `app`'s charges, oldest first.
async fn charges(s: &TestServer, app: i64) -> Vec<i64> {
    let page = s
        .admin_ok(
            Method::GET,
            &format!("/api/admin/ledger?app={app}&limit=1000"),
            None,
            200,
        )
        .await;
    let mut out: Vec<i64> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "charge")
        .map(|e| e["amount_nanos"].as_i64().unwrap())
        .collect();
    out.reverse();
    out
}

async fn history(s: &TestServer, query: &str) -> Value {
    s.admin_ok(
        Method::GET,
        &format!("/api/admin/rates/history?{query}"),
        None,
        200,
    )
    .await
}

#[tokio::test]
async fn cache_writes_and_images_are_priced_and_every_change_is_in_the_history() {
    let anthropic = MockUpstream::start(|_| MockReply::Raw {
        status: 200,
        content_type: "application/json".into(),
        body: anthropic_fixture("message_cache.json"),
    })
    .await;
    let ideogram_fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/ideogram/tests/fixtures/generate_v3.json"),
    )
    .unwrap();
    let ideogram = MockUpstream::start(move |_| MockReply::Raw {
        status: 200,
        content_type: "application/json".into(),
        body: ideogram_fixture.clone(),
    })
    .await;
    let config = format!(
        "[billing]\nenabled = true\n\n\
         [[providers]]\nprefix = \"anthropic\"\nplugin = \"anthropic\"\nbase_url = \"http://{}\"\napi_key_env = \"TEST_ANTHROPIC_KEY\"\n\n\
         [[providers]]\nprefix = \"ideogram\"\nplugin = \"ideogram\"\nbase_url = \"http://{}\"\napi_key_env = \"TEST_IDEOGRAM_KEY\"\n",
        anthropic.addr(),
        ideogram.addr()
    );
    let s = TestServer::start(
        ServerOptions::new()
            .plugin("libaihub_anthropic.so")
            .plugin("libaihub_ideogram.so")
            .config(config)
            .env("TEST_ANTHROPIC_KEY", "sk-ant-test-key-0001")
            .env("TEST_IDEOGRAM_KEY", "ideo-test-key-0001"),
    )
    .await;
    let claude = "/api/admin/rates/anthropic/claude-sonnet-4-5";
    let r = put(
        &s,
        claude,
        json!({"input_per_mtok": 3, "output_per_mtok": 15, "cached_per_mtok": 0.3, "cache_write_per_mtok": 3.75}),
    )
    .await;
    assert_eq!(r["cache_write_per_mtok_micros"], 3_750_000, "{r}");
    let r = put(
        &s,
        "/api/admin/rates/ideogram/ideogram-v3",
        json!({"input_per_mtok": 0, "output_per_mtok": 0, "per_image": 0.04}),
    )
    .await;
    assert_eq!(r["per_image_micros"], 40_000, "{r}");
    let listed = s.admin_ok(Method::GET, "/api/admin/rates", None, 200).await;
    let shown = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "anthropic/claude-sonnet-4-5")
        .cloned()
        .unwrap();
    assert_eq!(shown["cache_write_per_mtok_micros"], 3_750_000);
    assert_eq!(shown["cached_per_mtok_micros"], 300_000);
    for (body, field) in [
        (
            json!({"input_per_mtok": 1, "output_per_mtok": 1, "cache_write_per_mtok": -1}),
            "cache_write_per_mtok",
        ),
        (
            json!({"input_per_mtok": 1, "output_per_mtok": 1, "per_image": 2e6}),
            "per_image",
        ),
        (
            json!({"input_per_mtok": 1, "output_per_mtok": 1, "per_image": "x"}),
            "per_image",
        ),
    ] {
        assert_eq!(
            bad_param(&s, Method::PUT, claude, body.clone()).await,
            field,
            "{body}"
        );
    }

    let (app, key) = s.create_app_with_key("cacher").await;
    grant(&s, app, "10").await;
    let client = http_client_with_key(&key);
    let resp = client
        .post(s.url("/v1/chat/completions"))
        .json(
            &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 20,
                      "messages": [{"role": "user", "content": "summarise chapter 3"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let resp = client
        .post(s.url("/v1/images/generations"))
        .json(&json!({"model": "ideogram/ideogram-v3", "prompt": "a lighthouse", "n": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let calls = s.calls_matching_at_least(&format!("app={app}"), 2).await;
    let call = |endpoint: &str| {
        calls
            .iter()
            .find(|c| c["endpoint"] == endpoint)
            .cloned()
            .unwrap_or_else(|| panic!("no {endpoint} call in {calls:?}"))
    };
    // The fixture: 21 fresh input, 10,240 read from and 188 written to the cache, 16
    // output: 21 × 3 + 10,240 × 0.3 + 188 × 3.75 + 16 × 15 = 63 + 3,072 + 705 + 240 µUSD.
    let chat = call("chat");
    assert_eq!(chat["input_tokens"], 21 + 10_240 + 188, "{chat}");
    assert_eq!(chat["cost_micros"], 4080, "{chat}");
    // Two images at $0.04.
    assert_eq!(call("images")["cost_micros"], 80_000);
    // At $1 a credit and no margin the charge is the cost, to the nano-credit.
    let mut got = charges(&s, app).await;
    got.sort();
    assert_eq!(got, [-80_000_000, -4_080_000]);

    // History: newest first, every price field, paged with a cursor.
    s.admin_ok(Method::DELETE, claude, None, 204).await;
    let h = history(&s, "model=anthropic/claude-sonnet-4-5").await;
    assert_eq!(h["object"], "list");
    assert_eq!(h["has_more"], false);
    let rows = h["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{h}");
    assert_eq!(rows[0]["action"], "delete");
    assert_eq!(rows[0]["input_per_mtok_micros"], Value::Null);
    assert_eq!(rows[1]["action"], "put");
    assert_eq!(rows[1]["cache_write_per_mtok_micros"], 3_750_000);
    assert_eq!(rows[1]["currency"], "usd");
    let first = history(&s, "limit=1").await;
    assert_eq!(first["has_more"], true);
    assert_eq!(first["data"][0]["action"], "delete");
    let cursor = first["next_cursor"].as_i64().unwrap();
    let second = history(&s, &format!("limit=1&cursor={cursor}")).await;
    assert_eq!(second["data"][0]["model"], "ideogram/ideogram-v3");
    let resp = s
        .admin(Method::GET, "/api/admin/rates/history?limit=0", None)
        .await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn an_apps_explicit_price_is_its_charge_while_the_cost_keeps_the_rate() {
    let mock =
        ScriptedUpstream::start(|_| Act::json(200, openai_completion("gpt-x", "fine", 5, 2))).await;
    // A margin and a credit value, so a charge at the cost rate is told apart from one at
    // the app's price.
    let s = TestServer::start(
        ServerOptions::new()
            .plugin(OPENAI)
            .config("[billing]\nenabled = true\nmargin_percent = 50\nusd_per_credit = 2\n"),
    )
    .await;
    let pid = s.stored_provider("bill", &mock.base_url()).await;
    s.add_key(pid, "k", "sk-bill-test-key", None).await;
    put(
        &s,
        "/api/admin/rates/bill/gpt-x",
        json!({"input_per_mtok": 1, "output_per_mtok": 2}),
    )
    .await;
    let (app, key) = s.create_app_with_key("priced").await;
    let (other, other_key) = s.create_app_with_key("list-price").await;
    grant(&s, app, "10").await;
    grant(&s, other, "10").await;

    let prices = format!("/api/admin/apps/{app}/prices");
    let price = format!("{prices}/bill/gpt-x");
    let row = put(
        &s,
        &price,
        json!({"input_per_mtok": 7, "output_per_mtok": 11}),
    )
    .await;
    assert_eq!(row["app_id"], app);
    assert_eq!(row["input_per_mtok_micros"], 7_000_000, "{row}");
    let listed = s.admin_ok(Method::GET, &prices, None, 200).await;
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["data"][0]["model"], "bill/gpt-x");
    // Unknown apps are 404; bad bodies name their field.
    let body = json!({"input_per_mtok": 1, "output_per_mtok": 1});
    let resp = s
        .admin(
            Method::PUT,
            "/api/admin/apps/9999/prices/bill/gpt-x",
            Some(&body),
        )
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        s.admin_get("/api/admin/apps/9999/prices").await.status(),
        404
    );
    for (body, field) in [
        (
            json!({"input_per_mtok": -1, "output_per_mtok": 1}),
            "input_per_mtok",
        ),
        (json!({"input_per_mtok": 1}), "output_per_mtok"),
        (
            json!({"input_per_mtok": 1, "output_per_mtok": 1, "bogus": 1}),
            "bogus",
        ),
    ] {
        assert_eq!(
            bad_param(&s, Method::PUT, &price, body.clone()).await,
            field,
            "{body}"
        );
    }
    let no_prefix = bad_param(&s, Method::PUT, &format!("{prices}/gpt-x"), body).await;
    assert_eq!(no_prefix, "model");

    let chat = json!({"model": "bill/gpt-x", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]});
    let call = |key: String| {
        let (url, chat) = (s.url("/v1/chat/completions"), chat.clone());
        async move {
            http_client_with_key(&key)
                .post(url)
                .json(&chat)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(key.clone()).await, 200);
    assert_eq!(call(other_key.clone()).await, 200);
    let calls = s.calls_at_least(2).await;
    // The app's price, in credits, without margin: 5 × 7 + 2 × 11 µcredit = 57,000 nanos.
    assert_eq!(charges(&s, app).await, [-57_000]);
    // The other app pays the rate: (5 × $1 + 2 × $2) / 1e6 × 1.5 ÷ $2 = 6,750 nanos.
    assert_eq!(charges(&s, other).await, [-6_750]);
    // Both calls cost what the rate says: 9 µUSD.
    assert!(calls.iter().all(|c| c["cost_micros"] == 9), "{calls:?}");

    // The hold is at the app's price too: a million credits per Mtok does not fit in 10.
    put(
        &s,
        &price,
        json!({"input_per_mtok": 1_000_000, "output_per_mtok": 1}),
    )
    .await;
    assert_eq!(call(key.clone()).await, 402);
    // Without its price the app pays the rate again.
    s.admin_ok(Method::DELETE, &price, None, 204).await;
    assert_eq!(s.admin(Method::DELETE, &price, None).await.status(), 404);
    assert_eq!(call(key.clone()).await, 200);
    s.calls_matching_at_least(&format!("app={app}&status=ok"), 2)
        .await;
    assert_eq!(charges(&s, app).await, [-57_000, -6_750]);
    let h = history(&s, &format!("app={app}")).await;
    let actions: Vec<_> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["currency"].clone(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("delete".to_string(), json!("credits")),
            ("put".to_string(), json!("credits")),
            ("put".to_string(), json!("credits")),
        ]
    );
}

const PRICE_FILE: &str = r#"{
  "sample_spec": {"input_cost_per_token": 0.0, "litellm_provider": "one of https://docs.litellm.ai/docs/providers"},
  "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
             "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai", "mode": "chat",
             "max_input_tokens": 128000},
  "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"},
  "my-legacy": {"input_cost_per_token": 3e-06, "output_cost_per_token": 6e-06, "litellm_provider": "openai"},
  "ft:gpt-unlisted": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "litellm_provider": "openai"},
  "claude-sonnet-4-5": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
             "cache_creation_input_token_cost": 3.75e-06, "litellm_provider": "anthropic"},
  "command-r": {"input_cost_per_token": 5e-07, "output_cost_per_token": 1.5e-06, "litellm_provider": "cohere_chat"}
}"#;

#[tokio::test]
async fn rates_import_reads_litellms_file_prints_the_changes_and_records_history() {
    let s = TestServer::start(ServerOptions::new().plugin(OPENAI)).await;
    // A rate exists for a model no catalog lists: it is refreshed too.
    put(
        &s,
        "/api/admin/rates/openai/my-legacy",
        json!({"input_per_mtok": 1, "output_per_mtok": 1, "per_second": 0.5}),
    )
    .await;
    let file = s.data_dir().join("prices.json");
    std::fs::write(&file, PRICE_FILE).unwrap();
    let path = file.to_str().unwrap();
    let rates = || async {
        let v = s.admin_ok(Method::GET, "/api/admin/rates", None, 200).await;
        v["data"].as_array().unwrap().clone()
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    let dry = s.cli(&["rates", "import", path, "--dry-run"]);
    let out = text(&dry);
    assert!(dry.status.success(), "{out}");
    assert!(
        out.contains("new      openai/gpt-4o  input 2.5, output 10, cached 1.25"),
        "{out}"
    );
    assert!(
        out.contains("openai/dall-e-3  input 0, output 0, per_image 0.04"),
        "{out}"
    );
    assert!(
        out.contains("changed  openai/my-legacy  input 1 → 3, output 1 → 6"),
        "{out}"
    );
    assert!(
        out.contains("2 new, 1 changed, 0 unchanged; skipped: 1 not served, 0 without a price, 0 duplicates, 2 not in a loaded catalog"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert_eq!(rates().await.len(), 1, "the dry run wrote nothing");

    let run = s.cli(&["rates", "import", path]);
    let out = text(&run);
    assert!(run.status.success(), "{out}");
    assert!(out.contains("wrote 3 rates"), "{out}");
    let now = rates().await;
    let get = |m: &str| {
        now.iter()
            .find(|r| r["model"] == m)
            .cloned()
            .unwrap_or_default()
    };
    let gpt = get("openai/gpt-4o");
    assert_eq!(gpt["input_per_mtok_micros"], 2_500_000, "{now:?}");
    assert_eq!(gpt["output_per_mtok_micros"], 10_000_000);
    assert_eq!(gpt["cached_per_mtok_micros"], 1_250_000);
    assert_eq!(get("openai/dall-e-3")["per_image_micros"], 40_000);
    let legacy = get("openai/my-legacy");
    assert_eq!(legacy["input_per_mtok_micros"], 3_000_000);
    assert_eq!(
        legacy["per_second_micros"], 500_000,
        "a price the file does not state stays"
    );
    let h = history(&s, "").await;
    let imports: Vec<_> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "import")
        .collect();
    assert_eq!(imports.len(), 3, "{h}");
    assert!(imports[0]["note"].as_str().unwrap().contains("prices.json"));
    // The running server takes them on a reload.
    s.admin_ok(Method::POST, "/api/admin/plugins/reload", None, 200)
        .await;

    let again = s.cli(&["rates", "import", path]);
    let out = text(&again);
    assert!(again.status.success(), "{out}");
    assert!(out.contains("0 new, 0 changed, 3 unchanged"), "{out}");

    // A margin raises what would be stored; --all takes entries no catalog lists.
    let marked = s.cli(&[
        "rates",
        "import",
        path,
        "--margin",
        "10",
        "--all",
        "--dry-run",
    ]);
    let out = text(&marked);
    assert!(marked.status.success(), "{out}");
    assert!(out.contains("openai/gpt-4o  input 2.5 → 2.75"), "{out}");
    assert!(
        out.contains("new      anthropic/claude-sonnet-4-5"),
        "{out}"
    );
    assert!(out.contains("cache_write 4.125"), "{out}");

    // A malformed entry: named, non-zero exit, nothing written.
    let bad = s.data_dir().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"gpt-4o": {"input_cost_per_token": 1e-06, "litellm_provider": "openai"},
            "gpt-4o-mini": {"input_cost_per_token": "cheap", "litellm_provider": "openai"}}"#,
    )
    .unwrap();
    let failed = s.cli(&["rates", "import", bad.to_str().unwrap()]);
    let err = text(&failed);
    assert!(!failed.status.success(), "{err}");
    assert!(
        err.contains("entry 'gpt-4o-mini': 'input_cost_per_token' is not a number"),
        "{err}"
    );
    assert_eq!(get("openai/gpt-4o"), {
        let after = rates().await;
        after
            .into_iter()
            .find(|r| r["model"] == "openai/gpt-4o")
            .unwrap()
    });
    let bad_margin = s.cli(&["rates", "import", path, "--margin", "lots"]);
    assert!(!bad_margin.status.success());
    assert!(text(&bad_margin).contains("--margin"));
}
