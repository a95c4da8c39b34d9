//! The raw ABI: the only module that names `abi_stable` types.
#![allow(non_local_definitions)] // sabi_trait expands to impls of foreign traits
//!
//! Everything here is `#[doc(hidden)]` from the crate root; plugin authors use the SDK
//! ([`crate::Plugin`], [`crate::export_plugin!`]) and the host uses [`crate::host`]. Keeping
//! the ABI crate behind this one file means it could be swapped without touching plugins.
//!
//! Only small fixed structs cross the boundary; requests and replies travel as JSON bytes.
//! Enumerations are plain integers so that adding a variant is not a layout change.
//!
//! **Growth without a break.** abi_stable allows adding fields only to prefix types
//! (`'static` vtables and modules), never to a plain `#[repr(C)]` struct. A call is made
//! per request, so it cannot be a prefix type; it crosses as a `#[sabi_trait]` object
//! ([`FfiCall`]) instead: its vtable *is* a prefix type, so later versions add getters
//! after `last_prefix_field` (with a default body), a newer plugin on an older host gets
//! the default, and an older plugin never asks. The same holds for [`AdapterFfi`],
//! [`DecoderFfi`] and [`PluginMod`].
//!
//! **The first field of [`PluginMod`] is `abi_version: u32` in every ABI version**, so
//! the host can read it (through [`AbiProbe`]) before the layout check and tell the
//! operator to rebuild instead of printing a layout diff.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::RRef,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
    StableAbi,
};

/// A credential, borrowed for the call. `kind`: 0 none, 1 API key (`secret`), 2 access
/// key (`id`, `secret`, optional `session_token` and `region`, empty when absent),
/// 3 service account (`secret` holds the JSON). New kinds are new numbers.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiCredential<'a> {
    pub kind: u8,
    pub secret: RStr<'a>,
    pub id: RStr<'a>,
    pub session_token: RStr<'a>,
    pub region: RStr<'a>,
}

/// One call as the host hands it to the plugin: a view over the host's data, nothing
/// copied. New getters go after the last one, with a default body.
#[sabi_trait]
pub trait FfiCall {
    /// [`crate::Endpoint`] as an integer.
    fn endpoint(&self) -> u8;
    /// [`crate::Format`] as an integer.
    fn format(&self) -> u8;
    /// The model name with the routing prefix removed.
    fn model(&self) -> RStr<'_>;
    /// The client's body, untouched.
    fn body(&self) -> RSlice<'_, u8>;
    fn stream(&self) -> bool;
    fn include_usage(&self) -> bool;
    /// The client's headers without its credentials.
    fn headers(&self) -> RSlice<'_, Tuple2<RStr<'_>, RStr<'_>>>;
    fn credential(&self) -> FfiCredential<'_>;
    #[sabi(last_prefix_field)]
    fn now_unix_ms(&self) -> u64;
}

/// How a call crosses: a borrowed trait object.
pub type FfiCallRef<'a> = FfiCall_TO<'a, RRef<'a, ()>>;

#[repr(C)]
#[derive(StableAbi)]
pub struct FfiHttpRequest {
    pub method: RString,
    pub url: RString,
    pub headers: RVec<Tuple2<RString, RString>>,
    pub body: RVec<u8>,
}

/// A reply made by the plugin itself (offline providers); the host treats it as the
/// upstream's answer and runs it through `parse` or the stream decoder.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiLocalReply {
    pub status: u16,
    pub content_type: RString,
    pub body: RVec<u8>,
}

#[repr(C)]
#[derive(StableAbi)]
pub struct FfiPrepared {
    pub request: FfiHttpRequest,
    pub local: ROption<FfiLocalReply>,
}

#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiHttpResponse<'a> {
    pub status: u16,
    pub headers: RSlice<'a, Tuple2<RStr<'a>, RStr<'a>>>,
    pub body: RSlice<'a, u8>,
}

