//! The admin API: its HTTP handlers (`http`) and the one service every mutation goes
//! through (`service`), which refreshes in-memory state and publishes the change.

pub mod http;
pub mod service;

pub use http::dispatch;
