//! The command line: parsing and dispatch to each command.

//!
//! `serve` runs the gateway; `store_cmds` the commands on the store (`migrate-store`
//! included); `rates_cmd` the rate import; `plugins_cmd` the plugin inspection commands.

pub mod plugins_cmd;
pub mod rates_cmd;
pub mod serve;
pub mod store_cmds;

use crate::{config, observability::telemetry};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "aihub",
    version,
    about = "Self-hosted AI gateway with hot-loaded provider plugins"
)]
struct Cli {
    /// Configuration file (default: ./aihub.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Copy an aihub SQLite database into an empty Postgres database (to move from one
    /// instance to several), in one transaction; ids, and so the sealed provider keys, are
    /// kept. Stop the server first for an exact copy.
    MigrateStore {
        /// The SQLite database: `sqlite:PATH`, PATH being the aihub.db file or the data dir.
        #[arg(long, value_name = "sqlite:PATH")]
        from: String,
        /// The Postgres database (`postgres://user@host/db`); default: the configured
        /// storage.url (AIHUB_STORAGE__URL), which keeps a password off the command line.
        #[arg(long, value_name = "postgres://...")]
        to: Option<String>,
    },
    /// Manage apps.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
    /// Re-encrypt every stored provider key under a new master key.
    RotateMasterKey,
    /// Manage the admin token.
    AdminToken {
        #[command(subcommand)]
        command: AdminTokenCommand,
    },
    /// Manage model rates.
    Rates {
        #[command(subcommand)]
        command: RatesCommand,
    },
    /// Inspect plugin libraries.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Print the version and the plugin ABI version.
    Version,
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Create an app with one key; the key is printed once, alone on the last line.
    Create { name: String },
}

#[derive(Subcommand)]
enum AdminTokenCommand {
    /// Replace the admin token with a new random one, printed once.
    Reset,
}

#[derive(Subcommand)]
enum RatesCommand {
    /// Set rates from LiteLLM's price list (model_prices_and_context_window.json): prints
    /// what changes and writes it in one transaction, with history.
    Import {
        file: PathBuf,
        /// Raise every imported price by PCT percent before storing it (the stored rate,
        /// and so the recorded cost, includes this markup; billing.margin_percent still
        /// applies on top).
        #[arg(long, value_name = "PCT")]
        margin: Option<String>,
        /// Print the changes; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Import every entry of a provider we serve, not only the models a loaded
        /// plugin's catalog lists or that have a rate already.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// What each library in DIR (default: the configured plugin dir) offers, or why it is refused.
    List { dir: Option<PathBuf> },
    /// Check one library the way the server does before loading it (static ELF check, then
    /// a full load); prints a JSON summary of its manifest, or the reason on stderr (exit 1).
    Check { file: PathBuf },
}

/// Parses the command line and runs the command; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Version = cli.command {
        println!(
            "aihub {} (plugin ABI {}, aihub-plugin-api {})",
            env!("CARGO_PKG_VERSION"),
            plugin_api::ABI_VERSION,
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    // The host runs this in a child before it maps a library: no configuration, store,
    // port or log, so it works with any `--config` and a cleared environment.
    if let Command::Plugins {
        command: PluginsCommand::Check { file },
    } = &cli.command
    {
        return match plugins_cmd::check(file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aihub: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match config::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aihub: {e}");
            return ExitCode::from(2);
        }
    };
    if !matches!(cli.command, Command::Serve) {
        telemetry::init_logging(&config);
        config.warn_ignored_env();
    }
    let result = match cli.command {
        Command::Serve => serve::run(config),
        Command::Migrate => store_cmds::migrate(&config),
        Command::MigrateStore { from, to } => {
            store_cmds::migrate_store(&config, &from, to.as_deref())
        }
        Command::Apps {
            command: AppsCommand::Create { name },
        } => store_cmds::create_app(&config, &name),
        Command::RotateMasterKey => store_cmds::rotate_master_key(&config),
        Command::Rates {
            command:
                RatesCommand::Import {
                    file,
                    margin,
                    dry_run,
                    all,
                },
        } => rates_cmd::import(
            &config,
            &rates_cmd::ImportArgs {
                file: &file,
                margin: margin.as_deref(),
                dry_run,
                all,
            },
        ),
        Command::AdminToken {
            command: AdminTokenCommand::Reset,
        } => store_cmds::reset_admin_token(&config),
        Command::Plugins {
            command: PluginsCommand::List { dir },
        } => plugins_cmd::run(&config, dir),
        Command::Plugins {
            command: PluginsCommand::Check { .. },
        }
        | Command::Version => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aihub: {e}");
            ExitCode::FAILURE
        }
    }
}