#[repr(C)]
#[derive(StableAbi, Clone, Copy, Default)]
pub struct FfiUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

/// [`FfiReply::kind`]: the body is the reply.
pub const REPLY_BODY: u8 = 0;
/// [`FfiReply::kind`]: forward the upstream's bytes unchanged; `body` is empty.
pub const REPLY_PASS_THROUGH: u8 = 1;

#[repr(C)]
#[derive(StableAbi)]
pub struct FfiReply {
    /// [`REPLY_BODY`] or [`REPLY_PASS_THROUGH`]; unknown kinds are refused by the host.
    pub kind: u8,
    pub body: RVec<u8>,
    pub usage: ROption<FfiUsage>,
}

#[repr(C)]
#[derive(StableAbi)]
pub struct FfiError {
    /// [`crate::ErrorClass`] as an integer.
    pub class: u8,
    /// The upstream HTTP status, 0 when there was none.
    pub status: u16,
    pub retry_after_ms: ROption<u64>,
    pub message: RString,
    pub code: ROption<RString>,
}

#[repr(C)]
#[derive(StableAbi)]
pub struct FfiEvents {
    /// Complete OpenAI `chat.completion.chunk` JSON objects, in order.
    pub chunks: RVec<RVec<u8>>,
    pub usage: ROption<FfiUsage>,
    /// The upstream said the stream is complete.
    pub done: bool,
    /// Set when decoding failed; the chunks before the failure are still delivered.
    pub error: ROption<FfiError>,
}

/// A provider instance inside a plugin. Shared by every request to that provider.
#[sabi_trait]
pub trait AdapterFfi: Send + Sync {
    fn prepare(&self, call: FfiCallRef<'_>) -> RResult<FfiPrepared, FfiError>;
    fn parse(
        &self,
        call: FfiCallRef<'_>,
        response: FfiHttpResponse<'_>,
    ) -> RResult<FfiReply, FfiError>;
    #[sabi(last_prefix_field)]
    fn stream(&self, call: FfiCallRef<'_>) -> RResult<DecoderBox, FfiError>;
}

/// Incremental decoder of one upstream stream.
#[sabi_trait]
pub trait DecoderFfi: Send {
    fn feed(&mut self, bytes: RSlice<'_, u8>) -> FfiEvents;
    fn finish(&mut self) -> FfiEvents;
    /// The host forwards the upstream bytes unchanged and reads only usage, `done` and
    /// errors from the events (their chunks are ignored). Asked once, before the first
    /// `feed`.
    #[sabi(last_prefix_field)]
    fn pass_through(&self) -> bool;
}

pub type AdapterBox = AdapterFfi_TO<'static, RBox<()>>;
pub type DecoderBox = DecoderFfi_TO<'static, RBox<()>>;

/// The root module every plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// [`crate::ABI_VERSION`] the plugin was built against.
    pub abi_version: u32,
    /// The manifest as JSON.
    pub manifest: extern "C" fn() -> RResult<RString, RString>,
    /// Makes a provider instance from its JSON [`crate::ProviderConfig`].
    #[sabi(last_prefix_field)]
    pub new_adapter: extern "C" fn(config: RStr<'_>) -> RResult<AdapterBox, RString>,
}

/// Reads only the first field every version of [`PluginMod`] has, before any layout
/// check: the way the host tells "built against an older ABI" from a broken library.
#[cfg(feature = "host")]
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = AbiProbeRef)))]
#[sabi(missing_field(panic))]
pub struct AbiProbe {
    #[sabi(last_prefix_field)]
    pub abi_version: u32,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "aihub_plugin";
    const NAME: &'static str = "aihub_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

#[cfg(feature = "host")]
impl RootModule for AbiProbeRef {
    declare_root_module_statics! {AbiProbeRef}
    const BASE_NAME: &'static str = "aihub_plugin";
    const NAME: &'static str = "aihub_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
