//! The Anthropic Messages translator (`formats::anthropic`) on arbitrary bytes, as a
//! request, a reply and a stream of chunks: refusals are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = formats::anthropic::to_chat(data);
    let _ = formats::anthropic::count_tokens(data);
    let _ = formats::anthropic::reply_from_chat(data, "m", "msg_1");
    let mut s = formats::anthropic::Stream::new("m", "msg_1");
    aihub_fuzz::feed_chunks(&mut s, data);
});
