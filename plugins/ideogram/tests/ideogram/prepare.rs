//! `prepare`: OpenAI image requests become Ideogram requests (URL, headers, body).

use crate::common::*;
use aihub_ideogram::Ideogram;
use plugin_api::serde_json::{self, json, Value};
use plugin_api::testing::call;
use plugin_api::*;

#[test]
fn manifest_offers_the_ideogram_prefix_with_image_models() {
    let m = Ideogram::manifest();
    assert_eq!(m.name, "ideogram");
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    let [p] = m.providers.as_slice() else {
        panic!("one provider expected")
    };
    assert_eq!(p.prefix, "ideogram");
    assert_eq!(p.base_url, "https://api.ideogram.ai");
    assert_eq!(p.auth, AuthScheme::Header("Api-Key".into()));
    assert_eq!(p.api_key_env.as_deref(), Some("IDEOGRAM_API_KEY"));
    let ids: Vec<&str> = p.models.iter().map(|m| m.id.as_str()).collect();
    for id in [
        "ideogram-v3",
        "ideogram-v3-turbo",
        "ideogram-v3-quality",
        "V_2",
        "V_2_TURBO",
        "V_1",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    for m in &p.models {
        assert_eq!(m.kind, ModelKind::Image, "{}", m.id);
        // Billed per image; the manifest has per-token prices only.
        assert_eq!(
            (m.input_price_per_mtok, m.output_price_per_mtok),
            (None, None)
        );
    }
    let round: Manifest = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
    assert_eq!(round, m);
}

#[test]
fn every_recorded_case_builds_the_expected_request() {
    let cases: Value = json_of(&fixture("requests.json"));
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let model = case["model"].as_str().unwrap();
        let body = serde_json::to_vec(&case["body"]).unwrap();
        let req = upstream(ideogram().prepare(&images(model, &body)));
        assert_eq!(req.method, "POST", "{name}");
        assert_eq!(req.url, case["url"].as_str().unwrap(), "{name}");
        assert_eq!(header(&req, "Api-Key"), Some(KEY), "{name}");
        assert_eq!(header(&req, "authorization"), None, "{name}");
        assert_eq!(header(&req, "accept"), Some("application/json"), "{name}");
        let content_type = header(&req, "content-type").unwrap();
        if let Some(form) = case.get("form") {
            let want: Vec<(String, String)> = form
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (f[0].as_str().unwrap().into(), f[1].as_str().unwrap().into()))
                .collect();
            assert_eq!(form_fields(content_type, &req.body), want, "{name}");
        } else {
            assert_eq!(content_type, "application/json", "{name}");
            assert_eq!(json_of(&req.body), case["json"], "{name}");
        }
    }
}

#[test]
fn the_v3_form_is_exactly_what_ideogram_documents() {
    let body = br#"{"prompt":"A photo of a cat","n":2,"size":"1792x1024"}"#;
    let req = upstream(ideogram().prepare(&images("ideogram-v3", body)));
    assert_eq!(
        header(&req, "content-type"),
        Some("multipart/form-data; boundary=aihub-ideogram-form")
    );
    assert_eq!(
        String::from_utf8(req.body).unwrap(),
        "--aihub-ideogram-form\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nA photo of a cat\r\n\
         --aihub-ideogram-form\r\nContent-Disposition: form-data; name=\"num_images\"\r\n\r\n2\r\n\
         --aihub-ideogram-form\r\nContent-Disposition: form-data; name=\"aspect_ratio\"\r\n\r\n16x9\r\n\
         --aihub-ideogram-form--\r\n"
    );
}

