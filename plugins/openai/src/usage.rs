//! Reading token counts from the `usage` objects OpenAI-compatible servers send.

use plugin_api::serde_json::Value;
use plugin_api::Usage;

/// Token counts of a `usage` object, or `None` when it holds none.
///
/// Chat and embeddings use `prompt_tokens`/`completion_tokens` (embeddings have only
/// `prompt_tokens` and `total_tokens`); the images API uses `input_tokens`/
/// `output_tokens`. Cached prompt tokens come from `prompt_tokens_details.cached_tokens`
/// or, on DeepSeek, `prompt_cache_hit_tokens`; OpenAI counts them inside `prompt_tokens`,
/// as [`Usage`] expects.
pub(crate) fn from_value(usage: &Value) -> Option<Usage> {
    let obj = usage.as_object()?;
    let num = |v: Option<&Value>| v.and_then(Value::as_u64);
    let field = |names: &[&str]| names.iter().find_map(|n| num(obj.get(*n)));
    let nested = |outer: &[&str], inner: &str| {
        outer
            .iter()
            .find_map(|o| num(obj.get(*o).and_then(|d| d.get(inner))))
    };

    let output = field(&["completion_tokens", "output_tokens"]);
    let total = field(&["total_tokens"]);
    let input = field(&["prompt_tokens", "input_tokens"])
        .or_else(|| total.map(|t| t.saturating_sub(output.unwrap_or(0))));
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: nested(
            &["prompt_tokens_details", "input_tokens_details"],
            "cached_tokens",
        )
        .or_else(|| field(&["prompt_cache_hit_tokens"]))
        .unwrap_or(0),
        cache_write_tokens: 0,
        reasoning_tokens: nested(
            &["completion_tokens_details", "output_tokens_details"],
            "reasoning_tokens",
        )
        .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::serde_json::json;

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
