//! The openai plugin's stream decoder on arbitrary upstream bytes, cut anywhere: it may
//! fail the stream, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(p) =
        aihub_fuzz::provider::<aihub_openai::OpenAi>("openai", "https://api.openai.com/v1")
    {
        aihub_fuzz::stream(&p, "gpt-4o", data);
    }
});
