use crate::common::*;
use plugin_api::serde_json::{json, Value};
use plugin_api::testing::{assert_same_at_every_split, Clock, SplitCheck};
use plugin_api::*;

const FIXTURES: [&str; 4] = [
    "chat_stream_text.sse",
    "chat_stream_tools.sse",
    "chat_stream_usage_on_last_choice.sse",
    "chat_stream_error.sse",
];

fn text_usage() -> Usage {
    Usage {
        input_tokens: 19,
        output_tokens: 10,
        ..Usage::default()
    }
}

#[test]
fn text_stream_with_usage_asked_passes_every_chunk_byte_for_byte() {
    let sse = fixture("chat_stream_text.sse");
    let o = decode(&openai(), true, &sse);
    let mut expected = data_lines(&sse);
    assert_eq!(expected.pop().as_deref(), Some(&b"[DONE]"[..]));
    assert_eq!(o.chunks, expected);
    assert_eq!(o.usage, Some(text_usage()));
    assert!(o.done);
    assert_eq!(o.error, None);
    let last = json_of(o.chunks.last().unwrap());
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 29);
}

#[test]
fn text_stream_without_usage_asked_records_it_but_hides_the_usage_chunk() {
    let sse = fixture("chat_stream_text.sse");
    let o = decode(&openai(), false, &sse);
    let lines = data_lines(&sse);
    assert_eq!(o.chunks, lines[..lines.len() - 2].to_vec());
    assert_eq!(o.usage, Some(text_usage()));
    assert!(o.done);
    let text: String = o
        .values()
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Hello! How can I assist you today? 😊");
    assert!(o.values().iter().all(|c| c["usage"].is_null()));
}

#[test]
fn parallel_tool_calls_reassemble() {
    let sse = fixture("chat_stream_tools.sse");
    let o = decode(&openai(), false, &sse);
    assert!(o.done);
    assert_eq!(
        o.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((85, 52))
    );
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    for chunk in o.values() {
        let choice = &chunk["choices"][0];
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
        for tc in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.resize(i + 1, Default::default());
            }
            if let Some(id) = tc["id"].as_str() {
                calls[i].0 = id.to_string();
            }
            if let Some(name) = tc["function"]["name"].as_str() {
                calls[i].1.push_str(name);
            }
            if let Some(args) = tc["function"]["arguments"].as_str() {
                calls[i].2.push_str(args);
            }
        }
    }
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0, "call_pCUVgG8pkUuMuTLqzjVxCHQy");
    assert_eq!(calls[1].1, "get_weather");
    let args: Vec<Value> = calls.iter().map(|c| json_of(c.2.as_bytes())).collect();
    assert_eq!(
        args,
        vec![
            json!({"location": "Paris, France"}),
            json!({"location": "Bogotá, Colombia"})
        ]
    );
}

