//! The official OpenAI Python SDK, pointed at aihub, completes a chat and a streamed chat
//! through every shipped plugin. The SDK is installed with pip into a venv kept in the
//! target directory (made once, reused by later runs).

mod common;

use common::providers::start_all;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// A venv with the `openai` package, made on first use.
fn sdk_python() -> PathBuf {
    let venv = lib_dir().join("openai-sdk-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
    if ready.is_file() {
        return python;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "openai>=1.40",
        ]),
        "pip install openai",
    );
    std::fs::write(&ready, b"ok").expect("mark the venv ready");
    python
}

fn run_script(python: &Path, base_url: &str, key: &str, models: &[&str]) -> Value {
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(base_url)
        .arg(key)
        .args(models)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "the SDK script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("script output is JSON")
}

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
    let result = tokio::task::spawn_blocking(move || run_script(&python, &base, &key, &models))
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
