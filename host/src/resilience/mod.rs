//! Staying up when upstreams fail: key rotation (`balance`), each key's health
//! (`credential_health`) and the background re-checks of refused keys (`recheck`).

pub mod balance;
pub mod credential_health;
pub mod recheck;
