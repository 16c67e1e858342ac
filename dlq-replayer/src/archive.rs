//! Messages to and from files, in the JSON-lines format of `codec.rs`:
//! `export` (read only; `--redact` through `personal.rs`), `purge` (backup,
//! then remove; or a dry run) and `import` (publish a file's messages into
//! the queue with confirms; redacted records are refused).
//!
//! `purge` writes and syncs each batch of backup lines to disk before it acks
//! that batch, so a crash never removes a message whose backup is not on disk.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::Confirmation;
use lapin::options::BasicPublishOptions;

use crate::Stop;
use crate::broker::Broker;
use crate::codec::Record;
use crate::dead_letter::DeadLetter;
use crate::error::Error;
use crate::filter::Filter;
use crate::inspect::{next_or_stop, warn_if_short};
use crate::output;
use crate::personal::{REDACTED_HEADER, redact_record};
use crate::reader::Reader;

/// Backup lines written and synced to disk before their messages are acked.
const PURGE_BATCH: usize = 256;
/// Imports awaiting their confirm at once.
const IMPORT_WINDOW: usize = 256;

/// `dlq-backup-<UTC time>.jsonl` in the current directory.
pub fn default_backup_path() -> PathBuf {
    let now = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
    PathBuf::from(format!("dlq-backup-{now}.jsonl"))
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn line(record: &Record) -> String {
    // A Record holds only strings, numbers and maps: it always serialises.
    serde_json::to_string(record).unwrap_or_default()
}

pub async fn export(
    broker: &Broker,
    queue: &str,
    filter: &Filter,
    path: &Path,
    redact: bool,
    out: &mut dyn Write,
    mut stop: Stop,
) -> Result<(), Error> {
    let mut reader = Reader::open(broker, queue).await?;
    let name = if is_stdio(path) {
        "stdout".to_owned()
    } else {
        show(path)
    };
    let io = |e| Error::file(&name, e);
    let mut file = match is_stdio(path) {
        true => None,
        false => Some(BufWriter::new(File::create(path).map_err(io)?)),
    };
    let mut written = 0u64;
    while let Some(delivery) = next_or_stop(&mut reader, &mut stop).await? {
        reader.hold(delivery.delivery_tag);
        let letter = DeadLetter::from_message(&delivery.properties, &delivery.data);
        if !filter.matches(&letter) {
            continue;
        }
        let mut record = Record::from_message(&delivery.properties, &delivery.data);
        if redact {
            redact_record(&mut record);
        }
        let text = line(&record);
        match &mut file {
            Some(f) => writeln!(f, "{text}"),
            None => writeln!(out, "{text}"),
        }
        .map_err(io)?;
        written += 1;
    }
    let seen = reader.seen();
    warn_if_short(&reader, queue, &stop);
    reader.finish(broker).await?;
    match file {
        Some(mut f) => {
            f.flush().map_err(io)?;
            f.get_ref().sync_all().map_err(io)?;
        }
        None => out.flush().map_err(io)?,
    }
    let how = if redact { " (redacted)" } else { "" };
    eprintln!("exported {written} of {seen} messages from {queue} to {name}{how}");
    Ok(())
}

pub async fn purge(
    broker: &Broker,
    queue: &str,
    filter: &Filter,
    backup: Option<PathBuf>,
    out: &mut dyn Write,
    mut stop: Stop,
) -> Result<(), Error> {
    let mut reader = Reader::open(broker, queue).await?;
    let name = backup.as_deref().map(show).unwrap_or_default();
    let io = |e| Error::file(&name, e);
    // Never overwrite an earlier backup.
    let mut file = match &backup {
        Some(path) => Some(BufWriter::new(
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(io)?,
        )),
        None => None,
    };
    let mut pending: Vec<u64> = Vec::with_capacity(PURGE_BATCH);
    let mut removed = 0u64;
    while let Some(delivery) = next_or_stop(&mut reader, &mut stop).await? {
        let letter = DeadLetter::from_message(&delivery.properties, &delivery.data);
        if !filter.matches(&letter) {
            reader.hold(delivery.delivery_tag);
            continue;
        }
        if let Some(f) = &mut file {
            let text = line(&Record::from_message(&delivery.properties, &delivery.data));
            writeln!(f, "{text}").map_err(io)?;
        }
        pending.push(delivery.delivery_tag);
        if pending.len() >= PURGE_BATCH {
            removed += sync_then_ack(&mut file, &mut pending, &mut reader, &name).await?;
        }
    }
    removed += sync_then_ack(&mut file, &mut pending, &mut reader, &name).await?;
    let seen = reader.seen();
    warn_if_short(&reader, queue, &stop);
    reader.finish(broker).await?;
    let to = match backup {
        Some(_) => format!(", backup in {name}"),
        None => ", no backup".to_owned(),
    };
    writeln!(out, "purged {removed} of {seen} messages from {queue}{to}")
        .map_err(|e| Error::file("stdout", e))
}

/// `purge --dry-run`: the messages a purge would remove, and nothing changed
/// (every message is held and given back; no backup is written).
pub async fn purge_dry_run(
    broker: &Broker,
    queue: &str,
    filter: &Filter,
    backup: Option<PathBuf>,
    out: &mut dyn Write,
    mut stop: Stop,
) -> Result<(), Error> {
    let io = |e| Error::file("stdout", e);
    let mut reader = Reader::open(broker, queue).await?;
    writeln!(
        out,
        "Dry run: these messages would be purged; nothing is changed."
    )
    .map_err(io)?;
    output::table_header(out).map_err(io)?;
    let mut matched = 0u64;
    while let Some(delivery) = next_or_stop(&mut reader, &mut stop).await? {
        reader.hold(delivery.delivery_tag);
        let letter = DeadLetter::from_message(&delivery.properties, &delivery.data);
        if filter.matches(&letter) {
            matched += 1;
            output::table_row(out, &letter).map_err(io)?;
        }
    }
    let seen = reader.seen();
    warn_if_short(&reader, queue, &stop);
    reader.finish(broker).await?;
    let backup = match backup {
        Some(path) => format!("a real run writes them to {} first", show(&path)),
        None => "without a backup".to_owned(),
    };
    writeln!(
        out,
        "dry run: {matched} of {seen} messages would be purged from {queue} ({backup}); nothing was changed"
    )
    .map_err(io)?;
    out.flush().map_err(io)
}

/// Flushes and syncs the backup, then acks the batch it covers.
async fn sync_then_ack(
    file: &mut Option<BufWriter<File>>,
    pending: &mut Vec<u64>,
    reader: &mut Reader,
    name: &str,
) -> Result<u64, Error> {
    if let Some(f) = file {
        f.flush().map_err(|e| Error::file(name, e))?;
        f.get_ref().sync_data().map_err(|e| Error::file(name, e))?;
    }
    let n = pending.len() as u64;
    for tag in pending.drain(..) {
        reader.ack(tag).await?;
    }
    Ok(n)
}

/// Reads and checks every line before anything is published, so a bad file
/// publishes nothing.
fn read_records(path: &Path) -> Result<Vec<Record>, Error> {
    let name = if is_stdio(path) {
        "stdin".to_owned()
    } else {
        show(path)
    };
    let input: Box<dyn BufRead> = match is_stdio(path) {
        true => Box::new(BufReader::new(std::io::stdin())),
        false => Box::new(BufReader::new(
            File::open(path).map_err(|e| Error::file(&name, e))?,
        )),
    };
    let mut records = Vec::new();
    for (n, text) in input.lines().enumerate() {
        let text = text.map_err(|e| Error::file(&name, e))?;
        if text.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| Error::BadRecord {
            path: name.clone(),
            line: n + 1,
            reason,
        };
        let record: Record = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        record.to_message().map_err(bad)?;
        if record.headers.contains_key(REDACTED_HEADER) {
            return Err(bad(format!(
                "redacted by export --redact ({REDACTED_HEADER}): not the original event, \
                 so it is never put back in the queue"
            )));
        }
        records.push(record);
    }
    Ok(records)
}

pub async fn import(
    broker: &Broker,
    queue: &str,
    path: &Path,
    filter: &Filter,
    out: &mut dyn Write,
    stop: Stop,
) -> Result<(), Error> {
    let records = read_records(path)?;
    // The queue must exist: publishing to a missing one would be returned.
    broker.depth(queue).await?;
    let publisher = broker.publisher().await?;
    let mut inflight = FuturesUnordered::new();
    let (mut published, mut skipped) = (0u64, 0u64);
    let mut failed = 0u64;
    for record in &records {
        if stop.requested() {
            break;
        }
        let (props, body) = record.to_message().map_err(Error::Usage)?;
        if !filter.matches(&DeadLetter::from_message(&props, &body)) {
            skipped += 1;
            continue;
        }
        // Through the default exchange, straight into the queue; mandatory so a
        // message that cannot be stored is reported.
        let confirm = publisher
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &body,
                props,
            )
            .await
            .map_err(|e| Error::broker("publishing into the queue", e))?;
        inflight.push(confirm);
        while inflight.len() >= IMPORT_WINDOW {
            if let Some(c) = inflight.next().await {
                count(c, &mut published, &mut failed)?;
            }
        }
    }
    while let Some(c) = inflight.next().await {
        count(c, &mut published, &mut failed)?;
    }
    let _ = publisher.close(200, "import done".into()).await;
    writeln!(
        out,
        "imported {published} of {} messages into {queue} ({skipped} not matching the filter)",
        records.len()
    )
    .map_err(|e| Error::file("stdout", e))?;
    if failed > 0 {
        return Err(Error::Incomplete(format!(
            "{failed} message(s) were refused by the broker"
        )));
    }
    if stop.requested() {
        return Err(Error::Incomplete(
            "interrupted before the end of the file".to_owned(),
        ));
    }
    Ok(())
}

