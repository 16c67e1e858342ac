//! The `relay-worker` command: parses arguments and hands over to the library.

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use relay_contract::Validator;
use relay_worker::validate_cli::{self, Format};

/// Relays Moodle events from RabbitMQ's `moodle.ingest` to `moodle.events`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate { inputs, json }) => validate(&inputs, json),
        None => {
            eprintln!(
                "relay-worker: the relay pipeline is not built yet; only `relay-worker validate` works. \
                 See `relay-worker --help`."
            );
            ExitCode::from(2)
        }
    }
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
