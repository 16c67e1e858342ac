//! Tests of the topology and its exported definitions.

use serde_json::Value;

use super::*;

fn config(text: &str) -> Config {
    crate::config::test_support::load(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn retry_steps_stretch_each_delay_by_the_jitter() {
    let c = config("[retry]\ndelays_s = [1, 30]\njitter = 0.2\n[[sites]]\nid = \"a\"\n");
    let steps = retry_steps(&c);
    assert_eq!(
        steps[0].queues,
        [
            "relay.retry.1000ms",
            "relay.retry.1100ms",
            "relay.retry.1200ms"
        ]
    );
    assert_eq!(
        steps[1].queues,
        [
            "relay.retry.30000ms",
            "relay.retry.33000ms",
            "relay.retry.36000ms"
        ]
    );
    let none = config("[retry]\ndelays_s = [5]\njitter = 0.0\n[[sites]]\nid = \"a\"\n");
    assert_eq!(retry_steps(&none)[0].queues, ["relay.retry.5000ms"]);
}

#[test]
fn every_site_gets_a_quorum_ingest_queue_with_explicit_limits() {
    let c = config("[amqp]\ndelivery_limit = 7\n[[sites]]\nid = \"a\"\n[[sites]]\nid = \"b\"\n");
    let t = Topology::for_config(&c);
    for site in ["a", "b"] {
        let q = t
            .queues
            .iter()
            .find(|q| q.name == format!("relay.ingest.{site}"));
        let q = q.unwrap_or_else(|| panic!("no queue for {site}"));
        assert!(q.arguments.contains(&("x-delivery-limit", Arg::Int(7))));
        assert!(
            q.arguments
                .contains(&("x-single-active-consumer", Arg::Bool(true)))
        );
        assert!(
            q.arguments
                .contains(&("x-dead-letter-routing-key", Arg::Str("relay.dlq".into())))
        );
        let sources: Vec<&str> = t
            .bindings
            .iter()
            .filter(|b| b.queue == q.name)
            .map(|b| b.exchange.as_str())
            .collect();
        assert_eq!(sources, ["moodle.ingest", "relay.requeue"]);
    }
}

#[test]
fn the_shipped_definitions_match_the_example_config() {
    let example = config(include_str!("../../../deploy/relay-worker.example.toml"));
    let shipped: Value =
        serde_json::from_str(include_str!("../../../deploy/rabbitmq/definitions.json"))
            .unwrap_or_else(|e| panic!("definitions.json: {e}"));
    let generated = Topology::for_config(&example).definitions();
    for part in ["exchanges", "queues", "bindings", "permissions"] {
        assert_eq!(
            shipped[part], generated[part],
            "deploy/rabbitmq/definitions.json {part} is stale: regenerate with \
             `relay-worker --config deploy/relay-worker.example.toml definitions`"
        );
    }
    assert_eq!(shipped, generated, "nothing else differs either");
}

#[test]
fn the_definitions_hold_permissions_but_no_user_and_no_secret() {
    let c = config("[[sites]]\nid = \"a\"\n");
    let text = Topology::for_config(&c).definitions().to_string();
    for word in ["users", "password", "hash"] {
        assert!(!text.contains(word), "{word:?} in the definitions: {text}");
    }
    let users: Vec<&str> = definitions::permissions().iter().map(|p| p.user).collect();
    assert_eq!(users, ["relay-plugin", "relay-worker", "relay-replayer"]);
    // RabbitMQ searches names with these patterns unanchored: each must be
    // anchored at both ends, or "relay.dlq" would also allow "relay.dlq2".
    for p in definitions::permissions() {
        for pattern in [&p.configure, &p.write, &p.read] {
            let anchored =
                pattern == "^$" || (pattern.starts_with("^(") && pattern.ends_with(")$"));
            assert!(anchored, "{}: {pattern} is not anchored", p.user);
        }
    }
}
