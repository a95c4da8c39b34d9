//! Traffic control: per-app and per-key rate limits (requests and tokens per minute,
//! concurrent calls, per model too), admitted before any upstream is tried and reported in
//! OpenAI's `x-ratelimit-*` headers.
//!
//! Limiter state sits behind [`counters::Counters`] so several instances can share it
//! (Redis, `shared_counters`) without the pipeline changing; the in-memory implementation
//! serves one.

pub mod admission;
pub mod counters;
pub mod limits;
pub mod shared_counters;

pub use admission::{admit, Admission, Ask, RateHeaders, Refused};
pub use limits::{LimitTable, Limits};
