//! JSON Schema (what OpenAI clients send for tool parameters and `json_schema` replies)
//! to Gemini's `Schema`, a subset of OpenAPI 3.0. Gemini refuses unknown keywords
//! (`additionalProperties`, `$schema`, `$defs`, ...), so this keeps only what it knows:
//! `$ref`s are inlined, `allOf` merged, `oneOf` read as `anyOf`, `const` as a one-value
//! `enum`, and `null` alternatives become `nullable`. Best effort: what cannot be
//! expressed is dropped rather than refused, as other gateways do.

use plugin_api::serde_json::{json, Map, Value};

/// Keywords copied as they are.
const PLAIN: &[&str] = &[
    "title",
    "description",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "propertyOrdering",
    "default",
    "minimum",
    "maximum",
];

/// Deeper than this is a cycle of `$ref`s or a schema no model can follow.
const MAX_DEPTH: usize = 32;

/// Most schema nodes one conversion visits: self-referencing `$ref`s expand
/// exponentially, and a client must not be able to stall the plugin with them.
const MAX_NODES: usize = 10_000;

struct Ctx<'a> {
    root: &'a Value,
    budget: usize,
}

/// Converts a whole schema.
pub fn to_gemini(schema: &Value) -> Value {
    let mut ctx = Ctx {
        root: schema,
        budget: MAX_NODES,
    };
    convert(schema, &mut ctx, 0)
}

/// Tool parameters: the root must be an object with at least one property, and Gemini
/// refuses an empty `properties` map, so a function without parameters sends none.
pub fn parameters(schema: &Value) -> Option<Value> {
    let mut s = to_gemini(schema);
    let has_properties = s
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    if !has_properties {
        return None;
    }
    s["type"] = json!("OBJECT");
    Some(s)
}

fn convert(s: &Value, ctx: &mut Ctx<'_>, depth: usize) -> Value {
    let Some(obj) = s.as_object() else {
        // `true` / `{}`: anything goes, which Gemini spells as no constraint at all.
        return json!({});
    };
    if depth > MAX_DEPTH || ctx.budget == 0 {
        return json!({});
    }
    ctx.budget -= 1;
    let root = ctx.root;
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let Some(target) = resolve(root, r) else {
            return json!({});
        };
        let mut merged = target.as_object().cloned().unwrap_or_default();
        for (k, v) in obj {
            if k != "$ref" {
                merged.insert(k.clone(), v.clone());
            }
        }
        return convert(&Value::Object(merged), ctx, depth + 1);
    }
    if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        let mut merged = obj.clone();
        merged.remove("allOf");
        for part in all {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => resolve(root, r).unwrap_or(part),
                None => part,
            };
            if let Some(p) = part.as_object() {
                merge_into(&mut merged, p);
            }
        }
        return convert(&Value::Object(merged), ctx, depth + 1);
    }

    let mut out = Map::new();
    let mut nullable = obj.get("nullable") == Some(&Value::Bool(true));
    match obj.get("type") {
        Some(Value::String(t)) if t == "null" => nullable = true,
        Some(Value::String(t)) => {
            out.insert("type".into(), json!(t.to_ascii_uppercase()));
        }
        Some(Value::Array(types)) => {
            for t in types.iter().filter_map(Value::as_str) {
                if t == "null" {
                    nullable = true;
                } else if !out.contains_key("type") {
                    out.insert("type".into(), json!(t.to_ascii_uppercase()));
                }
            }
        }
        _ => {}
    }

    if let Some(alts) = obj
        .get("anyOf")
        .or_else(|| obj.get("oneOf"))
        .and_then(Value::as_array)
    {
        let mut kept = Vec::new();
        for alt in alts {
            if alt.get("type").and_then(Value::as_str) == Some("null") {
                nullable = true;
            } else {
                kept.push(convert(alt, ctx, depth + 1));
            }
        }
        if kept.len() == 1 && !out.contains_key("type") {
            if let Some(Value::Object(only)) = kept.pop() {
                for (k, v) in only {
                    out.entry(k).or_insert(v);
                }
            }
        } else if !kept.is_empty() {
            out.insert("anyOf".into(), Value::Array(kept));
        }
    }

    let mut values: Vec<Value> = Vec::new();
    if let Some(c) = obj.get("const") {
        values.push(c.clone());
    } else if let Some(e) = obj.get("enum").and_then(Value::as_array) {
        values.extend(e.iter().cloned());
    }
    if !values.is_empty() {
        let mut strings = Vec::new();
        for v in values {
            match v {
                Value::Null => nullable = true,
                Value::String(s) => strings.push(json!(s)),
                other => strings.push(json!(other.to_string())),
            }
        }
        out.entry("type").or_insert_with(|| json!("STRING"));
        out.insert("enum".into(), Value::Array(strings));
    }

    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        let converted: Map<String, Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), convert(v, ctx, depth + 1)))
            .collect();
        if let Some(req) = obj.get("required").and_then(Value::as_array) {
            let req: Vec<Value> = req
                .iter()
                .filter(|r| r.as_str().is_some_and(|r| converted.contains_key(r)))
                .cloned()
                .collect();
            if !req.is_empty() {
                out.insert("required".into(), Value::Array(req));
            }
        }
        out.insert("properties".into(), Value::Object(converted));
        out.entry("type").or_insert_with(|| json!("OBJECT"));
    }

    let items = match obj.get("items").or_else(|| obj.get("prefixItems")) {
        Some(Value::Array(tuple)) => tuple.first(),
        other => other,
    };
    if let Some(items) = items {
        out.insert("items".into(), convert(items, ctx, depth + 1));
        out.entry("type").or_insert_with(|| json!("ARRAY"));
    }

    if let Some(f) = obj.get("format").and_then(Value::as_str) {
        if format_supported(out.get("type").and_then(Value::as_str), f) {
            out.insert("format".into(), json!(f));
        }
    }
    for key in PLAIN {
        if let Some(v) = obj.get(*key) {
            out.entry(*key).or_insert_with(|| v.clone());
        }
    }
    if nullable {
        out.insert("nullable".into(), json!(true));
    }
    Value::Object(out)
}

