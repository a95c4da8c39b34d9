//! The admin API: its HTTP handlers (`http`), the one service every mutation goes
//! through (`service`), which refreshes in-memory state and publishes the change, the
//! admin token (`token`) and the credential "test" action (`credential_test`).

pub mod billing;
pub mod credential_test;
pub mod http;
pub mod service;
pub mod token;

pub use http::dispatch;
