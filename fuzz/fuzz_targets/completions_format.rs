//! The legacy completions translator (`formats::completions`) on arbitrary bytes, as a
//! request, a reply and a stream of chunks: refusals are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = formats::completions::to_chat(data);
    let _ = formats::completions::reply_from_chat(data);
    let mut s = formats::completions::Stream::new(true);
    aihub_fuzz::feed_chunks(&mut s, data);
});
