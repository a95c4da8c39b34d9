//! Driving a [`StreamDecoder`] like the host: output before an error is kept, nothing is
//! fed after it, `finish` ends the body; and the same at every split of the bytes.

use super::json_of;
use crate::{ProviderError, StreamDecoder, StreamOutput, Usage};
use serde_json::Value;

/// Everything a stream produced, as the host would see it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub chunks: Vec<Vec<u8>>,
    pub usage: Option<Usage>,
    pub done: bool,
    pub error: Option<ProviderError>,
}

impl Outcome {
    /// Adds one `feed`/`finish` output; the host keeps the latest usage.
    pub fn absorb(&mut self, out: StreamOutput) {
        self.chunks.extend(out.chunks);
        if out.usage.is_some() {
            self.usage = out.usage;
        }
        self.done |= out.done;
    }

    /// As one `StreamOutput`, for comparing with what crossed the ABI.
    pub fn into_output(self) -> StreamOutput {
        assert!(self.error.is_none(), "{:?}", self.error);
        StreamOutput {
            chunks: self.chunks,
            usage: self.usage,
            done: self.done,
        }
    }

    /// The chunks as JSON.
    pub fn values(&self) -> Vec<Value> {
        self.chunks.iter().map(|c| json_of(c)).collect()
    }

    /// The chunks as JSON without `created` (a clock reading, not stream content).
    pub fn values_without_created(&self) -> Vec<Value> {
        self.values()
            .into_iter()
            .map(|mut v| {
                if let Some(m) = v.as_object_mut() {
                    m.remove("created");
                }
                v
            })
            .collect()
    }

    /// Comparable across decoders made at different times: chunks without `created`,
    /// usage, done, error.
    pub fn normalized(&self) -> (Vec<Value>, Option<Usage>, bool, Option<ProviderError>) {
        (
            self.values_without_created(),
            self.usage,
            self.done,
            self.error.clone(),
        )
    }

    /// For failure messages: chunks as text, usage, done, error.
    pub fn readable(&self) -> (Vec<String>, Option<Usage>, bool, Option<ProviderError>) {
        let chunks = self
            .chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        (chunks, self.usage, self.done, self.error.clone())
    }

    /// The text a client assembles from the content deltas of choice 0.
    pub fn text(&self) -> String {
        self.values()
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    }

    pub fn finish_reasons(&self) -> Vec<String> {
        self.values()
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(String::from))
            .collect()
    }

    /// The chunks that carry a `usage` object (not `null`).
    pub fn usage_chunks(&self) -> Vec<Value> {
        self.values()
            .into_iter()
            .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
            .collect()
    }
}

/// Feeds `pieces` in order, then finishes, stopping at the first error like the host.
pub fn decode_pieces<D: StreamDecoder>(mut decoder: D, pieces: &[&[u8]]) -> Outcome {
    let mut o = Outcome::default();
    for piece in pieces {
        let mut out = StreamOutput::default();
        let r = decoder.feed(piece, &mut out);
        o.absorb(out);
        if let Err(e) = r {
            o.error = Some(e);
            return o;
        }
    }
    let mut out = StreamOutput::default();
    let r = decoder.finish(&mut out);
    o.absorb(out);
    o.error = r.err();
    o
}

/// The whole body in one `feed`.
pub fn decode<D: StreamDecoder>(decoder: D, bytes: &[u8]) -> Outcome {
    decode_pieces(decoder, &[bytes])
}

/// Splits `bytes` at the given sorted cut points.
pub fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &c in cuts {
        pieces.push(&bytes[start..c]);
        start = c;
    }
    pieces.push(&bytes[start..]);
    pieces
}

/// What a fresh decoder makes of `bytes` fed in two pieces, for every split point
/// `0..=len` (index = where the body was cut).
pub fn feed_at_every_split<D: StreamDecoder>(
    mut new_decoder: impl FnMut() -> D,
    bytes: &[u8],
) -> Vec<Outcome> {
    (0..=bytes.len())
        .map(|i| decode_pieces(new_decoder(), &[&bytes[..i], &bytes[i..]]))
        .collect()
}

/// Where the `created` of the chunks comes from, which decides how outcomes compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Passed through from upstream bytes: outcomes must be equal byte for byte.
    Upstream,
    /// Read by the decoder: outcomes are compared without `created`.
    Local,
    /// `created` and the chunk `id` both made by the decoder (offline plugins): compared
    /// without either.
    LocalWithIds,
}

/// How hard [`assert_same_at_every_split`] tries.
#[derive(Debug, Clone, Copy)]
pub struct SplitCheck {
    pub clock: Clock,
    /// Every pair of split points too, for bodies up to this many bytes.
    pub pairs_up_to: usize,
    /// Pseudo-random multi-way splits (1 to 12 cuts), reproducible from `seed`.
    pub random_rounds: usize,
    pub seed: u64,
}

