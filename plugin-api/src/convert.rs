//! Conversions between the SDK's types and the ABI's. Both sides of the boundary use them.

use crate::abi::*;
use crate::types::*;
use crate::StreamOutput;
use abi_stable::std_types::{ROption, RSlice, RStr, RString, RVec, Tuple2};

pub(crate) fn call_to_ffi<'a>(c: &Call<'a>) -> FfiCall<'a> {
    FfiCall {
        endpoint: c.endpoint.to_u8(),
        model: RStr::from_str(c.model),
        body: RSlice::from_slice(c.body),
        api_key: RStr::from_str(c.api_key.unwrap_or("")),
        stream: c.stream,
        include_usage: c.include_usage,
    }
}

pub(crate) fn call_from_ffi<'a>(c: &FfiCall<'a>) -> Result<Call<'a>, ProviderError> {
    let endpoint = Endpoint::from_u8(c.endpoint).ok_or_else(|| {
        ProviderError::bad_request(format!(
            "endpoint {} is not supported by this plugin",
            c.endpoint
        ))
    })?;
    let key = c.api_key.as_str();
    Ok(Call {
        endpoint,
        model: c.model.as_str(),
        body: c.body.as_slice(),
        api_key: (!key.is_empty()).then_some(key),
        stream: c.stream,
        include_usage: c.include_usage,
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

pub(crate) fn prepared_to_ffi(p: Prepared) -> FfiPrepared {
    match p {
        Prepared::Upstream(r) => FfiPrepared {
            request: FfiHttpRequest {
                method: r.method.into(),
                url: r.url.into(),
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| Tuple2(k.into(), v.into()))
                    .collect(),
                body: r.body.into(),
            },
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

pub(crate) fn prepared_from_ffi(p: FfiPrepared) -> Prepared {
    match p.local {
        ROption::RSome(l) => Prepared::Local(LocalReply {
            status: l.status,
            content_type: l.content_type.into_string(),
            body: l.body.into_vec(),
        }),
        ROption::RNone => Prepared::Upstream(HttpRequest {
            method: p.request.method.into_string(),
            url: p.request.url.into_string(),
            headers: p
                .request
                .headers
                .into_iter()
                .map(|Tuple2(k, v)| (k.into_string(), v.into_string()))
                .collect(),
            body: p.request.body.into_vec(),
        }),
    }
}

pub(crate) fn reply_to_ffi(r: Reply) -> FfiReply {
    FfiReply {
        body: r.body.into(),
        usage: r.usage.map(usage_to_ffi).into(),
    }
}

pub(crate) fn reply_from_ffi(r: FfiReply) -> Reply {
    Reply {
        body: r.body.into_vec(),
        usage: r.usage.into_option().map(usage_from_ffi),
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
