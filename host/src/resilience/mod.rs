//! Staying up when upstreams fail: key rotation (`balance`), each key's health
//! (`credential_health`), reporting an attempt's outcome on its key (`report`), the
//! background re-checks of refused keys (`recheck`) and the retry policy (`retry`).

pub mod balance;
pub mod credential_health;
pub mod recheck;
pub mod report;
pub mod retry;
