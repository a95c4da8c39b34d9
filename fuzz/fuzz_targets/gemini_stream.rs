//! The gemini plugin's stream decoder on arbitrary upstream bytes, cut anywhere: it may
//! fail the stream, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(p) = aihub_fuzz::provider::<aihub_gemini::Gemini>(
        "gemini",
        "https://generativelanguage.googleapis.com",
    ) {
        aihub_fuzz::stream(&p, "gemini-2.5-flash", data);
    }
});
