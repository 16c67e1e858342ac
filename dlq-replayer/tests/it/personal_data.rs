//! Personal data in the DLQ: `--user` finds exactly one user's dead letters
//! (per site; not the ones they only made), `purge --dry-run` changes
//! nothing, `purge --user` removes exactly them with a backup, `export
//! --redact` writes none of the personal values, and the retention purge
//! removes only the old ones.

use std::collections::BTreeSet;

use jiff::{Timestamp, ToSpan};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use relay_contract::dlq;
use relay_contract::routing::{DLQ_QUEUE, INGEST_EXCHANGE};
use serde_json::{Value, json};

use crate::support::{Vhost, ok, publish_confirmed, snapshot, stderr, stdout, x_death};

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// One dead letter of the test DLQ.
struct Letter {
    id: String,
    site: &'static str,
    /// The user the event is about, and who made it.
    about: u64,
    actor: u64,
    /// Days since its last failure.
    age_days: i64,
    /// A body that is not JSON, dead-lettered by the broker (poison).
    poison: bool,
}

impl Letter {
    fn new(site: &'static str, about: u64, actor: u64, age_days: i64) -> Letter {
        Letter {
            id: uuid::Uuid::new_v4().to_string(),
            site,
            about,
            actor,
            age_days,
            poison: false,
        }
    }

    /// The personal values its body carries; unique per user and site.
    fn personal_values(&self) -> Vec<String> {
        let (u, s) = (self.about, self.site);
        vec![
            format!("user{u}-{s}-name"),
            format!("user{u}.{s}@example.edu"),
            format!("IDN-{s}-{u}"),
            format!("Given{u}{s}"),
            format!("Family{u}{s}"),
        ]
    }

    fn kind(&self) -> &'static str {
        match self.about % 2 {
            0 => "moodle.user.updated",
            _ => "moodle.enrolment.created",
        }
    }

    fn body(&self) -> Vec<u8> {
        if self.poison {
            return format!("not json: user{}-{}-name", self.about, self.site).into_bytes();
        }
        let v = self.personal_values();
        let (user, actor) = (self.about, self.actor);
        let (subject, snapshot) = match self.kind() {
            "moodle.user.updated" => (
                format!("user/{user}"),
                json!({"id": user, "username": v[0], "email": v[1], "idnumber": v[2],
                       "firstname": v[3], "lastname": v[4], "suspended": false}),
            ),
            _ => (
                format!("course/7/user/{user}"),
                json!({"id": 900 + user, "enrolid": 19, "userid": user, "courseid": 7, "enrol": "manual"}),
            ),
        };
        let mut data = json!({"objectid": user, "userid": actor, "relateduserid": user,
            "courseid": 7, "contextid": 201, "crud": "u", "anonymous": 0,
            "timecreated": 1_795_511_702, "other": {"username": v[0], "email": v[1]},
            "snapshot": snapshot,
            "enrichment": {"core_user_get_users_by_field": {"fetchedat": "2026-11-24T09:16:01Z",
                "result": [{"id": user, "username": v[0], "fullname": format!("{} {}", v[3], v[4]),
                            "email": v[1]}]}}});
        if self.kind() != "moodle.user.updated" {
            data["objectid"] = json!(900 + user);
        }
        let body = json!({"specversion": "1.0", "id": self.id, "source": "https://lms.example.edu",
            "type": self.kind(), "subject": subject, "time": "2026-11-24T09:16:00Z",
            "moodlesite": self.site, "sequence": format!("{user:020}"), "data": data});
        serde_json::to_vec(&body).unwrap_or_else(|e| panic!("{e}"))
    }

    fn props(&self) -> BasicProperties {
        let failed = Timestamp::now() - (self.age_days * 24).hours() - 1.hour();
        let key = format!(
            "{}.{}",
            self.site,
            self.kind().trim_start_matches("moodle.")
        );
        let mut headers = FieldTable::default();
        if self.poison {
            let at = u64::try_from(failed.as_second()).unwrap_or(0);
            headers.insert(dlq::X_DEATH.into(), x_death(self.site, &key, at));
        } else {
            let at = failed.to_string();
            // A Moodle error quoting the username: redaction masks it.
            let message = format!("username {} already exists", self.personal_values()[0]);
            for (key, value) in [
                (dlq::ERROR_CLASS, "client"),
                (dlq::ERROR_CODE, "invalidparameter"),
                (dlq::ERROR_MESSAGE, message.as_str()),
                (dlq::FIRST_FAILED_AT, at.as_str()),
                (dlq::LAST_FAILED_AT, at.as_str()),
                (dlq::SITE, self.site),
                (dlq::ORIGINAL_EXCHANGE, INGEST_EXCHANGE),
                (dlq::ORIGINAL_ROUTING_KEY, key.as_str()),
                (dlq::WORKER_VERSION, "0.1.0"),
            ] {
                headers.insert(key.into(), long(value));
            }
            headers.insert(dlq::ATTEMPTS.into(), AMQPValue::LongLongInt(5));
        }
        BasicProperties::default()
            .with_message_id(self.id.as_str().into())
            .with_content_type("application/cloudevents+json".into())
            .with_type(self.kind().into())
            .with_delivery_mode(2)
            .with_headers(headers)
    }
}

