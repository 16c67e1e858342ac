//! Tests of configuration loading and validation.

// figment::Jail closures must return figment's (large) error type.
#![allow(clippy::result_large_err)]

use std::path::Path;

use super::*;

use super::test_support::load;

#[test]
fn the_skeleton_of_the_design_loads_with_defaults_for_omitted_keys() {
    let config = load("[[sites]]\nid = \"lms-prod\"\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.amqp.prefetch, 64);
    assert_eq!(config.worker.max_in_flight, 256);
    assert_eq!(config.retry.delays_s, vec![1, 5, 30, 120, 600]);
    assert_eq!(config.sites[0].max_concurrency, 2);
    assert_eq!(config.sites[0].breaker.slow_call_ms, 2000);
    assert!(config.sites[0].moodle_url.is_none());
}

#[test]
fn the_example_config_is_valid() {
    let text = include_str!("../../../deploy/relay-worker.example.toml");
    let config = load(text).unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.sites.is_empty());
}

#[test]
fn an_unknown_key_is_named() {
    let err = load("[amqp]\nprefetsh = 10\n[[sites]]\nid = \"a\"\n")
        .err()
        .map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(err.contains("prefetsh"), "{err}");
}

#[test]
fn a_wrong_type_names_the_key() {
    let err = load("[amqp]\nprefetch = \"many\"\n[[sites]]\nid = \"a\"\n")
        .err()
        .map(|e| e.to_string());
    assert!(err.unwrap_or_default().contains("amqp.prefetch"));
}

#[test]
fn a_bad_site_id_is_refused() {
    let err = load("[[sites]]\nid = \"lms.prod\"\n")
        .err()
        .map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(err.contains("sites") && err.contains("lms.prod"), "{err}");
}

#[test]
fn range_errors_name_the_key() {
    let cases = [
        ("[worker]\nmax_in_flight = 0\n", "worker.max_in_flight"),
        ("[retry]\ndelays_s = [1, 0]\n", "retry.delays_s[1]"),
        ("[retry]\njitter = 2.0\n", "retry.jitter"),
    ];
    for (text, key) in cases {
        let err = load(&format!("{text}[[sites]]\nid = \"a\"\n")).err();
        match err {
            Some(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key),
            other => panic!("{text}: {other:?}"),
        }
    }
    let err = load("[[sites]]\nid = \"a\"\n[sites.breaker]\nerror_rate = 0.0\n").err();
    assert!(
        matches!(err, Some(ConfigError::Invalid { key, .. }) if key == "sites[0].breaker.error_rate")
    );
}

