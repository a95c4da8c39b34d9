//! The call log under concurrency: 2,000 chat calls through `echo` from three apps, about
//! 64 in flight at a time. Every call has exactly one row, each app's rows are its own
//! calls, and the usage rollup equals the sums over the rows (and the usage the clients
//! were told in the replies).

use crate::common;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOTAL: usize = 2000;
const IN_FLIGHT: usize = 64;

/// What one app was told in its replies.
#[derive(Debug, Default, Clone, PartialEq)]
struct Sums {
    calls: i64,
    input: i64,
    output: i64,
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_concurrent_calls_have_exactly_their_rows_and_rollup() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    let mut apps = Vec::new();
    for name in ["load-a", "load-b", "load-c"] {
        let (id, key) = server.create_app_with_key(name).await;
        apps.push((id, http_client_with_key(&key)));
    }

    // Uneven shares per app and varying message sizes, so the per-app sums differ.
    let url = server.url("/v1/chat/completions");
    let results: Vec<(i64, u16, String, Value)> = futures_util::stream::iter(0..TOTAL)
        .map(|i| {
            let (app_id, client) = apps[i % 7 % 3].clone();
            let url = url.clone();
            let words = (i % 9) + 1;
            let content = vec!["w"; words].join(" ");
            // Every fourth call streams (with the usage chunk).
            let stream = i % 4 == 3;
            async move {
                let mut req = json!({
                    "model": "echo/echo-1",
                    "messages": [
                        {"role": "system", "content": "count me"},
                        {"role": "user", "content": content}
                    ]
                });
                if stream {
                    req["stream"] = json!(true);
                    req["stream_options"] = json!({"include_usage": true});
                }
                let resp = client
                    .post(&url)
                    .json(&req)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("request {i}: {e}"));
                let status = resp.status().as_u16();
                let rid = resp
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body: Value = if stream && status == 200 {
                    let sse = collect_sse(resp).await;
                    assert!(sse.done, "stream {i} did not finish: {sse:?}");
                    let usage = sse.usage_chunks();
                    assert_eq!(usage.len(), 1, "stream {i}: {sse:?}");
                    json!({"usage": usage[0]["usage"], "stream": true})
                } else {
                    resp.json().await.unwrap_or(Value::Null)
                };
                (app_id, status, rid, body)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    let mut told: HashMap<i64, Sums> = HashMap::new();
    let mut rids: HashSet<String> = HashSet::new();
    let mut streamed: HashSet<String> = HashSet::new();
    for (app_id, status, rid, body) in &results {
        if body["stream"] == true {
            streamed.insert(rid.clone());
        }
        assert_eq!(*status, 200, "a call failed: {body}");
        assert!(!rid.is_empty(), "reply without x-request-id");
        assert!(rids.insert(rid.clone()), "request id {rid} given twice");
        let s = told.entry(*app_id).or_default();
        s.calls += 1;
        s.input += body["usage"]["prompt_tokens"].as_i64().expect("usage");
        s.output += body["usage"]["completion_tokens"].as_i64().expect("usage");
    }
    assert_eq!(told.values().map(|s| s.calls).sum::<i64>(), TOTAL as i64);

    // Every record reaches the database (the writer commits in batches).
    let echo_rows = server
        .wait_for_calls("model=echo%2Fecho-1", TOTAL, Duration::from_secs(30))
        .await;
    // Let a straggler (a duplicate) show up if there were one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = server.all_calls("").await;
    assert_eq!(
        rows.len(),
        TOTAL,
        "exactly one call row per call ({} rows through echo)",
        echo_rows.len()
    );
    let ready = server.readyz().await;
    assert_eq!(ready["call_log"]["queued"], 0, "{ready}");
    assert_eq!(ready["call_log"]["dropped"], 0, "{ready}");

    let row_ids: HashSet<&str> = rows
        .iter()
        .map(|r| r["request_id"].as_str().expect("request_id"))
        .collect();
    assert_eq!(row_ids.len(), TOTAL, "request ids in the log are unique");
    assert!(
        rids.iter().all(|r| row_ids.contains(r.as_str())),
        "every reply's request id has its row"
    );
    // One call found by the request id a client was given.
    let rid = rids.iter().next().unwrap();
    let found = server.all_calls(&format!("request_id={rid}")).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["request_id"], rid.as_str());
    assert!(server.all_calls("request_id=req-none-0").await.is_empty());

    // Per app: the rows are its calls, their sums are what the replies said, and the
    // rollup equals the rows.
    let usage = server
        .admin_ok(
            reqwest::Method::GET,
            "/api/admin/usage?group_by=app",
            None,
            200,
        )
        .await;
    let usage_rows = usage["data"].as_array().expect("usage data");
    for (app_id, _) in &apps {
        let mine = server.all_calls(&format!("app={app_id}")).await;
        let mut from_rows = Sums::default();
        for r in &mine {
            assert_eq!(r["app_id"], *app_id, "{r}");
            assert_eq!(r["status"], "ok", "{r}");
            assert_eq!(r["http_status"], 200, "{r}");
            assert_eq!(r["provider"], "echo", "{r}");
            assert_eq!(r["model"], "echo/echo-1", "{r}");
            let rid = r["request_id"].as_str().unwrap_or_default();
            assert_eq!(r["stream"], streamed.contains(rid), "stream flag: {r}");
            from_rows.calls += 1;
            from_rows.input += r["input_tokens"].as_i64().expect("input_tokens");
            from_rows.output += r["output_tokens"].as_i64().expect("output_tokens");
        }
        assert_eq!(
            from_rows, told[app_id],
            "app {app_id}: call rows vs the replies"
        );
        let u = usage_rows
            .iter()
            .find(|u| u["key"] == *app_id)
            .unwrap_or_else(|| panic!("no usage row for app {app_id}: {usage}"));
        let from_rollup = Sums {
            calls: u["calls"].as_i64().expect("calls"),
            input: u["input_tokens"].as_i64().expect("input_tokens"),
            output: u["output_tokens"].as_i64().expect("output_tokens"),
        };
        assert_eq!(from_rollup, from_rows, "app {app_id}: rollup vs rows: {u}");
        assert_eq!(u["errors"], 0, "{u}");
    }
    // No other app has usage.
    let apps_with_usage: HashSet<i64> = usage_rows
        .iter()
        .filter(|u| u["calls"].as_i64().unwrap_or(0) > 0)
        .filter_map(|u| u["key"].as_i64())
        .collect();
    let ours: HashSet<i64> = apps.iter().map(|(id, _)| *id).collect();
    assert_eq!(apps_with_usage, ours, "{usage}");
}

/// What one request of the SIGTERM test came to.
struct Outcome {
    /// `x-request-id` of a 200 reply.
    ok_id: Option<String>,
    /// The reply (whole body or stream) was read to its end after SIGTERM was sent.
    finished_after_term: bool,
    stream_done: bool,
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_every_answered_request_has_its_row_after_restart() {
    // Streams from the mock take ~250 ms, so many are in flight when SIGTERM arrives.
    let mock = MockUpstream::always(MockReply::sse(
        openai_stream_chunks("gpt-x", &["a", " b", " c", " d"], Some((7, 4))),
        Duration::from_millis(40),
        SseEnd::Done,
    ))
    .await;
    let mut server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .plugin(OPENAI)
            .config(mock_provider_config("mock", &mock, "MOCK_OPENAI_KEY"))
            .env("MOCK_OPENAI_KEY", "sk-test-sigterm-load"),
    )
    .await;

