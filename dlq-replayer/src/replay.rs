//! `replay`: puts matching dead letters back on their original route.
//!
//! Each message is republished (mandatory, publisher confirms) to its
//! `x-relay-original-exchange` and `x-relay-original-routing-key` (or
//! `--to-exchange`), with `x-relay-attempts` reset to 0, `x-relay-replayed-at`
//! set and `x-relay-replay-count` incremented. Its DLQ copy is acked only
//! after the broker confirmed the republish; a message that was returned
//! (no queue bound) or nacked stays in the DLQ. A crash at any point therefore
//! loses nothing: at worst a message is both republished and still in the
//! DLQ (at-least-once, the same id).

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use lapin::Confirmation;
use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use relay_contract::dlq;
use tokio::time::Instant;

use crate::Stop;
use crate::broker::Broker;
use crate::dead_letter::{DELIVERY_COUNT, DeadLetter};
use crate::error::Error;
use crate::filter::Filter;
use crate::inspect::{next_or_stop, warn_if_short};
use crate::output;
use crate::reader::Reader;

/// Republishes awaiting their confirm at once: enough to keep the confirm
/// round trip off the critical path, small enough that a crash duplicates
/// little.
const WINDOW: usize = 64;

/// What `replay` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub to_exchange: Option<String>,
    pub rate: Option<u32>,
    pub limit: Option<u64>,
    pub dry_run: bool,
}

/// Why a matching message was not replayed (it stays in the DLQ).
const NO_ROUTE: &str = "no original exchange/routing key in its headers";
const NO_EXCHANGE: &str = "the target exchange does not exist";
const UNROUTABLE: &str = "unroutable: no queue bound for its routing key (returned)";
const NACKED: &str = "refused by the broker (nack)";

/// What happened, for the summary.
#[derive(Debug, Default)]
pub struct Report {
    pub matched: u64,
    pub replayed: u64,
    pub not_replayed: BTreeMap<&'static str, u64>,
}

/// The properties of the republished copy: everything kept, relay
/// bookkeeping reset.
pub fn replay_properties(props: &BasicProperties, now: &str) -> BasicProperties {
    let mut headers = props
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    let count = props.headers().as_ref().map_or(0, dlq::replay_count);
    headers.remove(DELIVERY_COUNT);
    dlq::set_attempts(&mut headers, 0);
    dlq::set_text(&mut headers, dlq::REPLAYED_AT, now);
    dlq::set_replay_count(&mut headers, count.saturating_add(1));
    props.clone().with_headers(FieldTable::from(headers))
}

/// Paces publishes to at most `rate` per second, evenly spaced.
#[derive(Debug)]
pub struct Pace {
    every: Option<Duration>,
    next: Option<Instant>,
}

impl Pace {
    pub fn new(rate: Option<u32>) -> Pace {
        Pace {
            every: rate.map(|r| Duration::from_secs_f64(1.0 / f64::from(r.max(1)))),
            next: None,
        }
    }

    pub async fn wait(&mut self) {
        let Some(every) = self.every else { return };
        let now = Instant::now();
        let at = self.next.map_or(now, |next| next.max(now));
        tokio::time::sleep_until(at).await;
        self.next = Some(at + every);
    }
}

fn progress_bar(total: u32) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::from(total));
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} read, {msg} [{elapsed}]")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// The state of one replay run.
struct Run<'a> {
    broker: &'a Broker,
    reader: Reader,
    publisher: Option<Channel>,
    exchanges: HashMap<String, bool>,
    report: Report,
    bar: ProgressBar,
}

type Pending = std::pin::Pin<Box<dyn Future<Output = (u64, lapin::Result<Confirmation>)> + Send>>;

