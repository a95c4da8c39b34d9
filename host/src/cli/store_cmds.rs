//! The store commands of the CLI: `migrate`, `apps create`, `rotate-master-key`,
//! `admin-token reset`. They work on the configured store (the SQLite database in the data
//! dir, or Postgres) beside a running server, through the same store traits.

use crate::cli::serve::open_store;
use crate::config::Config;
use crate::store::backend::Backend;
use crate::store::secrets::{pending_key_file, write_key_file, Cipher, KeySource};
use std::future::Future;

/// Runs a command's async body on a runtime of its own.
pub(crate) fn block_on<T>(f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(f)
}

pub fn migrate(config: &Config) -> Result<(), String> {
    block_on(async {
        let backend = Backend::open(&config.storage)
            .await
            .map_err(|e| e.to_string())?;
        let (before, after) = backend.migrate().await.map_err(|e| e.to_string())?;
        if before == after {
            println!(
                "{} is up to date (schema version {after})",
                backend.describe()
            );
        } else {
            println!(
                "{} migrated from schema version {before} to {after}",
                backend.describe()
            );
        }
        debug_assert_eq!(after, backend.latest_version());
        Ok(())
    })
}

pub fn create_app(config: &Config, name: &str) -> Result<(), String> {
    block_on(async {
        let opened = open_store(config).await?;
        let stores = &opened.served.stores;
        let app = stores
            .apps
            .create_app(name.to_string(), None)
            .await
            .map_err(|e| e.to_string())?;
        crate::billing::grant_new_app(&*stores.credits, &config.billing, app.id).await;
        let (_, key) = stores
            .apps
            .create_key(app.id, Some("cli".into()))
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "created app '{}' (id {}); its key is shown once, below:",
            app.name, app.id
        );
        println!("{key}");
        Ok(())
    })
}

pub fn rotate_master_key(config: &Config) -> Result<(), String> {
    block_on(async {
        let opened = open_store(config).await?;
        let meta = &opened.served.stores.meta;
        let new = Cipher::generate();
        match &opened.key_source {
            KeySource::File(path) => {
                // The new key is on disk before the commit, and named as current only after
                // it: an interruption at any point leaves a key that opens the secrets.
                let pending = pending_key_file(&config.storage.data_dir);
                write_key_file(&pending, &new).map_err(|e| e.to_string())?;
                let n = meta
                    .reencrypt_all(opened.cipher.clone(), new.clone())
                    .await
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
                let n = meta
                    .reencrypt_all(opened.cipher.clone(), new.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                println!("re-encrypted {n} provider keys. Set AIHUB_MASTER_KEY to the new key below before the next start:");
                println!("{}", new.to_base64());
            }
        }
        Ok(())
    })
}

pub fn reset_admin_token(config: &Config) -> Result<(), String> {
    if config.admin_token.is_some() {
        return Err(
            "the admin token is set in the configuration (AIHUB_ADMIN_TOKEN); change it there"
                .into(),
        );
    }
    block_on(async {
        let opened = open_store(config).await?;
        let token = crate::admin::token::reset(&*opened.served.stores.meta)
            .await
            .map_err(|e| e.to_string())?;
        println!("new admin token (shown once; restart the server to use it):");
        println!("{token}");
        Ok(())
    })
}
