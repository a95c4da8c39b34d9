//! OpenAI requests into Bedrock requests: URL, body, credentials, refusals.

use crate::common::*;
use aihub_bedrock::sigv4;
use plugin_api::serde_json::{json, Value};
use plugin_api::testing::expect_err;
use plugin_api::*;

#[test]
fn a_full_chat_request_translates_to_converse() {
    let openai = json_of(&fixture("request_full.openai.json"));
    let want = json_of(&fixture("request_full.converse.json"));
    assert_eq!(prepared_chat(&openai), want);
}

#[test]
fn urls_per_operation_with_the_model_id_encoded() {
    let p = bedrock();
    let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let base = "https://bedrock-runtime.us-east-1.amazonaws.com/model";
    let req = upstream(p.prepare(&chat(body, false, false)));
    assert_eq!(
        req.url,
        format!("{base}/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse")
    );
    assert_eq!(req.method, "POST");
    let req = upstream(p.prepare(&chat(body, true, true)));
    assert_eq!(
        req.url,
        format!("{base}/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream")
    );
    // An inference profile ARN stays one segment.
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0";
    let c = call_with(
        Endpoint::Chat,
        arn,
        body,
        Credential::ApiKey(BEARER),
        false,
        false,
    );
    let req = upstream(p.prepare(&c));
    assert_eq!(
        req.url,
        format!("{base}/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse")
    );
    let e = br#"{"input":"hello"}"#;
    let c = call_with(
        Endpoint::Embeddings,
        "amazon.titan-embed-text-v2:0",
        e,
        Credential::ApiKey(BEARER),
        false,
        false,
    );
    let req = upstream(p.prepare(&c));
    assert_eq!(
        req.url,
        format!("{base}/amazon.titan-embed-text-v2%3A0/invoke")
    );
    assert_eq!(json_of(&req.body), json!({"inputText": "hello"}));
    assert_eq!(header(&req, "accept"), Some("application/json"));
}

#[test]
fn api_keys_are_bearer_tokens() {
    let req = upstream(bedrock().prepare(&chat(
        br#"{"messages":[{"role":"user","content":"hi"}]}"#,
        false,
        false,
    )));
    assert_eq!(
        header(&req, "authorization"),
        Some(format!("Bearer {BEARER}").as_str())
    );
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(header(&req, "x-amz-date"), None);
}

