//! The official OpenAI Python SDK, pointed at aihub, completes a chat and a streamed chat
//! through every shipped plugin. The SDK is installed with pip into a venv kept in the
//! target directory (`common::python_sdk`).

use crate::common;

use common::providers::start_all;
use common::python_sdk::{run_script, sdk_python};

const SCRIPT: &str = r#"
import json, sys
from openai import OpenAI

base_url, key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key=key, max_retries=0)
out = {}
for model in sys.argv[3:]:
    msgs = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "say hello sdk"}]
    r = client.chat.completions.create(model=model, messages=msgs)
    text, usage, chunks = "", None, 0
    for chunk in client.chat.completions.create(
            model=model, messages=msgs, stream=True, stream_options={"include_usage": True}):
        chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage.total_tokens
    out[model] = {
        "content": r.choices[0].message.content,
        "finish_reason": r.choices[0].finish_reason,
        "total_tokens": r.usage.total_tokens if r.usage else None,
        "stream_text": text,
        "stream_chunks": chunks,
        "stream_usage": usage,
    }
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn openai_python_sdk_chats_through_every_plugin() {
    let python = tokio::task::spawn_blocking(sdk_python).await.unwrap();
    let p = start_all().await;
    let models = [
        "echo/echo-1",
        "openai/gpt-4o-mini",
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-flash",
    ];
    let base = format!("{}/v1", p.server.base_url());
    let key = p.server.app_key().to_string();
    let mut args = vec![base, key];
    args.extend(models.iter().map(|m| m.to_string()));
    let result = tokio::task::spawn_blocking(move || run_script(&python, SCRIPT, &args))
        .await
        .unwrap();
    for model in models {
        let r = &result[model];
        assert!(
            !r["content"].as_str().unwrap_or_default().is_empty(),
            "{model}: no content in {r}"
        );
        assert!(
            !r["stream_text"].as_str().unwrap_or_default().is_empty(),
            "{model}: no streamed text in {r}"
        );
        assert!(
            r["stream_usage"].as_u64().unwrap_or(0) > 0,
            "{model}: no usage chunk in {r}"
        );
        assert!(
            r["total_tokens"].as_u64().unwrap_or(0) > 0,
            "{model}: no usage in {r}"
        );
    }
    assert_eq!(result["echo/echo-1"]["content"], "say hello sdk");
}
