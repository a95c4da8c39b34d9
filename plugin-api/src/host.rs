//! The loading side of the ABI, used by the aihub host (feature `host`).
//!
//! Loading a library runs its code; only load files the operator put in the plugin dir.
//! Libraries are never unloaded: a new version of a plugin is a new library file.

use crate::abi::*;
use crate::convert::*;
use crate::types::{
    Call, LocalReply, Manifest, Prepared, ProviderConfig, ProviderError, Response, Usage,
};
use crate::{StreamOutput, ABI_VERSION};
use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError, RootModule};
use abi_stable::std_types::{ROption, RSlice, RStr, Tuple2};
use bytes::Bytes;
use std::fmt;
use std::path::Path;

/// Why a file could not be used as a plugin. The message tells the operator what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Not a loadable shared library (wrong format, architecture, missing file).
    NotALibrary(String),
    /// A shared library without an aihub root module.
    NotAPlugin,
    /// Built against an incompatible `aihub-plugin-api` or ABI layout.
    Incompatible(String),
    /// Built against another [`ABI_VERSION`] (the number the library reports).
    AbiVersion(u32),
    /// The library's own initialisation or manifest failed.
    Broken(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NotALibrary(m) => write!(f, "not a loadable shared library: {m}"),
            LoadError::NotAPlugin => write!(
                f,
                "not an aihub plugin: the library exports no aihub root module (build it with plugin_api::export_plugin!)"
            ),
            LoadError::Incompatible(m) => write!(f, "incompatible plugin: {m}; rebuild it against this host's aihub-plugin-api"),
            LoadError::AbiVersion(found) => write!(
                f,
                "incompatible plugin: built against plugin ABI {found}; this aihub needs ABI {ABI_VERSION}: rebuild it against the current aihub-plugin-api"
            ),
            LoadError::Broken(m) => write!(f, "plugin failed to initialise: {m}"),
        }
    }
}

impl std::error::Error for LoadError {}

fn shorten(mut s: String) -> String {
    const MAX: usize = 400;
    if s.len() > MAX {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

fn classify(e: LibraryError) -> LoadError {
    match e {
        LibraryError::OpenError { .. } => LoadError::NotALibrary(shorten(e.to_string())),
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin,
        LibraryError::IncompatibleVersionNumber {
            library_name,
            expected_version,
            actual_version,
        } => LoadError::Incompatible(format!(
            "{library_name} built against plugin-api {actual_version}, host expects {expected_version}"
        )),
        LibraryError::AbiInstability(_) | LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => {
            LoadError::Incompatible(shorten(format!("ABI layout check failed: {e}")))
        }
        other => LoadError::Broken(shorten(other.to_string())),
    }
}

/// The ABI number an aihub library reports, read before any layout check; `None` for a
/// library whose root module is not aihub's (the checked load then says what is wrong).
fn abi_version_of(header: &'static LibHeader) -> Result<Option<u32>, LoadError> {
    if header.root_mod_consts().name().as_str() != PluginModRef::NAME {
        return Ok(None);
    }
    // SAFETY: the library's root module is aihub's `PluginMod`, whose first field is
    // `abi_version: u32` in every ABI version (a documented invariant of `abi.rs`), so
    // reading it through the one-field prefix `AbiProbe` reads exactly that field. This
    // runs the library's root-module constructor, which the checked load runs anyway (it
    // is cached, once per library).
    let probe = unsafe { header.unchecked_layout::<AbiProbeRef>() }
        .map_err(|e| LoadError::Broken(shorten(e.to_string())))?;
    Ok(Some(probe.abi_version()))
}

/// A loaded plugin library.
pub struct PluginLibrary {
    module: PluginModRef,
    manifest: Manifest,
}

impl fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("manifest", &self.manifest)
            .finish()
    }
}