pub async fn replay(
    broker: &Broker,
    reader: Reader,
    filter: &Filter,
    options: &Options,
    out: &mut dyn Write,
    mut stop: Stop,
) -> Result<(), Error> {
    let publisher = match options.dry_run {
        true => None,
        false => Some(broker.publisher().await?),
    };
    let bar = progress_bar(reader.initial_depth());
    let mut run = Run {
        broker,
        reader,
        publisher,
        exchanges: HashMap::new(),
        report: Report::default(),
        bar,
    };
    if options.dry_run {
        writeln!(
            out,
            "Dry run: these messages would be replayed; nothing is changed."
        )
        .map_err(stdout_error)?;
    }
    let mut pace = Pace::new(options.rate);
    let mut inflight: FuturesUnordered<Pending> = FuturesUnordered::new();
    while options.limit.is_none_or(|limit| run.report.matched < limit) {
        let Some(delivery) = next_or_stop(&mut run.reader, &mut stop).await? else {
            break;
        };
        run.bar.set_position(run.reader.seen());
        if let Some(pending) = run.take(delivery, filter, options, out, &mut pace).await? {
            inflight.push(pending);
            run.settle(&mut inflight, WINDOW - 1).await?;
        }
    }
    run.settle(&mut inflight, 0).await?;
    run.finish(options, out, &stop).await
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::file("stdout", e)
}

