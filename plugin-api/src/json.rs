//! Order-preserving edits of a JSON object's top-level fields.
//!
//! A plugin that forwards a body it did not write (the client's request in a format the
//! upstream speaks natively, an upstream chunk already in the client's shape) should
//! change only the fields it must: re-encoding through `serde_json::Value` would reorder
//! keys, respell numbers (`1.0e0`, integers beyond `u64`) and drop duplicate fields, so
//! what the upstream or the client receives is no longer what was sent.
//!
//! [`RawObject`] keeps every top-level value as its original JSON text; only the fields
//! set through it are written anew. [`replace_field`] goes further for the common case
//! of one changed field (`model`): every other byte, whitespace included, is kept.
//!
//! ```
//! use plugin_api::json::{replace_field, RawObject};
//!
//! let body = br#"{"model": "anthropic/claude", "max_tokens": 1.0e3, "x": {"b":1,"a":2}}"#;
//! let out = replace_field(body, "model", r#""claude""#)?;
//! assert_eq!(out, br#"{"model": "claude", "max_tokens": 1.0e3, "x": {"b":1,"a":2}}"#);
//!
//! let mut obj = RawObject::parse(body).map_err(|e| plugin_api::ProviderError::bad_request(e.to_string()))?;
//! obj.set("stream", "true".into());
//! assert_eq!(obj.get("x"), Some(r#"{"b":1,"a":2}"#));
//! assert_eq!(
//!     obj.to_vec()?,
//!     br#"{"model":"anthropic/claude","max_tokens":1.0e3,"x":{"b":1,"a":2},"stream":true}"#
//! );
//! # Ok::<(), plugin_api::ProviderError>(())
//! ```

use crate::ProviderError;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A value of a [`RawObject`] field: the original text, or one we wrote.
#[derive(Debug)]
enum Val<'a> {
    Raw(&'a RawValue),
    Owned(String),
}

impl Val<'_> {
    fn text(&self) -> &str {
        match self {
            Val::Raw(r) => r.get(),
            Val::Owned(s) => s,
        }
    }
}

/// A JSON object as an ordered list of fields whose values are raw JSON text, borrowed
/// from the parsed bytes. Values set through it must be valid JSON text (encode them with
/// `serde_json::to_string`); they are written as given.
#[derive(Debug)]
pub struct RawObject<'a> {
    /// Keys borrow from the parsed bytes unless they had escapes to decode.
    fields: Vec<(Cow<'a, str>, Val<'a>)>,
}

impl<'a> RawObject<'a> {
    /// Parses `bytes` as one JSON object; anything else (array, scalar, bad JSON) fails.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The raw JSON text of the first field named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.text())
    }

    /// Sets `key` to the JSON text `json`: replaces the first field of that name in place
    /// (dropping duplicates, which upstreams would read ambiguously) or appends it.
    pub fn set(&mut self, key: &str, json: String) {
        let mut found = false;
        let mut json = Some(json);
        self.fields.retain_mut(|(k, v)| {
            if k != key {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            if let Some(j) = json.take() {
                *v = Val::Owned(j);
            }
            true
        });
        if let Some(j) = json {
            self.fields
                .push((Cow::Owned(key.to_string()), Val::Owned(j)));
        }
    }

    /// Removes every field named `key`; true if there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.fields.len();
        self.fields.retain(|(k, _)| k != key);
        self.fields.len() != before
    }

    /// The object as compact JSON, fields in their original order (whitespace between
    /// top-level tokens is not kept; inside values it is).
    pub fn to_vec(&self) -> Result<Vec<u8>, ProviderError> {
        let size: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.text().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, k)
                .map_err(|e| ProviderError::internal(format!("cannot encode JSON key: {e}")))?;
            out.push(b':');
            out.extend_from_slice(v.text().as_bytes());
        }
        out.push(b'}');
        Ok(out)
    }

    /// Where the original text of the only field named `key` lies in `src`, the bytes
    /// this object was parsed from; `None` when the field is missing, repeated, or was
    /// set since.
    fn span_in(&self, src: &[u8], key: &str) -> Option<std::ops::Range<usize>> {
        let mut named = self.fields.iter().filter(|(k, _)| k == key);
        let (Some((_, Val::Raw(raw))), None) = (named.next(), named.next()) else {
            return None;
        };
        let text = raw.get().as_bytes();
        // A borrowed raw value is a slice of the input; checked rather than assumed.
        let start = (text.as_ptr() as usize).checked_sub(src.as_ptr() as usize)?;
        let span = start..start.checked_add(text.len())?;
        (src.get(span.clone()) == Some(text)).then_some(span)
    }
}