/// The test DLQ: user 42 of site a (about them: 2), user 42 as the actor
/// only, user 42 of site b, other users, a poison message, and two old ones.
fn letters() -> Vec<Letter> {
    let mut poison = Letter::new("a", 42, 2, 0);
    poison.poison = true;
    vec![
        Letter::new("a", 42, 2, 0),
        Letter::new("a", 42, 0, 1),
        Letter::new("a", 43, 42, 0),
        Letter::new("b", 42, 2, 0),
        Letter::new("a", 8, 2, 0),
        poison,
        Letter::new("a", 9, 2, 40),
        Letter::new("c", 42, 2, 31),
    ]
}

async fn seed(vhost: &Vhost, letters: &[Letter]) {
    let messages = letters.iter().map(|l| (l.body(), l.props())).collect();
    publish_confirmed(vhost, messages).await;
}

fn ids<'a>(letters: impl IntoIterator<Item = &'a Letter>) -> BTreeSet<String> {
    letters.into_iter().map(|l| l.id.clone()).collect()
}

/// The ids `list --json` prints.
fn listed(out: &str) -> BTreeSet<String> {
    out.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            v["id"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("dlq-it-{}-{name}", uuid::Uuid::new_v4().simple()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_dead_letters_are_found_and_purged_with_a_backup() {
    let vhost = Vhost::new().await;
    let all = letters();
    seed(&vhost, &all).await;
    let about_42_on_a: Vec<&Letter> = all
        .iter()
        .filter(|l| l.site == "a" && l.about == 42 && !l.poison)
        .collect();
    assert_eq!(about_42_on_a.len(), 2);

    let refused = vhost.run(&["list", "--user", "42"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--site"), "{}", stderr(&refused));

    let out = ok(&vhost.run(&["list", "--json", "--site", "a", "--user", "42"]));
    assert_eq!(listed(&out), ids(about_42_on_a.iter().copied()));
    let table = ok(&vhost.run(&["list", "--site", "a", "--user", "42"]));
    assert!(
        table.contains("(2 of 8 messages in relay.dlq; 1 with a body that is not JSON"),
        "{table}"
    );
    let actor = ok(&vhost.run(&[
        "list",
        "--json",
        "--site",
        "a",
        "--user",
        "42",
        "--user-as-actor",
    ]));
    let made_by_42 = all.iter().filter(|l| l.actor == 42);
    assert_eq!(
        listed(&actor),
        ids(about_42_on_a.iter().copied().chain(made_by_42))
    );
    let everywhere = ok(&vhost.run(&["list", "--json", "--any-site", "--user", "42"]));
    let about_42 = all.iter().filter(|l| l.about == 42 && !l.poison);
    assert_eq!(listed(&everywhere), ids(about_42));

    let before = snapshot(&vhost, DLQ_QUEUE).await;
    let dry = ok(&vhost.run(&["purge", "--site", "a", "--user", "42", "--dry-run"]));
    assert!(dry.contains("2 of 8 messages would be purged"), "{dry}");
    for l in &about_42_on_a {
        assert!(dry.contains(&l.id), "{dry}");
    }
    assert_eq!(
        snapshot(&vhost, DLQ_QUEUE).await,
        before,
        "the dry run changed the queue"
    );

    let backup = temp_file("user-backup.jsonl");
    let backup_s = backup.display().to_string();
    let out = ok(&vhost.run(&[
        "purge", "--site", "a", "--user", "42", "--yes", "--backup", &backup_s,
    ]));
    assert!(out.contains("purged 2 of 8 messages"), "{out}");
    let left: BTreeSet<String> = snapshot(&vhost, DLQ_QUEUE).await.into_keys().collect();
    let expected: BTreeSet<String> = ids(&all)
        .difference(&ids(about_42_on_a.iter().copied()))
        .cloned()
        .collect();
    assert_eq!(left, expected);
    let text = std::fs::read_to_string(&backup).unwrap_or_else(|e| panic!("{e}"));
    let in_backup: BTreeSet<String> = text
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
            v["properties"]["message_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(in_backup, ids(about_42_on_a.iter().copied()));
    let _ = std::fs::remove_file(backup);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redacted_export_holds_no_personal_value_and_keeps_ids_and_headers() {
    let vhost = Vhost::new().await;
    let all = letters();
    seed(&vhost, &all).await;
    let file = temp_file("redacted.jsonl");
    let file_s = file.display().to_string();
    ok(&vhost.run(&["export", "--redact", "-o", &file_s]));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text.lines().count(), all.len());
    for l in &all {
        for value in l.personal_values() {
            assert!(!text.contains(&value), "{value} is in the redacted export");
        }
        assert!(text.contains(&l.id), "id {} lost", l.id);
    }
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
        let headers = &v["headers"];
        let body = v["body"].as_str().unwrap_or_default();
        if headers.get(dlq::X_DEATH).is_some() {
            assert_eq!(body, "", "a body that is not JSON is dropped");
            assert_eq!(headers["x-dlq-redacted"], "body (not JSON)");
            continue;
        }
        assert_eq!(headers[dlq::ERROR_CODE], "invalidparameter");
        assert_eq!(headers[dlq::ERROR_CLASS], "client");
        assert_eq!(headers[dlq::ATTEMPTS], 5);
        assert!(headers[dlq::LAST_FAILED_AT].is_string());
        assert_eq!(
            headers[dlq::ERROR_MESSAGE],
            "username [redacted] already exists"
        );
        let event: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        assert!(event["data"]["relateduserid"].is_u64(), "{event}");
        assert!(event["data"]["snapshot"]["id"].is_u64(), "{event}");
        assert!(event["type"].is_string() && event["time"].is_string());
    }
    // Redacted events are not the originals: never put back in the queue.
    ok(&vhost.run(&["purge", "--yes", "--no-backup"]));
    let refused = vhost.run(&["import", &file_s]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("redacted"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(vhost.depth(DLQ_QUEUE).await, 0);

    seed(&vhost, &all).await;
    let one = ok(&vhost.run(&["export", "--redact", "--site", "b", "--user", "42"]));
    assert_eq!(one.lines().count(), 1);
    assert!(!one.contains("user42-b-name"), "{one}");
    let _ = std::fs::remove_file(file);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_retention_purge_removes_only_dead_letters_older_than_30_days() {
    let vhost = Vhost::new().await;
    let all = letters();
    seed(&vhost, &all).await;
    let old = ids(all.iter().filter(|l| l.age_days > 30));
    assert_eq!(old.len(), 2);
    // As the timer runs it: the URL from a file (here: a dead node first).
    let url_file = temp_file("amqp-url");
    std::fs::write(
        &url_file,
        format!("amqp://nobody:x@127.0.0.1:1/%2f, {}\n", vhost.url()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let url_s = url_file.display().to_string();
    let retention = |dry: bool| {
        let mut args = vec![
            "--amqp-url-file",
            url_s.as_str(),
            "purge",
            "--older-than",
            "30d",
        ];
        args.extend(if dry {
            &["--dry-run"][..]
        } else {
            &["--no-backup", "--yes"][..]
        });
        crate::support::replayer("amqp://wrong:wrong@127.0.0.1:1/%2f", &args)
    };
    let before = snapshot(&vhost, DLQ_QUEUE).await;
    let dry = ok(&retention(true));
    assert!(dry.contains("2 of 8 messages would be purged"), "{dry}");
    assert_eq!(snapshot(&vhost, DLQ_QUEUE).await, before);

    let out = ok(&retention(false));
    assert!(
        out.contains("purged 2 of 8 messages from relay.dlq, no backup"),
        "{out}"
    );
    let left: BTreeSet<String> = snapshot(&vhost, DLQ_QUEUE).await.into_keys().collect();
    assert_eq!(left, ids(&all).difference(&old).cloned().collect());
    let _ = std::fs::remove_file(url_file);
}
