//! `dlq-replayer`: the operator's tool for `relay.dlq` (DESIGN.md §5).
//!
//! Not built yet; it will list, show, replay, purge, export and import
//! dead-lettered messages by the headers in [`relay_contract::dlq`].

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "dlq-replayer: not built yet. It will read {} using the headers {}.",
        relay_contract::routing::DLQ_QUEUE,
        relay_contract::dlq::WORKER_HEADERS.join(", ")
    );
    ExitCode::from(2)
}
