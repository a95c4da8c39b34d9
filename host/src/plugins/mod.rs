//! Plugin libraries: loading (`registry`), and noticing new files (`watcher`).

pub mod registry;
pub mod watcher;

pub use registry::Registry;
