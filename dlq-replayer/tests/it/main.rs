//! Integration tests of `dlq-replayer` against the real RabbitMQ
//! (`amqp://guest:guest@127.0.0.1:5672`), each test in a vhost of its own.

mod archiving;
mod listing;
mod personal_data;
mod process;
mod replaying;
mod support;
