//! The read-only commands: `list` (table, JSON lines or summary) and `show`.
//! They hold every message they read, so the queue ends the run exactly as it
//! was (apart from the broker's own redelivery bookkeeping).

use std::io::Write;

use crate::Stop;
use crate::broker::Broker;
use crate::dead_letter::DeadLetter;
use crate::error::Error;
use crate::filter::Filter;
use crate::output::{self, Summary};
use crate::reader::{IDLE, Reader};

/// How `list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMode {
    Table,
    Json,
    Summary,
    SummaryJson,
}

impl ListMode {
    pub fn new(json: bool, summary: bool) -> ListMode {
        match (json, summary) {
            (false, false) => ListMode::Table,
            (true, false) => ListMode::Json,
            (false, true) => ListMode::Summary,
            (true, true) => ListMode::SummaryJson,
        }
    }
}

fn io(e: std::io::Error) -> Error {
    Error::file("stdout", e)
}

/// A message delivered by the reader, or `None` at the end of the pass or on a stop.
pub(crate) async fn next_or_stop(
    reader: &mut Reader,
    stop: &mut Stop,
) -> Result<Option<lapin::message::Delivery>, Error> {
    if stop.requested() {
        return Ok(None);
    }
    tokio::select! {
        biased;
        () = stop.wait() => Ok(None),
        next = reader.next() => next,
    }
}

/// Says on stderr when a pass ended before the queue's initial depth.
pub(crate) fn warn_if_short(reader: &Reader, queue: &str, stop: &Stop) {
    if stop.requested() {
        eprintln!(
            "dlq-replayer: stopped on request after {} of {} messages in {queue}",
            reader.seen(),
            reader.initial_depth()
        );
    } else if reader.stopped_idle {
        eprintln!(
            "dlq-replayer: read {} of the {} messages {queue} had at the start, then none \
             came for {} s (another consumer took them?)",
            reader.seen(),
            reader.initial_depth(),
            IDLE.as_secs()
        );
    }
}

pub async fn list(
    broker: &Broker,
    queue: &str,
    filter: &Filter,
    mode: ListMode,
    out: &mut dyn Write,
    mut stop: Stop,
) -> Result<(), Error> {
    let mut reader = Reader::open(broker, queue).await?;
    let mut summary = Summary::default();
    let mut matched = 0u64;
    // Messages a --user filter cannot look into (body not a JSON object).
    let mut unreadable = 0u64;
    if mode == ListMode::Table {
        output::table_header(out).map_err(io)?;
    }
    while let Some(delivery) = next_or_stop(&mut reader, &mut stop).await? {
        let letter = DeadLetter::from_message(&delivery.properties, &delivery.data);
        reader.hold(delivery.delivery_tag);
        if !filter.users.is_empty() && letter.people.is_none() {
            unreadable += 1;
        }
        if !filter.matches(&letter) {
            continue;
        }
        matched += 1;
        match mode {
            ListMode::Table => output::table_row(out, &letter).map_err(io)?,
            ListMode::Json => output::json_line(out, &letter).map_err(io)?,
            ListMode::Summary | ListMode::SummaryJson => summary.add(&letter),
        }
    }
    let seen = reader.seen();
    warn_if_short(&reader, queue, &stop);
    reader.finish(broker).await?;
    let note = match unreadable {
        0 => String::new(),
        n => format!("; {n} with a body that is not JSON, never matched by --user"),
    };
    if mode != ListMode::Table && unreadable > 0 {
        eprintln!("dlq-replayer: {}", &note[2..]);
    }
    match mode {
        ListMode::Summary => summary.write_table(out).map_err(io)?,
        ListMode::SummaryJson => summary.write_json(out).map_err(io)?,
        ListMode::Table => {
            writeln!(out, "({matched} of {seen} messages in {queue}{note})").map_err(io)?
        }
        ListMode::Json => {}
    }
    out.flush().map_err(io)
}

pub async fn show(
    broker: &Broker,
    queue: &str,
    id: &str,
    out: &mut dyn Write,
    mut stop: Stop,
) -> Result<(), Error> {
    let mut reader = Reader::open(broker, queue).await?;
    let mut found = 0u64;
    while let Some(delivery) = next_or_stop(&mut reader, &mut stop).await? {
        reader.hold(delivery.delivery_tag);
        if delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str())
            != Some(id)
        {
            continue;
        }
        if found > 0 {
            // The same event can be dead-lettered twice (at-least-once delivery).
            writeln!(out, "\n---- copy {} ----", found + 1).map_err(io)?;
        }
        found += 1;
        output::show(out, &delivery.properties, &delivery.data).map_err(io)?;
    }
    let seen = reader.seen();
    warn_if_short(&reader, queue, &stop);
    reader.finish(broker).await?;
    out.flush().map_err(io)?;
    if found == 0 {
        return Err(Error::NotFound {
            id: id.to_owned(),
            queue: queue.to_owned(),
            seen,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_modes_follow_the_flags() {
        assert_eq!(ListMode::new(false, false), ListMode::Table);
        assert_eq!(ListMode::new(true, false), ListMode::Json);
        assert_eq!(ListMode::new(false, true), ListMode::Summary);
        assert_eq!(ListMode::new(true, true), ListMode::SummaryJson);
    }
}
