//! The host's first read of a consumer request body (`parse_head`, then `model_of`):
//! any bytes give a head or a typed error, never a panic.
#![no_main]

use aihub::inbound::openai::{model_of, parse_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = parse_head(data) {
        let _ = model_of(&head);
    }
});
