//! Incremental server-sent-events parser for stream decoders.
//!
//! Upstream bytes arrive split anywhere (inside a line, inside a UTF-8 character); the
//! parser keeps the unfinished tail and yields whole events only, so a decoder built on it
//! produces the same output for any split.

/// One event. `data` lines are joined with `\n`, as the SSE spec says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default `message`.
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(ev) = self.line(&line) {
                events.push(ev);
            }
        }
        self.buf.drain(..start);
        events
    }

    /// True when bytes or fields are waiting for a line end or a blank line: the stream
    /// stopped in the middle of an event.
    pub fn has_partial(&self) -> bool {
        !self.buf.iter().all(|b| b.is_ascii_whitespace()) || self.has_data || self.event.is_some()
    }

    /// Ends the input. A last event the upstream did not close with a blank line is
    /// returned too (lenient, like most clients): `[DONE]` without a trailing blank line
    /// is common.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.buf);
        let mut out = None;
        if !rest.is_empty() {
            let line = String::from_utf8_lossy(&rest);
            let line = line.trim_end_matches('\r').to_string();
            out = self.line(&line);
        }
        out.or_else(|| self.dispatch())
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
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
        let mut ev = p.feed(STREAM.as_bytes());
        ev.extend(p.finish());
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
                let mut ev = p.feed(&bytes[..a]);
                ev.extend(p.feed(&bytes[a..b]));
                ev.extend(p.feed(&bytes[b..]));
                ev.extend(p.finish());
                assert_eq!(ev, whole, "split at {a},{b}");
            }
        }
    }

    #[test]
    fn multibyte_characters_split_across_feeds() {
        let s = "data: héllo 世界\n\n".as_bytes();
        for i in 0..s.len() {
            let mut p = SseParser::new();
            let mut ev = p.feed(&s[..i]);
            ev.extend(p.feed(&s[i..]));
            assert_eq!(ev[0].data, "héllo 世界");
        }
    }

    #[test]
    fn unterminated_last_event_is_flushed_and_partial_is_seen() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: [DONE]").is_empty());
        assert!(p.has_partial());
        assert_eq!(p.finish().map(|e| e.data).as_deref(), Some("[DONE]"));
    }
}
