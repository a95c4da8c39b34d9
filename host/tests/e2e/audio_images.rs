//! Audio and image providers through the real binary: an audio transcription upload and
//! a speech download through the openai plugin against a mock (bytes compared both
//! ways), and Ideogram image generation against a mock.

use crate::common;

use common::*;
use serde_json::{json, Value};

const BOUNDARY: &str = "aihub-test-boundary-7f3a";

/// Bytes that are not text: every value, several times.
fn audio_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn upload(model: &str, file: &[u8], format: &str) -> Vec<u8> {
    let mut b = Vec::new();
    let text = |b: &mut Vec<u8>, name: &str, value: &str| {
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    };
    b.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\n").as_bytes(),
    );
    b.extend_from_slice(file);
    b.extend_from_slice(b"\r\n");
    text(&mut b, "model", model);
    text(&mut b, "response_format", format);
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn audio_mock(req: &Recorded) -> MockReply {
    let raw = |status: u16, ct: &str, body: Vec<u8>| MockReply::Raw {
        status,
        content_type: ct.into(),
        body,
    };
    if req.uri.ends_with("/audio/speech") {
        if req.json()["model"] == "tts-cut" {
            // Some audio, slowly, then the connection drops.
            let pieces = vec![json!("frame-1"), json!("frame-2")];
            return MockReply::sse(pieces, std::time::Duration::from_millis(200), SseEnd::Cut);
        }
        return raw(200, "audio/mpeg", audio_bytes(300_000));
    }
    if req.uri.ends_with("/audio/transcriptions") || req.uri.ends_with("/audio/translations") {
        let body = String::from_utf8_lossy(&req.body);
        if body.contains("\r\n\r\nverbose_json\r\n") {
            return MockReply::json(
                200,
                json!({"task": "transcribe", "text": "Hello there.", "duration": 12.9,
                       "usage": {"type": "duration", "seconds": 13}}),
            );
        }
        if body.contains("\r\n\r\nsrt\r\n") {
            return raw(
                200,
                "text/plain; charset=utf-8",
                b"1\n00:00:00,000 --> 00:00:01,500\nHello there.\n".to_vec(),
            );
        }
        return MockReply::json(
            200,
            json!({"text": "Hello there.", "usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 3, "total_tokens": 17}}),
        );
    }
    MockReply::openai_error(404, "unexpected path", "not_found")
}

async fn post_upload(s: &TestServer, path: &str, body: Vec<u8>, ct: &str) -> reqwest::Response {
    s.client()
        .post(s.url(path))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_transcription_upload_and_a_speech_download_pass_through_unchanged() {
    let mock = MockUpstream::start(audio_mock).await;
    let s = TestServer::start(
        ServerOptions::new()
            .plugin(OPENAI)
            .config(mock_provider_config("openai", &mock, "TEST_OPENAI_KEY"))
            .env("TEST_OPENAI_KEY", "sk-audio-0001"),
    )
    .await;
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let file = audio_bytes(200_000);
    let resp = post_upload(
        &s,
        "/v1/audio/transcriptions",
        upload("openai/whisper-1", &file, "json"),
        &ct,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["text"], "Hello there.");
    // The upstream got the very upload, with only the model field changed.
    let sent = &mock.requests()[0];
    assert_eq!(sent.uri, "/v1/audio/transcriptions");
    assert_eq!(sent.body, upload("whisper-1", &file, "json"));
    assert_eq!(sent.header("content-type"), Some(ct.as_str()));
    assert_eq!(sent.header("authorization"), Some("Bearer sk-audio-0001"));
    // Text formats come back as they are.
    let resp = post_upload(
        &s,
        "/v1/audio/translations",
        upload("openai/whisper-1", &file, "srt"),
        &ct,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(content_type(&resp).starts_with("text/plain"));
    assert_eq!(
        resp.text().await.unwrap(),
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n"
    );

    let resp = s
        .post_json(
            "/v1/audio/speech",
            &json!({"model": "openai/tts-1", "input": "Hello there.", "voice": "alloy"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(content_type(&resp), "audio/mpeg");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), audio_bytes(300_000));
    assert_eq!(mock.requests()[2].json()["model"], "tts-1");
    // Streamed as it comes: the first bytes arrive before the upstream is done, and an
    // upstream that drops mid-way cuts the download (no clean end).
    let mut resp = s
        .post_json(
            "/v1/audio/speech",
            &json!({"model": "openai/tts-cut", "input": "x", "voice": "alloy"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().expect("first bytes");
    assert!(String::from_utf8_lossy(&first).contains("frame-1"));
    let mut rest = Ok(Some(bytes::Bytes::new()));
    while let Ok(Some(_)) = rest {
        rest = resp.chunk().await;
    }
    assert!(rest.is_err(), "a cut download must not end cleanly");

    // Bad uploads are the client's error, in OpenAI's shape.
    let e = expect_error(
        post_upload(
            &s,
            "/v1/audio/transcriptions",
            b"{}".to_vec(),
            "application/json",
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data"),
        "{e}"
    );
    let no_file = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nopenai/whisper-1\r\n--{BOUNDARY}--\r\n"
    );
    let e = expect_error(
        post_upload(&s, "/v1/audio/transcriptions", no_file.into_bytes(), &ct).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "file");
    let e = expect_error(
        s.post_json("/v1/audio/speech", &json!({"model": "openai/tts-1"}))
            .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "input");

    // Recorded like any call, under its endpoint, with the usage the upstream reported.
    let calls = s.calls_at_least(6).await;
    let t = calls
        .iter()
        .find(|c| c["endpoint"] == "audio_transcriptions" && c["status"] == "ok")
        .unwrap_or_else(|| panic!("{calls:?}"));
    assert_eq!(t["input_tokens"], 14);
    assert_eq!(t["model"], "openai/whisper-1");
    assert!(calls.iter().any(|c| c["endpoint"] == "audio_speech"));
}

#[tokio::test]
async fn audio_is_priced_by_the_second_and_by_the_character() {
    let mock = MockUpstream::start(audio_mock).await;
    let s = TestServer::start(
        ServerOptions::new()
            .plugin(OPENAI)
            .config(mock_provider_config("openai", &mock, "TEST_OPENAI_KEY"))
            .env("TEST_OPENAI_KEY", "sk-audio-0001"),
    )
    .await;
    // $0.0001 a second (Whisper's $0.006 a minute); $15 per million characters (tts-1).
    let put = |model: &str, body: Value| {
        let path = format!("/api/admin/rates/{model}");
        let s = &s;
        async move {
            s.admin_ok(reqwest::Method::PUT, &path, Some(&body), 200)
                .await
        }
    };
    let r = put(
        "openai/whisper-1",
        json!({"input_per_mtok": 0, "output_per_mtok": 0, "per_second": 0.0001}),
    )
    .await;
    assert_eq!(r["per_second_micros"], 100, "{r}");
    put(
        "openai/tts-1",
        json!({"input_per_mtok": 0, "output_per_mtok": 0, "per_million_characters": 15.0}),
    )
    .await;
    let e = s
        .admin(
            reqwest::Method::PUT,
            "/api/admin/rates/openai/tts-1",
            Some(&json!({"input_per_mtok": 0, "output_per_mtok": 0, "per_second": -1})),
        )
        .await;
    assert_eq!(e.status(), 400);
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let resp = post_upload(
        &s,
        "/v1/audio/transcriptions",
        upload("openai/whisper-1", &audio_bytes(1000), "verbose_json"),
        &ct,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = s
        .post_json(
            "/v1/audio/speech",
            &json!({"model": "openai/tts-1", "input": "Hello there.", "voice": "alloy"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await.unwrap();
    let calls = s.calls_at_least(2).await;
    let cost = |endpoint: &str| {
        calls
            .iter()
            .find(|c| c["endpoint"] == endpoint)
            .map(|c| c["cost_micros"].clone())
    };
    // 13 s × 100 µUSD; 12 characters × $15 / 1e6 = 180 µUSD.
    assert_eq!(cost("audio_transcriptions"), Some(json!(1300)), "{calls:?}");
    assert_eq!(cost("audio_speech"), Some(json!(180)), "{calls:?}");
}

#[tokio::test]
async fn ideogram_generates_images_in_openais_shape() {
    let fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/ideogram/tests/fixtures/generate_v3.json"),
    )
    .unwrap();
    let mock = MockUpstream::start(move |_| MockReply::Raw {
        status: 200,
        content_type: "application/json".into(),
        body: fixture.clone(),
    })
    .await;
    let config = format!(
        "[[providers]]\nprefix = \"ideogram\"\nplugin = \"ideogram\"\nbase_url = \"http://{}\"\napi_key_env = \"TEST_IDEOGRAM_KEY\"\n",
        mock.addr()
    );
    let s = TestServer::start(
        ServerOptions::new()
            .plugin("libaihub_ideogram.so")
            .config(config)
            .env("TEST_IDEOGRAM_KEY", "ideo-test-key-0001"),
    )
    .await;
    let resp = s
        .post_json(
            "/v1/images/generations",
            &json!({"model": "ideogram/ideogram-v3", "prompt": "a lighthouse", "n": 2, "size": "1792x1024"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{v}");
    assert!(data[0]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://ideogram.ai/"));
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    let sent = &mock.requests()[0];
    assert_eq!(sent.uri, "/v1/ideogram-v3/generate");
    assert_eq!(sent.header("api-key"), Some("ideo-test-key-0001"));
    let body = String::from_utf8_lossy(&sent.body);
    assert!(
        body.contains("a lighthouse") && body.contains("16x9"),
        "{body}"
    );
    // What Ideogram cannot do is refused by name.
    let e = expect_error(
        s.post_json(
            "/v1/images/generations",
            &json!({"model": "ideogram/ideogram-v3", "prompt": "x", "response_format": "b64_json"}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("b64_json"), "{e}");
    let listed: Value = s.get("/v1/models").await.json().await.unwrap();
    assert!(listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "ideogram/ideogram-v3" && m["kind"] == "image"));
}
