//! The echo plugin's request translation (`prepare`) on arbitrary client bodies, and its
//! reply parsing on the same bytes: refusals are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(p) = aihub_fuzz::provider::<aihub_echo::Echo>("echo", "") {
        aihub_fuzz::request(&p, "echo-1", data);
    }
});