#[test]
fn usage_on_a_content_chunk_is_cut_out_when_not_asked() {
    let sse = fixture("chat_stream_usage_on_last_choice.sse");
    let lines = data_lines(&sse);
    let o = decode(&openai(), false, &sse);
    assert_eq!(
        o.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((8, 4))
    );
    assert!(o.done);
    assert_eq!(o.chunks.len(), 3);
    assert_eq!(o.chunks[..2], lines[..2]);
    let mut expected = json_of(&lines[2]);
    expected.as_object_mut().unwrap().remove("usage");
    assert_eq!(json_of(&o.chunks[2]), expected);
    assert_eq!(
        json_of(&o.chunks[2])["choices"][0]["delta"]["content"],
        " !"
    );
    // Field order survives the re-encoding.
    assert!(String::from_utf8_lossy(&o.chunks[2])
        .starts_with(r#"{"id":"cmpl-e5cc70bb28c444948073e77776eb30ef","object":"#));

    let o = decode(&openai(), true, &sse);
    assert_eq!(o.chunks, lines[..3].to_vec());
}

#[test]
fn groq_usage_extension_is_recorded() {
    let sse = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"llama-3.1-8b-instant\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}],\"x_groq\":{\"id\":\"req_01\"}}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"llama-3.1-8b-instant\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"x_groq\":{\"id\":\"req_01\",\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":1,\"total_tokens\":13}}}\n\n",
        "data: [DONE]\n\n",
    );
    let o = decode(&openai(), false, sse.as_bytes());
    assert_eq!(o.chunks, data_lines(sse.as_bytes())[..2].to_vec());
    assert_eq!(o.usage.map(|u| u.input_tokens), Some(12));
    assert!(o.done);

    // A client that asked for usage gets OpenAI's usage chunk, written for it.
    let o = decode(&openai(), true, sse.as_bytes());
    assert_eq!(o.chunks[..2], data_lines(sse.as_bytes())[..2]);
    assert_eq!(
        json_of(&o.chunks[2]),
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"llama-3.1-8b-instant","choices":[],
               "usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}})
    );
    assert!(o.done);
}

#[test]
fn usage_only_chunk_with_spaced_empty_choices_is_dropped_when_not_asked() {
    let sse = b"data: {\"id\":\"x\",\"choices\" : [ ] ,\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n";
    let o = decode(&openai(), false, sse);
    assert!(o.chunks.is_empty() && o.done);
    assert_eq!(o.usage.map(|u| u.output_tokens), Some(3));
    // No usage chunk is written twice when the upstream sent one.
    assert_eq!(decode(&openai(), true, sse).chunks.len(), 1);
}

#[test]
fn in_stream_error_ends_the_stream_after_the_chunks_before_it() {
    let sse = fixture("chat_stream_error.sse");
    let o = decode(&openai(), false, &sse);
    assert_eq!(o.chunks, data_lines(&sse)[..1].to_vec());
    assert!(!o.done);
    let err = o.error.expect("error");
    assert_eq!((err.class, err.status), (ErrorClass::Upstream, Some(502)));
    assert_eq!(err.message, "Provider returned error");
    assert_eq!(err.code.as_deref(), Some("502"));

    let first = br#"data: {"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}

data: [DONE]

"#;
    let o = decode(&openai(), true, first);
    assert!(o.chunks.is_empty() && !o.done);
    let err = o.error.unwrap();
    assert_eq!(err.class, ErrorClass::RateLimited);
    assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));

    let named = b"event: error\ndata: {\"error\":{\"message\":\"context too long\",\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\"}}\n\n";
    let err = decode(&openai(), true, named).error.unwrap();
    assert_eq!(
        (err.class, err.message.as_str()),
        (ErrorClass::BadRequest, "context too long")
    );
    let err = decode(
        &openai(),
        true,
        b"event: error\ndata: upstream exploded\n\n",
    )
    .error
    .unwrap();
    assert_eq!(
        (err.class, err.message.as_str()),
        (ErrorClass::Upstream, "upstream exploded")
    );
}

#[test]
fn a_cut_stream_is_not_done_and_keeps_usage_seen() {
    let sse = fixture("chat_stream_text.sse");
    let text = String::from_utf8(sse.clone()).unwrap();
    // Cut between the usage chunk and [DONE].
    let at = text.find("data: [DONE]").unwrap();
    let o = decode(&openai(), false, &sse[..at]);
    assert_eq!(
        (o.done, o.usage, &o.error),
        (false, Some(text_usage()), &None)
    );
    // Cut inside [DONE] and inside the usage chunk.
    let o = decode(&openai(), true, &sse[..at + 8]);
    assert_eq!(
        (o.done, o.usage, &o.error),
        (false, Some(text_usage()), &None)
    );
    let usage_at = text.find("\"choices\":[]").unwrap();
    let o = decode(&openai(), true, &sse[..usage_at]);
    assert_eq!((o.done, o.usage, &o.error), (false, None, &None));
    assert_eq!(o.chunks.len(), 11);
    // Cut in the middle of the first chunk: nothing, no error.
    let o = decode(&openai(), true, &sse[..40]);
    assert_eq!(o, Outcome::default());
    // An empty body.
    assert_eq!(decode(&openai(), true, b""), Outcome::default());
    // Keep-alive comments only.
    assert_eq!(
        decode(&openai(), true, b": ping\n\n: ping\n\n"),
        Outcome::default()
    );
}

#[test]
fn done_without_a_final_blank_line_still_counts() {
    let sse = fixture("chat_stream_text.sse");
    let trimmed = sse.strip_suffix(b"\n\n").unwrap();
    assert_eq!(
        decode(&openai(), true, trimmed),
        decode(&openai(), true, &sse)
    );
    // A last chunk without its blank line is still delivered (then: no [DONE], a cut).
    let one = br#"data: {"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":0}}"#;
    let o = decode(&openai(), true, one);
    assert_eq!(
        (o.chunks.len(), o.done, o.usage.map(|u| u.input_tokens)),
        (1, false, Some(3))
    );
}