/// The Gemini API accepts only these formats and refuses the rest (`uri`, `email`, ...).
fn format_supported(ty: Option<&str>, format: &str) -> bool {
    match ty {
        Some("STRING") => matches!(format, "enum" | "date-time"),
        Some("NUMBER") => matches!(format, "float" | "double"),
        Some("INTEGER") => matches!(format, "int32" | "int64"),
        _ => false,
    }
}

/// A local reference: `#`, `#/$defs/Name`, `#/definitions/Name`, any JSON pointer.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    let found = root.pointer(pointer)?;
    found.is_object().then_some(found)
}

/// `allOf`: properties and required lists add up; other keywords keep the first value.
fn merge_into(target: &mut Map<String, Value>, part: &Map<String, Value>) {
    for (k, v) in part {
        match (k.as_str(), target.get_mut(k), v) {
            ("properties", Some(Value::Object(have)), Value::Object(more)) => {
                for (pk, pv) in more {
                    have.entry(pk.clone()).or_insert_with(|| pv.clone());
                }
            }
            ("required", Some(Value::Array(have)), Value::Array(more)) => {
                for r in more {
                    if !have.contains(r) {
                        have.push(r.clone());
                    }
                }
            }
            (_, None, _) => {
                target.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_unknown_keywords_and_uppercases_types() {
        let s = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "city": {"type": "string", "format": "uri", "description": "City"},
                "when": {"type": "string", "format": "date-time"},
                "n": {"type": ["integer", "null"], "exclusiveMinimum": 0}
            },
            "required": ["city", "ghost"]
        });
        assert_eq!(
            to_gemini(&s),
            json!({
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING", "description": "City"},
                    "when": {"type": "STRING", "format": "date-time"},
                    "n": {"type": "INTEGER", "nullable": true}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn refs_all_of_any_of_and_const() {
        let s = json!({
            "type": "object",
            "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
            "properties": {
                "unit": {"$ref": "#/$defs/Unit", "description": "Unit"},
                "opt": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "kind": {"const": "fixed"},
                "both": {"allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "boolean"}}}
                ]},
                "loop": {"$ref": "#"}
            }
        });
        let g = to_gemini(&s);
        let p = &g["properties"];
        assert_eq!(
            p["unit"],
            json!({"type": "STRING", "enum": ["c", "f"], "description": "Unit"})
        );
        assert_eq!(p["opt"], json!({"type": "NUMBER", "nullable": true}));
        assert_eq!(
            p["either"],
            json!({"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]})
        );
        assert_eq!(p["kind"], json!({"type": "STRING", "enum": ["fixed"]}));
        assert_eq!(p["both"]["required"], json!(["a"]));
        assert_eq!(p["both"]["properties"]["b"], json!({"type": "BOOLEAN"}));
        // A cycle ends at the depth limit instead of recursing forever.
        assert!(p["loop"].is_object());
    }

    #[test]
    fn self_references_cannot_explode() {
        let s = json!({
            "type": "object",
            "properties": {
                "a": {"$ref": "#"}, "b": {"$ref": "#"}, "c": {"$ref": "#"}, "d": {"$ref": "#"}
            }
        });
        let started = std::time::Instant::now();
        let g = to_gemini(&s);
        assert!(started.elapsed().as_secs() < 2);
        assert_eq!(g["type"], "OBJECT");
    }

    #[test]
    fn parameterless_functions_send_no_parameters() {
        assert_eq!(
            parameters(&json!({"type": "object", "properties": {}})),
            None
        );
        assert_eq!(parameters(&json!({})), None);
        let p = parameters(&json!({"properties": {"q": {"type": "string"}}})).unwrap();
        assert_eq!(p["type"], "OBJECT");
    }
}