/// The `SignedHeaders` and `Credential` scope of an Authorization header.
fn scope_of(auth: &str) -> (String, String) {
    let cred = auth
        .split("Credential=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    (cred.to_string(), signed.to_string())
}

/// Recomputes the signature of a prepared request from what it carries.
fn resign(req: &HttpRequest, keys: &sigv4::Keys<'_>, region: &str) -> String {
    let rest = req.url.split_once("://").unwrap().1;
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut headers: Vec<(&str, &str)> = vec![("host", host)];
    for (k, v) in &req.headers {
        if k == "content-type" || k == "accept" {
            headers.push((k, v));
        }
    }
    sigv4::sign_request(
        keys,
        &sigv4::Scope {
            region,
            service: "bedrock",
            unix_ms: NOW_MS,
            normalize_path: true,
        },
        &sigv4::Request {
            method: "POST",
            path,
            query: "",
            headers: &headers,
            body: &req.body,
        },
    )
    .authorization
}

#[test]
fn stored_access_keys_sign_the_request() {
    let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let colon = format!("{AKID}:{SECRET}:{TOKEN}");
    let json_secret =
        json!({"access_key_id": AKID, "secret_access_key": SECRET, "region": "ap-northeast-1"})
            .to_string();
    let cases: Vec<(Credential<'_>, &str, Option<&str>)> = vec![
        (Credential::ApiKey(&colon), "us-east-1", Some(TOKEN)),
        (Credential::ApiKey(&json_secret), "ap-northeast-1", None),
        (
            Credential::AccessKey {
                id: AKID,
                secret: SECRET,
                session_token: None,
                region: Some("eu-south-2"),
            },
            "eu-south-2",
            None,
        ),
        (
            Credential::AccessKey {
                id: AKID,
                secret: SECRET,
                session_token: Some(TOKEN),
                region: None,
            },
            "us-east-1",
            Some(TOKEN),
        ),
    ];
    for (cred, region, token) in cases {
        let c = call_with(Endpoint::Chat, MODEL, body, cred, false, false);
        let req = upstream(bedrock().prepare(&c));
        assert!(
            req.url
                .starts_with(&format!("https://bedrock-runtime.{region}.amazonaws.com/")),
            "{}",
            req.url
        );
        let auth = header(&req, "authorization").unwrap();
        let (scope, signed) = scope_of(auth);
        assert_eq!(
            scope,
            format!("{AKID}/20241105/{region}/bedrock/aws4_request")
        );
        let want_signed = if token.is_some() {
            "content-type;host;x-amz-date;x-amz-security-token"
        } else {
            "content-type;host;x-amz-date"
        };
        assert_eq!(signed, want_signed);
        assert_eq!(header(&req, "x-amz-date"), Some("20241105T170209Z"));
        assert_eq!(header(&req, "x-amz-security-token"), token);
        let keys = sigv4::Keys {
            access_key_id: AKID,
            secret_access_key: SECRET,
            session_token: token,
        };
        assert_eq!(auth, resign(&req, &keys, region));
        // No secret travels in the clear.
        let all = format!("{:?}{}", req.headers, req.url);
        assert!(!all.contains(SECRET));
    }
}

#[test]
fn the_environment_serves_calls_without_a_credential() {
    let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let none = |p: &aihub_bedrock::Bedrock| {
        upstream(p.prepare(&call_with(
            Endpoint::Chat,
            MODEL,
            body,
            Credential::None,
            false,
            false,
        )))
    };
    let p = provider_env(
        "",
        Value::Null,
        &[
            ("AWS_ACCESS_KEY_ID", AKID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", TOKEN),
            ("AWS_REGION", "ca-central-1"),
        ],
    )
    .unwrap();
    let req = none(&p);
    assert!(req
        .url
        .starts_with("https://bedrock-runtime.ca-central-1.amazonaws.com/"));
    let keys = sigv4::Keys {
        access_key_id: AKID,
        secret_access_key: SECRET,
        session_token: Some(TOKEN),
    };
    assert_eq!(
        header(&req, "authorization").unwrap(),
        resign(&req, &keys, "ca-central-1")
    );

    let p = provider_env(
        "",
        Value::Null,
        &[
            ("AWS_BEARER_TOKEN_BEDROCK", BEARER),
            ("AWS_ACCESS_KEY_ID", AKID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ],
    )
    .unwrap();
    assert_eq!(
        header(&none(&p), "authorization"),
        Some(format!("Bearer {BEARER}").as_str())
    );

    // A stored credential wins over the environment.
    let c = call_with(
        Endpoint::Chat,
        MODEL,
        body,
        Credential::ApiKey("ABSKother"),
        false,
        false,
    );
    assert_eq!(
        header(&upstream(p.prepare(&c)), "authorization"),
        Some("Bearer ABSKother")
    );

    let e = expect_err(bedrock().prepare(&call_with(
        Endpoint::Chat,
        MODEL,
        body,
        Credential::None,
        false,
        false,
    )));
    assert_eq!(e.class, ErrorClass::Auth);
    assert!(
        e.message.contains("AWS_BEARER_TOKEN_BEDROCK") && e.message.contains("AWS_ACCESS_KEY_ID"),
        "{e}"
    );
}

#[test]
fn base_url_and_region_options() {
    let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let signed = |p: &aihub_bedrock::Bedrock| {
        let c = call_with(
            Endpoint::Chat,
            "amazon.nova-lite-v1:0",
            body,
            Credential::AccessKey {
                id: AKID,
                secret: SECRET,
                session_token: None,
                region: Some("eu-west-1"),
            },
            false,
            false,
        );
        upstream(p.prepare(&c))
    };
    let keys = sigv4::Keys {
        access_key_id: AKID,
        secret_access_key: SECRET,
        session_token: None,
    };
    // options.region wins over the credential's.
    let p = provider_with("", json!({"region": "us-west-2"})).unwrap();
    let req = signed(&p);
    assert_eq!(
        req.url,
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/amazon.nova-lite-v1%3A0/converse"
    );
    assert_eq!(
        header(&req, "authorization").unwrap(),
        resign(&req, &keys, "us-west-2")
    );
    // A fixed AWS endpoint brings its region.
    let p = provider_with(
        "https://vpce-0abc.bedrock-runtime.eu-central-2.vpce.amazonaws.com",
        Value::Null,
    )
    .unwrap();
    let req = signed(&p);
    assert!(req
        .url
        .starts_with("https://vpce-0abc.bedrock-runtime.eu-central-2.vpce.amazonaws.com/model/"));
    assert_eq!(
        header(&req, "authorization").unwrap(),
        resign(&req, &keys, "eu-central-2")
    );
    // A proxy with a path prefix and a port: signed over the full path and host:port.
    let p = provider_with(
        "http://127.0.0.1:8089/aws/",
        json!({"headers": {"x-team": "blue"}}),
    )
    .unwrap();
    let req = signed(&p);
    assert_eq!(
        req.url,
        "http://127.0.0.1:8089/aws/model/amazon.nova-lite-v1%3A0/converse"
    );
    assert_eq!(
        header(&req, "authorization").unwrap(),
        resign(&req, &keys, "eu-west-1")
    );
    assert_eq!(header(&req, "x-team"), Some("blue"));
    // A template.
    let p = provider_with("https://{region}.bedrock.proxy.example", Value::Null).unwrap();
    assert!(signed(&p)
        .url
        .starts_with("https://eu-west-1.bedrock.proxy.example/model/"));
    for (base, options) in [
        ("ftp://x", Value::Null),
        ("", json!({"region": "../x"})),
        ("", json!({"headers": {"X-Amz-Date": "1"}})),
    ] {
        assert!(
            provider_with(base, options.clone()).is_err(),
            "{base} {options}"
        );
    }
}

#[test]
fn tool_choices() {
    let tools = json!([{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}]);
    let body = |choice: Value| json!({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice});
    let tc = |choice: Value| prepared_chat(&body(choice))["toolConfig"].clone();
    assert_eq!(tc(json!("auto"))["toolChoice"], json!({"auto": {}}));
    assert_eq!(tc(json!("required"))["toolChoice"], json!({"any": {}}));
    assert_eq!(
        tc(json!({"type": "function", "function": {"name": "b"}}))["toolChoice"],
        json!({"tool": {"name": "b"}})
    );
    assert_eq!(tc(Value::Null).get("toolChoice"), None);
    assert_eq!(tc(Value::Null)["tools"].as_array().unwrap().len(), 2);
    assert_eq!(tc(json!("none")), Value::Null, "no tools offered");
    let allowed = tc(
        json!({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "a"}}]}}),
    );
    assert_eq!(allowed["toolChoice"], json!({"any": {}}));
    assert_eq!(allowed["tools"].as_array().unwrap().len(), 1);
    assert_eq!(allowed["tools"][0]["toolSpec"]["name"], "a");
}

