//! Broker access and fixture loading shared by the integration tests.

use std::path::Path;

use lapin::{Channel, Connection, ConnectionProperties};

/// The broker under test: `RELAY_TEST_AMQP_URL`, or the local one.
pub fn amqp_url() -> String {
    std::env::var("RELAY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("test.{prefix}.{}", uuid::Uuid::new_v4().simple())
}

/// A connection and one channel, or a clear failure when no broker listens.
pub async fn channel() -> (Connection, Channel) {
    let url = amqp_url();
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("no RabbitMQ at {url}: {e} (start it with `make rabbitmq`)"));
    let channel = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("create channel: {e}"));
    (conn, channel)
}

/// Every valid fixture's bytes, sorted by file name.
pub fn valid_fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/fixtures/valid");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| {
            let path = entry.path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (entry.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}
