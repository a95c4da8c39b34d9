//! `parse`: Ideogram replies become OpenAI images responses; failures are classified.

use crate::common::*;
use aihub_ideogram::CONTENT_POLICY;
use plugin_api::serde_json::json;
use plugin_api::testing::{call, response};
use plugin_api::*;

const BODY: &[u8] = br#"{"prompt":"a lighthouse","n":2}"#;

#[test]
fn v3_reply_maps_to_openai_images_with_revised_prompts() {
    let body = fixture("generate_v3.json");
    let c = images("ideogram-v3", BODY);
    let reply = ideogram().parse(&c, &response(200, &[], &body)).unwrap();
    assert!(!reply.pass_through);
    assert_eq!(reply.usage, None, "images are not billed in tokens");
    assert_eq!(
        json_of(&reply.body),
        json!({
            "created": 1_756_290_208u64,
            "data": [
                {
                    "url": "https://ideogram.ai/api/images/ephemeral/3Xk9a1.png?exp=1756376608&signature=abc",
                    "revised_prompt": "A watercolor lighthouse on a cliff at dawn, soft pastel sky, gentle waves below"
                },
                {
                    "url": "https://ideogram.ai/api/images/ephemeral/7Qm2b8.png?exp=1756376608&signature=def",
                    "revised_prompt": "A watercolor lighthouse on a cliff at dawn, pastel tones, seabirds in flight"
                }
            ]
        })
    );
}

#[test]
fn legacy_reply_maps_the_same_way() {
    let body = fixture("generate_legacy.json");
    let reply = ideogram()
        .parse(&images("V_2", BODY), &response(200, &[], &body))
        .unwrap();
    let v = json_of(&reply.body);
    assert_eq!(v["created"], 1_734_283_920u64);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert!(v["data"][0]["url"]
        .as_str()
        .unwrap()
        .contains("legacy-1.png"));
    assert!(v["data"][0]["revised_prompt"]
        .as_str()
        .unwrap()
        .starts_with("A serene tropical beach"));
}

#[test]
fn unsafe_images_are_left_out_and_all_unsafe_is_a_content_policy_error() {
    let body = fixture("generate_v3_partly_unsafe.json");
    let reply = ideogram()
        .parse(&images("ideogram-v3", BODY), &response(200, &[], &body))
        .unwrap();
    let v = json_of(&reply.body);
    assert_eq!(
        v["data"],
        json!([{"url": "https://ideogram.ai/api/images/ephemeral/ok1.png", "revised_prompt": "A red fox in snow"}])
    );

    let body = fixture("generate_v3_unsafe.json");
    let e = ideogram()
        .parse(&images("ideogram-v3", BODY), &response(200, &[], &body))
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::BadRequest);
    assert_eq!(e.code.as_deref(), Some(CONTENT_POLICY));
    assert!(e.message.contains("unsafe"), "{e}");
}

#[test]
fn unreadable_or_empty_replies_are_upstream_errors() {
    let c = Call {
        now_unix_ms: 1_700_000_000_123,
        ..images("ideogram-v3", BODY)
    };
    for body in [
        &b"<html>"[..],
        b"{}",
        br#"{"data": []}"#,
        br#"{"data": {}}"#,
    ] {
        let e = ideogram().parse(&c, &response(200, &[], body)).unwrap_err();
        assert_eq!(
            e.class,
            ErrorClass::Upstream,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // No readable `created`: the host's clock.
    let body = br#"{"created":"soon","data":[{"url":"https://x/1.png","is_image_safe":true}]}"#;
    let v = json_of(
        &ideogram()
            .parse(&c, &response(200, &[], body))
            .unwrap()
            .body,
    );
    assert_eq!(
        v,
        json!({"created": 1_700_000_000u64, "data": [{"url": "https://x/1.png"}]})
    );
}

#[test]
fn errors_are_classified_with_ideograms_words() {
    let retry = [("retry-after", "7")];
    for (status, name, headers, class, says, code) in [
        (
            400,
            "error_400.json",
            &[][..],
            ErrorClass::BadRequest,
            "aspect_ratio must be one",
            None,
        ),
        (
            401,
            "error_401.json",
            &[],
            ErrorClass::Auth,
            "Not authorized",
            None,
        ),
        (
            403,
            "error_403.json",
            &[],
            ErrorClass::Auth,
            "revoked",
            None,
        ),
        (
            422,
            "error_422.json",
            &[],
            ErrorClass::BadRequest,
            "failed the safety checks",
            Some(CONTENT_POLICY),
        ),
        (
            429,
            "error_429.json",
            &retry[..],
            ErrorClass::RateLimited,
            "Too many requests",
            None,
        ),
        (
            500,
            "error_500.html",
            &[],
            ErrorClass::Upstream,
            "HTTP 500: <html>",
            None,
        ),
        (
            503,
            "error_503.json",
            &[],
            ErrorClass::Upstream,
            "temporarily unavailable",
            None,
        ),
    ] {
        let body = fixture(name);
        for endpoint in [Endpoint::Images, Endpoint::Chat] {
            let c = call(endpoint, "ideogram-v3", BODY, Some(KEY), false, false);
            let e = ideogram()
                .parse(&c, &response(status, headers, &body))
                .unwrap_err();
            assert_eq!(e.class, class, "{name}: {e:?}");
            assert_eq!(e.status, Some(status), "{name}");
            assert!(e.message.contains(says), "{name}: {}", e.message);
            assert_eq!(e.code.as_deref(), code, "{name}");
            let wait = (status == 429).then_some(7_000);
            assert_eq!(e.retry_after_ms, wait, "{name}");
        }
    }
    let e = ideogram()
        .parse(&images("ideogram-v3", BODY), &response(502, &[], b""))
        .unwrap_err();
    assert_eq!(
        (e.class, e.message.as_str()),
        (ErrorClass::Upstream, "Ideogram answered HTTP 502")
    );
    let e = ideogram()
        .parse(&images("ideogram-v3", BODY), &response(504, &[], b""))
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Timeout);
}