#[test]
fn replayed_tool_calls_keep_a_tool_config() {
    // Converse refuses tool blocks without toolConfig: the names in the history are declared.
    let v = prepared_chat(&json!({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": ""},
    ]}));
    assert_eq!(
        v["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    assert_eq!(v["toolConfig"].get("toolChoice"), None);
    assert_eq!(
        v["messages"][1]["content"],
        json!([{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}])
    );
    assert_eq!(
        v["messages"][2]["content"][0]["toolResult"]["content"],
        json!([{"text": ""}])
    );
}

#[test]
fn images_from_s3_and_cache_points() {
    let v = prepared_chat(&json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "s3://bucket/cat.webp"}, "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": "data:image/jpeg;base64,/9j/4AAQ"},
    ]}]}));
    assert_eq!(
        v["messages"][0]["content"],
        json!([
            {"image": {"format": "webp", "source": {"s3Location": {"uri": "s3://bucket/cat.webp"}}}},
            {"cachePoint": {"type": "default"}},
            {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
        ])
    );
}

#[test]
fn what_bedrock_cannot_do_is_refused_by_name() {
    let user = |content: Value| json!({"messages": [{"role": "user", "content": content}]});
    for (body, says) in [
        (json!({}), "'messages' is required"),
        (json!({"messages": []}), "must not be empty"),
        (
            json!({"messages": [{"role": "system", "content": "only"}]}),
            "at least one user",
        ),
        (
            json!({"messages": [{"content": "x"}]}),
            "messages[0].role is required",
        ),
        (
            json!({"messages": [{"role": "robot", "content": "x"}]}),
            "unknown role",
        ),
        (
            json!({"messages": [{"role": "function", "name": "f", "content": "x"}]}),
            "legacy \"function\" role",
        ),
        (
            user(json!([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}])),
            "cannot fetch image URLs",
        ),
        (
            user(
                json!([{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]),
            ),
            "not image/bmp",
        ),
        (
            user(json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}])),
            "messages[0].content[0]: the data URL payload is not valid base64",
        ),
        (
            user(
                json!([{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]),
            ),
            "audio input",
        ),
        (
            user(json!([{"type": "file", "file": {"file_id": "file-1"}}])),
            "needs file_data",
        ),
        (
            user(
                json!([{"type": "file", "file": {"file_data": "data:application/zip;base64,UEsD"}}]),
            ),
            "not \"application/zip\"",
        ),
        (
            user(json!([{"type": "video"}])),
            "unsupported type \"video\"",
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"type": "image_url"}]}]}),
            "system messages may only contain text",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}),
            "tool_calls[0].id is required",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]}),
            "legacy function calls",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "tool_call_id is required",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "n": 2}),
            "'n' must be 1",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
            "not supported by Bedrock",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
            "max_tokens",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "code_interpreter"}]}),
            "tools[0].type",
        ),
    ] {
        let e = prepare_err(&body);
        assert_eq!(e.class, ErrorClass::BadRequest, "{body}: {e:?}");
        assert!(e.message.contains(says), "{body}: {}", e.message);
    }
    let p = bedrock();
    let b = br#"{"prompt":"a cat"}"#;
    let e = expect_err(p.prepare(&call_with(
        Endpoint::Images,
        MODEL,
        b,
        Credential::ApiKey(BEARER),
        false,
        false,
    )));
    assert_eq!(e.class, ErrorClass::BadRequest);
    let body = br#"{"model":"x","max_tokens":1,"messages":[]}"#;
    let c = Call {
        format: Format::AnthropicMessages,
        ..chat(body, false, false)
    };
    assert_eq!(expect_err(p.prepare(&c)).class, ErrorClass::BadRequest);
    assert_eq!(
        expect_err(p.prepare(&chat(b"[1]", false, false))).class,
        ErrorClass::BadRequest
    );
    assert_eq!(
        expect_err(p.prepare(&chat(b"{", false, false))).class,
        ErrorClass::BadRequest
    );
    let c = call_with(
        Endpoint::Chat,
        " ",
        br#"{"messages":[{"role":"user","content":"x"}]}"#,
        Credential::ApiKey(BEARER),
        false,
        false,
    );
    assert!(expect_err(p.prepare(&c))
        .message
        .contains("a model is required"));
    let c = call_with(
        Endpoint::Embeddings,
        "amazon.titan-embed-text-v2:0",
        br#"{"input":["a","b"]}"#,
        Credential::ApiKey(BEARER),
        false,
        false,
    );
    assert!(expect_err(p.prepare(&c))
        .message
        .contains("one input per call"));
}

#[test]
fn cohere_embeddings_batch() {
    let c = call_with(
        Endpoint::Embeddings,
        "cohere.embed-english-v3",
        br#"{"input":["hello","world"]}"#,
        Credential::ApiKey(BEARER),
        false,
        false,
    );
    let req = upstream(bedrock().prepare(&c));
    assert_eq!(
        json_of(&req.body),
        json!({"texts": ["hello", "world"], "input_type": "search_document"})
    );
}
