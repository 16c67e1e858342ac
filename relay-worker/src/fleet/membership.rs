//! Who is in the fleet: each worker announces itself on `relay.fleet` every
//! heartbeat and keeps, from what it hears, the list of live members. It owns
//! the announcements and the view; what the view means for the sites is
//! [`super::assign`]'s business.
//!
//! An announcement is an empty message whose AMQP `type` is `alive` or
//! `leaving` and whose `app_id` is the member id. It is not persistent and
//! expires after `member_timeout_ms`: news older than that says nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use relay_contract::routing::FLEET_EXCHANGE;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::FleetConfig;
use crate::metrics;

/// The live members as this worker sees them, sorted, itself included; `None`
/// until it has listened long enough to know its peers (a newcomer must not
/// claim sites before it has heard the others).
pub type View = Option<Vec<String>>;

/// The AMQP `type` of "I am here", sent every heartbeat.
const ALIVE: &str = "alive";
/// The AMQP `type` of "I am stopping", sent once, so the others move at once.
const LEAVING: &str = "leaving";
/// Heartbeats a worker listens before its view counts.
const SETTLE_HEARTBEATS: u32 = 2;

/// This worker's member id: `config.member_id`, or host name + pid + 6 random
/// hex chars (letters, digits, '.', '_', '-' only; at most 64 characters).
pub fn member_id(config: &FleetConfig) -> String {
    if let Some(id) = &config.member_id {
        return id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default();
    // 48 + '-' + pid (7 digits at most) + '-' + 6 stays within 64.
    let host: String = host
        .trim()
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(48)
        .collect();
    let host = if host.is_empty() { "worker" } else { &host };
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..6])
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Announces `me` on FLEET_EXCHANGE every heartbeat and listens to the others on an
/// exclusive, auto-delete, server-named queue of its own bound to it; publishes the
/// view to `view` whenever it changes (and `metrics::fleet_members`). Settles (first
/// `Some`) after 2 heartbeats of listening. A member silent for member_timeout is
/// dropped; a member announcing it is leaving is dropped at once. When `stop` turns
/// true (or its sender is dropped): announces that it leaves and returns Ok(()).
/// Errors: only broker I/O (returned, never unwrap/expect), so the caller reconnects.
///
/// The view goes back to `None` at the start of every call: after a reconnect,
/// what this worker knew of its peers is stale.
pub async fn run(
    connection: Arc<Connection>,
    me: String,
    config: FleetConfig,
    view: watch::Sender<View>,
    mut stop: watch::Receiver<bool>,
) -> lapin::Result<()> {
    view.send_if_modified(|v| v.take().is_some());
    let heartbeat = Duration::from_millis(config.heartbeat_ms);
    let timeout = Duration::from_millis(config.member_timeout_ms);
    let ttl = config.member_timeout_ms;
    let channel = connection.create_channel().await?;
    let mut consumer = listen(&channel, ttl).await?;
    let mut members = Members::new(me.clone(), heartbeat, timeout);
    let mut ticker = tokio::time::interval(heartbeat);
    // A late tick (a slow broker) is not made up with a burst of announcements.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // The Ref `wait_for` returns is not Send: drop it in place.
            () = async { drop(stop.wait_for(|stop| *stop).await) } => break,
            _ = ticker.tick() => announce(&channel, &me, ALIVE, ttl).await?,
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => match read(&delivery.properties) {
                    Ok(news) => members.heard(news),
                    Err(reason) => tracing::debug!(reason, "fleet announcement ignored"),
                },
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                        lapin::ChannelState::Closed,
                        "fleet consumer ended",
                    )));
                }
            },
        }
        let now = members.view();
        view.send_if_modified(|shown| {
            if *shown == now {
                return false;
            }
            if let Some(list) = &now {
                metrics::fleet_members(list.len());
                tracing::info!(members = ?list, "fleet members changed");
            }
            *shown = now;
            true
        });
    }
    announce(&channel, &me, LEAVING, ttl).await?;
    // Closing cancels the consumer, and the auto-delete queue goes with it.
    let _ = channel.close(200, "leaving the fleet".into()).await;
    Ok(())
}

/// Declares this worker's listening queue, binds it and consumes it.
async fn listen(channel: &Channel, ttl_ms: u64) -> lapin::Result<Consumer> {
    let mut arguments = FieldTable::default();
    // What waited longer than a member timeout is stale news: drop it rather
    // than replay a backlog after a slow spell.
    arguments.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
    );
    // Server-named, exclusive and auto-delete: the queue is this worker's
    // alone and disappears with its consumer or its connection (kill -9
    // included), so dead workers leave nothing behind. Not durable: a member
    // list has no use after a broker restart.
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        durable: false,
        ..Default::default()
    };
    let queue = channel.queue_declare("".into(), options, arguments).await?;
    let name = queue.name().clone();
    // Fanout: the routing key is ignored.
    channel
        .queue_bind(
            name.clone(),
            FLEET_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // No acks: announcements are idempotent and the next heartbeat repeats
    // them, so a lost one costs nothing. Exclusive: nobody else reads it.
    let options = BasicConsumeOptions {
        no_ack: true,
        exclusive: true,
        ..Default::default()
    };
    let tag = "".into(); // The broker names it.
    channel
        .basic_consume(name, tag, options, FieldTable::default())
        .await
}

/// Publishes one announcement of `me`.
async fn announce(channel: &Channel, me: &str, kind: &str, ttl_ms: u64) -> lapin::Result<()> {
    let properties = BasicProperties::default()
        .with_type(kind.into())
        .with_app_id(me.into())
        // Transient: worthless after a broker restart, so not written to disk.
        .with_delivery_mode(1)
        // Stale after a member timeout, wherever it waits.
        .with_expiration(ttl_ms.to_string().into());
    // Neither mandatory nor confirmed: with nobody listening there is nobody
    // to tell, and a lost announcement is repeated by the next heartbeat (a
    // lost "leaving" by the others' timeout).
    channel
        .basic_publish(
            FLEET_EXCHANGE.into(),
            "".into(),
            BasicPublishOptions::default(),
            &[],
            properties,
        )
        .await?
        .await?;
    Ok(())
}

