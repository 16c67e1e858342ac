//! The ordering scenarios: the repro with an auth pause and with the
//! breaker, a cancelled consumer's buffered deliveries, shutdown, and a fault
//! run with both.

use super::*;

/// A scratch vhost with a worker configuration for `site` using `sim`, tuned
/// by `tune` before the topology is declared (so queue arguments match).
async fn rig(site: &str, sim: &MoodleSim, tune: impl FnOnce(&mut Config)) -> Rig {
    let vhost = Vhost::for_test("relay-test");
    let mut config = config(&vhost.url, &[site]);
    let token_file = temp_dir().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap_or_else(|e| panic!("{e}"));
    let s = &mut config.sites[0];
    s.moodle_url = Some(sim.url());
    s.token_file = Some(token_file);
    s.max_calls_per_minute = 60_000;
    s.min_interval_ms = 0;
    s.auth_probe_interval_s = 1;
    tune(&mut config);
    declare_topology(&config).await;
    let (conn, channel) = connect(&vhost.url).await;
    Rig {
        vhost,
        config,
        conn,
        channel,
    }
}

async fn start_sim() -> MoodleSim {
    MoodleSim::start(TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until the simulator has refused a call of `function`.
async fn wait_refused(sim: &MoodleSim, function: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !sim.calls().iter().any(|c| c.function == function && !c.ok) {
        assert!(
            Instant::now() < deadline,
            "no call of {function} was refused within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The three events of the repro, all about `course/7/user/1018`:
/// 1 course completed, 2 enrolment updated, 3 role assigned.
fn repro(site: &str) -> Events {
    let mut events = Events::default();
    for (sequence, kind) in [(1, Kind::Completion), (2, Kind::Enrolment), (3, Kind::Role)] {
        events.push(site, kind, sequence, 7, 1018);
    }
    events
}

/// Runs the repro against `sim`, whose completion lookups fail until `heal`,
/// called 1.5 s after the first refusal. Returns the subject's first-arrival
/// order (by sequence), the retried ids and the DLQ depth.
async fn run_repro(
    site: &str,
    sim: &MoodleSim,
    rig: Rig,
    heal: impl FnOnce(&MoodleSim),
) -> (Vec<u64>, HashSet<String>, u32) {
    let events = repro(site);
    let (downstream, tap, worker) = start_run(&rig, &events).await;
    wait_refused(sim, COMPLETION, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    heal(sim);
    let arrivals = downstream
        .wait_all(&events.ids, Duration::from_secs(30))
        .await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    let order = first_order(&arrivals, &events.meta, "course/7/user/1018");
    (order, retried(&tap), depth(&rig.channel, DLQ_QUEUE).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_pause_does_not_publish_later_events_of_the_subject_first() {
    let sim = start_sim().await;
    sim.invalid_token_for(COMPLETION);
    let rig = rig("lms-order-auth", &sim, |_| {}).await;
    let started = Instant::now();
    let (order, retried, dead) = run_repro("lms-order-auth", &sim, rig, |sim| {
        sim.accept_token(TOKEN);
    })
    .await;
    println!(
        "auth repro: first arrivals {order:?}, {} retried, {dead} dead-lettered, {:?}",
        retried.len(),
        started.elapsed()
    );
    assert_eq!(
        order,
        vec![1, 2, 3],
        "course/7/user/1018 first arrived in sequence order {order:?} \
         (an auth failure of 1 must not let 2 and 3 out first); retried: {retried:?}"
    );
    assert_eq!(dead, 0, "nothing dead-lettered for an auth failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_pause_does_not_publish_later_events_of_the_subject_first() {
    let sim = start_sim().await;
    sim.fail_function(COMPLETION, 503);
    let rig = rig("lms-order-breaker", &sim, |config| {
        // The first failed call opens the breaker, so no event takes a delayed
        // retry (which could be overtaken) and the order must be strict.
        let breaker = &mut config.sites[0].breaker;
        breaker.min_calls = 1;
        breaker.error_rate = 0.01;
        breaker.open_s = 2;
    })
    .await;
    let started = Instant::now();
    let (order, retried, dead) =
        run_repro("lms-order-breaker", &sim, rig, MoodleSim::clear_failures).await;
    println!(
        "breaker repro: first arrivals {order:?}, {} retried, {dead} dead-lettered, {:?}",
        retried.len(),
        started.elapsed()
    );
    assert_eq!(
        order,
        vec![1, 2, 3],
        "course/7/user/1018 first arrived in sequence order {order:?} \
         (the breaker opening on 1 must not let 2 and 3 out first); retried: {retried:?}"
    );
    assert_eq!(dead, 0);
}

/// A downstream queue bound with `#` and the retry tap, both being read.
async fn observe(rig: &Rig) -> (Tail, Tail) {
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    let downstream = Tail::start(&rig.conn, &downstream).await;
    (downstream, retry_tap(rig).await)
}

/// [`observe`], then publishes `events` and starts a worker.
async fn start_run(rig: &Rig, events: &Events) -> (Tail, Tail, Worker) {
    let (downstream, tap) = observe(rig).await;
    publish_ingest(&rig.channel, &events.messages).await;
    let worker = Worker::start(rig.config.clone()).await;
    (downstream, tap, worker)
}

/// Asserts no event is missing and no first arrival is out of order (retried
/// events aside); prints what it saw.
async fn assert_in_order(
    name: &str,
    rig: &Rig,
    events: &Events,
    arrivals: &[String],
    retried: &HashSet<String>,
) {
    let got: HashSet<&String> = arrivals.iter().collect();
    let missing = events.ids.iter().filter(|id| !got.contains(id)).count();
    let dead = depth(&rig.channel, DLQ_QUEUE).await;
    let found = violations(arrivals, &events.meta, retried);
    println!(
        "{name}: {} events, {} arrivals ({} duplicates), {missing} missing, {dead} dead-lettered, \
         {} delayed retries, {} out of order",
        events.ids.len(),
        arrivals.len(),
        arrivals.len() - got.len(),
        retried.len(),
        found.len()
    );
    assert_eq!(
        missing, 0,
        "{missing} events never arrived ({dead} in the DLQ)"
    );
    assert!(
        found.is_empty(),
        "{}",
        describe(&found, arrivals, &events.meta)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_consumer_returns_buffered_deliveries_in_order() {
    let sim = start_sim().await;
    sim.set_latency(Duration::from_millis(50));
    let site = "lms-order-buffered";
    let rig = rig(site, &sim, |config| {
        // Far more deliveries pushed than taken: most wait in the consumer's
        // buffer when the pause cancels it.
        config.amqp.prefetch = 200;
        config.worker.max_in_flight = 20;
    })
    .await;
    let events = Events::course_mix(site, 300, 10);
    let started = Instant::now();
    let (downstream, tap, worker) = start_run(&rig, &events).await;
    downstream.wait_distinct(30, Duration::from_secs(30)).await;
    sim.invalid_token_for(COMPLETION);
    wait_refused(&sim, COMPLETION, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sim.accept_token(TOKEN);
    let arrivals = downstream
        .wait_all(&events.ids, Duration::from_secs(60))
        .await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    println!("{site}: {:?}", started.elapsed());
    assert_in_order(site, &rig, &events, &arrivals, &retried(&tap)).await;
}

/// Publishes `messages` as the plugin would, a few at a time, spread over
/// `over`, in the background.
async fn publish_over_time(
    conn: &Connection,
    messages: Vec<Message>,
    over: Duration,
) -> JoinHandle<()> {
    let channel = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("channel: {e}"));
    const CHUNK: usize = 5;
    let pause = over / messages.len().div_ceil(CHUNK).max(1) as u32;
    tokio::spawn(async move {
        for chunk in messages.chunks(CHUNK) {
            publish_ingest(&channel, chunk).await;
            tokio::time::sleep(pause).await;
        }
        let _ = channel.close(200, "published".into()).await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_unpublished_deliveries_in_order() {
    let sim = start_sim().await;
    sim.set_latency(Duration::from_millis(50));
    let site = "lms-order-stop";
    let rig = rig(site, &sim, |config| {
        // Deliveries pile up in the consumer's buffer, and the broker is still
        // pushing new ones when a worker stops.
        config.amqp.prefetch = 1_000;
        config.worker.max_in_flight = 50;
        // Short: lookups still running when it ends are abandoned and returned.
        config.worker.shutdown_grace_s = 1;
    })
    .await;
    let events = Events::course_mix(site, 500, 10);
    let started = Instant::now();
    let (downstream, tap) = observe(&rig).await;
    let mut worker = Worker::start(rig.config.clone()).await;
    // Faster than the worker relays them, while it is stopped and started.
    let publisher =
        publish_over_time(&rig.conn, events.messages.clone(), Duration::from_secs(3)).await;
    // Four workers in turn: each of the first three is stopped in mid-stream.
    let mut stopped_at = Vec::new();
    for out in [40, 120, 200] {
        downstream.wait_distinct(out, Duration::from_secs(30)).await;
        worker
            .stop()
            .await
            .unwrap_or_else(|e| panic!("worker stopped at {out}: {e}"));
        stopped_at.push(downstream.distinct());
        worker = Worker::start(rig.config.clone()).await;
    }
    publisher.await.unwrap_or_else(|e| panic!("publisher: {e}"));
    let arrivals = downstream
        .wait_all(&events.ids, Duration::from_secs(60))
        .await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("last worker: {e}"));
    println!(
        "{site}: workers stopped with {stopped_at:?} events out; {:?}",
        started.elapsed()
    );
    assert_in_order(site, &rig, &events, &arrivals, &retried(&tap)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_run_keeps_per_subject_order_except_delayed_retries() {
    let sim = start_sim().await;
    sim.set_latency(Duration::from_millis(5));
    let site = "lms-order-faults";
    let rig = rig(site, &sim, |config| {
        // Several events of a subject in flight or waiting in the consumer's
        // buffer at once (sequences of a subject are 200 apart).
        config.amqp.prefetch = 1_000;
        let s = &mut config.sites[0];
        s.max_concurrency = 4;
        s.enrich.batch_wait_ms = 50;
        s.breaker.window_s = 5;
        s.breaker.min_calls = 5;
        s.breaker.error_rate = 0.5;
        s.breaker.open_s = 1;
    })
    .await;
    // 200 subjects × 25 events: every 4th subject is a user's (user.updated),
    // the others a course user's (enrolment, role, completion in turn), over
    // 20 courses; sequence n goes to subject (n - 1) % 200.
    let mut events = Events::default();
    for n in 1..=5_000u64 {
        let s = ((n - 1) % 200) as i64;
        let round = ((n - 1) / 200) as usize;
        let kind = match s % 4 {
            0 => Kind::User,
            _ => Kind::COURSE_KINDS[round % 3],
        };
        events.push(site, kind, n, 7 + s % 20, 2000 + s);
    }
    let started = Instant::now();
    let (downstream, tap, worker) = start_run(&rig, &events).await;

    downstream
        .wait_distinct(1_000, Duration::from_secs(30))
        .await;
    let auth_at = downstream.distinct();
    sim.invalid_token_for(USERS);
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.accept_token(TOKEN);

    downstream
        .wait_distinct(2_500, Duration::from_secs(30))
        .await;
    let breaker_at = downstream.distinct();
    sim.fail_all(503);
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.clear_failures();

    let arrivals = downstream
        .wait_all(&events.ids, Duration::from_secs(60))
        .await;
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    let calls = sim.calls();
    let refused = calls
        .iter()
        .filter(|c| c.function == USERS && !c.ok)
        .count();
    let failed = calls.iter().filter(|c| !c.ok).count() - refused;
    let retried = retried(&tap);
    let mut delayed: Vec<&(String, u64)> = retried
        .iter()
        .filter_map(|id| events.meta.get(id))
        .collect();
    delayed.sort_by_key(|(_, sequence)| *sequence);
    println!(
        "{site}: auth pause from {auth_at} arrivals, 503s from {breaker_at}; {} Moodle calls, \
         {refused} refused user lookups, {failed} other failures; {:?}\n\
         {} delayed retries (subject, sequence): {delayed:?}",
        calls.len(),
        started.elapsed(),
        delayed.len(),
    );
    assert!(refused > 0, "the auth fault never reached Moodle");
    assert!(failed > 0, "the 503s never reached Moodle");
    let log = captured_log(site);
    let logged = |text: &str| log.iter().filter(|l| l.contains(text)).count();
    let auth_pauses = logged("Moodle refused the relay's credentials");
    let breaker_pauses = logged("circuit breaker open, site paused");
    println!("{site}: {auth_pauses} auth pauses, {breaker_pauses} breaker pauses");
    assert!(
        auth_pauses > 0,
        "the site never paused for the refused token"
    );
    assert!(
        breaker_pauses > 0,
        "the breaker never opened and paused the site"
    );
    assert_in_order(site, &rig, &events, &arrivals, &retried).await;
}
