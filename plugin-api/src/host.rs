//! The loading side of the ABI, used by the aihub host (feature `host`).
//!
//! Loading a library runs its code; only load files the operator put in the plugin dir.
//! Libraries are never unloaded: a new version of a plugin is a new library file.

use crate::abi::*;
use crate::convert::*;
use crate::types::{Call, Manifest, Prepared, ProviderConfig, ProviderError, Reply, Response};
use crate::{StreamOutput, ABI_VERSION};
use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use abi_stable::std_types::{RSlice, RStr, Tuple2};
use std::fmt;
use std::path::Path;

/// Why a file could not be used as a plugin. The message tells the operator what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Not a loadable shared library (wrong format, architecture, missing file).
    NotALibrary(String),
    /// A shared library without an aihub root module.
    NotAPlugin,
    /// Built against an incompatible `aihub-plugin-api` or ABI version.
    Incompatible(String),
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
        let module = header
            .init_root_module::<PluginModRef>()
            .map_err(classify)?;
        let abi = module.abi_version();
        if abi != ABI_VERSION {
            return Err(LoadError::Incompatible(format!(
                "built for plugin ABI version {abi}, this host speaks version {ABI_VERSION}"
            )));
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

impl Adapter {
    pub fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        self.inner
            .prepare(call_to_ffi(call))
            .into_result()
            .map(prepared_from_ffi)
            .map_err(error_from_ffi)
    }

    pub fn parse(&self, call: &Call<'_>, response: &Response<'_>) -> Result<Reply, ProviderError> {
        let headers: Vec<Tuple2<RStr<'_>, RStr<'_>>> = response
            .headers
            .iter()
            .map(|(k, v)| Tuple2(RStr::from_str(k), RStr::from_str(v)))
            .collect();
        let ffi = FfiHttpResponse {
            status: response.status,
            headers: RSlice::from_slice(&headers),
            body: RSlice::from_slice(response.body),
        };
        self.inner
            .parse(call_to_ffi(call), ffi)
            .into_result()
            .map(reply_from_ffi)
            .map_err(error_from_ffi)
    }

    pub fn stream(&self, call: &Call<'_>) -> Result<Decoder, ProviderError> {
        self.inner
            .stream(call_to_ffi(call))
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
}
