//! The end-to-end suite: the real `aihub` binary, started on an ephemeral port with a temp
//! data dir, driven over real sockets (mock upstreams, the official SDKs, Postgres, Redis,
//! a browser). One test binary, not one per file: on two cores, compiling and linking the
//! shared kit (`common`) once per file was minutes of every cold build.

mod common;

mod admin_api;
mod audio_images;
mod auth_matrix;
mod bedrock;
mod billing;
mod call_log;
mod chat_echo;
mod client_formats;
mod console;
mod errors;
mod format_sdks;
mod input_bounds;
mod instances;
mod migrate_store;
mod observability;
mod openai_mock;
mod openai_sdk;
mod pass_through;
mod plugin_checks;
mod plugin_panics;
mod plugin_refusals;
mod plugins_hot_add;
mod postgres_e2e;
mod providers;
mod rate_limits;
mod rates;
mod resilience;
mod resilience_more;
mod response_cache;
mod secret_scrub;
mod secrets;
mod server_limits;
mod shutdown;
mod store_migrations;
mod store_suite;
mod stream_limits;
