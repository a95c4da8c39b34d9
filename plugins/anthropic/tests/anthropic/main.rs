//! Fixture-driven tests of the anthropic plugin: request translation, whole replies,
//! errors, streams (including cut, failed and arbitrarily split ones), and the built
//! cdylib answering through the ABI.

mod abi;
mod common;
mod manifest;
mod native;
mod parse;
mod prepare;
mod stream;
