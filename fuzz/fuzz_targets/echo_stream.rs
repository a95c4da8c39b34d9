//! The echo plugin's stream decoder on arbitrary upstream bytes, cut anywhere: it may
//! fail the stream, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(p) = aihub_fuzz::provider::<aihub_echo::Echo>("echo", "") {
        aihub_fuzz::stream(&p, "echo-1", data);
    }
});
