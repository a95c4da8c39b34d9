//! The set of plugin libraries found in the plugin directory, and what became of each.
//!
//! Each distinct file content is copied to `<data_dir>/loaded/<stem>-<hash>.<ext>` before
//! loading: the dynamic loader hands back an already loaded object for a path or inode it
//! has seen, and libraries are never unloaded, so a new version must be a new file. The
//! hash also makes a re-drop of identical bytes a no-op.
//!
//! Before a library is mapped into the host it passes the checks of [`super::check`]: a
//! static ELF check, then a load in a child process, so a library that would crash the
//! loader is refused instead of taking the server down.

use super::check::{self, LoadCheck};
use plugin_api::host::PluginLibrary;
use plugin_api::Manifest;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A library that passed every check.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    pub library: Arc<PluginLibrary>,
    pub loaded_from: PathBuf,
    pub hash: String,
}

/// One file of the plugin directory.
#[derive(Debug, Clone)]
pub struct PluginEntry {
    pub file: PathBuf,
    /// Hash of the file's current content.
    pub hash: String,
    /// Size and modification time when last read: unchanged files are not re-hashed.
    stamp: Option<(u64, std::time::SystemTime)>,
    /// The version serving requests. After a refused replacement this is still the
    /// previous version, so a bad upload does not take a provider down.
    pub active: Option<LoadedPlugin>,
    /// Why the current content was refused.
    pub error: Option<String>,
    /// The refused content's manifest, when it got that far.
    pub refused_manifest: Option<Manifest>,
}

impl PluginEntry {
    pub fn is_current(&self) -> bool {
        self.error.is_none() && self.active.as_ref().is_some_and(|a| a.hash == self.hash)
    }
}

/// What `GET /api/admin/plugins` shows for one file.
#[derive(Debug, Serialize)]
pub struct PluginView {
    pub file: String,
    pub status: &'static str,
    pub error: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub abi_version: Option<u32>,
    pub prefixes: Vec<String>,
    pub loaded_from: Option<String>,
    /// After a refused replacement: the version still serving.
    pub serving_version: Option<String>,
}

pub struct Registry {
    /// Libraries loaded and refused since start (for metrics).
    pub loaded_count: u64,
    pub refused_count: u64,
    dir: PathBuf,
    loaded_dir: PathBuf,
    entries: BTreeMap<PathBuf, PluginEntry>,
    check: LoadCheck,
    /// Content hashes that passed the child check: the same bytes under another name are
    /// not checked again.
    checked: HashSet<String>,
}

const LIB_EXTENSIONS: [&str; 3] = ["so", "dylib", "dll"];

fn prefixes(m: &Manifest) -> Vec<String> {
    m.providers.iter().map(|p| p.prefix.clone()).collect()
}

fn hash_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex::encode(&digest[..12])
}

impl Registry {
    /// `check` runs the loader check of each new library in a child process.
    pub fn new(dir: PathBuf, data_dir: &Path, check: LoadCheck) -> Self {
        Registry {
            loaded_count: 0,
            refused_count: 0,
            dir,
            loaded_dir: data_dir.join("loaded"),
            entries: BTreeMap::new(),
            check,
            checked: HashSet::new(),
        }
    }

