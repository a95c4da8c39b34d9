//! Reading token counts from the `usage` objects OpenAI-compatible servers send.

use plugin_api::serde_json::Value;
use plugin_api::Usage;
use serde::Deserialize;

/// Token counts of a `usage` object, or `None` when it holds none.
///
/// Chat and embeddings use `prompt_tokens`/`completion_tokens` (embeddings have only
/// `prompt_tokens` and `total_tokens`); the images API uses `input_tokens`/
/// `output_tokens`. Cached prompt tokens come from `prompt_tokens_details.cached_tokens`
/// or, on DeepSeek, `prompt_cache_hit_tokens`; OpenAI counts them inside `prompt_tokens`,
/// as [`Usage`] expects.
pub(crate) fn from_value(usage: &Value) -> Option<Usage> {
    // One reading for both sources: the probe's visitors take a `Value` as they take bytes.
    UsageProbe::deserialize(usage).ok()?.usage()
}

/// A `usage` object's counts as [`from_value`] describes them, readable straight from a
/// reply's bytes without building a `Value` tree (the whole-reply path runs on every
/// call). Lenient: a value that is not a non-negative integer counts as absent, anything
/// but an object holds no usage, and of a repeated key the last one counts.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct UsageProbe {
    object: bool,
    prompt: Option<u64>,
    input: Option<u64>,
    completion: Option<u64>,
    output: Option<u64>,
    total: Option<u64>,
    cache_hit: Option<u64>,
    prompt_details: Details,
    input_details: Details,
    completion_details: Details,
    output_details: Details,
}

#[derive(Debug, Default, PartialEq, Clone, Copy)]
struct Details {
    cached: Option<u64>,
    reasoning: Option<u64>,
}

impl UsageProbe {
    /// The counts, by the precedence [`from_value`] describes.
    pub(crate) fn usage(&self) -> Option<Usage> {
        if !self.object {
            return None;
        }
        let output = self.completion.or(self.output);
        let input = self
            .prompt
            .or(self.input)
            .or_else(|| self.total.map(|t| t.saturating_sub(output.unwrap_or(0))));
        if input.is_none() && output.is_none() {
            return None;
        }
        Some(Usage {
            input_tokens: input.unwrap_or(0),
            output_tokens: output.unwrap_or(0),
            cached_input_tokens: self
                .prompt_details
                .cached
                .or(self.input_details.cached)
                .or(self.cache_hit)
                .unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: self
                .completion_details
                .reasoning
                .or(self.output_details.reasoning)
                .unwrap_or(0),
        })
    }
}

mod probe {
    //! Hand-written visitors: serde's derive would reject a repeated key and a field of
    //! an unexpected type, where the `Value` reading this replaces shrugged them off.

    use super::{Details, UsageProbe};
    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// A count: a non-negative integer, else absent (whatever the value was).
    struct Count(Option<u64>);

    /// Implements the visits of a value that is "anything", for visitors that only care
    /// about one kind: every other kind gives `$other`.
    macro_rules! anything_else {
        ($other:expr) => {
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok($other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok($other)
            }
        };
    }

