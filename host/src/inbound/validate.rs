//! Type checks of the canonical (OpenAI-shaped) request, done while the head is parsed, so
//! a plugin never sees `messages: [1, 2]` or `max_tokens: "ten"`. The checks allocate
//! nothing: each type below deserializes by visiting and discarding, and a mismatch names
//! what was expected; `serde_path_to_error` adds where (`messages[1].content`).

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A JSON string, not kept.
pub struct Str;

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Str, E> {
                Ok(Str)
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON array whose every element is a `T`, not kept.
pub struct ArrayOf<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ArrayOf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ArrayOf<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<T>()?.is_some() {}
                Ok(ArrayOf(PhantomData))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// A non-negative integer (token counts, `n`, `seed` may be negative: see [`Int`]).
pub struct Count;

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(|_| Count)
    }
}

/// Any integer.
pub struct Int;

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        i64::deserialize(d).map(|_| Int)
    }
}

/// Any number.
pub struct Number;

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        f64::deserialize(d).map(|_| Number)
    }
}

/// One chat message: an object with a string `role` and a well-typed `content`.
pub struct Message;

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The fields are only type-checked, never read.
        #[allow(dead_code)]
        #[derive(serde::Deserialize)]
        struct Shape {
            role: Str,
            #[serde(default)]
            content: Option<Content>,
            #[serde(default)]
            name: Option<Str>,
            #[serde(default)]
            tool_call_id: Option<Str>,
            #[serde(default)]
            tool_calls: Option<ArrayOf<ToolCall>>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Message;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message object such as {\"role\": \"user\", \"content\": \"...\"}")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Message, A::Error> {
                Shape::deserialize(de::value::MapAccessDeserializer::new(map)).map(|_| Message)
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(serde::Deserialize)]
struct ToolCall {
    #[serde(default, rename = "type")]
    _kind: Option<Str>,
    #[serde(default, rename = "function")]
    _function: Option<FunctionCall>,
}

#[derive(serde::Deserialize)]
struct FunctionCall {
    #[serde(default, rename = "name")]
    _name: Option<Str>,
    #[serde(default, rename = "arguments")]
    _arguments: Option<Str>,
}

/// `content`: a string, or an array of parts that each have a string `type`.
pub struct Content;

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, an array of content parts, or null")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Content, E> {
                Ok(Content)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Content, E> {
                Ok(Content)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                while seq.next_element::<Part>()?.is_some() {}
                Ok(Content)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(serde::Deserialize)]
struct Part {
    #[serde(rename = "type")]
    _kind: Str,
}

/// `stop`: a string or an array of strings.
pub struct Stop;

impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Stop;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Stop, E> {
                Ok(Stop)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Stop, E> {
                Ok(Stop)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Stop, A::Error> {
                while seq.next_element::<Str>()?.is_some() {}
                Ok(Stop)
            }
        }
        d.deserialize_any(V)
    }
}

/// A tool: an object with a string `type`.
#[derive(serde::Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    _kind: Str,
}

/// Embeddings `input`: a string, an array of strings, an array of token ids, or an
/// array of arrays of token ids.
pub struct EmbeddingInput;

impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Item;
        impl<'de> Deserialize<'de> for Item {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Item;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a string, a token id or an array of token ids")
                    }
                    fn visit_str<E: de::Error>(self, _: &str) -> Result<Item, E> {
                        Ok(Item)
                    }
                    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item, E> {
                        Ok(Item)
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                        while seq.next_element::<Count>()?.is_some() {}
                        Ok(Item)
                    }
                }
                d.deserialize_any(V)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EmbeddingInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings or token ids")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<EmbeddingInput, E> {
                Ok(EmbeddingInput)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbeddingInput, A::Error> {
                while seq.next_element::<Item>()?.is_some() {}
                Ok(EmbeddingInput)
            }
        }
        d.deserialize_any(V)
    }
}

/// An object whose fields are not checked (e.g. `response_format`, `metadata`).
pub struct Object;

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Object)
            }
        }
        d.deserialize_map(V)
    }
}