    /// Candidate library files, in name order (so the first of two libraries claiming one
    /// prefix at start is predictable). Dot-files are ignored: operators write a new
    /// version under a hidden temporary name and rename it into place.
    fn library_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let is_lib = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| LIB_EXTENSIONS.contains(&e));
            if name.starts_with('.') || !is_lib || !entry.file_type()?.is_file() && !path.is_file()
            {
                continue;
            }
            files.push(path);
        }
        files.sort();
        Ok(files)
    }

    /// Brings the registry in line with the directory. Returns true when what is active
    /// changed (the routing table must be rebuilt).
    pub fn rescan(&mut self) -> bool {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot create the plugin directory");
        }
        let files = match self.library_files() {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot read the plugin directory");
                return false;
            }
        };
        let mut changed = false;
        let before = self.entries.len();
        self.entries.retain(|path, entry| {
            let keep = files.contains(path);
            if !keep {
                tracing::info!(file = %path.display(), active = entry.active.is_some(), "plugin file removed; its providers are withdrawn");
            }
            keep
        });
        changed |= self.entries.len() != before;
        for file in files {
            changed |= self.consider(&file);
        }
        changed
    }

    /// Loads `file` if its content is new. Returns true when the active set changed.
    fn consider(&mut self, file: &Path) -> bool {
        let stamp = std::fs::metadata(file)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        if stamp.is_some() && self.entries.get(file).is_some_and(|e| e.stamp == stamp) {
            return false;
        }
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read plugin file");
                return false;
            }
        };
        let hash = hash_hex(&bytes);
        if let Some(e) = self.entries.get_mut(file).filter(|e| e.hash == hash) {
            e.stamp = stamp;
            return false;
        }
        let previous = self.entries.remove(file);
        let active_before = previous.as_ref().and_then(|e| e.active.clone());
        let mut entry = PluginEntry {
            file: file.to_path_buf(),
            hash: hash.clone(),
            stamp,
            active: active_before.clone(),
            error: None,
            refused_manifest: None,
        };
        match self.load(file, &bytes, &hash) {
            Ok(loaded) => {
                let manifest = loaded.library.manifest();
                match self.prefix_conflict(file, manifest) {
                    Some((prefix, other)) => {
                        entry.error = Some(format!(
                            "prefix '{prefix}' is already served by plugin '{other}'; a prefix can belong to one plugin only"
                        ));
                        entry.refused_manifest = Some(manifest.clone());
                    }
                    None => {
                        tracing::info!(
                            file = %file.display(),
                            plugin = %manifest.name,
                            version = %manifest.version,
                            prefixes = ?prefixes(manifest),
                            "plugin loaded"
                        );
                        entry.active = Some(loaded);
                    }
                }
            }
            Err(error) => entry.error = Some(error),
        }
        if let Some(error) = &entry.error {
            self.refused_count += 1;
            tracing::warn!(file = %file.display(), %error, "plugin refused");
        } else {
            self.loaded_count += 1;
        }
        let changed =
            entry.active.as_ref().map(|a| &a.hash) != active_before.as_ref().map(|a| &a.hash);
        self.entries.insert(file.to_path_buf(), entry);
        changed
    }

    /// The checks, then the load into the host. The private copy is what the child checks
    /// and what the host maps: it never changes, so what was checked is what is loaded.
    fn load(&mut self, file: &Path, bytes: &[u8], hash: &str) -> Result<LoadedPlugin, String> {
        check::check_static(bytes)?;
        let copy = self.private_copy(file, bytes, hash).map_err(|e| {
            format!(
                "cannot copy the library to {}: {e}",
                self.loaded_dir.display()
            )
        })?;
        if !self.checked.contains(hash) {
            let started = std::time::Instant::now();
            let summary = self.check.run(&copy).inspect_err(|_| {
                // Refused content is never loaded: keep no copy of it.
                let _ = std::fs::remove_file(&copy);
            })?;
            tracing::debug!(
                file = %file.display(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                %summary,
                "plugin passed the loader check"
            );
            self.checked.insert(hash.to_string());
        }
        let library = PluginLibrary::load(&copy).map_err(|e| e.to_string())?;
        Ok(LoadedPlugin {
            library: Arc::new(library),
            loaded_from: copy,
            hash: hash.to_string(),
        })
    }

    fn private_copy(&self, file: &Path, bytes: &[u8], hash: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.loaded_dir)?;
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin");
        let ext = file.extension().and_then(|s| s.to_str()).unwrap_or("so");
        let target = self.loaded_dir.join(format!("{stem}-{hash}.{ext}"));
        if !target.exists() {
            let tmp = self.loaded_dir.join(format!(".{stem}-{hash}.tmp"));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &target)?;
        }
        Ok(target)
    }

    /// A prefix of `manifest` served by another file's active plugin.
    fn prefix_conflict(&self, file: &Path, manifest: &Manifest) -> Option<(String, String)> {
        let mut own = std::collections::HashSet::new();
        for p in prefixes(manifest) {
            if !own.insert(p.clone()) {
                return Some((p, manifest.name.clone()));
            }
        }
        for (path, entry) in &self.entries {
            if path == file {
                continue;
            }
            if let Some(active) = &entry.active {
                let m = active.library.manifest();
                if let Some(p) = prefixes(m).into_iter().find(|p| own.contains(p)) {
                    return Some((p, m.name.clone()));
                }
            }
        }
        None
    }

    /// Active plugins in file-name order.
    pub fn active(&self) -> impl Iterator<Item = &LoadedPlugin> {
        self.entries.values().filter_map(|e| e.active.as_ref())
    }

    pub fn views(&self) -> Vec<PluginView> {
        self.entries
            .values()
            .map(|e| {
                let current = e.is_current();
                let manifest = if current {
                    e.active.as_ref().map(|a| a.library.manifest().clone())
                } else {
                    e.refused_manifest.clone()
                };
                PluginView {
                    file: e.file.display().to_string(),
                    status: if current { "loaded" } else { "refused" },
                    error: e.error.clone(),
                    name: manifest.as_ref().map(|m| m.name.clone()),
                    version: manifest.as_ref().map(|m| m.version.clone()),
                    abi_version: manifest.as_ref().map(|m| m.abi_version),
                    prefixes: manifest.as_ref().map(prefixes).unwrap_or_default(),
                    loaded_from: e
                        .active
                        .as_ref()
                        .filter(|_| current)
                        .map(|a| a.loaded_from.display().to_string()),
                    serving_version: e
                        .active
                        .as_ref()
                        .filter(|_| !current)
                        .map(|a| a.library.manifest().version.clone()),
                }
            })
            .collect()
    }
}
