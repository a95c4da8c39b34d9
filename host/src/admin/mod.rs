//! The admin API: its HTTP handlers (`http`), the one service every mutation goes
//! through (`service`), which refreshes in-memory state and publishes the change, the
//! admin token (`token`), the credential "test" action (`credential_test`) and the
//! LiteLLM price-list import (`rates_import`).

pub mod billing;
pub mod credential_test;
pub mod http;
pub mod rates_import;
pub mod service;
pub mod token;

pub use http::dispatch;
