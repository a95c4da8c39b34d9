//! Plugin libraries: checking them before they are mapped (`check`), loading (`registry`),
//! and noticing new files (`watcher`).

pub mod call_context;
pub mod check;
pub mod registry;
pub mod watcher;

pub use registry::Registry;
