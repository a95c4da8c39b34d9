//! Integration tests of the `ideogram` plugin: through the `Plugin` trait with Ideogram
//! wire data from `tests/fixtures/`, and once through the real ABI.

mod abi;
mod common;
mod parse;
mod prepare;
