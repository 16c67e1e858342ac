//! The fleet under SIGKILL and a rolling restart, with the real binary.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_busiest_worker_moves_its_sites_within_15_s_and_back_within_30_s_after_a_restart()
 {
    let rig = Rig::new(&SITES).await;
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    let sampler = Sampler::start(&rig.vhost.name);
    let mut fleet = even_fleet(&rig, &sampler).await;

    let publisher = Publisher::start(&rig.vhost.url).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A backlog, so that the worker killed has its prefetch windows full.
    publisher.burst(BURST).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = shares(&sampler.now());
    let (busiest, held) = before
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(m, n)| (m.clone(), *n))
        .unwrap_or_else(|| panic!("nobody holds a site"));
    let mut backlog = 0;
    for (site, member) in sampler.now() {
        if member == busiest {
            backlog += depth(&rig.channel, &format!("relay.ingest.{site}")).await;
        }
    }
    let mark = sampler.mark();
    let process = fleet.take(&busiest);
    tokio::task::spawn_blocking(move || process.kill_9())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let taken_over = sampler
        .until(
            Duration::from_secs(15),
            "taken over",
            all_held_without(&busiest),
        )
        .await;
    let after_kill = shares(&sampler.now());

    fleet.spawn(&busiest);
    let back = sampler
        .until(Duration::from_secs(30), "even again", even)
        .await;
    let after_restart = shares(&sampler.now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = sampler.now();
    assert!(even(&settled), "not even 2 s later: {:?}", shares(&settled));
    let sampled_every = sampler.moved(mark);
    let ids = publisher.finish().await;

    let got = delivered(&rig, &downstream, &ids, Duration::from_secs(60)).await;
    fleet.stop().await;
    let sampled = sampler.finish();
    println!(
        "kill -9 {busiest} (held {held} of {before:?}, {backlog} events ready in their queues \
         besides those in flight): sites taken over in {taken_over:?} \
         ({after_kill:?}); restarted, even again in {back:?} ({after_restart:?}, 2 s later {:?}); \
         broker sampled at least every {sampled_every} ms from the kill to 2 s after",
        shares(&settled)
    );
    println!(
        "{} events published, {} received: {} lost, {} duplicates (bound {} = prefetch {PREFETCH} \
         x {held} sites), {} first arrivals out of site order; {sampled}",
        ids.len(),
        got.received,
        got.lost,
        got.duplicates,
        PREFETCH * held,
        got.backwards.len()
    );
    assert_eq!(got.lost, 0, "events lost");
    assert!(
        got.duplicates <= PREFETCH * held,
        "{} duplicates",
        got.duplicates
    );
    assert!(
        got.backwards.is_empty(),
        "out of site order: {:?}",
        got.backwards
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_the_whole_fleet_under_load_loses_nothing() {
    let rig = Rig::new(&SITES).await;
    let downstream = downstream_queue(&rig.channel, "#", FieldTable::default()).await;
    let sampler = Sampler::start(&rig.vhost.name);
    let mut fleet = even_fleet(&rig, &sampler).await;

    let publisher = Publisher::start(&rig.vhost.url).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for member in MEMBERS {
        let mark = sampler.mark();
        let asked = Instant::now();
        fleet.terminate(member).await;
        let exited = asked.elapsed();
        sampler
            .until(
                Duration::from_secs(15),
                "taken over",
                all_held_without(member),
            )
            .await;
        let taken_over = asked.elapsed();
        fleet.spawn(member);
        let back = sampler
            .until(Duration::from_secs(30), "even again", even)
            .await;
        let after = shares(&sampler.now());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let settled = sampler.now();
        assert!(even(&settled), "not even 1 s later: {:?}", shares(&settled));
        println!(
            "restart {member}: exited {exited:?} after SIGTERM, all its sites held by the others \
             {taken_over:?} after SIGTERM, even again {back:?} after the new start: {after:?} (1 s \
             later {:?}); broker sampled at least every {} ms",
            shares(&settled),
            sampler.moved(mark)
        );
    }
    let ids = publisher.finish().await;

    let got = delivered(&rig, &downstream, &ids, Duration::from_secs(60)).await;
    fleet.stop().await;
    let sampled = sampler.finish();
    println!(
        "rolling restart: {} events published, {} received: {} lost, {} duplicates, {} first \
         arrivals out of site order; {sampled}",
        ids.len(),
        got.received,
        got.lost,
        got.duplicates,
        got.backwards.len()
    );
    assert_eq!(got.lost, 0, "events lost");
    assert!(
        got.backwards.is_empty(),
        "out of site order: {:?}",
        got.backwards
    );
    assert_eq!(
        got.duplicates, 0,
        "a clean stop settles what it took: no duplicates"
    );
}
