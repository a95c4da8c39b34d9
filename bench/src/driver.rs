//! The `main` of a bench driver: a runtime, the drive future raced against SIGINT/SIGTERM
//! (dropping it drops its process guards, which kill the children), and the exit code.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

/// Runs `drive`: `Ok(true)` exits 0, `Ok(false)` prints `invalid` and exits 1, an error
/// exits 2; every line is prefixed with `name`.
pub fn run<F>(name: &str, invalid: &str, drive: F) -> ExitCode
where
    F: Future<Output = Result<bool, String>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::select! {
            r = drive => r,
            _ = int.recv() => Err("interrupted".to_string()),
            _ = term.recv() => Err("terminated".to_string()),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("{name}: {invalid}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(2)
        }
    }
}
