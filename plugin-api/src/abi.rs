//! The raw ABI: the only module that names `abi_stable` types.
#![allow(non_local_definitions)] // sabi_trait expands to impls of foreign traits
//!
//! Everything here is `#[doc(hidden)]` from the crate root; plugin authors use the SDK
//! ([`crate::Plugin`], [`crate::export_plugin!`]) and the host uses [`crate::host`]. Keeping
//! the ABI crate behind this one file means it could be swapped without touching plugins.
//!
//! Only small fixed structs cross the boundary; requests and replies travel as JSON bytes.
//! Enumerations are plain integers so that adding a variant is not a layout change.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
    StableAbi,
};

/// One call as the host hands it to the plugin. Borrowed: nothing is copied to cross.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiCall<'a> {
    /// [`crate::Endpoint`] as an integer.
    pub endpoint: u8,
    /// The model name with the routing prefix removed.
    pub model: RStr<'a>,
    /// The client's JSON body, untouched.
    pub body: RSlice<'a, u8>,
    /// The credential's secret; empty when the provider needs none.
    pub api_key: RStr<'a>,
    pub stream: bool,
    pub include_usage: bool,
}

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

#[repr(C)]
#[derive(StableAbi)]
pub struct FfiReply {
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
    fn prepare(&self, call: FfiCall<'_>) -> RResult<FfiPrepared, FfiError>;
    fn parse(
        &self,
        call: FfiCall<'_>,
        response: FfiHttpResponse<'_>,
    ) -> RResult<FfiReply, FfiError>;
    #[sabi(last_prefix_field)]
    fn stream(&self, call: FfiCall<'_>) -> RResult<DecoderBox, FfiError>;
}

/// Incremental decoder of one upstream stream.
#[sabi_trait]
pub trait DecoderFfi: Send {
    fn feed(&mut self, bytes: RSlice<'_, u8>) -> FfiEvents;
    #[sabi(last_prefix_field)]
    fn finish(&mut self) -> FfiEvents;
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

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "aihub_plugin";
    const NAME: &'static str = "aihub_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