impl Run<'_> {
    fn skip(&mut self, tag: u64, why: &'static str) {
        self.reader.hold(tag);
        *self.report.not_replayed.entry(why).or_default() += 1;
    }

    async fn exchange_exists(&mut self, exchange: &str) -> Result<bool, Error> {
        if let Some(known) = self.exchanges.get(exchange) {
            return Ok(*known);
        }
        let exists = self.broker.exchange_exists(exchange).await?;
        if !exists {
            self.bar.suspend(|| {
                eprintln!("dlq-replayer: exchange {exchange:?} does not exist; its messages stay in the DLQ")
            });
        }
        self.exchanges.insert(exchange.to_owned(), exists);
        Ok(exists)
    }

    /// Republishes one delivery if it matches and has a route; returns its
    /// pending confirm, or `None` when the message stays in the DLQ.
    async fn take(
        &mut self,
        delivery: Delivery,
        filter: &Filter,
        options: &Options,
        out: &mut dyn Write,
        pace: &mut Pace,
    ) -> Result<Option<Pending>, Error> {
        let tag = delivery.delivery_tag;
        let letter = DeadLetter::from_message(&delivery.properties, &delivery.data);
        if !filter.matches(&letter) {
            self.reader.hold(tag);
            return Ok(None);
        }
        self.report.matched += 1;
        let exchange = options.to_exchange.clone().or(letter.exchange.clone());
        let (Some(exchange), Some(key)) = (exchange, letter.routing_key.clone()) else {
            self.skip(tag, NO_ROUTE);
            return Ok(None);
        };
        if options.dry_run {
            output::route_row(out, &letter, &exchange, &key).map_err(stdout_error)?;
            self.reader.hold(tag);
            return Ok(None);
        }
        if !self.exchange_exists(&exchange).await? {
            self.skip(tag, NO_EXCHANGE);
            return Ok(None);
        }
        let route = (ShortString::try_new(exchange), ShortString::try_new(key));
        let ((Ok(exchange), Ok(key)), Some(publisher)) = (route, &self.publisher) else {
            self.skip(tag, NO_ROUTE);
            return Ok(None);
        };
        pace.wait().await;
        let props = replay_properties(&delivery.properties, &jiff::Timestamp::now().to_string());
        // Mandatory: a message no queue would receive is returned, not dropped.
        let options = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        let confirm = publisher
            .basic_publish(exchange, key, options, &delivery.data, props)
            .await
            .map_err(|e| Error::broker("republishing a message", e))?;
        Ok(Some(Box::pin(confirm.map(move |c| (tag, c)))))
    }

    /// Settles confirms that have arrived, then waits for more until at most
    /// `keep` are pending.
    async fn settle(
        &mut self,
        inflight: &mut FuturesUnordered<Pending>,
        keep: usize,
    ) -> Result<(), Error> {
        while let Some(Some((tag, confirmation))) = inflight.next().now_or_never() {
            self.settle_one(tag, confirmation).await?;
        }
        while inflight.len() > keep {
            if let Some((tag, confirmation)) = inflight.next().await {
                self.settle_one(tag, confirmation).await?;
            }
        }
        Ok(())
    }

    /// Acks the DLQ copy once the republish is confirmed; otherwise keeps it.
    async fn settle_one(
        &mut self,
        tag: u64,
        confirmation: lapin::Result<Confirmation>,
    ) -> Result<(), Error> {
        match confirmation.map_err(|e| Error::broker("waiting for a publisher confirm", e))? {
            Confirmation::Ack(None) => {
                self.reader.ack(tag).await?;
                self.report.replayed += 1;
                self.bar
                    .set_message(format!("{} replayed", self.report.replayed));
            }
            Confirmation::Ack(Some(_)) => self.skip(tag, UNROUTABLE),
            Confirmation::Nack(_) | Confirmation::NotRequested => self.skip(tag, NACKED),
        }
        Ok(())
    }

    async fn finish(
        self,
        options: &Options,
        out: &mut dyn Write,
        stop: &Stop,
    ) -> Result<(), Error> {
        let io = stdout_error;
        self.bar.finish_and_clear();
        let (seen, queue_depth) = (self.reader.seen(), self.reader.initial_depth());
        warn_if_short(&self.reader, "the queue", stop);
        if let Some(publisher) = &self.publisher {
            let _ = publisher.close(200, "replay done".into()).await;
        }
        self.reader.finish(self.broker).await?;
        let report = self.report;
        let not_replayed: u64 = report.not_replayed.values().sum();
        if options.dry_run {
            writeln!(
                out,
                "dry run: {} of {seen} messages read would be replayed ({queue_depth} in the queue at the start); nothing was changed",
                report.matched - not_replayed
            )
            .map_err(io)?;
        } else {
            writeln!(
                out,
                "replayed {} of {} matching messages ({seen} read, {queue_depth} in the queue at the start)",
                report.replayed, report.matched
            )
            .map_err(io)?;
        }
        for (why, n) in &report.not_replayed {
            writeln!(out, "  not replayed, still in the DLQ: {n} {why}").map_err(io)?;
        }
        out.flush().map_err(io)?;
        if not_replayed > 0 {
            return Err(Error::Incomplete(format!(
                "{not_replayed} matching message(s) were not replayed"
            )));
        }
        if stop.requested() {
            return Err(Error::Incomplete(
                "interrupted: the rest was not looked at".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::AMQPValue;

    #[test]
    fn a_replayed_copy_has_attempts_reset_and_a_replay_count() {
        let mut h = FieldTable::default();
        h.insert(dlq::ATTEMPTS.into(), AMQPValue::LongLongInt(5));
        h.insert(dlq::REPLAY_COUNT.into(), AMQPValue::LongLongInt(1));
        h.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(4));
        h.insert(
            dlq::ERROR_CLASS.into(),
            AMQPValue::LongString("transient".into()),
        );
        let props = BasicProperties::default()
            .with_message_id("e1".into())
            .with_headers(h);
        let copy = replay_properties(&props, "2026-11-24T03:00:00Z");
        let headers = copy.headers().clone().unwrap_or_default();
        assert_eq!(
            headers.inner().get(dlq::ATTEMPTS),
            Some(&AMQPValue::LongLongInt(0))
        );
        assert_eq!(dlq::replay_count(&headers), 2);
        assert_eq!(
            dlq::text(&headers, dlq::REPLAYED_AT).as_deref(),
            Some("2026-11-24T03:00:00Z")
        );
        assert_eq!(dlq::class(&headers), Some(dlq::Class::Transient));
        assert!(!headers.contains_key(DELIVERY_COUNT));
        assert_eq!(copy.message_id(), props.message_id());
        let first = replay_properties(&BasicProperties::default(), "t");
        let headers = first.headers().clone().unwrap_or_default();
        assert_eq!(dlq::count(&headers, dlq::REPLAY_COUNT), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn pace_spaces_publishes_evenly() {
        let start = Instant::now();
        let mut pace = Pace::new(Some(50));
        for _ in 0..101 {
            pace.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let mut free = Pace::new(None);
        free.wait().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
