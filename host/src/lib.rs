//! aihub: a self-hosted AI gateway. The library owns everything; the `aihub` binary only
//! parses the command line and calls [`cli::main`]. The folders are the architecture:
//! a request comes in through `server`, is read by an `inbound` format, runs the phases of
//! `pipeline` (auth, route, attempts over `upstream` with `resilience`, accounting), with
//! providers from `plugin_host` and state in `store`; `admin` changes that state.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod auth;
pub mod billing;
pub mod bounds;
pub mod cache;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub mod feed;
pub mod inbound;
pub mod memory;
pub mod observability;
pub mod pipeline;
pub mod plugin_host;
pub mod redact;
pub mod resilience;
pub mod routing;
pub mod server;
pub mod shared;
pub mod state;
pub mod store;
pub mod timeout;
pub mod traffic;
pub mod upstream;
