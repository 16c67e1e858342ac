//! relay-worker integration tests. They talk to a real RabbitMQ
//! (`RELAY_TEST_AMQP_URL`, default the local broker) with fresh names per test.

mod routing_on_broker;
mod support;
