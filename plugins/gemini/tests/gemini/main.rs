//! Integration tests of the `gemini` plugin: through the `Plugin` and `StreamDecoder`
//! traits with Gemini wire data from `tests/fixtures/`, and once through the real ABI.

mod abi;
mod common;
mod parse;
mod prepare;
mod stream;
