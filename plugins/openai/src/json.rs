//! Order-preserving edits of a JSON object's top-level fields.
//!
//! Clients' bodies and upstream chunks pass through untouched: only the fields we change
//! are re-encoded, every other value keeps its original bytes (number spelling, key order,
//! nested objects), so nothing a client sends is lost or reinterpreted on the way.

use plugin_api::ProviderError;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
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

/// A JSON object as an ordered list of fields whose values are raw JSON text.
#[derive(Debug)]
pub(crate) struct RawObject<'a> {
    fields: Vec<(String, Val<'a>)>,
}

impl<'a> RawObject<'a> {
    /// Parses `bytes` as one JSON object; anything else (array, scalar, bad JSON) fails.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The raw JSON text of the first field named `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.text())
    }

    /// Sets `key` to the JSON text `json`: replaces the first field of that name in place
    /// (dropping duplicates, which upstreams would read ambiguously) or appends it.
    pub(crate) fn set(&mut self, key: &str, json: String) {
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
            self.fields.push((key.to_string(), Val::Owned(j)));
        }
    }

    /// Removes every field named `key`; true if there was one.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        let before = self.fields.len();
        self.fields.retain(|(k, _)| k != key);
        self.fields.len() != before
    }

    /// The object as compact JSON, fields in their original order.
    pub(crate) fn to_vec(&self) -> Result<Vec<u8>, ProviderError> {
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
                while let Some(key) = map.next_key::<String>()? {
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
pub(crate) fn is_empty_array(raw: &str) -> bool {
    raw.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|inner| inner.trim().is_empty())
}

/// True when the raw JSON text starts like an object (a cheap shape check before parsing
/// into a struct, which serde would also accept from an array).
pub(crate) fn looks_like_object(text: &[u8]) -> bool {
    text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
