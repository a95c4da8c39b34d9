//! The store commands of the CLI: `migrate`, `apps create`, `rotate-master-key`,
//! `admin-token reset`. They work on the configured store (the SQLite database in the data
//! dir, or Postgres) beside a running server, through the same store traits.
//! `migrate-store` copies a SQLite database into Postgres (`store::copy`).

use crate::cli::serve::open_store;
use crate::config::Config;
use crate::store::backend::Backend;
use crate::store::copy::{self, resolve_source, Progress};
use crate::store::pg::{is_postgres_url, redact_url};
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

/// The SQLite path of `--from`: `sqlite:PATH`, `sqlite://PATH` or a bare path.
fn sqlite_source(arg: &str) -> Result<std::path::PathBuf, String> {
    let arg = arg.trim();
    let path = if let Some(p) = arg.strip_prefix("sqlite://") {
        p
    } else if let Some(p) = arg.strip_prefix("sqlite:") {
        p
    } else if arg.contains("://") {
        return Err(format!(
            "--from {} is not a SQLite database: give sqlite:PATH (the aihub.db file, or its data dir)",
            redact_url(arg)
        ));
    } else {
        arg
    };
    if path.is_empty() {
        return Err("--from needs a path: sqlite:PATH (the aihub.db file, or its data dir)".into());
    }
    Ok(std::path::PathBuf::from(path))
}

/// `aihub migrate-store --from sqlite:PATH [--to postgres://...]`: copies the SQLite
/// database into an empty Postgres database (see `store::copy`), printing each table.
pub fn migrate_store(config: &Config, from: &str, to: Option<&str>) -> Result<(), String> {
    let source = sqlite_source(from)?;
    let configured = config.storage.url.as_ref().map(|u| u.expose().trim());
    let target = match to.map(str::trim).or(configured) {
        Some(url) if is_postgres_url(url) => url.to_string(),
        Some(url) => {
            return Err(format!(
                "--to {} is not a Postgres URL: give postgres://user@host/db",
                redact_url(url)
            ))
        }
        None => {
            return Err(
                "give the Postgres database: --to postgres://user@host/db (or set storage.url / AIHUB_STORAGE__URL)"
                    .into(),
            )
        }
    };
    let shown = redact_url(&target);
    let path = resolve_source(&source);
    println!("copying {} into {shown}", path.display());
    let report = block_on(async {
        copy::sqlite_to_postgres(&path, &target, &mut |p| match p {
            Progress::Migrated { before, after } if before == after => {
                println!("postgres schema is up to date (version {after})")
            }
            Progress::Migrated { before, after } => {
                println!("postgres schema migrated from version {before} to {after}")
            }
            Progress::Copying { table, rows } => println!("  {table}: {rows} rows so far"),
            Progress::Copied { table, rows } => println!("  {table}: {rows} rows"),
        })
        .await
        .map_err(|e| e.to_string())
    })?;
    println!(
        "copied {} rows in {} tables (SQLite schema version {}) into {shown}, in one transaction; new ids continue after the copied ones",
        report.total_rows(),
        report.tables.len(),
        report.source_version
    );
    let key_file = path
        .parent()
        .map(crate::store::secrets::key_file)
        .filter(|k| k.is_file());
    match key_file {
        Some(k) => println!(
            "provider keys were copied still sealed: start aihub on Postgres with the same master key ({} in its data dir, or AIHUB_MASTER_KEY set to its contents)",
            k.display()
        ),
        None => println!(
            "provider keys were copied still sealed: start aihub on Postgres with the master key they were stored under (AIHUB_MASTER_KEY, or <data_dir>/master.key)"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_takes_sqlite_urls_and_bare_paths() {
        for (arg, want) in [
            ("sqlite:/d/aihub.db", "/d/aihub.db"),
            ("sqlite:///d/aihub.db", "/d/aihub.db"),
            ("sqlite:data", "data"),
            ("data/aihub.db", "data/aihub.db"),
        ] {
            assert_eq!(sqlite_source(arg).unwrap(), std::path::PathBuf::from(want));
        }
        assert!(sqlite_source("sqlite:").is_err());
        let err = sqlite_source("postgres://u:pw@h/db").unwrap_err();
        assert!(!err.contains("pw"), "{err}");
    }
}
