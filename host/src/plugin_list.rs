//! `aihub plugins list [DIR]`: loads each library the way the server would and reports
//! what it offers or why it is refused.

use crate::config::Config;
use crate::plugins::Registry;
use std::path::PathBuf;

pub fn run(config: &Config, dir: Option<PathBuf>) -> Result<(), String> {
    let dir = dir.unwrap_or_else(|| config.plugin_dir());
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    // Private copies go to a scratch dir, not the server's data dir.
    let scratch = std::env::temp_dir().join(format!("aihub-plugins-list-{}", std::process::id()));
    let mut registry = Registry::new(dir.clone(), &scratch);
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
