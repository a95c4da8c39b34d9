//! aihub: a self-hosted AI gateway. The library owns everything; the `aihub` binary only
//! parses the command line and calls [`command::main`]. Being a library lets fuzz targets and
//! benches reach the parsers directly.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod admin_token;
pub mod auth;
pub mod balance;
pub mod bounds;
pub mod cli;
pub mod command;
pub mod config;
pub mod conn_limits;
pub mod conn_watch;
pub mod credential_test;
pub mod error;
pub mod health;
pub mod health_check;
pub mod http;
pub mod metrics;
pub mod plugin_list;
pub mod plugins;
pub mod proxy;
pub mod redact;
pub mod routes;
pub mod routing;
pub mod serve;
pub mod server;
pub mod server_io;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod upstream;
