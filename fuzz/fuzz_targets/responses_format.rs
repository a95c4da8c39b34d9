//! The OpenAI Responses translator (`formats::responses`) on arbitrary bytes: the
//! request (with the same bytes as history), the reply, the kept conversation and a
//! stream of chunks. Refusals are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let meta = formats::responses::Meta {
        id: "resp_1".into(),
        created_at: 1,
        model: "m".into(),
    };
    let req = formats::responses::parse(data)
        .or_else(|_| formats::responses::parse(br#"{"model":"m","input":"x"}"#));
    let Ok(req) = req else { return };
    let _ = req.to_chat(Some(data));
    let _ = formats::responses::reply_from_chat(&req, &meta, data);
    let _ = formats::responses::conversation(&req, Some(data), data);
    let mut s = formats::responses::Stream::new(&req, &meta);
    aihub_fuzz::feed_chunks(&mut s, data);
    let _ = s.response();
});