impl PluginLibrary {
    /// Loads the library at `path` and checks it. The dynamic loader returns an already
    /// loaded object for a path (or inode) it has seen, so the caller should give each new
    /// file content a path of its own.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let header = lib_header_from_path(path).map_err(classify)?;
        // The ABI number first: a library built against an older ABI fails the layout
        // check too, and "rebuild it" says more than a layout diff.
        if let Some(abi) = abi_version_of(header)? {
            if abi != ABI_VERSION {
                return Err(LoadError::AbiVersion(abi));
            }
        }
        let module = header
            .init_root_module::<PluginModRef>()
            .map_err(classify)?;
        let abi = module.abi_version();
        if abi != ABI_VERSION {
            return Err(LoadError::AbiVersion(abi));
        }
        let manifest_json = match (module.manifest())().into_result() {
            Ok(s) => s,
            Err(e) => return Err(LoadError::Broken(e.into_string())),
        };
        let manifest: Manifest = serde_json::from_str(&manifest_json)
            .map_err(|e| LoadError::Broken(format!("unreadable manifest: {e}")))?;
        Ok(PluginLibrary { module, manifest })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Makes one provider instance. `Err` carries the plugin's message.
    pub fn new_adapter(&self, config: &ProviderConfig) -> Result<Adapter, String> {
        let json = serde_json::to_string(config).map_err(|e| e.to_string())?;
        match (self.module.new_adapter())(RStr::from_str(&json)).into_result() {
            Ok(inner) => Ok(Adapter { inner }),
            Err(e) => Err(e.into_string()),
        }
    }

    /// The name abi_stable checks libraries against (for diagnostics).
    pub fn root_module_name() -> &'static str {
        PluginModRef::NAME
    }
}

/// A provider instance living in a plugin.
pub struct Adapter {
    inner: AdapterBox,
}

impl fmt::Debug for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Adapter")
    }
}

/// A whole reply as the host gets it back from a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReply {
    /// The plugin's body, owned where the plugin allocated it (no copy). Empty when
    /// `pass_through`: the host then sends the upstream's bytes.
    pub body: Bytes,
    pub usage: Option<Usage>,
    pub pass_through: bool,
}

/// A prepared call as the host gets it back, still in the plugin's buffers: the host
/// reads the request head from them and sends the body on without a copy.
#[derive(Debug)]
pub enum Outbound {
    Upstream(OutboundRequest),
    Local(LocalReply),
}

/// An upstream request in the plugin's buffers.
pub struct OutboundRequest(FfiHttpRequest);

impl fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold the credential: names only.
        f.debug_struct("OutboundRequest")
            .field("method", &self.method())
            .field("url", &self.url())
            .field(
                "headers",
                &self.headers().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("body_len", &self.0.body.len())
            .finish()
    }
}

/// A request the host builds itself (webhooks) goes out the same way.
impl From<crate::types::HttpRequest> for OutboundRequest {
    fn from(r: crate::types::HttpRequest) -> Self {
        OutboundRequest(request_to_ffi(r))
    }
}

impl OutboundRequest {
    pub fn method(&self) -> &str {
        self.0.method.as_str()
    }

    pub fn url(&self) -> &str {
        self.0.url.as_str()
    }

    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone + '_ {
        self.0
            .headers
            .iter()
            .map(|Tuple2(k, v)| (k.as_str(), v.as_str()))
    }

    /// The body, owned where the plugin allocated it (freed by its allocator); the
    /// request keeps an empty one.
    pub fn take_body(&mut self) -> Bytes {
        let body = std::mem::take(&mut self.0.body);
        if body.is_empty() {
            Bytes::new()
        } else {
            Bytes::from_owner(body)
        }
    }
}

impl Outbound {
    /// The same call in owned, plain types (copied out of the plugin's buffers).
    pub fn into_prepared(self) -> Prepared {
        match self {
            Outbound::Local(l) => Prepared::Local(l),
            Outbound::Upstream(r) => Prepared::Upstream(request_from_ffi(r.0)),
        }
    }
}