    const N: usize = 300;
    let answered = Arc::new(AtomicUsize::new(0));
    let term_sent = Arc::new(AtomicBool::new(false));
    let url = server.url("/v1/chat/completions");
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        let client = server.client().clone();
        let url = url.clone();
        let (answered, term_sent) = (answered.clone(), term_sent.clone());
        tasks.push(tokio::spawn(async move {
            // Spread the starts over ~0.9 s.
            tokio::time::sleep(Duration::from_millis(3 * i as u64)).await;
            let (model, stream) = match i % 3 {
                0 => ("mock/gpt-x", true),
                1 => ("echo/echo-1", false),
                _ => ("echo/echo-1", true),
            };
            let mut body = chat_body(model, &format!("load {i}"));
            body["stream"] = json!(stream);
            let mut out = Outcome {
                ok_id: None,
                finished_after_term: false,
                stream_done: false,
            };
            let Ok(resp) = client.post(&url).json(&body).send().await else {
                return out; // refused or reset after SIGTERM: no response
            };
            answered.fetch_add(1, Ordering::SeqCst);
            if resp.status() != 200 {
                return out;
            }
            out.ok_id = resp
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            if stream {
                let sse = collect_sse(resp).await;
                out.stream_done = sse.done;
            } else {
                let _ = resp.bytes().await;
            }
            out.finished_after_term = term_sent.load(Ordering::SeqCst);
            out
        }));
    }

    // Midway: once about a third have been answered.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < N / 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {N} requests answered in 30 s",
            answered.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    term_sent.store(true, Ordering::SeqCst);
    server.sigterm();

    let mut outcomes = Vec::with_capacity(N);
    for t in tasks {
        outcomes.push(t.await.expect("request task"));
    }
    let status = server
        .wait_exit(Duration::from_secs(40))
        .await
        .unwrap_or_else(|| panic!("aihub did not exit after SIGTERM\n{}", server.logs()));
    assert!(status.success(), "exit status {status}\n{}", server.logs());

    let ok_ids: Vec<&str> = outcomes.iter().filter_map(|o| o.ok_id.as_deref()).collect();
    let after_term = outcomes
        .iter()
        .filter(|o| o.ok_id.is_some() && o.finished_after_term)
        .count();
    assert!(
        ok_ids.len() >= N / 4,
        "too few answered requests to test anything: {}",
        ok_ids.len()
    );
    assert!(
        after_term > 0,
        "no request was still in flight when SIGTERM was sent; the test proves nothing"
    );
    let streams_done = outcomes.iter().filter(|o| o.stream_done).count();
    eprintln!(
        "SIGTERM under load: {} of {N} answered 200, {after_term} of them finished after \
         SIGTERM, {streams_done} streams completed",
        ok_ids.len()
    );

    server.restart().await;
    let rows = server.all_calls("").await;
    let logged: HashMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["request_id"].as_str().unwrap_or_default(), r))
        .collect();
    let missing: Vec<&&str> = ok_ids
        .iter()
        .filter(|id| !logged.contains_key(**id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests ({after_term} finished after SIGTERM, {streams_done} \
         streams completed) have no call row after the restart, e.g. {:?}\n{}",
        missing.len(),
        ok_ids.len(),
        &missing[..missing.len().min(5)],
        server.logs()
    );
    for o in &outcomes {
        if let (Some(id), true) = (&o.ok_id, o.stream_done) {
            assert_eq!(
                logged[id.as_str()]["status"],
                "ok",
                "a stream that ended with [DONE]: {}",
                logged[id.as_str()]
            );
        }
    }
}
