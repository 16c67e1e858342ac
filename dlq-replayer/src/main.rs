//! `dlq-replayer`: parses the command line, runs the command from the library
//! until it ends or Ctrl-C/SIGTERM asks it to stop, and maps the outcome to
//! the exit status (0 done, 1 failure, 2 usage error).

use std::process::ExitCode;

use clap::Parser;
use dlq_replayer::cli::Cli;
use dlq_replayer::error::{EXIT_FAILURE, EXIT_OK};

fn main() -> ExitCode {
    // Usage errors exit here with status 2 (clap's convention, and ours).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dlq-replayer: cannot start: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match runtime.block_on(dlq_replayer::run(cli, &mut out, shutdown())) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            let code = e.exit_code();
            // Every message already names its cause; no chain to print.
            eprintln!("dlq-replayer: {e}");
            ExitCode::from(code)
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
