//! Integration tests of the `bedrock` plugin: through the `Plugin` and `StreamDecoder`
//! traits with Bedrock wire data from `tests/fixtures/`, the signer against AWS's
//! published SigV4 suite and botocore, the event-stream decoder against AWS's published
//! vectors, and once through the real ABI.

mod abi;
mod common;
mod eventstream;
mod parse;
mod prepare;
mod sigv4;
mod stream;
