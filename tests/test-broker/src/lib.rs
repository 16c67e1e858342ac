//! Broker plumbing shared by the test suites and the benchmark: running
//! `rabbitmqctl`, and a scratch vhost of one's own, so runs that use the
//! contract's fixed names (`moodle.ingest`, `relay.dlq`) never collide.

use std::process::Command;

/// Runs `rabbitmqctl` with `args`; the error says what failed and why.
pub fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("rabbitmqctl {args:?}: {e} (rabbitmqctl is needed)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A vhost that exists for as long as this value, with `guest` allowed
/// everything in it; deleted when dropped.
#[derive(Debug)]
pub struct ScratchVhost {
    pub name: String,
    /// `amqp://guest:guest@<broker>/<name>`.
    pub url: String,
}

impl ScratchVhost {
    /// Creates `<prefix>-<random>` on the broker at `broker` (`host:port`).
    pub fn create(prefix: &str, broker: &str) -> Result<ScratchVhost, String> {
        let name = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &name])?;
        // From here on, dropping the value deletes the vhost.
        let vhost = ScratchVhost {
            url: format!("amqp://guest:guest@{broker}/{name}"),
            name,
        };
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &vhost.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ])?;
        Ok(vhost)
    }

    /// [`ScratchVhost::create`] on the local broker, for tests: panics with
    /// the reason when it cannot.
    pub fn for_test(prefix: &str) -> ScratchVhost {
        ScratchVhost::create(prefix, "127.0.0.1:5672").unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for ScratchVhost {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["delete_vhost", &self.name]);
    }
}
