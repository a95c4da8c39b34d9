use crate::common::*;
use plugin_api::serde_json::{json, Value};
use plugin_api::*;

/// A client body with every kind of message and the fields that must pass untouched.
const CHAT_BODY: &str = r#"{"model":"openai/gpt-4o","temperature":0.70,"seed":12345678901234567890,
 "messages":[
  {"role":"developer","content":"Be brief."},
  {"role":"user","content":[{"type":"text","text":"What's in this image?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]},
  {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}}]},
  {"role":"tool","tool_call_id":"call_1","content":"18°C, cloudy"}
 ],
 "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]},"strict":true}}],
 "tool_choice":"auto","parallel_tool_calls":true,
 "response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"}}},
 "user":"u-42"}"#;

fn without(mut v: Value, keys: &[&str]) -> Value {
    for k in keys {
        v.as_object_mut().unwrap().remove(*k);
    }
    v
}

#[test]
fn chat_request_replaces_model_only_and_authenticates() {
    let req = upstream(openai().prepare(&chat(CHAT_BODY.as_bytes(), false, false)));
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://api.openai.com/v1/chat/completions");
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(header(&req, "authorization"), Some("Bearer sk-test"));
    let sent = json_of(&req.body);
    assert_eq!(sent["model"], "gpt-4o");
    let client = json_of(CHAT_BODY.as_bytes());
    assert_eq!(without(sent, &["model"]), without(client, &["model"]));
    // Untouched fields keep their exact bytes: number spelling, big integers, order.
    let text = String::from_utf8(req.body).unwrap();
    assert!(
        text.starts_with(
            r#"{"model":"gpt-4o","temperature":0.70,"seed":12345678901234567890,"messages":["#
        ),
        "{text}"
    );
    assert!(text.contains(r#""arguments":"{\"location\":\"Paris\"}""#));
    assert!(!text.contains("stream"));
}

#[test]
fn streamed_chat_forces_usage_upstream() {
    let body = br#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#;
    let req = upstream(openai().prepare(&chat(body, true, false)));
    let sent = json_of(&req.body);
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));

    // The client's own stream options are kept, include_usage forced on.
    let body = br#"{"model":"x","messages":[],"stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false}}"#;
    let sent = json_of(&upstream(openai().prepare(&chat(body, true, false))).body);
    assert_eq!(
        sent["stream_options"],
        json!({"include_usage": true, "include_obfuscation": false})
    );
    let body = br#"{"model":"x","messages":[],"stream":true,"stream_options":null}"#;
    let sent = json_of(&upstream(openai().prepare(&chat(body, true, true))).body);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));

    // A call the host does not stream is not streamed upstream either.
    let body = br#"{"model":"x","messages":[],"stream":true}"#;
    let sent = json_of(&upstream(openai().prepare(&chat(body, false, false))).body);
    assert_eq!(sent["stream"], false);
}

#[test]
fn mistral_gets_no_stream_options() {
    let p = provider("mistral", "https://api.mistral.ai/v1", Value::Null);
    let body = br#"{"model":"x","messages":[],"stream_options":{"include_usage":true}}"#;
    let req = upstream(p.prepare(&chat(body, true, true)));
    assert_eq!(req.url, "https://api.mistral.ai/v1/chat/completions");
    let sent = json_of(&req.body);
    assert_eq!(sent["stream"], true);
    assert!(sent.get("stream_options").is_none(), "{sent}");
}

