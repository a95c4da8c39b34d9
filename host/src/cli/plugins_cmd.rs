//! `aihub plugins list [DIR]`: loads each library the way the server would and reports
//! what it offers or why it is refused. Each library passes the same checks (static, then a
//! child `aihub plugins check`) before this process maps it, so a damaged library is
//! reported rather than killing the listing.

use crate::config::Config;
use crate::plugin_host::check::{self, LoadCheck};
use crate::plugin_host::Registry;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn run(config: &Config, dir: Option<PathBuf>) -> Result<(), String> {
    let dir = dir.unwrap_or_else(|| config.plugin_dir());
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    // Private copies go to a scratch dir, not the server's data dir.
    let scratch = std::env::temp_dir().join(format!("aihub-plugins-list-{}", std::process::id()));
    let check = LoadCheck::this_executable(Duration::from_millis(config.plugins.check_timeout_ms));
    let mut registry = Registry::new(dir.clone(), &scratch, check);
    registry.rescan();
    let views = registry.views();
    if views.is_empty() {
        println!("no plugin libraries in {}", dir.display());
    }
    for v in views {
        let name = v.name.as_deref().unwrap_or("-");
        let version = v.version.as_deref().unwrap_or("-");
        println!("{}  {}  {} {}", v.file, v.status, name, version);
        if !v.prefixes.is_empty() {
            println!("    prefixes: {}", v.prefixes.join(", "));
        }
        if let Some(e) = &v.error {
            println!("    refused: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// `aihub plugins check FILE`: the loader check the host runs in a child process before it
/// maps a library. Prints a one-line JSON summary of the manifest; a refusal is the error.
/// A library that crashes the loader ends this process by that signal: the host reads the
/// signal from the exit status.
pub fn check(file: &Path) -> Result<(), String> {
    // One line, so the host can tell the reason from anything the library printed.
    let one_line = |e: String| e.split_whitespace().collect::<Vec<_>>().join(" ");
    let summary = check::check_file(file).map_err(one_line)?;
    println!("{summary}");
    Ok(())
}
