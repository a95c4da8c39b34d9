use crate::common::*;
use plugin_api::testing::response;
use plugin_api::*;

fn parse(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<Reply, ProviderError> {
    let c = chat(br#"{"messages":[]}"#, false, false);
    openai().parse(&c, &response(status, headers, body))
}

#[test]
fn completion_passes_through_byte_for_byte_with_usage() {
    let body = fixture("chat_completion.json");
    let reply = parse(200, &[("content-type", "application/json")], &body).unwrap();
    // A pass-through reply: the host sends the upstream's bytes on unchanged.
    assert!(reply.pass_through);
    assert!(reply.body.is_empty());
    assert_eq!(
        reply.usage,
        Some(Usage {
            input_tokens: 1117,
            output_tokens: 46,
            cached_input_tokens: 1024,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        })
    );
}

#[test]
fn embeddings_usage() {
    let body = fixture("embeddings.json");
    let c = call(
        Endpoint::Embeddings,
        "text-embedding-3-small",
        b"{}",
        None,
        false,
        false,
    );
    let reply = openai().parse(&c, &response(200, &[], &body)).unwrap();
    assert!(reply.pass_through && reply.body.is_empty());
    let u = reply.usage.unwrap();
    assert_eq!((u.input_tokens, u.output_tokens), (5, 0));
}

#[test]
fn reasoning_tokens_and_missing_usage() {
    let body = br#"{"id":"c","object":"chat.completion","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":500,"total_tokens":520,"completion_tokens_details":{"reasoning_tokens":448}}}"#;
    let u = parse(200, &[], body).unwrap().usage.unwrap();
    assert_eq!((u.output_tokens, u.reasoning_tokens), (500, 448));
    let body = br#"{"id":"c","object":"chat.completion","choices":[]}"#;
    assert_eq!(parse(200, &[], body).unwrap().usage, None);
}

#[test]
fn unreadable_2xx_is_an_upstream_error_not_a_panic() {
    for body in [
        &b""[..],
        b"<html>gateway</html>",
        b"{\"id\":\"chatcmpl\",\"choices\":[",
        b"[]",
        b"null",
        b"\xff\xfe",
        b"{\"usage\": 1} trailing",
    ] {
        let err = parse(200, &[], body).unwrap_err();
        assert_eq!(
            err.class,
            ErrorClass::Upstream,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(err.message.contains("unreadable"), "{}", err.message);
    }
    // A usage of an unexpected shape is ignored, not fatal.
    let reply = parse(200, &[], br#"{"choices":[],"usage":"n/a"}"#).unwrap();
    assert_eq!(reply.usage, None);
}

#[test]
fn error_body_with_2xx_status_is_an_error() {
    let err = parse(
        200,
        &[],
        br#"{"error":{"message":"Provider returned error","code":502}}"#,
    )
    .unwrap_err();
    assert_eq!((err.class, err.status), (ErrorClass::Upstream, Some(502)));
    assert_eq!(err.message, "Provider returned error");
    let err = parse(
        200,
        &[],
        br#"{"error":{"message":"No credits","code":402}}"#,
    )
    .unwrap_err();
    assert_eq!(err.class, ErrorClass::Auth);
}

struct Case {
    status: u16,
    fixture: &'static str,
    class: ErrorClass,
    message: &'static str,
    code: Option<&'static str>,
}

#[test]
fn openai_error_bodies_are_classified_with_the_providers_words() {
    let cases = [
        Case {
            status: 400,
            fixture: "error_400.json",
            class: ErrorClass::BadRequest,
            message: "This model's maximum context length is 128000 tokens.",
            code: Some("context_length_exceeded"),
        },
        Case {
            status: 401,
            fixture: "error_401.json",
            class: ErrorClass::Auth,
            message: "Incorrect API key provided",
            code: Some("invalid_api_key"),
        },
        Case {
            status: 403,
            fixture: "error_403.json",
            class: ErrorClass::Auth,
            message: "Country, region, or territory not supported",
            code: Some("unsupported_country_region_territory"),
        },
        Case {
            status: 404,
            fixture: "error_404.json",
            class: ErrorClass::BadRequest,
            message: "The model `gpt-9` does not exist",
            code: Some("model_not_found"),
        },
        Case {
            status: 429,
            fixture: "error_429.json",
            class: ErrorClass::RateLimited,
            message: "Rate limit reached for gpt-4o",
            code: Some("rate_limit_exceeded"),
        },
        Case {
            status: 500,
            fixture: "error_500.json",
            class: ErrorClass::Upstream,
            message: "The server had an error while processing your request.",
            code: None,
        },
        Case {
            status: 503,
            fixture: "error_503.json",
            class: ErrorClass::Upstream,
            message: "The engine is currently overloaded, please try again later",
            code: None,
        },
    ];
    for case in cases {
        let err = parse(case.status, &[], &fixture(case.fixture)).unwrap_err();
        assert_eq!(err.class, case.class, "{}", case.fixture);
        assert_eq!(err.status, Some(case.status));
        assert!(
            err.message.starts_with(case.message),
            "{}: {}",
            case.fixture,
            err.message
        );
        assert_eq!(err.code.as_deref(), case.code, "{}", case.fixture);
    }
}

#[test]
fn retry_after_from_headers_or_message() {
    let body = fixture("error_429.json");
    let err = parse(429, &[("Retry-After", "20")], &body).unwrap_err();
    assert_eq!(err.retry_after_ms, Some(20_000));
    let err = parse(
        429,
        &[("retry-after-ms", "1500"), ("retry-after", "2")],
        &body,
    )
    .unwrap_err();
    assert_eq!(err.retry_after_ms, Some(1_500));
    // No header: OpenAI's own hint, "Please try again in 2.06s".
    let err = parse(429, &[], &body).unwrap_err();
    assert_eq!(err.retry_after_ms, Some(2_060));
    let err = parse(
        429,
        &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
        br#"{"error":{"message":"slow down"}}"#,
    )
    .unwrap_err();
    // An HTTP date is understood too; one in the past means "now".
    assert_eq!(
        (err.class, err.retry_after_ms),
        (ErrorClass::RateLimited, Some(0))
    );
    let err = parse(503, &[("retry-after", "5")], &fixture("error_503.json")).unwrap_err();
    assert_eq!(err.retry_after_ms, Some(5_000));
}

#[test]
fn other_statuses_and_body_shapes() {
    let cases: [(u16, &[u8], ErrorClass, &str); 10] = [
        (408, b"", ErrorClass::Timeout, "upstream answered HTTP 408"),
        (504, b"<html><body>504 Gateway Time-out</body></html>", ErrorClass::Timeout, "<html><body>504 Gateway Time-out</body></html>"),
        (413, b"request entity too large", ErrorClass::BadRequest, "request entity too large"),
        (
            422,
            br#"{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","foo"],"msg":"Extra inputs are not permitted"}]},"type":"invalid_request_error","param":null,"code":null}"#,
            ErrorClass::BadRequest,
            r#"{"detail":[{"loc":["body","foo"],"msg":"Extra inputs are not permitted","type":"extra_forbidden"}]}"#,
        ),
        (404, br#"{"error":"model \"llama9\" not found, try pulling it first"}"#, ErrorClass::BadRequest, "model \"llama9\" not found, try pulling it first"),
        (402, br#"{"error":{"message":"Insufficient credits","code":402}}"#, ErrorClass::Auth, "Insufficient credits"),
        (502, b"upstream connect error or disconnect/reset before headers", ErrorClass::Upstream, "upstream connect error or disconnect/reset before headers"),
        (500, br#""internal error""#, ErrorClass::Upstream, "internal error"),
        (400, br#"{"detail":"Invalid model"}"#, ErrorClass::BadRequest, "Invalid model"),
        (529, br#"{"error":{"message":"Overloaded","type":"overloaded_error"}}"#, ErrorClass::Upstream, "Overloaded"),
    ];
    for (status, body, class, message) in cases {
        let err = parse(status, &[], body).unwrap_err();
        assert_eq!((err.class, err.status), (class, Some(status)), "{status}");
        assert_eq!(err.message, message, "{status}");
    }
    let err = parse(
        400,
        &[],
        br#"{"error":{"message":"bad","type":"invalid_request_error","code":3001}}"#,
    )
    .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("3001"));
}