#[test]
fn crlf_streams_decode_the_same() {
    for name in FIXTURES {
        let sse = fixture(name);
        let crlf = String::from_utf8(sse.clone())
            .unwrap()
            .replace('\n', "\r\n");
        for include_usage in [false, true] {
            assert_eq!(
                decode(&openai(), include_usage, crlf.as_bytes()),
                decode(&openai(), include_usage, &sse),
                "{name}"
            );
        }
    }
}

#[test]
fn malformed_chunks_are_upstream_errors() {
    let good = b"data: {\"id\":\"a\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n";
    for bad in [
        &b"data: {\"id\":\"a\",\"choices\":[\n\n"[..],
        b"data: hello world\n\n",
        b"data: [1,2,3]\n\n",
        b"data: \"text\"\n\n",
        b"data: {\"usage\":{}} junk\n\n",
        b"data: {\"choices\":[],\"choices\":[]}\n\n",
    ] {
        // Alone, and after a good chunk in the same feed: the good chunk is delivered.
        let err = decode(&openai(), false, bad).error.expect("error");
        assert_eq!(err.class, ErrorClass::Upstream);
        assert!(
            err.message.contains("malformed stream chunk"),
            "{}",
            err.message
        );
        let both = [&good[..], bad].concat();
        let o = decode(&openai(), false, &both);
        assert_eq!(o.chunks.len(), 1);
        assert!(o.error.unwrap().message.contains("malformed stream chunk"));
        assert!(!o.done);
    }
    // Nothing is produced after the error, even if the host keeps feeding.
    let body = br#"{"messages":[]}"#;
    let p = openai();
    let mut d = p.stream(&chat(body, true, true)).unwrap();
    let mut out = StreamOutput::default();
    assert!(d.feed(b"data: nope\n\n", &mut out).is_err());
    let mut out = StreamOutput::default();
    d.feed(good, &mut out).unwrap();
    d.finish(&mut out).unwrap();
    assert_eq!(out, StreamOutput::default());
}

#[test]
fn a_plain_json_answer_to_a_stream_is_explained() {
    let err = decode(&openai(), true, &fixture("error_429.json"))
        .error
        .unwrap();
    assert_eq!(err.class, ErrorClass::RateLimited);
    assert!(err.message.starts_with("Rate limit reached"));
    let err = decode(&openai(), true, &fixture("chat_completion.json"))
        .error
        .unwrap();
    assert_eq!(err.class, ErrorClass::Upstream);
    assert!(
        err.message.contains("not an event stream"),
        "{}",
        err.message
    );
}

#[test]
fn nothing_after_done_is_read() {
    let sse = [&fixture("chat_stream_text.sse")[..], b"data: not json\n\n"].concat();
    let o = decode(&openai(), true, &sse);
    assert!(o.done && o.error.is_none());
}

/// Same chunks, usage, done and error however the upstream bytes were split: every single
/// split point, every pair of split points for the small fixtures, byte by byte, and
/// many pseudo-random multi-way splits.
#[test]
fn any_split_gives_the_same_outcome() {
    let p = openai();
    let extra = b"data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xc3\xa9t\xc3\xa9\"}}]}\n\ndata: oops\n\n".to_vec();
    let mut inputs: Vec<(String, Vec<u8>)> = FIXTURES
        .iter()
        .map(|n| (n.to_string(), fixture(n)))
        .collect();
    inputs.push(("malformed".into(), extra));
    let check = SplitCheck {
        clock: Clock::Upstream,
        pairs_up_to: 999,
        random_rounds: 200,
        seed: 0x2545_f491_4f6c_dd1d,
    };
    for (name, bytes) in &inputs {
        for include_usage in [false, true] {
            assert_same_at_every_split(
                || decoder(&p, include_usage),
                bytes,
                &format!("{name} (include_usage {include_usage})"),
                check,
            );
        }
    }
}

#[test]
fn streams_pass_through_only_from_openai_itself_when_usage_is_asked() {
    let body = br#"{"messages":[]}"#;
    let decoder = |p: &aihub_openai::OpenAi, include_usage| {
        p.stream(&chat(body, true, include_usage)).unwrap()
    };
    assert!(decoder(&openai(), true).pass_through());
    // Usage to hide: the decoder's chunks are needed.
    assert!(!decoder(&openai(), false).pass_through());
    // Another server may report usage elsewhere (Groq): not byte for byte.
    let groq = provider("groq", "https://api.groq.com/openai/v1", Value::Null);
    assert!(!decoder(&groq, true).pass_through());
    let forced = provider(
        "groq",
        "https://api.groq.com/openai/v1",
        json!({"stream_pass_through": true}),
    );
    assert!(decoder(&forced, true).pass_through());
}
