//! The Postgres scenario (issue 17): a second aihub on a throwaway Postgres database,
//! driven with the same non-stream load as aihub on SQLite, slice by slice, so their
//! throughput ratio is measured under the same noise. Postgres that cannot be reached (or
//! will not make the database) skips the scenario; it does not invalidate the run.

use crate::{ScenarioResult, Slices, Target};
use std::time::Duration;

/// The server the throwaway database is made on (trust auth, as on the CI box).
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How the scenario ended.
pub enum PgOutcome {
    /// Not run, and why (Postgres unreachable, `--no-postgres`): not an error.
    Skipped(String),
    /// Postgres answered but aihub on it did not start or serve: an error of the run.
    Failed(String),
    Ran(Box<PgRun>),
}

pub struct PgRun {
    /// `aihub-sqlite` and `aihub-pg`, interleaved slice by slice.
    pub scenario: ScenarioResult,
    /// aihub-on-Postgres's call-log counters from `/readyz` at the end.
    pub call_log: Option<serde_json::Value>,
    /// `storage.pool_size` of the aihub on Postgres.
    pub pool_size: usize,
    pub database: String,
}

/// What the driver needs of a run's settings.
pub struct PgPlan {
    pub slices: Slices,
    pub warmup: Duration,
    pub concurrency: usize,
}

/// A database made for this run, dropped (with any session still on it) when this goes.
pub struct ThrowawayDb {
    admin_url: String,
    pub name: String,
    /// The database's URL for aihub (the admin URL's credentials and options). Holds a
    /// password if the admin URL does: never printed.
    pub url: String,
}

async fn admin_client(admin_url: &str) -> Result<tokio_postgres::Client, String> {
    let connect = tokio_postgres::connect(admin_url, tokio_postgres::NoTls);
    let (client, conn) = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
        .map_err(|e| with_causes(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// An error and its causes (tokio-postgres keeps the reason, e.g. "Connection refused", in
/// the source).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `admin_url` with its database replaced by `name` (credentials and `?options` kept).
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

impl ThrowawayDb {
    /// `aihub_bench_<pid>`, created empty (an older one of the same name, left by a
    /// killed run with this pid, is dropped first).
    pub async fn create(admin_url: &str) -> Result<ThrowawayDb, String> {
        let name = format!("aihub_bench_{}", std::process::id());
        let client = admin_client(admin_url).await?;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .map_err(|e| format!("DROP DATABASE {name}: {}", with_causes(&e)))?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {}", with_causes(&e)))?;
        Ok(ThrowawayDb {
            admin_url: admin_url.to_string(),
            url: database_url(admin_url, &name),
            name,
        })
    }
}

impl Drop for ThrowawayDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Its own thread and runtime: this may drop inside the driver's runtime or after it.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return false;
            };
            rt.block_on(async {
                let Ok(client) = admin_client(&admin_url).await else {
                    return false;
                };
                // FORCE (Postgres 13+) ends sessions a killed aihub may have left behind.
                let forced = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                client.batch_execute(&forced).await.is_ok()
                    || client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                        .await
                        .is_ok()
            })
        })
        .join()
        .unwrap_or(false);
        if !done {
            eprintln!(
                "bench: could not drop the database {}; drop it by hand",
                self.name
            );
        }
    }
}

/// The backends serving `database`, by their process title (`postgres: ... <user>
/// <database> <client> ...`): whose CPU counts for the aihub on it.
pub fn backend_needle(database: &str) -> String {
    format!(" {database} ")
}

/// RPS of aihub on Postgres over aihub on SQLite in the same slices.
pub fn ratio(run: &PgRun) -> Option<f64> {
    let rps = |name: &str| run.scenario.path(name).map(|p| p.run.rps());
    match (rps("aihub-pg"), rps("aihub-sqlite")) {
        (Some(pg), Some(sqlite)) if sqlite > 0.0 => Some(pg / sqlite),
        _ => None,
    }
}

/// The target for aihub on SQLite in this scenario (the one the earlier ones measured).
pub fn sqlite_target(aihub: &Target) -> Target {
    Target {
        name: "aihub-sqlite",
        base: aihub.base.clone(),
        pid: aihub.pid,
        side: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_url_keeps_credentials_and_options() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_url("postgres://u:p@db:5432/admin?sslmode=require", "x"),
            "postgres://u:p@db:5432/x?sslmode=require"
        );
        assert_eq!(database_url("postgres://db", "x"), "postgres://db/x");
    }
}