impl Adapter {
    /// The call prepared, in owned plain types. The host's request path uses
    /// [`Adapter::prepare_shared`], which copies nothing.
    pub fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        self.prepare_shared(call).map(Outbound::into_prepared)
    }

    /// The call prepared, left in the plugin's buffers.
    pub fn prepare_shared(&self, call: &Call<'_>) -> Result<Outbound, ProviderError> {
        let view = CallView::new(call);
        let p = self
            .inner
            .prepare(view.as_ffi())
            .into_result()
            .map_err(error_from_ffi)?;
        Ok(match p.local {
            ROption::RSome(l) => Outbound::Local(local_from_ffi(l)),
            ROption::RNone => Outbound::Upstream(OutboundRequest(p.request)),
        })
    }

    pub fn parse(
        &self,
        call: &Call<'_>,
        response: &Response<'_>,
    ) -> Result<ParsedReply, ProviderError> {
        let headers: FfiPairs<'_> = response
            .headers
            .iter()
            .map(|(k, v)| Tuple2(RStr::from_str(k), RStr::from_str(v)))
            .collect();
        let ffi = FfiHttpResponse {
            status: response.status,
            headers: RSlice::from_slice(&headers),
            body: RSlice::from_slice(response.body),
        };
        let view = CallView::new(call);
        let reply = self
            .inner
            .parse(view.as_ffi(), ffi)
            .into_result()
            .map_err(error_from_ffi)?;
        let pass_through = match reply.kind {
            REPLY_BODY => false,
            REPLY_PASS_THROUGH => true,
            k => {
                return Err(ProviderError::internal(format!(
                    "plugin answered with reply kind {k}, which this aihub does not know"
                )))
            }
        };
        Ok(ParsedReply {
            // Owned by the ABI vector, freed by the plugin's allocator: no copy.
            body: Bytes::from_owner(reply.body),
            usage: reply.usage.into_option().map(usage_from_ffi),
            pass_through,
        })
    }

    pub fn stream(&self, call: &Call<'_>) -> Result<Decoder, ProviderError> {
        let view = CallView::new(call);
        self.inner
            .stream(view.as_ffi())
            .into_result()
            .map(|inner| Decoder { inner })
            .map_err(error_from_ffi)
    }
}

/// The decoder of one streamed reply.
pub struct Decoder {
    inner: DecoderBox,
}

impl Decoder {
    /// What the bytes produced, and the error that stopped decoding, if any (chunks made
    /// before the error are still in the output).
    pub fn feed(&mut self, bytes: &[u8]) -> (StreamOutput, Option<ProviderError>) {
        events_from_ffi(self.inner.feed(RSlice::from_slice(bytes)))
    }

    pub fn finish(&mut self) -> (StreamOutput, Option<ProviderError>) {
        events_from_ffi(self.inner.finish())
    }

    /// The host forwards the upstream bytes unchanged and reads only usage, `done` and
    /// errors from this decoder.
    pub fn pass_through(&self) -> bool {
        self.inner.pass_through()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::HttpRequest;

    #[test]
    fn an_outbound_request_reads_in_place_and_gives_its_body_once() {
        let req = HttpRequest::post("https://api.example.com/v1/chat/completions")
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-secret-value");
        let mut out = OutboundRequest::from(HttpRequest {
            body: b"{\"model\":\"m\"}".to_vec(),
            ..req.clone()
        });
        assert_eq!(out.method(), "POST");
        assert_eq!(out.url(), req.url);
        let headers: Vec<_> = out.headers().collect();
        assert_eq!(
            headers,
            [
                ("content-type", "application/json"),
                ("authorization", "Bearer sk-secret-value")
            ]
        );
        let debug = format!("{out:?}");
        assert!(debug.contains("authorization") && !debug.contains("sk-secret"));
        assert_eq!(&out.take_body()[..], b"{\"model\":\"m\"}");
        assert!(out.take_body().is_empty());
        assert_eq!(
            Outbound::Upstream(out).into_prepared(),
            Prepared::Upstream(req)
        );
    }
}