#[test]
fn azure_uses_deployment_urls_and_api_key_header() {
    let p = provider("azure", "https://my-res.openai.azure.com/", Value::Null);
    let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let req = upstream(p.prepare(&chat(body, true, false)));
    assert_eq!(
        req.url,
        "https://my-res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(header(&req, "api-key"), Some("sk-test"));
    assert_eq!(header(&req, "authorization"), None);
    assert_eq!(json_of(&req.body)["stream_options"]["include_usage"], true);

    let p = provider(
        "corp",
        "https://my-res.openai.azure.com",
        json!({"flavor": "azure", "api_version": "2025-01-01-preview", "deployments": {"text-embedding-3-small": "emb small"}}),
    );
    let c = call(
        Endpoint::Embeddings,
        "text-embedding-3-small",
        br#"{"input":"hi"}"#,
        Some("k"),
        false,
        false,
    );
    let req = upstream(p.prepare(&c));
    assert_eq!(
        req.url,
        "https://my-res.openai.azure.com/openai/deployments/emb%20small/embeddings?api-version=2025-01-01-preview"
    );
    let c = call(
        Endpoint::Images,
        "dall-e-3",
        br#"{"prompt":"a cat"}"#,
        Some("k"),
        false,
        false,
    );
    assert_eq!(
        upstream(p.prepare(&c)).url,
        "https://my-res.openai.azure.com/openai/deployments/dall-e-3/images/generations?api-version=2025-01-01-preview"
    );

    let p = provider(
        "azure",
        "https://my-res.openai.azure.com/openai/v1",
        json!({"api_version": "v1"}),
    );
    let req = upstream(p.prepare(&chat(body, false, false)));
    assert_eq!(
        req.url,
        "https://my-res.openai.azure.com/openai/v1/chat/completions"
    );
    assert_eq!(json_of(&req.body)["model"], "gpt-4o");
}

#[test]
fn no_key_no_auth_header() {
    let p = provider("ollama", "http://127.0.0.1:11434/v1", Value::Null);
    let c = call(
        Endpoint::Chat,
        "llama3.2",
        br#"{"messages":[]}"#,
        None,
        false,
        false,
    );
    let req = upstream(p.prepare(&c));
    assert_eq!(req.url, "http://127.0.0.1:11434/v1/chat/completions");
    assert_eq!(header(&req, "authorization"), None);
    assert_eq!(json_of(&req.body)["model"], "llama3.2");
    let c = call(
        Endpoint::Chat,
        "gpt-4o",
        br#"{"messages":[]}"#,
        Some("  "),
        false,
        false,
    );
    assert_eq!(
        header(&upstream(openai().prepare(&c)), "authorization"),
        None
    );
    // A key read from a file keeps no trailing newline.
    let c = call(
        Endpoint::Chat,
        "gpt-4o",
        br#"{"messages":[]}"#,
        Some("sk-abc\n"),
        false,
        false,
    );
    assert_eq!(
        header(&upstream(openai().prepare(&c)), "authorization"),
        Some("Bearer sk-abc")
    );
}

#[test]
fn extra_headers_are_sent_and_may_replace_auth() {
    let p = provider(
        "openrouter",
        "https://openrouter.ai/api/v1",
        json!({"headers": {"HTTP-Referer": "https://example.com", "X-Title": "aihub"}}),
    );
    let c = call(
        Endpoint::Chat,
        "openai/gpt-4o",
        br#"{"messages":[]}"#,
        Some("or-key"),
        false,
        false,
    );
    let req = upstream(p.prepare(&c));
    assert_eq!(header(&req, "http-referer"), Some("https://example.com"));
    assert_eq!(header(&req, "x-title"), Some("aihub"));
    assert_eq!(header(&req, "authorization"), Some("Bearer or-key"));
    assert_eq!(json_of(&req.body)["model"], "openai/gpt-4o");

    let p = provider(
        "gw",
        "https://gw.example/v1",
        json!({"headers": {"Authorization": "Bearer static"}}),
    );
    let req = upstream(p.prepare(&c));
    assert_eq!(header(&req, "authorization"), Some("Bearer static"));
}

#[test]
fn embeddings_and_images_pass_through_with_model_replaced() {
    let body = br#"{"model":"openai/text-embedding-3-small","input":["a","b"],"encoding_format":"float","dimensions":256}"#;
    let c = call(
        Endpoint::Embeddings,
        "text-embedding-3-small",
        body,
        Some("sk-test"),
        false,
        false,
    );
    let req = upstream(openai().prepare(&c));
    assert_eq!(req.url, "https://api.openai.com/v1/embeddings");
    assert_eq!(
        String::from_utf8(req.body).unwrap(),
        r#"{"model":"text-embedding-3-small","input":["a","b"],"encoding_format":"float","dimensions":256}"#
    );
    let body = br#"{"prompt":"a white cat","n":1,"size":"1024x1024"}"#;
    let c = call(
        Endpoint::Images,
        "dall-e-3",
        body,
        Some("sk-test"),
        false,
        false,
    );
    let req = upstream(openai().prepare(&c));
    assert_eq!(req.url, "https://api.openai.com/v1/images/generations");
    assert_eq!(
        String::from_utf8(req.body).unwrap(),
        r#"{"prompt":"a white cat","n":1,"size":"1024x1024","model":"dall-e-3"}"#
    );
}

#[test]
fn bad_client_bodies_are_bad_requests() {
    for body in [
        &b"not json"[..],
        b"",
        b"[1,2]",
        b"{\"messages\":[}",
        b"{\"model\":\"x\"}",
        b"{\"messages\":\"hi\"}",
        b"{\"messages\":null}",
    ] {
        let err = openai().prepare(&chat(body, false, false)).unwrap_err();
        assert_eq!(
            err.class,
            ErrorClass::BadRequest,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let c = call(
        Endpoint::Chat,
        " ",
        br#"{"messages":[]}"#,
        None,
        false,
        false,
    );
    assert_eq!(
        openai().prepare(&c).unwrap_err().class,
        ErrorClass::BadRequest
    );
    let c = call(Endpoint::Embeddings, "e", b"[]", None, false, false);
    assert_eq!(
        openai().prepare(&c).unwrap_err().class,
        ErrorClass::BadRequest
    );
}