#[test]
fn fleet_settings_are_checked_and_named() {
    let fleet = |body: &str| load(&format!("[fleet]\n{body}\n[[sites]]\nid = \"a\"\n"));
    let config = fleet("member_id = \"relay-1.eu_west\"").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.fleet.member_id.as_deref(), Some("relay-1.eu_west"));
    assert_eq!(
        (config.fleet.heartbeat_ms, config.fleet.member_timeout_ms),
        (1000, 5000),
        "the defaults"
    );
    for (body, key) in [
        ("member_id = \"has space\"", "fleet.member_id"),
        ("member_id = \"\"", "fleet.member_id"),
        ("heartbeat_ms = 50", "fleet.heartbeat_ms"),
        ("heartbeat_ms = 2000", "fleet.member_timeout_ms"),
        ("member_timeout_ms = 700000", "fleet.member_timeout_ms"),
    ] {
        match fleet(body).err() {
            Some(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn breaker_consecutive_failures_is_off_or_two_to_a_thousand() {
    let with = |n: &str| {
        load(&format!(
            "[[sites]]\nid = \"a\"\n[sites.breaker]\nconsecutive_failures = {n}\n"
        ))
    };
    for n in ["0", "2", "1000"] {
        let config = with(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(config.sites[0].breaker.consecutive_failures.to_string(), n);
    }
    for n in ["1", "1001"] {
        match with(n).err() {
            Some(ConfigError::Invalid { key, .. }) => {
                assert_eq!(key, "sites[0].breaker.consecutive_failures", "{n}")
            }
            other => panic!("{n}: {other:?}"),
        }
    }
    let config = load("[[sites]]\nid = \"a\"\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.sites[0].breaker.consecutive_failures, 5,
        "the default"
    );
}

#[test]
fn duplicate_sites_and_no_sites_are_refused() {
    let dup = load("[[sites]]\nid = \"a\"\n[[sites]]\nid = \"a\"\n").err();
    assert!(matches!(dup, Some(ConfigError::Invalid { key, .. }) if key == "sites[1].id"));
    let none = load("").err();
    assert!(matches!(none, Some(ConfigError::Invalid { key, .. }) if key == "sites"));
}

#[test]
fn environment_variables_override_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "relay.toml",
            "[amqp]\nprefetch = 10\n[[sites]]\nid = \"a\"\n",
        )?;
        jail.set_env("RELAY_AMQP_PREFETCH", "200");
        jail.set_env("RELAY_AMQP_URL", "amqp://u:p@broker:5672/%2f");
        jail.set_env("RELAY_WORKER_MAX_IN_FLIGHT", "32");
        jail.set_env("RELAY_RETRY_DELAYS_S", "[2, 4]");
        jail.set_env("RELAY_SITES", "[{id = \"b\", max_concurrency = 3}]");
        let config = Config::load(Some(Path::new("relay.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(config.amqp.prefetch, 200);
        assert_eq!(config.amqp.url.expose(), "amqp://u:p@broker:5672/%2f");
        assert_eq!(config.worker.max_in_flight, 32);
        assert_eq!(config.retry.delays_s, vec![2, 4]);
        assert_eq!(config.sites[0].id.as_str(), "b");
        assert_eq!(config.sites[0].max_concurrency, 3);
        Ok(())
    });
}

#[test]
fn other_relay_variables_are_not_mistaken_for_keys() {
    // Regression: make's RELAY_WORKER_BIN was read as `worker.bin` and the
    // start refused; Kubernetes injects RELAY_WORKER_PORT for such a Service.
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("relay.toml", "[[sites]]\nid = \"a\"\n")?;
        jail.set_env("RELAY_WORKER_BIN", "target/debug/relay-worker");
        jail.set_env("RELAY_WORKER_PORT", "tcp://10.0.0.1:9464");
        jail.set_env("RELAY_WORKER_SERVICE_HOST", "10.0.0.1");
        Config::load(Some(Path::new("relay.toml"))).map_err(|e| e.to_string())?;
        Ok(())
    });
}

#[test]
fn every_documented_variable_sets_its_key() {
    let values = [
        ("AMQP_URL", "amqp://x:y@h:5672/%2f"),
        ("AMQP_URL_FILE", "url"),
        ("AMQP_PREFETCH", "7"),
        ("AMQP_DELIVERY_LIMIT", "7"),
        ("AMQP_CONNECT_TIMEOUT_S", "7"),
        ("AMQP_SITES_PER_CONNECTION", "7"),
        ("WORKER_MAX_IN_FLIGHT", "7"),
        ("WORKER_LISTEN", "127.0.0.1:7"),
        ("WORKER_SHUTDOWN_GRACE_S", "7"),
        ("WORKER_MAX_EVENT_BYTES", "7777"),
        ("WORKER_RECONNECT_MAX_BACKOFF_S", "7"),
        ("RETRY_DELAYS_S", "[7]"),
        ("RETRY_JITTER", "0.7"),
        ("FLEET_MEMBER_ID", "seven"),
        ("FLEET_HEARTBEAT_MS", "700"),
        ("FLEET_MEMBER_TIMEOUT_MS", "7000"),
        ("SITES", "[{id = \"seven\"}]"),
    ];
    assert_eq!(values.map(|(k, _)| k), ENV_KEYS);
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("url", "amqp://from:file@h:5672/%2f")?;
        for (key, value) in values {
            jail.set_env(format!("RELAY_{key}"), value);
        }
        let c = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(c.amqp.url.expose(), "amqp://from:file@h:5672/%2f");
        assert_eq!((c.amqp.prefetch, c.amqp.delivery_limit), (7, 7));
        assert_eq!(c.amqp.connect_timeout_s, 7);
        assert_eq!(c.amqp.sites_per_connection, 7);
        assert_eq!(c.fleet.member_id.as_deref(), Some("seven"));
        assert_eq!(
            (c.fleet.heartbeat_ms, c.fleet.member_timeout_ms),
            (700, 7000)
        );
        assert_eq!(c.worker.max_in_flight, 7);
        assert_eq!(c.worker.listen.port(), 7);
        assert_eq!(c.worker.shutdown_grace_s, 7);
        assert_eq!(c.worker.max_event_bytes, 7777);
        assert_eq!(c.worker.reconnect_max_backoff_s, 7);
        assert_eq!(c.retry.delays_s, vec![7]);
        assert!((c.retry.jitter - 0.7).abs() < 1e-9);
        assert_eq!(c.sites[0].id.as_str(), "seven");
        Ok(())
    });
}

