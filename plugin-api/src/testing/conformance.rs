//! The conformance suite: what every plugin must do, checked the same way for all of
//! them. A plugin describes itself in a [`Conformance`] (its fixtures, and what it does
//! not support, with the reason) and [`conformance_suite!`](crate::conformance_suite)
//! turns that into `#[test]`s. A declared [`Support::Unsupported`] is tested too: the test
//! asserts the plugin indeed refuses or lacks the capability, so a declaration cannot
//! silently go stale.

use super::stream::{assert_same_at_every_split, decode, Clock, SplitCheck};
use super::{assert_error, call, json_of, response};
use crate::{Call, Endpoint, ErrorClass, Plugin, Prepared, ProviderError, Usage};

/// A capability the plugin has (with what to test it on), or declares it lacks.
#[derive(Debug, Clone)]
pub enum Support<T> {
    Yes(T),
    /// Why the plugin does not have it; the suite checks it indeed does not.
    Unsupported(&'static str),
}

/// Where the upstream body of a case comes from.
#[derive(Debug, Clone)]
pub enum Body {
    /// Recorded upstream bytes.
    Fixture(Vec<u8>),
    /// What `prepare` answered locally (`Prepared::Local`), for offline plugins.
    Local,
}

/// A whole (non-streamed) chat reply and what the client must get from it.
#[derive(Debug, Clone)]
pub struct WholeChat {
    pub reply: Body,
    /// `choices[0].message.content`.
    pub text: String,
    pub usage: Option<Usage>,
}

/// A streamed chat reply that ends properly, and what the client must get from it.
#[derive(Debug, Clone)]
pub struct StreamCase {
    pub body: Body,
    /// The content deltas of choice 0, joined.
    pub text: String,
    pub usage: Option<Usage>,
}

/// An upstream error reply and what the host must learn from it.
#[derive(Debug, Clone)]
pub struct ErrorCase {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<u8>,
    /// The wait the plugin must report (rate limits).
    pub retry_after_ms: Option<u64>,
}

impl ErrorCase {
    pub fn new(status: u16, body: Vec<u8>) -> Self {
        ErrorCase {
            status,
            headers: Vec::new(),
            body,
            retry_after_ms: None,
        }
    }
}

/// One error reply per class the host acts on differently.
#[derive(Debug, Clone)]
pub struct Errors {
    /// 401: the host stops using the key.
    pub auth: Support<ErrorCase>,
    /// 429, with the wait the upstream asked for.
    pub rate_limited: Support<ErrorCase>,
    /// 400: never retried.
    pub bad_request: Support<ErrorCase>,
    /// 5xx: retried elsewhere.
    pub upstream: Support<ErrorCase>,
}

impl Errors {
    /// Every class unsupported for the same reason (plugins without an upstream).
    pub fn unsupported(why: &'static str) -> Self {
        Errors {
            auth: Support::Unsupported(why),
            rate_limited: Support::Unsupported(why),
            bad_request: Support::Unsupported(why),
            upstream: Support::Unsupported(why),
        }
    }
}

/// A whole 2xx reply whose usage the plugin must read exactly.
#[derive(Debug, Clone)]
pub struct UsageCase {
    pub reply: Vec<u8>,
    pub usage: Usage,
}

/// A model and a body an endpoint's `prepare` must accept.
pub type EndpointCall = (&'static str, Vec<u8>);

/// What a plugin offers, with the fixtures to check it on.
#[derive(Debug, Clone)]
pub struct Conformance {
    /// The model of every call (without the routing prefix).
    pub model: &'static str,
    pub api_key: Option<&'static str>,
    /// The OpenAI chat body of every chat call.
    pub request: Vec<u8>,
    /// Where `created` of stream chunks comes from (how outcomes compare).
    pub clock: Clock,
    /// Endpoints other than chat, with a model and a body `prepare` must accept.
    pub endpoints: Vec<(Endpoint, Support<EndpointCall>)>,
    pub chat_whole: Support<WholeChat>,
    pub chat_stream: Support<StreamCase>,
    /// More stream bodies (tools, in-stream errors, cut ones...) whose decoding must not
    /// depend on how they were split.
    pub stream_fixtures: Vec<(&'static str, Vec<u8>)>,
    /// A body that ends before the upstream finished the stream; `Body::Local` cuts the
    /// local reply in half.
    pub cut_stream: Support<Body>,
    pub errors: Errors,
    pub cached_tokens: Support<UsageCase>,
    pub reasoning_tokens: Support<UsageCase>,
}

impl Conformance {
    fn chat(&self, stream: bool, include_usage: bool) -> Call<'_> {
        call(
            Endpoint::Chat,
            self.model,
            &self.request,
            self.api_key,
            stream,
            include_usage,
        )
    }

    /// The upstream bytes of a case: the fixture, or what `prepare` answered locally.
    fn resolve<P: Plugin>(&self, p: &P, body: &Body, stream: bool) -> Vec<u8> {
        let prepared = p
            .prepare(&self.chat(stream, false))
            .unwrap_or_else(|e| panic!("prepare refused the conformance request: {e:?}"));
        match (body, prepared) {
            (Body::Fixture(bytes), _) => bytes.clone(),
            (Body::Local, Prepared::Local(l)) => l.body,
            (Body::Local, other) => panic!("Body::Local, but prepare answered {other:?}"),
        }
    }
}

fn unsupported(what: &str, why: &str) {
    eprintln!("{what}: declared unsupported: {why}");
}

fn assert_refused(r: Result<Prepared, ProviderError>, what: &str, why: &str) {
    match r {
        Err(e) => assert_error(&e, ErrorClass::BadRequest, None),
        Ok(p) => panic!("{what} is declared unsupported ({why}) but prepare accepted it: {p:?}"),
    }
}

/// What the client receives for `reply`: the plugin's body, or the upstream's bytes
/// unchanged when the plugin passed the reply through.
pub fn client_body<'a>(reply: &'a crate::Reply, upstream: &'a [u8]) -> &'a [u8] {
    if reply.pass_through {
        upstream
    } else {
        &reply.body
    }
}

/// A whole chat reply becomes a `chat.completion` with the text and usage.
pub fn chat_whole<P: Plugin>(p: &P, c: &Conformance) {
    let case = match &c.chat_whole {
        Support::Yes(case) => case,
        Support::Unsupported(why) => {
            unsupported("chat", why);
            return assert_refused(p.prepare(&c.chat(false, false)), "chat", why);
        }
    };
    let body = c.resolve(p, &case.reply, false);
    let headers = [("content-type", "application/json")];
    let reply = p
        .parse(&c.chat(false, false), &response(200, &headers, &body))
        .unwrap_or_else(|e| panic!("parse: {e:?}"));
    let v = json_of(client_body(&reply, &body));
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant", "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        case.text.as_str(),
        "{v}"
    );
    assert!(v["choices"][0]["finish_reason"].is_string(), "{v}");
    if let Some(u) = case.usage {
        assert_eq!(reply.usage, Some(u));
        assert_eq!(v["usage"]["prompt_tokens"], u.input_tokens, "{v}");
        assert_eq!(v["usage"]["completion_tokens"], u.output_tokens, "{v}");
    }
}

/// A streamed chat reply ends with done, the text, one finish reason, and a usage chunk
/// (empty `choices`, last) exactly when the client asked for one.
pub fn chat_stream<P: Plugin>(p: &P, c: &Conformance) {
    let case = match &c.chat_stream {
        Support::Yes(case) => case,
        Support::Unsupported(why) => {
            unsupported("streamed chat", why);
            let refused =
                p.prepare(&c.chat(true, false)).is_err() || p.stream(&c.chat(true, false)).is_err();
            return assert!(
                refused,
                "streams are declared unsupported ({why}) but accepted"
            );
        }
    };
    let body = c.resolve(p, &case.body, true);
    for include_usage in [false, true] {
        let d = p
            .stream(&c.chat(true, include_usage))
            .unwrap_or_else(|e| panic!("stream: {e:?}"));
        let o = decode(d, &body);
        assert_eq!(o.error, None, "include_usage {include_usage}");
        assert!(
            o.done,
            "a whole stream is done (include_usage {include_usage})"
        );
        assert_eq!(o.text(), case.text, "include_usage {include_usage}");
        assert!(!o.finish_reasons().is_empty(), "{:?}", o.values());
        if let Some(u) = case.usage {
            assert_eq!(o.usage, Some(u), "the host records usage either way");
        }
        let usage_chunks = o.usage_chunks();
        if include_usage {
            assert_eq!(usage_chunks.len(), 1, "{:?}", o.values());
            let values = o.values();
            let last = values.last().unwrap_or_else(|| panic!("no chunks"));
            assert_eq!(last, &usage_chunks[0], "the usage chunk comes last");
            assert_eq!(last["choices"], serde_json::json!([]), "{last}");
            if let Some(u) = case.usage {
                assert_eq!(last["usage"]["prompt_tokens"], u.input_tokens, "{last}");
                assert_eq!(
                    last["usage"]["completion_tokens"], u.output_tokens,
                    "{last}"
                );
            }
        } else {
            assert!(usage_chunks.is_empty(), "not asked for: {usage_chunks:?}");
        }
    }
}

/// Every stream body decodes the same however it was split.
pub fn chat_stream_every_split<P: Plugin>(p: &P, c: &Conformance) {
    let mut bodies = Vec::new();
    match &c.chat_stream {
        Support::Yes(case) => bodies.push(("chat_stream", c.resolve(p, &case.body, true))),
        Support::Unsupported(why) => {
            unsupported("streamed chat", why);
            assert!(
                c.stream_fixtures.is_empty(),
                "stream fixtures without streams"
            );
        }
    }
    bodies.extend(c.stream_fixtures.iter().cloned());
    let check = SplitCheck {
        clock: c.clock,
        random_rounds: 50,
        ..SplitCheck::default()
    };
    for (name, bytes) in &bodies {
        for include_usage in [false, true] {
            let chat = c.chat(true, include_usage);
            let label = format!("{name} (include_usage {include_usage})");
            assert_same_at_every_split(
                || p.stream(&chat).unwrap_or_else(|e| panic!("stream: {e:?}")),
                bytes,
                &label,
                check,
            );
        }
    }
}

/// A body that stops early must not look finished: the host then sends no `[DONE]` and
/// the client sees a cut stream (or the error, if the decoder reports one).
pub fn cut_stream_is_an_error<P: Plugin>(p: &P, c: &Conformance) {
    let cut = |bytes: Vec<u8>| bytes[..bytes.len() / 2].to_vec();
    let (body, why) = match &c.cut_stream {
        Support::Yes(Body::Fixture(bytes)) => (bytes.clone(), None),
        Support::Yes(Body::Local) => (cut(c.resolve(p, &Body::Local, true)), None),
        Support::Unsupported(why) => {
            unsupported("telling a cut stream", why);
            let Support::Yes(case) = &c.chat_stream else {
                return;
            };
            (cut(c.resolve(p, &case.body, true)), Some(*why))
        }
    };
    for include_usage in [false, true] {
        let d = p
            .stream(&c.chat(true, include_usage))
            .unwrap_or_else(|e| panic!("stream: {e:?}"));
        let o = decode(d, &body);
        match why {
            None => assert!(
                !o.done,
                "a cut stream must not be done (include_usage {include_usage}): {o:?}"
            ),
            Some(why) => assert!(
                o.done && o.error.is_none(),
                "declared unable to tell a cut stream ({why}), yet it did: {o:?}"
            ),
        }
    }
}

/// An upstream error reply is classified with its status (and wait, for rate limits),
/// for a whole call and a streamed one alike.
pub fn error_class<P: Plugin>(p: &P, c: &Conformance, class: ErrorClass) {
    let support = match class {
        ErrorClass::Auth => &c.errors.auth,
        ErrorClass::RateLimited => &c.errors.rate_limited,
        ErrorClass::BadRequest => &c.errors.bad_request,
        _ => &c.errors.upstream,
    };
    let case = match support {
        Support::Yes(case) => case,
        Support::Unsupported(why) => {
            unsupported(class.as_str(), why);
            return match p.prepare(&c.chat(false, false)) {
                Ok(Prepared::Local(_)) => {}
                other => panic!(
                    "upstream errors are declared unsupported ({why}), but the plugin has an \
                     upstream: {other:?}"
                ),
            };
        }
    };
    if class == ErrorClass::Upstream {
        assert!(case.status >= 500, "the upstream case is a 5xx");
    }
    for stream in [false, true] {
        let r = p.parse(
            &c.chat(stream, false),
            &response(case.status, &case.headers, &case.body),
        );
        let e = match r {
            Err(e) => e,
            Ok(reply) => panic!("a {} reply parsed as a success: {reply:?}", case.status),
        };
        assert_error(&e, class, Some(case.status));
        if class == ErrorClass::RateLimited {
            assert_eq!(e.retry_after_ms, case.retry_after_ms, "{e:?}");
        }
    }
}

/// Cached input and reasoning tokens are read into `Usage` and shown in the OpenAI
/// `usage` details; a plugin that declares it lacks one reports zero for it.
pub fn usage_cached_and_reasoning<P: Plugin>(p: &P, c: &Conformance) {
    let parse = |body: &[u8]| {
        let headers = [("content-type", "application/json")];
        p.parse(&c.chat(false, false), &response(200, &headers, body))
            .unwrap_or_else(|e| panic!("parse: {e:?}"))
    };
    let whole = match &c.chat_whole {
        Support::Yes(case) => Some(parse(&c.resolve(p, &case.reply, false))),
        Support::Unsupported(_) => None,
    };
    type Kind<'a> = (&'a str, &'a Support<UsageCase>, fn(&Usage) -> u64, &'a str);
    let kinds: [Kind<'_>; 2] = [
        (
            "cached input tokens",
            &c.cached_tokens,
            |u| u.cached_input_tokens,
            "/usage/prompt_tokens_details/cached_tokens",
        ),
        (
            "reasoning tokens",
            &c.reasoning_tokens,
            |u| u.reasoning_tokens,
            "/usage/completion_tokens_details/reasoning_tokens",
        ),
    ];
    for (what, support, get, pointer) in kinds {
        match support {
            Support::Yes(case) => {
                assert!(get(&case.usage) > 0, "the {what} fixture has none");
                let reply = parse(&case.reply);
                assert_eq!(reply.usage, Some(case.usage), "{what}");
                let v = json_of(client_body(&reply, &case.reply));
                assert_eq!(v.pointer(pointer), Some(&get(&case.usage).into()), "{v}");
            }
            Support::Unsupported(why) => {
                unsupported(what, why);
                if let Some(usage) = whole.as_ref().and_then(|r| r.usage) {
                    assert_eq!(get(&usage), 0, "{what} declared unsupported ({why})");
                }
            }
        }
    }
}

