//! Fleet membership on a real broker: workers see each other, a worker that
//! stops is gone at once, a killed one after the member timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_worker::config::FleetConfig;
use relay_worker::fleet::membership::{self, View};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::{Vhost, config, connect, declare_topology};

/// One `membership::run` on a connection of its own.
struct Member {
    id: String,
    connection: Arc<lapin::Connection>,
    view: watch::Receiver<View>,
    stop: watch::Sender<bool>,
    task: JoinHandle<lapin::Result<()>>,
}

impl Member {
    async fn start(url: &str, fleet: &FleetConfig) -> Member {
        let (connection, _) = connect(url).await;
        let connection = Arc::new(connection);
        let id = membership::member_id(fleet);
        let (view_tx, view) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(membership::run(
            connection.clone(),
            id.clone(),
            fleet.clone(),
            view_tx,
            stop_rx,
        ));
        Member {
            id,
            connection,
            view,
            stop,
            task,
        }
    }

    /// Waits until the view is `expected`; panics with what it saw instead.
    async fn sees(&mut self, expected: &[String], within: Duration) {
        let waited = tokio::time::timeout(within, async {
            let _ = self.view.wait_for(|v| v.as_deref() == Some(expected)).await;
        })
        .await;
        if waited.is_err() {
            panic!(
                "{} saw {:?} after {within:?}, expected {expected:?}",
                self.id,
                *self.view.borrow()
            );
        }
    }
}

fn sorted(members: &[&Member]) -> Vec<String> {
    let mut ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_each_other_and_notice_a_leaver_at_once_and_a_dead_one_after_the_timeout() {
    let vhost = Vhost::for_test("relay-test");
    let config = config(&vhost.url, &["lms-a"]);
    declare_topology(&config).await;
    let fleet = FleetConfig {
        member_id: None,
        heartbeat_ms: 200,
        member_timeout_ms: 1000,
    };
    let mut leaver = Member::start(&vhost.url, &fleet).await;
    let mut dead = Member::start(&vhost.url, &fleet).await;
    let mut survivor = Member::start(&vhost.url, &fleet).await;

    let started = Instant::now();
    let all = sorted(&[&leaver, &dead, &survivor]);
    for member in [&mut leaver, &mut dead, &mut survivor] {
        member.sees(&all, Duration::from_secs(2)).await;
    }
    println!("3 members agree after {:?}", started.elapsed());

    let stopped = Instant::now();
    let _ = leaver.stop.send(true);
    let two = sorted(&[&dead, &survivor]);
    for member in [&mut dead, &mut survivor] {
        member.sees(&two, Duration::from_millis(500)).await;
    }
    println!("the leaver is gone after {:?}", stopped.elapsed());
    match tokio::time::timeout(Duration::from_secs(5), leaver.task).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("the leaver did not end cleanly: {other:?}"),
    }

    // kill -9: no "leaving", the connection just goes.
    let killed = Instant::now();
    dead.task.abort();
    let _ = dead.task.await;
    let _ = dead.connection.close(320, "killed".into()).await;
    let alone = sorted(&[&survivor]);
    survivor.sees(&alone, Duration::from_millis(1500)).await;
    println!("the dead one is gone after {:?}", killed.elapsed());

    let _ = survivor.stop.send(true);
    match tokio::time::timeout(Duration::from_secs(5), survivor.task).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("the survivor did not end cleanly: {other:?}"),
    }
}