/// The client's JSON object `body` with its top-level field `key` set to the JSON text
/// `json`. When the field occurs once, only its value's bytes change: key order,
/// whitespace, number spelling and every other byte stay as the client sent them, and a
/// body that already holds that exact text comes back unchanged. Otherwise (the field is
/// missing or repeated) the body is re-encoded as [`RawObject::set`] and
/// [`RawObject::to_vec`] do, so a duplicate cannot smuggle a second value past the edit.
///
/// A body that is not a JSON object is the client's error
/// ([`ErrorClass::BadRequest`](crate::ErrorClass::BadRequest)).
pub fn replace_field(body: &[u8], key: &str, json: &str) -> Result<Vec<u8>, ProviderError> {
    let mut obj = RawObject::parse(body)
        .map_err(|e| ProviderError::bad_request(format!("invalid request body: {e}")))?;
    if let Some(span) = obj.span_in(body, key) {
        if &body[span.clone()] == json.as_bytes() {
            return Ok(body.to_vec());
        }
        let mut out = Vec::with_capacity(body.len() - span.len() + json.len());
        out.extend_from_slice(&body[..span.start]);
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(&body[span.end..]);
        return Ok(out);
    }
    obj.set(key, json.to_string());
    obj.to_vec()
}

/// An object key, borrowed from the input when it can be (no escapes): most bodies'
/// keys then cost no allocation.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, Val::Raw(value)));
                }
                Ok(RawObject { fields })
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// True when the raw JSON text is an array with no elements (`[]`, `[ ]`).
pub fn is_empty_array(raw: &str) -> bool {
    raw.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|inner| inner.trim().is_empty())
}

/// True when the raw JSON text starts like an object: a cheap shape check before parsing
/// into a struct, which serde would also accept from an array.
pub fn looks_like_object(text: &[u8]) -> bool {
    text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn escaped_keys_are_decoded_and_plain_ones_borrowed() {
        let body = br#"{"mo\u0064el": "x", "plain": 1}"#;
        let obj = RawObject::parse(body).unwrap();
        assert_eq!(obj.get("model"), Some(r#""x""#));
        assert!(matches!(obj.fields[0].0, Cow::Owned(_)));
        assert!(matches!(obj.fields[1].0, Cow::Borrowed("plain")));
        assert_eq!(obj.to_vec().unwrap(), br#"{"model":"x","plain":1}"#);
    }

    #[test]
    fn untouched_fields_keep_their_bytes_and_order() {
        let body = br#"{"z": 1.0e0, "model":"a","messages":[ {"role":"user"} ],"model":"dup","n":12345678901234567890123}"#;
        let mut o = RawObject::parse(body).unwrap();
        o.set("model", "\"b\"".into());
        o.set("stream", "true".into());
        let out = String::from_utf8(o.to_vec().unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"z":1.0e0,"model":"b","messages":[ {"role":"user"} ],"n":12345678901234567890123,"stream":true}"#
        );
        assert!(o.remove("z"));
        assert!(!o.remove("z"));
        assert_eq!(o.get("stream"), Some("true"));
    }

    #[test]
    fn only_objects_parse() {
        for bad in [&b"[1]"[..], b"1", b"\"x\"", b"{", b"{} x", b""] {
            assert!(
                RawObject::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            let e = replace_field(bad, "model", "\"m\"").unwrap_err();
            assert_eq!(e.class, ErrorClass::BadRequest);
        }
    }

    #[test]
    fn empty_array_detection() {
        assert!(is_empty_array("[]"));
        assert!(is_empty_array("[ \n ]"));
        assert!(!is_empty_array("[{}]"));
        assert!(!is_empty_array("null"));
        assert!(looks_like_object(b"  {\"a\":1}"));
        assert!(!looks_like_object(b"[]"));
    }

    #[test]
    fn replacing_one_field_keeps_every_other_byte() {
        let body = b"{\n  \"a\" : 1.50,\n  \"model\" :\t\"x/long-name\" ,\n  \"b\": {\"model\": \"inner\"}\n}\n";
        let out = replace_field(body, "model", "\"short\"").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n  \"a\" : 1.50,\n  \"model\" :\t\"short\" ,\n  \"b\": {\"model\": \"inner\"}\n}\n"
        );
        // Already right: the very same bytes.
        let same = br#"{ "model" : "m", "x": [1, 2] }"#;
        assert_eq!(replace_field(same, "model", "\"m\"").unwrap(), same);
        // A value of another type is replaced whole.
        let out = replace_field(br#"{"model": {"id": 1}, "k": 2}"#, "model", "\"m\"").unwrap();
        assert_eq!(out, br#"{"model": "m", "k": 2}"#);
    }

    #[test]
    fn replacing_a_missing_or_repeated_field_re_encodes() {
        let out = replace_field(br#"{"a": 1}"#, "model", "\"m\"").unwrap();
        assert_eq!(out, br#"{"a":1,"model":"m"}"#);
        let out =
            replace_field(br#"{"model": "x", "a": 1, "model": "y"}"#, "model", "\"m\"").unwrap();
        assert_eq!(out, br#"{"model":"m","a":1}"#);
    }
}