#[test]
fn url_file_wins_over_url() {
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("amqp-url", "amqp://relay:fromfile@mq:5672/%2f\n")?;
        jail.create_file(
            "relay.toml",
            "[amqp]\nurl_file = \"amqp-url\"\n[[sites]]\nid = \"a\"\n",
        )?;
        let config = Config::load(Some(Path::new("relay.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(
            config.amqp.url.expose(),
            "amqp://relay:fromfile@mq:5672/%2f"
        );
        Ok(())
    });
}

#[test]
fn a_missing_config_file_is_named() {
    let err = Config::load(Some(Path::new("/nonexistent/relay.toml")))
        .err()
        .map(|e| e.to_string());
    assert!(err.unwrap_or_default().contains("/nonexistent/relay.toml"));
}

#[test]
fn secrets_never_print() {
    let config = load("[amqp]\nurl = \"amqp://relay:s3cr3t@mq:5672/%2f\"\n[[sites]]\nid = \"a\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert_eq!(config.amqp.url.expose(), "amqp://relay:s3cr3t@mq:5672/%2f");
}

fn urls(config: &Config) -> Vec<String> {
    config
        .amqp
        .urls()
        .iter()
        .map(|u| u.expose().to_owned())
        .collect()
}

const NODES: [&str; 3] = [
    "amqp://relay:pw@node1:5672/%2f",
    "amqp://relay:pw@node2:5672/%2f",
    "amqps://relay:pw@node3:5671/%2f",
];

#[test]
fn several_broker_addresses_load_from_the_file_the_environment_and_url_file() {
    let listed = NODES.join(", ");
    let config = load(&format!(
        "[amqp]\nurl = \"{listed}\"\n[[sites]]\nid = \"a\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(urls(&config), NODES, "blanks after the commas are trimmed");
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("relay.toml", "[[sites]]\nid = \"a\"\n")?;
        jail.set_env("RELAY_AMQP_URL", NODES.join(","));
        let config = Config::load(Some(Path::new("relay.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(urls(&config), NODES);
        jail.create_file("amqp-url", &format!("{}\nignored\n", NODES[..2].join(",")))?;
        jail.set_env("RELAY_AMQP_URL_FILE", "amqp-url");
        let config = Config::load(Some(Path::new("relay.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(urls(&config), NODES[..2]);
        Ok(())
    });
}

#[test]
fn one_broker_address_is_still_one_address() {
    let config = load("[[sites]]\nid = \"a\"\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(urls(&config), ["amqp://guest:guest@127.0.0.1:5672/%2f"]);
}

#[test]
fn a_bad_broker_address_is_named_by_its_index_without_credentials() {
    let cases = [
        (format!("{},http://u:s3cret@n/%2f", NODES[0]), "amqp.url[1]"),
        (format!("{},,{}", NODES[0], NODES[1]), "amqp.url[1]"),
        (format!("{},", NODES[0]), "amqp.url[1]"),
        (
            format!("amqp://u:s3cret@n:99999/%2f,{}", NODES[0]),
            "amqp.url[0]",
        ),
        // An unescaped comma in a password splits the URL.
        ("amqp://u:s3c,ret@n/%2f".to_owned(), "amqp.url[0]"),
        ("amqp://u:s3cret@n:port/%2f".to_owned(), "amqp.url"),
        ("http://u:s3cret@n/%2f".to_owned(), "amqp.url"),
        (String::new(), "amqp.url"),
    ];
    for (url, key) in cases {
        let err = load(&format!("[amqp]\nurl = \"{url}\"\n[[sites]]\nid = \"a\"\n")).err();
        let shown = err.as_ref().map(ToString::to_string).unwrap_or_default();
        match err {
            Some(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key, "{shown}"),
            other => panic!("{key}: {other:?}"),
        }
        assert!(!shown.contains("s3c"), "{shown}");
    }
}
