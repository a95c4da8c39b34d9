//! Incremental server-sent-events parser for stream decoders.
//!
//! Upstream bytes arrive split anywhere (inside a line, inside a UTF-8 character); the
//! parser keeps the unfinished tail and yields whole events only, so a decoder built on it
//! produces the same output for any split.
//!
//! Work is linear in the input: every byte is scanned for a line end once (complete lines
//! are read straight from the bytes fed, only the unfinished tail is copied), and an event
//! is bounded, so an upstream that never ends a line costs a capped buffer and an error,
//! not memory and CPU that grow with the square of what it sends.

use crate::ProviderError;

/// Default cap on one event (its `data`/`event` fields plus the line still being
/// received). Real chat events are a few KB; the cap leaves room for the largest
/// legitimate ones, a whole inline image in base64 (Gemini image models send one in a
/// single event, typically 1–4 MB), while bounding what one hostile stream can pin.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// One event. `data` lines are joined with `\n`, as the SSE spec says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default `message`.
    pub event: Option<String>,
    pub data: String,
}

/// An event (or a line) larger than the parser's cap. Decoders pass it on with `?`: it
/// becomes an upstream-class [`ProviderError`], so the client gets an error event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseError {
    pub limit: usize,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "an upstream stream event exceeded {} bytes; the stream was stopped",
            self.limit
        )
    }
}

impl std::error::Error for SseError {}

impl From<SseError> for ProviderError {
    fn from(e: SseError) -> Self {
        ProviderError::upstream(e.to_string())
    }
}

#[derive(Debug)]
pub struct SseParser {
    /// The unfinished last line, never containing `\n` (so never rescanned).
    tail: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    limit: usize,
    /// The cap was hit: input is ignored and every later call reports it.
    failed: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser whose events (fields plus the line in progress) may not exceed `limit`
    /// bytes.
    pub fn with_limit(limit: usize) -> Self {
        SseParser {
            tail: Vec::new(),
            event: None,
            data: String::new(),
            has_data: false,
            limit,
            failed: false,
        }
    }

