//! Graceful shutdown: SIGTERM/SIGINT stop accepting, in-flight streams finish, exit 0.

use crate::common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_stream_finish_then_exits_0() {
    // 12 content chunks 200 ms apart: the stream runs for about 2.6 s.
    let pieces: Vec<String> = (0..12).map(|i| format!(" w{i}")).collect();
    let piece_refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let mock = MockUpstream::always(MockReply::sse(
        openai_stream_chunks("openai/gpt-4o", &piece_refs, Some((3, 12))),
        Duration::from_millis(200),
        SseEnd::Done,
    ))
    .await;
    let server = Arc::new(
        TestServer::start(
            ServerOptions::new()
                .plugin(ECHO)
                .plugin(OPENAI)
                .config(mock_provider_config("mock", &mock, "MOCK_OPENAI_KEY"))
                .env("MOCK_OPENAI_KEY", "sk-test-shutdown"),
        )
        .await,
    );

    let mut req = chat_body("mock/openai/gpt-4o", "talk slowly");
    req["stream"] = json!(true);
    let resp = server.post_chat(&req).await;
    assert_eq!(resp.status(), 200);

    let stream_finished = Arc::new(AtomicBool::new(false));
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = {
        let finished = stream_finished.clone();
        tokio::spawn(async move {
            let mut first_tx = Some(first_tx);
            let sse = collect_sse_with(resp, |data| {
                if data.contains(" w0") {
                    if let Some(tx) = first_tx.take() {
                        let _ = tx.send(());
                    }
                }
            })
            .await;
            finished.store(true, Ordering::SeqCst);
            sse
        })
    };

    // Once the stream is flowing, ask the server to stop.
    tokio::time::timeout(Duration::from_secs(10), first_rx)
        .await
        .expect("first chunk within 10 s")
        .expect("reader alive");
    server.sigterm();

    // New connections are refused while the stream is still in flight.
    let addr = server.addr();
    let mut refused_while_streaming = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let finished_before = stream_finished.load(Ordering::SeqCst);
        match tokio::net::TcpStream::connect(addr).await {
            Err(_) => {
                refused_while_streaming = !finished_before;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(
        refused_while_streaming,
        "new connections should be refused soon after SIGTERM, while the stream is in flight"
    );

    // The in-flight stream completes.
    let sse = reader.await.expect("reader task");
    assert!(sse.transport_error.is_none(), "{sse:?}");
    assert!(
        sse.done,
        "the in-flight stream should end with [DONE]: {sse:?}"
    );
    assert!(sse.errors().is_empty(), "{sse:?}");
    assert_eq!(sse.content(), pieces.concat());

    // And the process exits 0.
    let status = server
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("aihub did not exit after SIGTERM\n{}", server.logs()));
    assert!(status.success(), "exit status {status}\n{}", server.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_when_idle_exits_0() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    server.assert_echo_still_works().await;
    server.sigterm();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("aihub did not exit after SIGTERM\n{}", server.logs()));
    assert!(status.success(), "exit status {status}\n{}", server.logs());
    assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_when_idle_exits_0() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    server.sigint();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("aihub did not exit after SIGINT\n{}", server.logs()));
    assert!(status.success(), "exit status {status}\n{}", server.logs());
}