/// Each endpoint other than chat is accepted or refused (as a bad request) as declared.
pub fn endpoints_as_declared<P: Plugin>(p: &P, c: &Conformance) {
    for (endpoint, support) in &c.endpoints {
        match support {
            Support::Yes((model, body)) => {
                let r = p.prepare(&call(*endpoint, model, body, c.api_key, false, false));
                assert!(r.is_ok(), "{endpoint:?}: {r:?}");
            }
            Support::Unsupported(why) => {
                unsupported(&format!("{endpoint:?}"), why);
                let r = p.prepare(&call(
                    *endpoint, c.model, &c.request, c.api_key, false, false,
                ));
                assert_refused(r, &format!("{endpoint:?}"), why);
            }
        }
    }
}

/// Expands to the conformance `#[test]`s of a plugin:
///
/// ```ignore
/// plugin_api::conformance_suite!(plugin: || Echo, spec: spec());
/// ```
///
/// `plugin` makes a provider instance, `spec` is a [`Conformance`] (both evaluated anew
/// in each test).
#[macro_export]
macro_rules! conformance_suite {
    (plugin: $new:expr, spec: $spec:expr $(,)?) => {
        $crate::conformance_suite!(@tests $new, $spec;
            chat_whole => chat_whole,
            chat_stream => chat_stream,
            chat_stream_every_split => chat_stream_every_split,
            cut_stream_is_an_error => cut_stream_is_an_error,
            usage_cached_and_reasoning => usage_cached_and_reasoning,
            endpoints_as_declared => endpoints_as_declared,
        );
        $crate::conformance_suite!(@errors $new, $spec;
            error_class_auth => Auth,
            error_class_rate_limited => RateLimited,
            error_class_bad_request => BadRequest,
            error_class_upstream => Upstream,
        );
    };
    (@tests $new:expr, $spec:expr; $($name:ident => $run:ident,)*) => {$(
        #[test]
        fn $name() {
            $crate::testing::conformance::$run(&($new)(), &$spec);
        }
    )*};
    (@errors $new:expr, $spec:expr; $($name:ident => $class:ident,)*) => {$(
        #[test]
        fn $name() {
            $crate::testing::conformance::error_class(
                &($new)(),
                &$spec,
                $crate::ErrorClass::$class,
            );
        }
    )*};
}
