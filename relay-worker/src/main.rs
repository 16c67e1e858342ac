//! The `relay-worker` command: parses arguments, sets up logging, loads the
//! configuration and hands over to the library.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use relay_contract::Validator;
use relay_worker::config::{Config, env_help};
use relay_worker::health_cli;
use relay_worker::topology::Topology;
use relay_worker::validate_cli::{self, Format};

/// Relays Moodle events from RabbitMQ's `moodle.ingest` to `moodle.events`:
/// validates each against the schemas, publishes it with a broker confirm, and
/// sends what fails to delayed retries or the dead-letter queue `relay.dlq`.
#[derive(Debug, Parser)]
#[command(version, about, after_long_help = env_help())]
struct Cli {
    /// TOML configuration file (see deploy/relay-worker.example.toml).
    #[arg(long, short, env = "RELAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Validate the configuration, print a summary and exit (0 valid, 2 not).
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check event envelopes against the schemas; prints `ok` or the reason per event.
    ///
    /// Exit status: 0 all valid, 1 some invalid, 2 some input unreadable.
    Validate {
        /// Files holding one JSON event each; `-` (the default) reads JSON lines from stdin.
        inputs: Vec<String>,
        /// Print one JSON object per event instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the RabbitMQ definitions (exchanges, queues, bindings and the
    /// relay users' permissions) for this configuration, for
    /// `deploy/rabbitmq/import.sh`.
    Definitions,
    /// Ask a running worker's `/healthz`: exit 0 when it answers 200, 1 otherwise
    /// (the container image's HEALTHCHECK; the image has no other HTTP client).
    Health {
        /// The URL to ask; default: `/healthz` on the configuration's
        /// `worker.listen` (a wildcard address is asked on loopback).
        #[arg(long)]
        url: Option<String>,
        /// Give up after this many milliseconds (connect, send and answer).
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate { inputs, json }) => validate(&inputs, json),
        Some(Command::Health { url, timeout_ms }) => health(cli.config, url, timeout_ms),
        Some(Command::Definitions) => match load(cli.config) {
            Ok(config) => {
                let text =
                    serde_json::to_string_pretty(&Topology::for_config(&config).definitions());
                println!("{}", text.unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        None => match load(cli.config) {
            Ok(config) if cli.check_config => {
                let sites: Vec<&str> = config.sites.iter().map(|s| s.id.as_str()).collect();
                println!("configuration OK: sites {}", sites.join(", "));
                ExitCode::SUCCESS
            }
            Ok(config) => serve(config),
            Err(code) => code,
        },
    }
}

fn load(file: Option<PathBuf>) -> Result<Config, ExitCode> {
    Config::load(file.as_deref()).map_err(|e| {
        eprintln!("relay-worker: invalid configuration: {e}");
        ExitCode::from(2)
    })
}

/// 0 healthy, 1 anything else (Docker reserves 2 in a HEALTHCHECK).
fn health(file: Option<PathBuf>, url: Option<String>, timeout_ms: u64) -> ExitCode {
    let url = match url {
        Some(url) => url,
        None => match load(file) {
            Ok(config) => health_cli::url_for_listen(config.worker.listen),
            Err(_) => return ExitCode::FAILURE,
        },
    };
    match health_cli::check(&url, Duration::from_millis(timeout_ms)) {
        Ok(()) => {
            println!("healthy: {url}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> ExitCode {
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("relay-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(relay_worker::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "relay-worker cannot run");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (orchestrators) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested; finishing in-flight events");
}

/// JSON lines on stderr; `RUST_LOG` filters (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,lapin=warn"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .init();
}

fn validate(inputs: &[String], json: bool) -> ExitCode {
    let validator = match Validator::new() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("relay-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let format = if json { Format::Json } else { Format::Text };
    let stdin = io::stdin().lock();
    match validate_cli::run(
        &validator,
        inputs,
        stdin,
        io::stdout().lock(),
        io::stderr(),
        format,
    ) {
        Ok(summary) => {
            eprintln!(
                "{} valid, {} invalid{}",
                summary.ok,
                summary.invalid,
                match summary.unreadable {
                    0 => String::new(),
                    n => format!(", {n} unreadable"),
                }
            );
            ExitCode::from(summary.exit_code())
        }
        Err(e) => {
            eprintln!("relay-worker validate: {e}");
            ExitCode::from(2)
        }
    }
}
