//! The anthropic plugin's stream decoder on arbitrary upstream bytes, cut anywhere: it may
//! fail the stream, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(p) =
        aihub_fuzz::provider::<aihub_anthropic::Anthropic>("anthropic", "https://api.anthropic.com")
    {
        aihub_fuzz::stream(&p, "claude-sonnet-4-5", data);
    }
});
