//! Conversions between the SDK's types and the ABI's. Both sides of the boundary use them.

use crate::abi::*;
use crate::types::*;
use crate::StreamOutput;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::RRef;
use abi_stable::std_types::{ROption, RSlice, RStr, RString, RVec, Tuple2};

/// The host's side of a call: what the [`FfiCall`] getters read. Only the header list
/// is rebuilt (as ABI tuples); strings and the body are borrowed.
pub(crate) struct CallView<'a> {
    call: &'a Call<'a>,
    headers: FfiPairs<'a>,
}

/// Header pairs rebuilt for one crossing of the boundary, on the stack for the usual few.
pub(crate) type Pairs<'a> = smallvec::SmallVec<[(&'a str, &'a str); 16]>;
/// The same, as ABI tuples.
pub(crate) type FfiPairs<'a> = smallvec::SmallVec<[Tuple2<RStr<'a>, RStr<'a>>; 16]>;

impl<'a> CallView<'a> {
    pub(crate) fn new(call: &'a Call<'a>) -> Self {
        CallView {
            call,
            headers: call
                .headers
                .iter()
                .map(|(k, v)| Tuple2(RStr::from_str(k), RStr::from_str(v)))
                .collect(),
        }
    }

    /// The view as the trait object that crosses the boundary.
    pub(crate) fn as_ffi(&self) -> FfiCallRef<'_> {
        FfiCall_TO::from_ptr(RRef::new(self), TD_Opaque)
    }
}

impl FfiCall for CallView<'_> {
    fn endpoint(&self) -> u8 {
        self.call.endpoint.to_u8()
    }
    fn format(&self) -> u8 {
        self.call.format.to_u8()
    }
    fn model(&self) -> RStr<'_> {
        RStr::from_str(self.call.model)
    }
    fn body(&self) -> RSlice<'_, u8> {
        RSlice::from_slice(self.call.body)
    }
    fn stream(&self) -> bool {
        self.call.stream
    }
    fn include_usage(&self) -> bool {
        self.call.include_usage
    }
    fn headers(&self) -> RSlice<'_, Tuple2<RStr<'_>, RStr<'_>>> {
        RSlice::from_slice(&self.headers)
    }
    fn credential(&self) -> FfiCredential<'_> {
        credential_to_ffi(self.call.credential)
    }
    fn now_unix_ms(&self) -> u64 {
        self.call.now_unix_ms
    }
}

fn credential_to_ffi(c: Credential<'_>) -> FfiCredential<'_> {
    let s = RStr::from_str;
    let none = FfiCredential {
        kind: 0,
        secret: RStr::from_str(""),
        id: RStr::from_str(""),
        session_token: RStr::from_str(""),
        region: RStr::from_str(""),
    };
    match c {
        Credential::None => none,
        Credential::ApiKey(k) => FfiCredential {
            kind: 1,
            secret: s(k),
            ..none
        },
        Credential::AccessKey {
            id,
            secret,
            session_token,
            region,
        } => FfiCredential {
            kind: 2,
            secret: s(secret),
            id: s(id),
            session_token: s(session_token.unwrap_or("")),
            region: s(region.unwrap_or("")),
        },
        Credential::ServiceAccount(json) => FfiCredential {
            kind: 3,
            secret: s(json),
            ..none
        },
    }
}

fn credential_from_ffi<'a>(c: FfiCredential<'a>) -> Result<Credential<'a>, ProviderError> {
    let opt = |s: RStr<'a>| (!s.is_empty()).then(|| s.as_str());
    Ok(match c.kind {
        0 => Credential::None,
        1 if c.secret.is_empty() => Credential::None,
        1 => Credential::ApiKey(c.secret.as_str()),
        2 => Credential::AccessKey {
            id: c.id.as_str(),
            secret: c.secret.as_str(),
            session_token: opt(c.session_token),
            region: opt(c.region),
        },
        3 => Credential::ServiceAccount(c.secret.as_str()),
        k => {
            return Err(ProviderError::bad_request(format!(
                "credential kind {k} is not supported by this plugin; rebuild it against a newer aihub-plugin-api"
            )))
        }
    })
}

