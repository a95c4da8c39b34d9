//! Plugin-side glue behind [`crate::export_plugin!`]: adapts a [`Plugin`] to the ABI and
//! catches every panic before it reaches the boundary (an escaping panic aborts the host).

use crate::abi::*;
use crate::convert::*;
use crate::types::{ProviderConfig, ProviderError, Response};
use crate::{Plugin, StreamDecoder, StreamOutput};
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RSlice, RStr, RString};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use crate::abi::PluginModRef;
pub use abi_stable::library::{
    __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
};

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs `f`, turning a panic into an `internal` error.
fn guarded<T>(f: impl FnOnce() -> Result<T, ProviderError>) -> RResult<T, FfiError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(error_to_ffi(e)),
        Err(p) => RResult::RErr(error_to_ffi(ProviderError::internal(format!(
            "plugin panicked: {}",
            panic_message(p.as_ref())
        )))),
    }
}

struct AdapterGlue<P>(P);

impl<P: Plugin> AdapterFfi for AdapterGlue<P> {
    fn prepare(&self, call: FfiCallRef<'_>) -> RResult<FfiPrepared, FfiError> {
        guarded(|| {
            let headers = headers_from_ffi(&call);
            let call = call_from_ffi(&call, &headers)?;
            self.0.prepare(&call).map(prepared_to_ffi)
        })
    }

    fn parse(
        &self,
        call: FfiCallRef<'_>,
        response: FfiHttpResponse<'_>,
    ) -> RResult<FfiReply, FfiError> {
        guarded(|| {
            let call_headers = headers_from_ffi(&call);
            let call = call_from_ffi(&call, &call_headers)?;
            let headers: Pairs<'_> = response
                .headers
                .iter()
                .map(|t| (t.0.as_str(), t.1.as_str()))
                .collect();
            let response = Response {
                status: response.status,
                headers: &headers,
                body: response.body.as_slice(),
            };
            self.0.parse(&call, &response).map(reply_to_ffi)
        })
    }

    fn stream(&self, call: FfiCallRef<'_>) -> RResult<DecoderBox, FfiError> {
        guarded(|| {
            let headers = headers_from_ffi(&call);
            let call = call_from_ffi(&call, &headers)?;
            let decoder = self.0.stream(&call)?;
            Ok(DecoderFfi_TO::from_value(
                DecoderGlue {
                    inner: decoder,
                    poisoned: false,
                },
                TD_Opaque,
            ))
        })
    }
}

struct DecoderGlue<D> {
    inner: D,
    /// A decoder that panicked may hold broken state; it answers nothing more.
    poisoned: bool,
}

impl<D: StreamDecoder> DecoderGlue<D> {
    /// Output produced before an error or a panic is kept and delivered with it.
    fn run(
        &mut self,
        f: impl FnOnce(&mut D, &mut StreamOutput) -> Result<(), ProviderError>,
    ) -> FfiEvents {
        if self.poisoned {
            return events_to_ffi(
                StreamOutput::default(),
                Some(ProviderError::internal(
                    "stream decoder is unusable after an earlier panic",
                )),
            );
        }
        let inner = &mut self.inner;
        let mut out = StreamOutput::default();
        let result = catch_unwind(AssertUnwindSafe(|| f(inner, &mut out)));
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(p) => {
                self.poisoned = true;
                Some(ProviderError::internal(format!(
                    "plugin panicked: {}",
                    panic_message(p.as_ref())
                )))
            }
        };
        events_to_ffi(out, error)
    }
}

impl<D: StreamDecoder> DecoderFfi for DecoderGlue<D> {
    fn feed(&mut self, bytes: RSlice<'_, u8>) -> FfiEvents {
        self.run(|d, out| d.feed(bytes.as_slice(), out))
    }

    fn finish(&mut self) -> FfiEvents {
        self.run(|d, out| d.finish(out))
    }

    fn pass_through(&self) -> bool {
        // A panic here is a plain "no": the host then decodes as usual.
        !self.poisoned
            && catch_unwind(AssertUnwindSafe(|| self.inner.pass_through())).unwrap_or(false)
    }
}

extern "C" fn manifest_fn<P: Plugin, const ABI: u32>() -> RResult<RString, RString> {
    let result = catch_unwind(|| {
        let mut manifest = P::manifest();
        manifest.abi_version = ABI;
        serde_json::to_string(&manifest).map_err(|e| format!("cannot encode manifest: {e}"))
    });
    match result {
        Ok(Ok(s)) => RResult::ROk(s.into()),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(p) => {
            RResult::RErr(format!("manifest() panicked: {}", panic_message(p.as_ref())).into())
        }
    }
}

extern "C" fn new_adapter_fn<P: Plugin>(config: RStr<'_>) -> RResult<AdapterBox, RString> {
    let result = catch_unwind(|| {
        let config: ProviderConfig = serde_json::from_str(config.as_str())
            .map_err(|e| format!("invalid provider config: {e}"))?;
        P::new(config)
    });
    match result {
        Ok(Ok(p)) => RResult::ROk(AdapterFfi_TO::from_value(AdapterGlue(p), TD_Opaque)),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(p) => RResult::RErr(format!("new() panicked: {}", panic_message(p.as_ref())).into()),
    }
}

/// The root module for plugin `P`, built against ABI version `ABI`.
pub fn root_module<P: Plugin, const ABI: u32>() -> PluginModRef {
    PluginMod {
        abi_version: ABI,
        manifest: manifest_fn::<P, ABI>,
        new_adapter: new_adapter_fn::<P>,
    }
    .leak_into_prefix()
}

/// Exports a [`Plugin`](crate::Plugin) implementation as this library's root module.
///
/// Use it once, at the top level of a `cdylib` crate built with `panic = "unwind"`:
///
/// ```ignore
/// plugin_api::export_plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::__export_plugin_with_abi!($plugin, { $crate::ABI_VERSION });
    };
}

/// Like [`export_plugin!`] with an explicit ABI version; only for testing the host's refusal
/// of libraries built against another version.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin_with_abi {
    ($plugin:ty, $abi:expr) => {
        // The symbol abi_stable's loader looks for (`abi_stable::library::ROOT_MODULE_LOADER_NAME`).
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader = {
            extern "C" fn __aihub_root_module_loader() -> $crate::__private::RootModuleResult {
                fn __aihub_root_module() -> $crate::__private::PluginModRef {
                    $crate::__private::root_module::<$plugin, $abi>()
                }
                $crate::__private::__call_root_module_loader(__aihub_root_module)
            }
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::__private::PluginModRef>(
                    __aihub_root_module_loader,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn exported_symbol_is_the_one_abi_stable_loads() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
