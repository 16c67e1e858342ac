//! The connection to RabbitMQ and the few questions the replayer asks it:
//! how deep is a queue, does an exchange exist, and a publishing channel with
//! confirms. Nothing is ever declared here: only passive declares.

use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::error::{Error, connect_error, is_not_found, redact_url};

/// A connection, with the URL kept only in its redacted form.
#[derive(Debug)]
pub struct Broker {
    pub connection: Connection,
    /// The URL with its password hidden, for messages.
    pub url: String,
}

impl Broker {
    pub async fn connect(url: &str) -> Result<Broker, Error> {
        let redacted = redact_url(url);
        let properties =
            ConnectionProperties::default().with_connection_name("dlq-replayer".into());
        let connection = Connection::connect(url, properties)
            .await
            .map_err(|source| connect_error(redacted.clone(), source))?;
        Ok(Broker {
            connection,
            url: redacted,
        })
    }

    /// Connects to the first of `urls` that accepts (the nodes of a cluster,
    /// in order); the error is the last node's.
    pub async fn connect_first(urls: &[String]) -> Result<Broker, Error> {
        let mut last = Error::Usage("no AMQP URL given".to_owned());
        for url in urls {
            match Broker::connect(url).await {
                Ok(broker) => return Ok(broker),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub async fn channel(&self, doing: &'static str) -> Result<Channel, Error> {
        self.connection
            .create_channel()
            .await
            .map_err(|e| Error::broker(doing, e))
    }

    /// Ready messages in `queue`, by a passive declare on a channel of its own
    /// (a refused declare closes the channel it was made on).
    pub async fn depth(&self, queue: &str) -> Result<u32, Error> {
        let channel = self.channel("opening a channel").await?;
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let result = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await;
        match result {
            Ok(q) => {
                let _ = channel.close(200, "inspected".into()).await;
                Ok(q.message_count())
            }
            Err(e) if is_not_found(&e) => Err(Error::QueueNotFound {
                queue: queue.to_owned(),
                url: self.url.clone(),
            }),
            Err(e) => Err(Error::broker("inspecting the queue", e)),
        }
    }

    /// Whether `exchange` exists. The default exchange (`""`) always does.
    pub async fn exchange_exists(&self, exchange: &str) -> Result<bool, Error> {
        if exchange.is_empty() {
            return Ok(true);
        }
        let channel = self.channel("opening a channel").await?;
        let options = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let result = channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await;
        match result {
            Ok(()) => {
                let _ = channel.close(200, "inspected".into()).await;
                Ok(true)
            }
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(Error::broker("inspecting an exchange", e)),
        }
    }

    /// A channel in confirm mode: every publish is answered by the broker once
    /// it has taken responsibility for the message (for quorum queues: once a
    /// majority has it on disk).
    pub async fn publisher(&self) -> Result<Channel, Error> {
        let channel = self.channel("opening the publishing channel").await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| Error::broker("enabling publisher confirms", e))?;
        Ok(channel)
    }

    /// Closes the connection after the caller closed its channels, so that
    /// every ack sent before has been processed by the broker.
    pub async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}