#[test]
fn prompts_with_line_breaks_and_unicode_survive_the_form() {
    let prompt = "Ein Plakat: «Grüße»\r\n--aihub-ideogram-form\r\nzweite Zeile 世界";
    let body = serde_json::to_vec(&json!({"prompt": prompt})).unwrap();
    let req = upstream(ideogram().prepare(&images("ideogram-v3", &body)));
    let ct = header(&req, "content-type").unwrap().to_string();
    assert_ne!(ct, "multipart/form-data; boundary=aihub-ideogram-form");
    assert_eq!(
        form_fields(&ct, &req.body),
        vec![("prompt".to_string(), prompt.to_string())]
    );
}

#[test]
fn every_bad_request_is_refused_with_a_reason() {
    let cases: Value = json_of(&fixture("bad_requests.json"));
    for case in cases.as_array().unwrap() {
        let model = case["model"].as_str().unwrap();
        let body = serde_json::to_vec(&case["body"]).unwrap();
        let e = expect_err(ideogram().prepare(&images(model, &body)));
        assert_eq!(e.class, ErrorClass::BadRequest, "{case}: {e:?}");
        let says = case["says"].as_str().unwrap();
        assert!(e.message.contains(says), "{case}: {}", e.message);
    }
    let e = expect_err(ideogram().prepare(&images("ideogram-v3", b"not json")));
    assert_eq!(e.class, ErrorClass::BadRequest);
}

#[test]
fn chat_embeddings_and_streams_are_refused() {
    let chat = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    for endpoint in [Endpoint::Chat, Endpoint::Embeddings] {
        for stream in [false, true] {
            let c = call(endpoint, "ideogram-v3", chat, Some(KEY), stream, false);
            let e = expect_err(ideogram().prepare(&c));
            assert_eq!(e.class, ErrorClass::BadRequest);
            assert!(e.message.contains("only generates images"), "{e}");
        }
    }
    let c = call(
        Endpoint::Images,
        "ideogram-v3",
        br#"{"prompt":"x"}"#,
        Some(KEY),
        true,
        false,
    );
    let e = expect_err(ideogram().prepare(&c));
    assert!(e.message.contains("does not stream"), "{e}");
    assert!(ideogram().stream(&c).is_err());
    let native = Call {
        format: Format::AnthropicMessages,
        ..images("ideogram-v3", br#"{"prompt":"x"}"#)
    };
    assert_eq!(
        expect_err(ideogram().prepare(&native)).class,
        ErrorClass::BadRequest
    );
}

#[test]
fn base_url_options_headers_and_no_key() {
    let p = provider_with(
        "http://127.0.0.1:9999/",
        json!({"headers": {"x-team": "art"}}),
    )
    .unwrap();
    let body = br#"{"prompt":"a cat"}"#;
    let req = upstream(p.prepare(&images("ideogram-v3", body)));
    assert_eq!(req.url, "http://127.0.0.1:9999/v1/ideogram-v3/generate");
    assert_eq!(header(&req, "x-team"), Some("art"));
    let req = upstream(p.prepare(&images("V_2_TURBO", body)));
    assert_eq!(req.url, "http://127.0.0.1:9999/generate");

    // An empty base URL is the default one.
    let req = upstream(
        provider_with("", Value::Null)
            .unwrap()
            .prepare(&images("V_2", body)),
    );
    assert_eq!(req.url, "https://api.ideogram.ai/generate");

    let c = call(Endpoint::Images, "ideogram-v3", body, None, false, false);
    let req = upstream(ideogram().prepare(&c));
    assert_eq!(header(&req, "Api-Key"), None);

    for (opts, says) in [
        (json!({"headers": {"Api-Key": "k"}}), "set by the plugin"),
        (
            json!({"headers": {"Content-Type": "x"}}),
            "set by the plugin",
        ),
        (json!({"headers": "x"}), "options.headers"),
        (json!([1]), "options must be a table"),
    ] {
        let e = provider_with(aihub_ideogram::BASE_URL, opts.clone()).unwrap_err();
        assert!(e.contains(says), "{opts}: {e}");
    }
    assert!(provider_with("api.ideogram.ai", Value::Null).is_err());
}