    impl<'de> de::Deserialize<'de> for Count {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Count;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                    Ok(Count(Some(v)))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Count(None))
                }
                anything_else!(Count(None));
            }
            d.deserialize_any(V)
        }
    }

    /// The key names the probe reads; any other key is skipped unread.
    enum Key {
        Prompt,
        Input,
        Completion,
        Output,
        Total,
        CacheHit,
        PromptDetails,
        InputDetails,
        CompletionDetails,
        OutputDetails,
        Cached,
        Reasoning,
        Other,
    }

    impl<'de> de::Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a key")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                    Ok(match v {
                        "prompt_tokens" => Key::Prompt,
                        "input_tokens" => Key::Input,
                        "completion_tokens" => Key::Completion,
                        "output_tokens" => Key::Output,
                        "total_tokens" => Key::Total,
                        "prompt_cache_hit_tokens" => Key::CacheHit,
                        "prompt_tokens_details" => Key::PromptDetails,
                        "input_tokens_details" => Key::InputDetails,
                        "completion_tokens_details" => Key::CompletionDetails,
                        "output_tokens_details" => Key::OutputDetails,
                        "cached_tokens" => Key::Cached,
                        "reasoning_tokens" => Key::Reasoning,
                        _ => Key::Other,
                    })
                }
            }
            d.deserialize_identifier(V)
        }
    }

    impl<'de> de::Deserialize<'de> for Details {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Details;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<Details, E> {
                    Ok(Details::default())
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Details, A::Error> {
                    let mut d = Details::default();
                    while let Some(key) = map.next_key::<Key>()? {
                        match key {
                            Key::Cached => d.cached = map.next_value::<Count>()?.0,
                            Key::Reasoning => d.reasoning = map.next_value::<Count>()?.0,
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(d)
                }
                anything_else!(Details::default());
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> de::Deserialize<'de> for UsageProbe {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = UsageProbe;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<UsageProbe, E> {
                    Ok(UsageProbe::default())
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UsageProbe, A::Error> {
                    let mut u = UsageProbe {
                        object: true,
                        ..UsageProbe::default()
                    };
                    while let Some(key) = map.next_key::<Key>()? {
                        match key {
                            Key::Prompt => u.prompt = map.next_value::<Count>()?.0,
                            Key::Input => u.input = map.next_value::<Count>()?.0,
                            Key::Completion => u.completion = map.next_value::<Count>()?.0,
                            Key::Output => u.output = map.next_value::<Count>()?.0,
                            Key::Total => u.total = map.next_value::<Count>()?.0,
                            Key::CacheHit => u.cache_hit = map.next_value::<Count>()?.0,
                            Key::PromptDetails => u.prompt_details = map.next_value()?,
                            Key::InputDetails => u.input_details = map.next_value()?,
                            Key::CompletionDetails => u.completion_details = map.next_value()?,
                            Key::OutputDetails => u.output_details = map.next_value()?,
                            Key::Cached | Key::Reasoning | Key::Other => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(u)
                }
                anything_else!(UsageProbe::default());
            }
            d.deserialize_any(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::serde_json::json;

    /// Read from bytes and from a `Value`, a usage object gives the same counts.
    #[test]
    fn the_probe_agrees_with_from_value() {
        let cases = [
            json!({"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 128}}),
            json!({"prompt_tokens": 8, "total_tokens": 8}),
            json!({"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210,
                "input_tokens_details": {"cached_tokens": 7},
                "output_tokens_details": {"reasoning_tokens": 3}}),
            json!({"prompt_tokens": 10, "completion_tokens": 2, "prompt_cache_hit_tokens": 6}),
            json!({"prompt_tokens_details": null, "prompt_cache_hit_tokens": 4, "prompt_tokens": 9}),
            json!({"prompt_tokens_details": 5, "completion_tokens_details": [1, {"a": 2}], "prompt_tokens": 3}),
            json!({"prompt_tokens": -4, "completion_tokens": 2.5, "total_tokens": "9"}),
            json!({"prompt_tokens": {"nested": [1, 2]}, "completion_tokens": [3], "total_tokens": true}),
            json!({"total_tokens": 9}),
            json!({"total_tokens": 9, "completion_tokens": 20}),
            json!({"extra": {"deep": [{"x": null}]}, "prompt_tokens": 1}),
            json!({}),
            json!(null),
            json!(12),
            json!("usage"),
            json!([{"prompt_tokens": 1}]),
            json!({"prompt_tokens": 18446744073709551615u64, "completion_tokens": 1}),
        ];
        for v in cases {
            let bytes = plugin_api::serde_json::to_vec(&v).unwrap();
            let probe: UsageProbe = plugin_api::serde_json::from_slice(&bytes).unwrap();
            assert_eq!(probe.usage(), from_value(&v), "{v}");
        }
        // A repeated key: the last one counts, as in a `Value`.
        let raw = br#"{"prompt_tokens": 1, "completion_tokens": 2, "prompt_tokens": 5}"#;
        let probe: UsageProbe = plugin_api::serde_json::from_slice(raw).unwrap();
        let v: Value = plugin_api::serde_json::from_slice(raw).unwrap();
        assert_eq!(probe.usage(), from_value(&v));
        assert_eq!(probe.usage().unwrap().input_tokens, 5);
    }

    #[test]
    fn shapes() {
        let u = from_value(&json!({
            "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 128}
        }))
        .unwrap();
        assert_eq!(
            u,
            Usage {
                input_tokens: 1200,
                output_tokens: 300,
                cached_input_tokens: 1024,
                cache_write_tokens: 0,
                reasoning_tokens: 128
            }
        );
        let emb = from_value(&json!({"prompt_tokens": 8, "total_tokens": 8})).unwrap();
        assert_eq!((emb.input_tokens, emb.output_tokens), (8, 0));
        let img =
            from_value(&json!({"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210}))
                .unwrap();
        assert_eq!((img.input_tokens, img.output_tokens), (50, 4160));
        let ds = from_value(&json!({"prompt_tokens": 10, "completion_tokens": 2, "prompt_cache_hit_tokens": 6, "prompt_cache_miss_tokens": 4})).unwrap();
        assert_eq!(ds.cached_input_tokens, 6);
        assert_eq!(from_value(&json!({})), None);
        assert_eq!(from_value(&json!(null)), None);
        assert_eq!(
            from_value(&json!({"total_tokens": 9}))
                .unwrap()
                .input_tokens,
            9
        );
    }
}
