//! Integration tests of the `openai` plugin against its rlib, through the `Plugin` and
//! `StreamDecoder` traits only, with OpenAI wire data from `tests/fixtures/`.

mod abi;
mod common;
mod manifest;
mod parse;
mod prefixes;
mod prepare;
mod responses;
mod stream;