/// The client headers of a call, as the safe SDK wants them; the caller keeps the list
/// alive for the [`Call`] borrowing it.
pub(crate) fn headers_from_ffi<'a>(c: &'a FfiCallRef<'_>) -> Pairs<'a> {
    c.headers()
        .as_slice()
        .iter()
        .map(|t| (t.0.as_str(), t.1.as_str()))
        .collect()
}

pub(crate) fn call_from_ffi<'a>(
    c: &'a FfiCallRef<'_>,
    headers: &'a [(&'a str, &'a str)],
) -> Result<Call<'a>, ProviderError> {
    let endpoint = Endpoint::from_u8(c.endpoint()).ok_or_else(|| {
        ProviderError::bad_request(format!(
            "endpoint {} is not supported by this plugin",
            c.endpoint()
        ))
    })?;
    let format = Format::from_u8(c.format()).ok_or_else(|| {
        ProviderError::bad_request(format!(
            "request format {} is not supported by this plugin",
            c.format()
        ))
    })?;
    Ok(Call {
        endpoint,
        format,
        model: c.model().as_str(),
        body: c.body().as_slice(),
        headers,
        credential: credential_from_ffi(c.credential())?,
        now_unix_ms: c.now_unix_ms(),
        stream: c.stream(),
        include_usage: c.include_usage(),
    })
}

pub(crate) fn error_to_ffi(e: ProviderError) -> FfiError {
    FfiError {
        class: e.class.to_u8(),
        status: e.status.unwrap_or(0),
        retry_after_ms: e.retry_after_ms.into(),
        message: e.message.into(),
        code: e.code.map(RString::from).into(),
    }
}

pub(crate) fn error_from_ffi(e: FfiError) -> ProviderError {
    ProviderError {
        class: ErrorClass::from_u8(e.class),
        status: (e.status != 0).then_some(e.status),
        retry_after_ms: e.retry_after_ms.into_option(),
        message: e.message.into_string(),
        code: e.code.into_option().map(RString::into_string),
    }
}

pub(crate) fn usage_to_ffi(u: Usage) -> FfiUsage {
    FfiUsage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_input_tokens: u.cached_input_tokens,
        cache_write_tokens: u.cache_write_tokens,
        reasoning_tokens: u.reasoning_tokens,
    }
}

pub(crate) fn usage_from_ffi(u: FfiUsage) -> Usage {
    Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_input_tokens: u.cached_input_tokens,
        cache_write_tokens: u.cache_write_tokens,
        reasoning_tokens: u.reasoning_tokens,
    }
}

pub(crate) fn request_to_ffi(r: HttpRequest) -> FfiHttpRequest {
    FfiHttpRequest {
        method: r.method.into(),
        url: r.url.into(),
        headers: r
            .headers
            .into_iter()
            .map(|(k, v)| Tuple2(k.into(), v.into()))
            .collect(),
        body: r.body.into(),
    }
}

pub(crate) fn prepared_to_ffi(p: Prepared) -> FfiPrepared {
    match p {
        Prepared::Upstream(r) => FfiPrepared {
            request: request_to_ffi(r),
            local: ROption::RNone,
        },
        Prepared::Local(l) => FfiPrepared {
            request: FfiHttpRequest {
                method: RString::new(),
                url: RString::new(),
                headers: RVec::new(),
                body: RVec::new(),
            },
            local: ROption::RSome(FfiLocalReply {
                status: l.status,
                content_type: l.content_type.into(),
                body: l.body.into(),
            }),
        },
    }
}

pub(crate) fn local_from_ffi(l: FfiLocalReply) -> LocalReply {
    LocalReply {
        status: l.status,
        content_type: l.content_type.into_string(),
        body: l.body.into_vec(),
    }
}

pub(crate) fn request_from_ffi(r: FfiHttpRequest) -> HttpRequest {
    HttpRequest {
        method: r.method.into_string(),
        url: r.url.into_string(),
        headers: r
            .headers
            .into_iter()
            .map(|Tuple2(k, v)| (k.into_string(), v.into_string()))
            .collect(),
        body: r.body.into_vec(),
    }
}

