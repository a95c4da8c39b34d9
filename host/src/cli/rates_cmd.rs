//! `aihub rates import FILE [--margin PCT] [--dry-run] [--all]`: refreshes the model
//! rates from LiteLLM's price list (`billing::import` maps and diffs; this reads the file,
//! the catalogs and the store, prints the changes and writes them in one transaction,
//! each with an `import` history row).
//!
//! It works on the configured store directly, like the other store commands. A
//! running server reads the new rates on SIGHUP, `POST /api/admin/plugins/reload`, or a
//! restart; until then it charges the rates it loaded.

use crate::billing::import::{self, describe};
use crate::cli::store_cmds::block_on;
use crate::config::Config;
use crate::plugin_host::check::LoadCheck;
use crate::plugin_host::Registry;
use crate::store::backend::Backend;
use crate::store::secrets::Cipher;
use crate::store::traits::Stores;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

pub struct ImportArgs<'a> {
    pub file: &'a Path,
    pub margin: Option<&'a str>,
    pub dry_run: bool,
    /// Import every mappable entry, not only the models a loaded catalog lists.
    pub all: bool,
}

pub fn import(config: &Config, args: &ImportArgs<'_>) -> Result<(), String> {
    let text = std::fs::read_to_string(args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let margin_bp = args
        .margin
        .map(import::parse_margin)
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    let parsed = import::parse(&text, margin_bp)
        .map_err(|e| format!("{}: {e}; nothing was written", args.file.display()))?;
    block_on(write_plan(config, args, &parsed))
}

/// Reads the store, prints the plan and writes it: one runtime for all of it, since the
/// pool's connections live on the runtime that opened them.
async fn write_plan(
    config: &Config,
    args: &ImportArgs<'_>,
    parsed: &import::Parsed,
) -> Result<(), String> {
    let backend = Backend::open(&config.storage)
        .await
        .map_err(|e| e.to_string())?;
    backend.migrate().await.map_err(|e| e.to_string())?;
    // Rates and providers hold no secrets: no master key is needed to read or write them.
    let stores = backend.stores(Cipher::generate());
    let current = stores.rates.list_rates().await.map_err(|e| e.to_string())?;
    let known = if args.all {
        None
    } else {
        Some(known_models(config, &stores).await)
    };
    let plan = import::plan(parsed, &current, known.as_ref());
    for (old, new) in &plan.changes {
        println!("{}", describe(old.as_ref(), new));
    }
    println!(
        "{} new, {} changed, {} unchanged; skipped: {} not served, {} without a price, {} duplicates, {} not in a loaded catalog and without a rate{}",
        plan.new_count(),
        plan.changed_count(),
        plan.unchanged,
        parsed.unmapped,
        parsed.unpriced,
        parsed.duplicates,
        plan.not_known,
        if args.all { "" } else { " (--all imports them)" },
    );
    if args.dry_run {
        println!("dry run: nothing was written");
        return Ok(());
    }
    if plan.changes.is_empty() {
        return Ok(());
    }
    let source = format!(
        "import from {}{}",
        args.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        args.margin
            .map(|m| format!(" with a {m}% margin"))
            .unwrap_or_default()
    );
    let n = stores
        .rates
        .import_rates(plan.rates(), source)
        .await
        .map_err(|e| format!("{e}; nothing was written"))?;
    println!(
        "wrote {n} rates (history: import). A running server charges them after SIGHUP, `POST /api/admin/plugins/reload` or a restart."
    );
    Ok(())
}

/// `prefix/model` for every model the plugins' catalogs list (under their default
/// prefixes) and every model a configured or stored provider lists.
async fn known_models(config: &Config, stores: &Stores) -> HashSet<String> {
    let mut known = HashSet::new();
    let dir = config.plugin_dir();
    if dir.is_dir() {
        // Private copies go to a scratch dir, not the server's data dir.
        let scratch =
            std::env::temp_dir().join(format!("aihub-rates-import-{}", std::process::id()));
        let check =
            LoadCheck::this_executable(Duration::from_millis(config.plugins.check_timeout_ms));
        let mut registry = Registry::new(dir, &scratch, check);
        registry.rescan();
        for loaded in registry.active() {
            for spec in &loaded.library.manifest().providers {
                for m in &spec.models {
                    known.insert(format!("{}/{}", spec.prefix, m.id));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&scratch);
    }
    for p in &config.providers {
        for m in p.models.iter().flatten() {
            known.insert(format!("{}/{m}", p.prefix));
        }
    }
    match stores.providers.list_providers().await {
        Ok(stored) => {
            for p in stored {
                for m in p.models.iter().flatten() {
                    known.insert(format!("{}/{m}", p.prefix));
                }
            }
        }
        Err(e) => eprintln!(
            "aihub: stored providers could not be read ({e}); their models are not considered"
        ),
    }
    known
}