impl Default for SplitCheck {
    fn default() -> Self {
        SplitCheck {
            clock: Clock::Local,
            pairs_up_to: 0,
            random_rounds: 200,
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

/// A small deterministic generator: reproducible splits without a dependency.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Asserts the decoder's outcome does not depend on how the body was split: every single
/// split point, byte by byte, pairs of split points (small bodies) and random multi-way
/// splits all give what one whole `feed` gives. Returns that whole outcome.
pub fn assert_same_at_every_split<D: StreamDecoder>(
    mut new_decoder: impl FnMut() -> D,
    bytes: &[u8],
    label: &str,
    check: SplitCheck,
) -> Outcome {
    let same = |a: &Outcome, b: &Outcome| match check.clock {
        Clock::Upstream => a == b,
        Clock::Local => a.normalized() == b.normalized(),
        Clock::LocalWithIds => {
            let strip = |o: &Outcome| {
                let mut n = o.normalized();
                for v in &mut n.0 {
                    if let Some(m) = v.as_object_mut() {
                        m.remove("id");
                    }
                }
                n
            };
            strip(a) == strip(b)
        }
    };
    let whole = decode(new_decoder(), bytes);
    let assert_same = |got: Outcome, how: &dyn Fn() -> String| {
        if !same(&got, &whole) {
            panic!(
                "{label}: {} differs from one whole feed\n got: {:?}\nwant: {:?}",
                how(),
                got.readable(),
                whole.readable()
            );
        }
    };
    for (i, got) in feed_at_every_split(&mut new_decoder, bytes)
        .into_iter()
        .enumerate()
    {
        assert_same(got, &|| format!("split at {i}"));
    }
    let n = bytes.len();
    if n <= check.pairs_up_to {
        for a in 0..=n {
            for b in a..=n {
                let got = decode_pieces(new_decoder(), &split_at(bytes, &[a, b]));
                assert_same(got, &|| format!("split at {a},{b}"));
            }
        }
    }
    let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_same(decode_pieces(new_decoder(), &bytewise), &|| {
        "byte by byte".into()
    });
    let mut rng = XorShift(check.seed | 1);
    for _ in 0..check.random_rounds {
        let mut cuts: Vec<usize> = (0..1 + rng.below(12)).map(|_| rng.below(n + 1)).collect();
        cuts.sort_unstable();
        let got = decode_pieces(new_decoder(), &split_at(bytes, &cuts));
        assert_same(got, &|| format!("cuts {cuts:?}"));
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Emits one chunk per `feed` holding the bytes it got: depends on the splits.
    struct PerFeed;

    impl StreamDecoder for PerFeed {
        fn feed(&mut self, bytes: &[u8], out: &mut StreamOutput) -> Result<(), ProviderError> {
            out.raw_chunk(format!("{}", bytes.len()).into_bytes());
            Ok(())
        }
        fn finish(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
            out.done();
            Ok(())
        }
    }

    /// Buffers, then fails at `!` after emitting what came before it.
    #[derive(Default)]
    struct Buffered(Vec<u8>);

    impl StreamDecoder for Buffered {
        fn feed(&mut self, bytes: &[u8], out: &mut StreamOutput) -> Result<(), ProviderError> {
            for &b in bytes {
                if b == b'!' {
                    out.raw_chunk(std::mem::take(&mut self.0));
                    return Err(ProviderError::upstream("bang"));
                }
                self.0.push(b);
            }
            Ok(())
        }
        fn finish(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
            out.raw_chunk(std::mem::take(&mut self.0));
            out.done();
            Ok(())
        }
    }

    #[test]
    fn split_at_keeps_every_byte_in_order() {
        assert_eq!(
            split_at(b"abcd", &[1, 1, 3]),
            vec![&b"a"[..], b"", b"bc", b"d"]
        );
        assert_eq!(split_at(b"", &[0]), vec![&b""[..], b""]);
    }

    #[test]
    fn output_before_an_error_is_kept_and_nothing_is_fed_after() {
        let o = decode_pieces(Buffered::default(), &[b"1", b"2!", b"3"]);
        assert_eq!(o.chunks, vec![b"12".to_vec()]);
        assert!(!o.done);
        assert_eq!(o.error.map(|e| e.message), Some("bang".into()));
    }

    #[test]
    fn every_split_is_one_outcome_per_cut_point() {
        let all = feed_at_every_split(Buffered::default, b"123");
        assert_eq!(all.len(), 4);
        assert!(all
            .iter()
            .all(|o| o.chunks == vec![b"123".to_vec()] && o.done));
        assert_same_at_every_split(
            Buffered::default,
            b"12!3",
            "buffered",
            SplitCheck::default(),
        );
    }

    #[test]
    #[should_panic(expected = "per feed: split at 0 differs")]
    fn a_split_dependent_decoder_is_caught() {
        assert_same_at_every_split(|| PerFeed, b"abc", "per feed", SplitCheck::default());
    }
}