pub(crate) fn reply_to_ffi(r: Reply) -> FfiReply {
    FfiReply {
        kind: if r.pass_through {
            REPLY_PASS_THROUGH
        } else {
            REPLY_BODY
        },
        body: if r.pass_through {
            RVec::new()
        } else {
            r.body.into()
        },
        usage: r.usage.map(usage_to_ffi).into(),
    }
}

pub(crate) fn events_to_ffi(o: StreamOutput, error: Option<ProviderError>) -> FfiEvents {
    FfiEvents {
        chunks: o.chunks.into_iter().map(RVec::from).collect(),
        usage: o.usage.map(usage_to_ffi).into(),
        done: o.done,
        error: error.map(error_to_ffi).into(),
    }
}

pub(crate) fn events_from_ffi(e: FfiEvents) -> (StreamOutput, Option<ProviderError>) {
    (
        StreamOutput {
            chunks: e.chunks.into_iter().map(RVec::into_vec).collect(),
            usage: e.usage.into_option().map(usage_from_ffi),
            done: e.done,
        },
        e.error.into_option().map(error_from_ffi),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the plugin side reads back from the host's view, for one credential.
    fn round_trip(credential: Credential<'_>) {
        let headers = [("anthropic-version", "2023-06-01"), ("x-trace", "t1")];
        let call = Call {
            format: Format::AnthropicMessages,
            headers: &headers,
            credential,
            now_unix_ms: 1_764_000_000_123,
            stream: true,
            include_usage: true,
            ..Call::new(Endpoint::Embeddings, "m-1", b"{\"a\":1}")
        };
        let view = CallView::new(&call);
        let ffi = view.as_ffi();
        let got_headers = headers_from_ffi(&ffi);
        let got = call_from_ffi(&ffi, &got_headers).unwrap();
        assert_eq!(got.endpoint, Endpoint::Embeddings);
        assert_eq!(got.format, Format::AnthropicMessages);
        assert_eq!(got.model, "m-1");
        assert_eq!(got.body, b"{\"a\":1}");
        assert_eq!(got.headers, headers);
        assert_eq!(got.credential, credential);
        assert_eq!(got.now_unix_ms, 1_764_000_000_123);
        assert!(got.stream && got.include_usage);
        assert_eq!(got.header("X-Trace"), Some("t1"));
    }

    #[test]
    fn every_field_and_credential_kind_crosses() {
        round_trip(Credential::None);
        round_trip(Credential::ApiKey("sk-1"));
        round_trip(Credential::AccessKey {
            id: "AKIA1",
            secret: "s3cr3t",
            session_token: Some("tok"),
            region: Some("eu-west-1"),
        });
        round_trip(Credential::AccessKey {
            id: "AKIA1",
            secret: "s3cr3t",
            session_token: None,
            region: None,
        });
        round_trip(Credential::ServiceAccount("{\"type\":\"service_account\"}"));
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let c = Credential::AccessKey {
            id: "AKIA1",
            secret: "s3cr3t",
            session_token: Some("tok"),
            region: None,
        };
        let shown = format!(
            "{c:?} {:?} {:?}",
            Credential::ApiKey("sk-1"),
            Credential::ServiceAccount("{}x")
        );
        assert!(
            !shown.contains("s3cr3t")
                && !shown.contains("tok")
                && !shown.contains("sk-1")
                && !shown.contains("{}x"),
            "{shown}"
        );
        assert_eq!(c.secrets(), ["s3cr3t", "tok"]);
    }

    #[test]
    fn pass_through_replies_cross_without_a_body() {
        let ffi = reply_to_ffi(Reply::pass_through(Some(Usage {
            input_tokens: 3,
            ..Usage::default()
        })));
        assert_eq!(ffi.kind, REPLY_PASS_THROUGH);
        assert!(ffi.body.is_empty());
        let ffi = reply_to_ffi(Reply {
            body: b"{}".to_vec(),
            usage: None,
            pass_through: false,
        });
        assert_eq!((ffi.kind, ffi.body.as_slice()), (REPLY_BODY, &b"{}"[..]));
    }
}
