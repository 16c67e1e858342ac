//! The Moodle REST client against the simulator: Moodle's real answer shapes,
//! their classification, token rotation, and no token in any log line.

use std::time::Duration;

use moodle_sim::MoodleSim;
use relay_worker::failure::{Class, Failure};
use relay_worker::moodle::{MoodleClient, MoodleError, TokenSource};
use serde_json::json;

use crate::support::{captured_log, init_logging, temp_dir};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn client(sim: &MoodleSim, token: TokenSource) -> MoodleClient {
    MoodleClient::new(
        "lms-sim".parse().unwrap_or_else(|e| panic!("{e}")),
        &sim.url(),
        token,
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn fixed(token: &str) -> TokenSource {
    TokenSource::Fixed(relay_worker::config::Secret::new(token))
}

fn class_of(result: Result<serde_json::Value, MoodleError>) -> (Class, String) {
    match result {
        Ok(v) => panic!("expected a failure, got {v}"),
        Err(e) => {
            let f = Failure::moodle(&e);
            (f.class, f.code)
        }
    }
}

#[tokio::test]
async fn lookups_send_ids_in_bracket_notation_and_parse_moodles_answers() {
    let sim = MoodleSim::start(TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sim.delete_user(43);
    let c = client(&sim, fixed(TOKEN));
    let users = c
        .call(
            "core_user_get_users_by_field",
            &json!({"field": "id", "values": [42, 43, 44]}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<i64> = users
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["id"].as_i64())
        .collect();
    assert_eq!(ids, [42, 44], "a deleted user is simply absent");
    assert_eq!(sim.calls()[0].ids, [42, 43, 44]);
    let info = c
        .call("core_webservice_get_site_info", &json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info["release"], "4.5.6+ (Build: 20250801)");
}

#[tokio::test]
async fn every_moodle_failure_lands_in_its_class() {
    let sim = MoodleSim::start(TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let c = client(&sim, fixed(TOKEN));
    let users = json!({"field": "id", "values": [1]});

    sim.fail_next(503, 1, Some(7));
    let err = c.call("core_user_get_users_by_field", &users).await.err();
    assert_eq!(
        err.as_ref().and_then(MoodleError::retry_after),
        Some(Duration::from_secs(7))
    );
    assert_eq!(
        err.map(|e| Failure::moodle(&e).class),
        Some(Class::Transient)
    );

    sim.fail_next(429, 1, None);
    assert_eq!(
        class_of(c.call("core_user_get_users_by_field", &users).await),
        (Class::Transient, "http_429".into())
    );

    sim.deadlock_next(1);
    assert_eq!(
        class_of(c.call("core_user_get_users_by_field", &users).await),
        (Class::Transient, "dmlwriteexception".into())
    );

    sim.invalid_parameter_for("core_course_get_courses_by_field");
    assert_eq!(
        class_of(
            c.call(
                "core_course_get_courses_by_field",
                &json!({"field": "ids", "value": "7"})
            )
            .await
        ),
        (Class::Client, "invalidparameter".into())
    );

    assert_eq!(
        class_of(c.call("core_user_create_users", &json!({})).await),
        (Class::Auth, "accessexception".into())
    );

    sim.set_disabled(true);
    assert_eq!(
        class_of(c.call("core_webservice_get_site_info", &json!({})).await),
        (Class::Auth, "webservices_disabled".into())
    );
    sim.set_disabled(false);

    sim.invalid_token_from_call(1);
    assert_eq!(
        class_of(c.call("core_webservice_get_site_info", &json!({})).await),
        (Class::Auth, "invalidtoken".into())
    );
}

#[tokio::test]
async fn a_rotated_token_file_is_used_without_a_restart() {
    let sim = MoodleSim::start("old-token")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = temp_dir();
    let path = dir.join("token");
    std::fs::write(&path, "old-token\n").unwrap_or_else(|e| panic!("{e}"));
    let c = client(&sim, TokenSource::file(&path));
    assert!(
        c.call("core_webservice_get_site_info", &json!({}))
            .await
            .is_ok()
    );

    // Moodle revokes the old token; the operator writes the new one.
    sim.invalid_token_from_call(2);
    assert!(
        c.call("core_webservice_get_site_info", &json!({}))
            .await
            .is_err()
    );
    sim.accept_token("the-new-token");
    std::fs::write(&path, "the-new-token\n").unwrap_or_else(|e| panic!("{e}"));
    let old_only = MoodleSim::start("x")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(old_only);
    assert!(
        c.call("core_webservice_get_site_info", &json!({}))
            .await
            .is_ok(),
        "the new token is read"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_token_never_appears_in_audit_lines_or_errors() {
    init_logging();
    let site = format!(
        "lms-sec-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let sim = MoodleSim::start(TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let c = MoodleClient::new(
        site.parse().unwrap_or_else(|e| panic!("{e}")),
        &sim.url(),
        fixed(TOKEN),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut errors = Vec::new();
    let _ = c
        .call(
            "core_user_get_users_by_field",
            &json!({"field": "id", "values": [1, 2]}),
        )
        .await;
    sim.fail_next(503, 1, Some(1));
    errors.extend(
        c.call("core_webservice_get_site_info", &json!({}))
            .await
            .err(),
    );
    sim.invalid_token_from_call(1);
    errors.extend(
        c.call("core_webservice_get_site_info", &json!({}))
            .await
            .err(),
    );

    let lines = captured_log(&site);
    assert_eq!(
        lines.iter().filter(|l| l.contains("moodle call")).count(),
        3,
        "one audit line per call: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("values[0]=1") && l.contains("\"outcome\":\"ok\"")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("http_503")), "{lines:#?}");
    assert!(
        lines.iter().all(|l| !l.contains(TOKEN)),
        "the token leaked into the log: {lines:#?}"
    );
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert!(!e.to_string().contains(TOKEN) && !Failure::moodle(e).message.contains(TOKEN));
    }
}
