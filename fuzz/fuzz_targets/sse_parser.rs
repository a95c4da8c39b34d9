//! The SSE parser on arbitrary bytes, cut anywhere, with a small or the default event
//! cap: never a panic, and the same events (and the same error) for any cut as for the
//! whole input fed at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plugin_api::sse::{SseError, SseEvent, SseParser, DEFAULT_MAX_EVENT_BYTES};

/// Everything one parser yields from `pieces` and `finish`, and whether it hit its cap.
fn run(limit: usize, pieces: &[&[u8]]) -> (Vec<SseEvent>, Option<SseError>, bool) {
    let mut p = SseParser::with_limit(limit);
    let mut events = Vec::new();
    for piece in pieces {
        match p.feed(piece) {
            Ok(ev) => events.extend(ev),
            Err(e) => return (events, Some(e), true),
        }
    }
    let partial = p.has_partial();
    match p.finish() {
        Ok(last) => {
            events.extend(last);
            (events, None, partial)
        }
        Err(e) => (events, Some(e), true),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = aihub_fuzz::split(data);
    // Small caps make the limit reachable; the default is the one plugins use.
    let limit = match input.flags % 4 {
        0 => DEFAULT_MAX_EVENT_BYTES,
        n => 16 << (3 * n),
    };
    let (whole, whole_err, whole_partial) = run(limit, &[input.body]);
    let (cut, cut_err, cut_partial) = run(limit, &input.pieces);
    assert_eq!(whole, cut, "events differ between whole and cut input");
    assert_eq!(
        whole_err, cut_err,
        "the cap error differs between whole and cut input"
    );
    assert_eq!(whole_partial, cut_partial, "has_partial differs");
});