fn count(
    c: lapin::Result<Confirmation>,
    published: &mut u64,
    failed: &mut u64,
) -> Result<(), Error> {
    match c.map_err(|e| Error::broker("waiting for a publisher confirm", e))? {
        Confirmation::Ack(None) => *published += 1,
        _ => *failed += 1,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("dlq-archive-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    #[test]
    fn a_bad_line_is_named_and_nothing_is_read() {
        let path = temp("bad", "{\"properties\":{},\"body\":\"a\"}\n\nnot json\n");
        let err = read_records(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line 3:"), "{err}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn blank_lines_are_skipped() {
        let path = temp(
            "ok",
            "{\"properties\":{},\"body\":\"a\"}\n\n{\"properties\":{},\"body_base64\":\"/w==\"}\n",
        );
        let records = read_records(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 2);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_redacted_record_is_refused() {
        let path = temp(
            "redacted",
            "{\"properties\":{},\"headers\":{\"x-dlq-redacted\":\"personal fields\"},\"body\":\"{}\"}\n",
        );
        let err = read_records(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line 1: redacted by export --redact"), "{err}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn backup_names_carry_the_time() {
        let name = show(&default_backup_path());
        assert!(
            name.starts_with("dlq-backup-2") && name.ends_with("Z.jsonl"),
            "{name}"
        );
    }
}
