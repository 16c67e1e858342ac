//! relay-worker integration tests. They talk to a real RabbitMQ
//! (`RELAY_TEST_AMQP_URL`, default the local broker); each test that runs a
//! worker gets a vhost of its own.

mod enrichment;
mod failures;
mod fleet;
mod fleet_process;
mod moodle_client;
mod ordering;
mod permissions;
mod pipeline;
mod process;
mod proxy_limit;
mod routing_on_broker;
mod sharing;
mod support;
mod topology;