    /// Feeds bytes; returns the events they completed. Past the cap the parser stops:
    /// events completed before the cap was hit in this call are still returned, and this
    /// or the next call (`feed` or `finish`) returns the error.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if self.failed {
            return Err(self.error());
        }
        let mut events = Vec::new();
        let mut rest = bytes;
        if !self.tail.is_empty() {
            let Some(pos) = memchr::memchr(b'\n', rest) else {
                return self.hold(rest, events);
            };
            if self.held() + self.tail.len() + pos > self.limit {
                return self.fail(events);
            }
            let mut line = std::mem::take(&mut self.tail);
            line.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let ev = self.line(&line);
            // Keeps the tail's allocation for the next unfinished line.
            line.clear();
            self.tail = line;
            if let Some(ev) = ev {
                events.push(ev);
            }
        }
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            if self.held() + pos > self.limit {
                return self.fail(events);
            }
            if let Some(ev) = self.line(&rest[..pos]) {
                events.push(ev);
            }
            rest = &rest[pos + 1..];
        }
        self.hold(rest, events)
    }

    /// Keeps `rest` (no line end in it) as the unfinished tail, within the cap.
    fn hold(&mut self, rest: &[u8], events: Vec<SseEvent>) -> Result<Vec<SseEvent>, SseError> {
        if self.held() + self.tail.len() + rest.len() > self.limit {
            return self.fail(events);
        }
        self.tail.extend_from_slice(rest);
        Ok(events)
    }

    /// Stops the parser; the error is returned now unless events are, then next time.
    fn fail(&mut self, events: Vec<SseEvent>) -> Result<Vec<SseEvent>, SseError> {
        self.failed = true;
        self.tail = Vec::new();
        self.data = String::new();
        self.event = None;
        self.has_data = false;
        if events.is_empty() {
            Err(self.error())
        } else {
            Ok(events)
        }
    }

    fn error(&self) -> SseError {
        SseError { limit: self.limit }
    }

    /// Bytes the event in progress holds.
    fn held(&self) -> usize {
        self.data.len() + self.event.as_ref().map_or(0, String::len)
    }

    /// True when bytes or fields are waiting for a line end or a blank line: the stream
    /// stopped in the middle of an event (or the parser stopped at its cap).
    pub fn has_partial(&self) -> bool {
        self.failed
            || !self.tail.iter().all(|b| b.is_ascii_whitespace())
            || self.has_data
            || self.event.is_some()
    }

    /// Ends the input. A last event the upstream did not close with a blank line is
    /// returned too (lenient, like most clients): `[DONE]` without a trailing blank line
    /// is common. A parser that hit its cap returns the error.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        if self.failed {
            return Err(self.error());
        }
        let rest = std::mem::take(&mut self.tail);
        let mut out = None;
        if !rest.is_empty() {
            out = self.line(&rest);
        }
        Ok(out.or_else(|| self.dispatch()))
    }

    /// One line, without its `\n` (a trailing `\r` is dropped here).
    fn line(&mut self, line: &[u8]) -> Option<SseEvent> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                // Borrowed, not copied, when the value is valid UTF-8 (the usual case).
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: message_start\ndata: {\"a\":1}\n\n: comment\r\ndata: line1\r\ndata: line2\r\n\r\ndata: [DONE]\n\n";

    fn all_at_once() -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut ev = p.feed(STREAM.as_bytes()).unwrap();
        ev.extend(p.finish().unwrap());
        ev
    }

    #[test]
    fn parses_events_fields_and_comments() {
        let ev = all_at_once();
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0].event.as_deref(), Some("message_start"));
        assert_eq!(ev[0].data, "{\"a\":1}");
        assert_eq!(ev[1].data, "line1\nline2");
        assert_eq!(ev[2].data, "[DONE]");
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let whole = all_at_once();
        let bytes = STREAM.as_bytes();
        for a in 0..bytes.len() {
            for b in a..bytes.len() {
                let mut p = SseParser::new();
                let mut ev = p.feed(&bytes[..a]).unwrap();
                ev.extend(p.feed(&bytes[a..b]).unwrap());
                ev.extend(p.feed(&bytes[b..]).unwrap());
                ev.extend(p.finish().unwrap());
                assert_eq!(ev, whole, "split at {a},{b}");
            }
        }
    }

    #[test]
    fn multibyte_characters_split_across_feeds() {
        let s = "data: héllo 世界\n\n".as_bytes();
        for i in 0..s.len() {
            let mut p = SseParser::new();
            let mut ev = p.feed(&s[..i]).unwrap();
            ev.extend(p.feed(&s[i..]).unwrap());
            assert_eq!(ev[0].data, "héllo 世界");
        }
    }

    #[test]
    fn unterminated_last_event_is_flushed_and_partial_is_seen() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: [DONE]").unwrap().is_empty());
        assert!(p.has_partial());
        assert_eq!(
            p.finish().unwrap().map(|e| e.data).as_deref(),
            Some("[DONE]")
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut p = SseParser::new();
        let ev = p.feed(b"data: a\xffb\n\n").unwrap();
        assert_eq!(ev[0].data, "a\u{fffd}b");
    }

    /// The quadratic case of issue 10: a 4 MB line fed one byte at a time. Rescanning the
    /// buffer on every feed would take ~8·10¹² steps; a linear parser does it at once.
    #[test]
    fn a_long_line_in_one_byte_pieces_is_linear() {
        let mut line = b"data: ".to_vec();
        line.resize(4 * 1024 * 1024, b'x');
        line.extend_from_slice(b"\n\n");
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for b in line.chunks(1) {
            events.extend(p.feed(b).unwrap());
        }
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), 4 * 1024 * 1024 - 6);
        assert!(!p.has_partial());
    }

    #[test]
    fn a_line_without_end_past_the_cap_is_an_error_that_sticks() {
        let mut p = SseParser::with_limit(64);
        assert!(p.feed(b"data: {\"a\":").unwrap().is_empty());
        let err = p.feed(&[b'x'; 100]).unwrap_err();
        assert_eq!(err, SseError { limit: 64 });
        assert_eq!(p.feed(b"\n\n"), Err(err));
        assert_eq!(p.finish(), Err(err));
        assert!(p.has_partial());
    }

    #[test]
    fn many_data_lines_count_toward_one_event() {
        let mut p = SseParser::with_limit(64);
        let line = b"data: 0123456789\n";
        let mut result = Ok(Vec::new());
        for _ in 0..10 {
            result = p.feed(line);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError { limit: 64 }));
    }

    #[test]
    fn events_before_the_cap_are_kept_for_any_split() {
        let mut stream = b"data: one\n\n: keep-alive\n\ndata: two\n\ndata: ".to_vec();
        stream.extend_from_slice(&[b'z'; 80]);
        stream.extend_from_slice(b"\n\ndata: never\n\n");
        for cut in 0..stream.len() {
            let mut p = SseParser::with_limit(48);
            let mut events = Vec::new();
            let mut failed = None;
            for piece in [&stream[..cut], &stream[cut..]] {
                match p.feed(piece) {
                    Ok(ev) => events.extend(ev),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let failed = failed.or_else(|| p.finish().err());
            let data: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
            assert_eq!(data, ["one", "two"], "cut at {cut}");
            assert_eq!(failed, Some(SseError { limit: 48 }), "cut at {cut}");
        }
    }

    #[test]
    fn events_within_the_cap_pass_and_the_cap_resets_per_event() {
        let mut p = SseParser::with_limit(32);
        let mut events = Vec::new();
        for _ in 0..100 {
            events.extend(p.feed(b"data: 0123456789012345678\n\n").unwrap());
        }
        assert_eq!(events.len(), 100);
    }

    #[test]
    fn the_error_becomes_an_upstream_provider_error() {
        let e: ProviderError = SseError { limit: 1024 }.into();
        assert_eq!(e.class, crate::ErrorClass::Upstream);
        assert!(e.message.contains("exceeded 1024 bytes"), "{}", e.message);
    }
}