/// What one announcement says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum News {
    Alive(String),
    Leaving(String),
}

/// What a delivered announcement says.
fn read(properties: &BasicProperties) -> Result<News, &'static str> {
    let kind = properties.kind().as_ref().map(|k| k.as_str());
    parse(kind, properties.app_id().as_ref().map(|a| a.as_str()))
}

/// Reads an announcement's AMQP `type` and `app_id`; the error says what is wrong.
fn parse(kind: Option<&str>, app_id: Option<&str>) -> Result<News, &'static str> {
    let id = match app_id {
        Some(id) if !id.is_empty() && id.len() <= 64 && id.chars().all(allowed) => id.to_owned(),
        Some(_) => return Err("app_id is not a member id"),
        None => return Err("no app_id"),
    };
    match kind {
        Some(ALIVE) => Ok(News::Alive(id)),
        Some(LEAVING) => Ok(News::Leaving(id)),
        _ => Err("type is neither alive nor leaving"),
    }
}

/// The bookkeeping: when each peer was last heard, and since when this worker listens.
#[derive(Debug)]
struct Members {
    me: String,
    settled_at: Instant,
    timeout: Duration,
    last_seen: HashMap<String, Instant>,
}

impl Members {
    fn new(me: String, heartbeat: Duration, timeout: Duration) -> Members {
        Members {
            me,
            settled_at: Instant::now() + heartbeat * SETTLE_HEARTBEATS,
            timeout,
            last_seen: HashMap::new(),
        }
    }

    /// Takes in one announcement; this worker's own are not news.
    fn heard(&mut self, news: News) {
        match news {
            News::Alive(id) if id != self.me => {
                self.last_seen.insert(id, Instant::now());
            }
            News::Leaving(id) => {
                self.last_seen.remove(&id);
            }
            News::Alive(_) => {}
        }
    }

    /// Drops the members silent for the timeout; the live ones and this
    /// worker, sorted, once settled.
    fn view(&mut self) -> View {
        let now = Instant::now();
        self.last_seen
            .retain(|_, seen| now.duration_since(*seen) < self.timeout);
        if now < self.settled_at {
            return None;
        }
        let mut list: Vec<String> = self.last_seen.keys().cloned().collect();
        list.push(self.me.clone());
        list.sort();
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEAT: Duration = Duration::from_millis(200);
    const TIMEOUT: Duration = Duration::from_millis(1000);

    fn alive(id: &str) -> News {
        News::Alive(id.to_owned())
    }

    fn ids(names: &[&str]) -> View {
        Some(names.iter().map(|n| (*n).to_owned()).collect())
    }

    async fn settled(me: &str) -> Members {
        let members = Members::new(me.to_owned(), BEAT, TIMEOUT);
        tokio::time::advance(BEAT * SETTLE_HEARTBEATS).await;
        members
    }

    #[tokio::test(start_paused = true)]
    async fn no_view_before_two_heartbeats_of_listening() {
        let mut members = Members::new("b".to_owned(), BEAT, TIMEOUT);
        members.heard(alive("a"));
        assert_eq!(members.view(), None);
        tokio::time::advance(BEAT * 2 - Duration::from_millis(1)).await;
        assert_eq!(members.view(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(members.view(), ids(&["a", "b"]));
    }

    #[tokio::test(start_paused = true)]
    async fn the_view_includes_itself_and_is_sorted() {
        let mut members = settled("m").await;
        assert_eq!(members.view(), ids(&["m"]));
        for id in ["z", "a", "m", "q"] {
            members.heard(alive(id));
        }
        assert_eq!(members.view(), ids(&["a", "m", "q", "z"]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_silent_for_the_timeout_is_dropped() {
        let mut members = settled("me").await;
        members.heard(alive("quiet"));
        members.heard(alive("chatty"));
        tokio::time::advance(TIMEOUT - Duration::from_millis(1)).await;
        members.heard(alive("chatty"));
        assert_eq!(members.view(), ids(&["chatty", "me", "quiet"]));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(members.view(), ids(&["chatty", "me"]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_that_says_it_leaves_is_dropped_at_once_and_may_come_back() {
        let mut members = settled("me").await;
        members.heard(alive("other"));
        members.heard(News::Leaving("other".to_owned()));
        assert_eq!(members.view(), ids(&["me"]));
        members.heard(alive("other"));
        assert_eq!(members.view(), ids(&["me", "other"]));
    }

    #[test]
    fn a_malformed_announcement_is_refused_with_its_reason() {
        assert_eq!(parse(Some("alive"), Some("w-1")), Ok(alive("w-1")));
        assert!(parse(Some("hello"), Some("w-1")).is_err());
        assert!(parse(None, Some("w-1")).is_err());
        assert!(parse(Some("alive"), None).is_err());
        assert!(parse(Some("alive"), Some("a b")).is_err());
        assert!(parse(Some("leaving"), Some("")).is_err());
    }

    #[test]
    fn a_default_member_id_is_unique_and_valid() {
        let config = FleetConfig::default();
        let (a, b) = (member_id(&config), member_id(&config));
        assert_ne!(a, b);
        assert!(a.len() <= 64 && a.chars().all(allowed), "{a}");
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
        let named = FleetConfig {
            member_id: Some("w-1".to_owned()),
            ..FleetConfig::default()
        };
        assert_eq!(member_id(&named), "w-1");
    }
}
