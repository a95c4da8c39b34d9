//! A plugin that panics (in `prepare`, in `parse`, mid-stream) fails that one request
//! cleanly; the process survives and the next request to another plugin succeeds.

use crate::common;

use common::*;
use serde_json::json;

async fn faulty_server() -> TestServer {
    TestServer::start(ServerOptions::new().plugin(ECHO).plugin(FAULTY)).await
}

async fn expect_plugin_error(resp: reqwest::Response) {
    let err = expect_error(resp, 500, "server_error").await;
    assert_eq!(err["code"], "plugin_error", "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_in_prepare_fails_only_that_request() {
    let server = faulty_server().await;
    // The plugin itself works for a model that does not panic.
    let resp = server.post_chat(&chat_body("faulty/fine", "hi")).await;
    assert_eq!(resp.status(), 200);

    let resp = server
        .post_chat(&chat_body("faulty/panic-prepare", "hi"))
        .await;
    expect_plugin_error(resp).await;
    server.assert_echo_still_works().await;

    // Again, several times: nothing degrades.
    for _ in 0..3 {
        let resp = server
            .post_chat(&chat_body("faulty/panic-prepare", "hi"))
            .await;
        expect_plugin_error(resp).await;
    }
    server.assert_echo_still_works().await;
    let resp = server.post_chat(&chat_body("faulty/fine", "hi")).await;
    assert_eq!(
        resp.status(),
        200,
        "the faulty plugin keeps serving its other models"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_in_prepare_of_a_stream_request_fails_cleanly() {
    let server = faulty_server().await;
    let mut req = chat_body("faulty/panic-prepare", "hi");
    req["stream"] = json!(true);
    let resp = server.post_chat(&req).await;
    if resp.status() == 200 {
        // The host may have started the stream already: then it must end with an error
        // event and no [DONE].
        let sse = collect_sse(resp).await;
        assert!(!sse.done, "{sse:?}");
        let errors = sse.errors();
        assert_eq!(errors.len(), 1, "{sse:?}");
        let err = assert_error_shape(&errors[0]);
        assert_eq!(err["type"], "server_error", "{err}");
    } else {
        expect_plugin_error(resp).await;
    }
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_in_parse_fails_only_that_request() {
    let server = faulty_server().await;
    let resp = server
        .post_chat(&chat_body("faulty/panic-parse", "hi"))
        .await;
    expect_plugin_error(resp).await;
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_mid_stream_ends_the_stream_with_an_error_event() {
    let server = faulty_server().await;
    for _ in 0..2 {
        let mut req = chat_body("faulty/panic-stream", "hi");
        req["stream"] = json!(true);
        let resp = server.post_chat(&req).await;
        assert_eq!(resp.status(), 200);
        assert!(content_type(&resp).starts_with("text/event-stream"));
        let sse = collect_sse(resp).await;
        assert!(!sse.done, "no [DONE] after a failed stream: {sse:?}");
        // The two chunks the plugin produced before panicking arrived.
        assert_eq!(sse.content_pieces(), vec!["first", " second"], "{sse:?}");
        // Then exactly one error event, last.
        let last: serde_json::Value =
            serde_json::from_str(sse.events.last().expect("events")).expect("JSON event");
        let err = assert_error_shape(&last);
        assert_eq!(err["type"], "server_error", "{last}");
        assert_eq!(err["code"], "plugin_error", "{last}");
        assert_eq!(sse.errors().len(), 1, "{sse:?}");
        server.assert_echo_still_works().await;
    }
    // The non-panicking stream of the same plugin still completes.
    let mut req = chat_body("faulty/fine", "hi");
    req["stream"] = json!(true);
    let sse = collect_sse(server.post_chat(&req).await).await;
    assert!(sse.done, "{sse:?}");
    assert_eq!(sse.content(), "first second");
}
