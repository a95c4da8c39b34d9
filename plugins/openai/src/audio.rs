//! Audio: transcriptions and translations (a multipart upload passed through with only its
//! `model` field changed) and speech (JSON in, audio bytes out). Replies go to the client
//! as the upstream sent them — JSON, text, SRT, VTT or audio — with usage when reported.

use plugin_api::multipart;
use plugin_api::{Endpoint, ProviderError, Reply};

pub(crate) fn is_audio(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::AudioTranscriptions | Endpoint::AudioTranslations | Endpoint::AudioSpeech
    )
}

/// The upload with its `model` field set to `model` (the file and every other field kept
/// byte for byte).
pub(crate) fn upload_body(
    body: &[u8],
    content_type: &str,
    model: &str,
) -> Result<Vec<u8>, ProviderError> {
    let boundary = multipart::boundary(content_type).ok_or_else(|| {
        ProviderError::bad_request("an audio upload must be multipart/form-data with a boundary")
    })?;
    match multipart::field(body, boundary, "model") {
        Some(current) if current == model.as_bytes() => Ok(body.to_vec()),
        Some(_) => multipart::replace_field(body, boundary, "model", model.as_bytes())
            .ok_or_else(|| ProviderError::bad_request("the multipart body is malformed")),
        None => Err(ProviderError::bad_request(
            "the upload has no 'model' field",
        )),
    }
}

/// Whatever the upstream answered; usage from a JSON reply that reports it
/// (`gpt-4o-transcribe` counts tokens; `whisper-1` reports seconds, which are not tokens).
pub(crate) fn reply(body: &[u8]) -> Reply {
    let usage = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("usage").and_then(crate::usage::from_value));
    Reply::pass_through(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=b0undary";

    fn upload(model: &str) -> Vec<u8> {
        format!("--b0undary\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\nID3\u{1}\u{2}\r\n--b0undary--\r\n").into_bytes()
    }

    #[test]
    fn the_model_field_is_rewritten_and_nothing_else() {
        let out = upload_body(&upload("openai/whisper-1"), CT, "whisper-1").unwrap();
        assert_eq!(out, upload("whisper-1"));
        assert_eq!(
            upload_body(&upload("whisper-1"), CT, "whisper-1").unwrap(),
            upload("whisper-1")
        );
        assert!(upload_body(&upload("x"), "application/json", "m").is_err());
        assert!(upload_body(b"--b0undary--", CT, "m").is_err());
    }

    #[test]
    fn replies_pass_through_with_usage_when_reported() {
        let r = reply(br#"{"text":"hi","usage":{"type":"tokens","input_tokens":12,"output_tokens":3,"total_tokens":15}}"#);
        assert!(r.pass_through);
        assert_eq!(
            r.usage.map(|u| (u.input_tokens, u.output_tokens)),
            Some((12, 3))
        );
        let r = reply(b"1\n00:00:00,000 --> 00:00:01,000\nhi\n");
        assert!(r.pass_through && r.usage.is_none());
        assert!(reply(&[0xff, 0xfb, 0x90]).usage.is_none());
    }
}
