//! The store commands of the CLI: `migrate`, `apps create`, `rotate-master-key`,
//! `admin-token reset`. They work on the same data dir as a running server (SQLite WAL).

use crate::cli::serve::open_store;
use crate::config::Config;
use crate::store::secrets::{pending_key_file, write_key_file, Cipher, KeySource};
use crate::store::{migrations, Store};

pub fn migrate(config: &Config) -> Result<(), String> {
    let store = Store::open_unmigrated(&config.storage.data_dir).map_err(|e| e.to_string())?;
    let (before, after) = store.migrate().map_err(|e| e.to_string())?;
    if before == after {
        println!(
            "database {} is up to date (schema version {after})",
            store.path().display()
        );
    } else {
        println!(
            "database {} migrated from schema version {before} to {after}",
            store.path().display()
        );
    }
    debug_assert_eq!(after, migrations::latest());
    Ok(())
}

pub fn create_app(config: &Config, name: &str) -> Result<(), String> {
    let opened = open_store(config)?;
    let app = opened.store.create_app(name).map_err(|e| e.to_string())?;
    crate::billing::grant_new_app(&opened.store, &config.billing, app.id);
    let (_, key) = opened
        .store
        .create_key(app.id, Some("cli"))
        .map_err(|e| e.to_string())?;
    println!(
        "created app '{}' (id {}); its key is shown once, below:",
        app.name, app.id
    );
    println!("{key}");
    Ok(())
}

pub fn rotate_master_key(config: &Config) -> Result<(), String> {
    let opened = open_store(config)?;
    let new = Cipher::generate();
    match &opened.key_source {
        KeySource::File(path) => {
            // The new key is on disk before the commit, and named as current only after
            // it: an interruption at any point leaves a key that opens the secrets.
            let pending = pending_key_file(&config.storage.data_dir);
            write_key_file(&pending, &new).map_err(|e| e.to_string())?;
            let n = opened
                .store
                .reencrypt_all(&opened.cipher, &new)
                .map_err(|e| {
                    let _ = std::fs::remove_file(&pending);
                    e.to_string()
                })?;
            std::fs::rename(&pending, path)
                .map_err(|e| format!("cannot install the new key file: {e}"))?;
            println!(
                "re-encrypted {n} provider keys; the new master key is in {}",
                path.display()
            );
        }
        KeySource::Env => {
            let n = opened
                .store
                .reencrypt_all(&opened.cipher, &new)
                .map_err(|e| e.to_string())?;
            println!("re-encrypted {n} provider keys. Set AIHUB_MASTER_KEY to the new key below before the next start:");
            println!("{}", new.to_base64());
        }
    }
    Ok(())
}

pub fn reset_admin_token(config: &Config) -> Result<(), String> {
    if config.admin_token.is_some() {
        return Err(
            "the admin token is set in the configuration (AIHUB_ADMIN_TOKEN); change it there"
                .into(),
        );
    }
    let opened = open_store(config)?;
    let token = crate::admin::token::reset(&opened.store).map_err(|e| e.to_string())?;
    println!("new admin token (shown once; restart the server to use it):");
    println!("{token}");
    Ok(())
}
