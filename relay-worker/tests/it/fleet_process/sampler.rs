//! A sampler inside the broker: the active consumer of every site queue,
//! every 50 ms, for the whole test; and `rabbitmqctl list_consumers` to check it.

use super::*;

/// Erlang run by `rabbitmqctl eval`: every 50 ms, one line
/// `S <ms> <query ms> <waiting>` followed by ` <queue>=<tag>` for each active
/// consumer of the vhost (`waiting`: consumers single active consumer keeps
/// waiting). It runs at high priority and hands its lines to a writer, so
/// that a slow CLI does not delay the samples. It stops once the vhost is
/// deleted (the test's end, passed or failed), when the CLI node goes away,
/// or after 5 minutes: killing the CLI from here is not enough, as
/// `rabbitmqctl` run by root starts it through `su` in a session of its own.
pub(super) fn sampler_expression(vhost: &str) -> String {
    format!(
        r#"VHost = <<"{vhost}">>,
GL = group_leader(),
Me = node(GL),
process_flag(priority, high),
Writer = spawn_link(fun W() -> receive Line -> io:format(GL, "~s", [Line]), W() end end),
Pair = fun(R) -> {{resource, _, queue, Q}} = proplists:get_value(queue_name, R),
                 [" ", Q, "=", proplists:get_value(consumer_tag, R)] end,
Loop = fun L(0) -> ok;
           L(N) -> case rabbit_vhost:exists(VHost) andalso lists:member(Me, nodes(hidden)) of
                       false -> ok;
                       true ->
                           T0 = erlang:monotonic_time(millisecond),
                           Rows = rabbit_amqqueue:consumers_all(VHost),
                           T1 = erlang:monotonic_time(millisecond),
                           {{Active, Waiting}} = lists:partition(
                               fun(R) -> proplists:get_value(active, R) =:= true end, Rows),
                           Writer ! io_lib:format("S ~b ~b ~b~s~n",
                                     [T0, T1 - T0, length(Waiting), [Pair(R) || R <- Active]]),
                           timer:sleep(max(0, 50 - (T1 - T0))),
                           L(N - 1)
                   end
       end,
Loop(6000),
unlink(Writer),
exit(Writer, kill)."#
    )
}

/// The longest time between two samples aimed at; longer gaps are reported.
pub(super) const POLL_MS: i64 = 250;

/// The longest time between two samples allowed while the share moves (a
/// kill, a stop, a return): beyond it the check would mean little. The
/// sampler asks every 50 ms and gaps stay under `POLL_MS` in most runs, but
/// no poll of the broker can promise that on a loaded 2-core machine: right
/// after a kill -9 samples came up to 415 ms apart with an 8-70 ms query (the
/// broker stalled), and up to 541 ms apart when the busy quorum queues took
/// that long to answer the query itself.
pub(super) const MOVE_GAP_MS: i64 = 1_000;

/// What the sampler saw so far.
#[derive(Default)]
pub(super) struct Seen {
    latest: Option<Holders>,
    /// Each sample's time by the broker's clock, in ms.
    stamps: Vec<i64>,
    longest_query_ms: i64,
    /// Most consumers seen waiting at once (single active consumer at work).
    most_waiting: usize,
    /// The first sample with two active consumers on a site.
    violation: Option<String>,
}

impl Seen {
    /// Takes one sampler line.
    pub(super) fn record(&mut self, line: &str) {
        let mut words = line.split_whitespace();
        if words.next() != Some("S") {
            return;
        }
        let mut number = || -> i64 { words.next().and_then(|w| w.parse().ok()).unwrap_or(0) };
        let (at, query, waiting) = (number(), number(), number());
        let sample = holders_of(words.filter_map(|w| w.split_once('=')));
        self.stamps.push(at);
        self.longest_query_ms = self.longest_query_ms.max(query);
        self.most_waiting = self.most_waiting.max(waiting as usize);
        match sample {
            Ok(holders) => self.latest = Some(holders),
            Err(two) => {
                let n = self.stamps.len();
                self.violation.get_or_insert(format!("sample {n}: {two}"));
            }
        }
    }

    /// (ms since the first sample, gap) of each gap between samples from
    /// number `from` on.
    pub(super) fn gaps(&self, from: usize) -> impl Iterator<Item = (i64, i64)> + '_ {
        let first = self.stamps.first().copied().unwrap_or(0);
        self.stamps[from.saturating_sub(1).min(self.stamps.len())..]
            .windows(2)
            .map(move |w| (w[1] - first, w[1] - w[0]))
    }
}

/// The active consumers of a vhost, sampled every 50 ms inside the broker by
/// one long `rabbitmqctl eval` (a `rabbitmqctl list_consumers` takes about
/// 0.5 s and 0.4 s of CPU on this machine: too slow to poll every 250 ms).
pub(super) struct Sampler {
    child: Child,
    seen: Arc<Mutex<Seen>>,
}

impl Sampler {
    pub(super) fn start(vhost: &str) -> Sampler {
        let mut child = Command::new("rabbitmqctl")
            .args(["eval", &sampler_expression(vhost)])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("rabbitmqctl eval: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                shared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(&line);
            }
        });
        Sampler { child, seen }
    }

    /// The latest sample; panics if any sample so far had two active
    /// consumers on a site.
    pub(super) fn now(&self) -> Holders {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(violation) = &seen.violation {
            panic!("{violation}");
        }
        seen.latest.clone().unwrap_or_default()
    }

    /// Looks at each sample (every 50 ms) until the holders `fit`; returns how long it took,
    /// or panics with the last view after `within`.
    pub(super) async fn until(
        &self,
        within: Duration,
        what: &str,
        fit: impl Fn(&Holders) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let now = self.now();
            if fit(&now) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "not {what} within {within:?}: {:?} ({} of {} sites held)",
                shares(&now),
                now.len(),
                SITES.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many samples so far: where a move starts, for [`Sampler::moved`].
    pub(super) fn mark(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stamps
            .len()
    }

    /// Panics unless the samples since `mark` came at most `MOVE_GAP_MS`
    /// apart; returns the longest gap.
    pub(super) fn moved(&self, mark: usize) -> i64 {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let longest = seen.gaps(mark).map(|(_, gap)| gap).max().unwrap_or(0);
        let slow: Vec<(i64, i64)> = seen.gaps(mark).filter(|(_, g)| *g > POLL_MS).collect();
        assert!(
            longest <= MOVE_GAP_MS,
            "while the share moved, the broker was sampled only every {longest} ms: (ms into \
             the run, gap) {slow:?}, longest query {} ms",
            seen.longest_query_ms
        );
        longest
    }

    /// Stops sampling; checks that no sample ever had two active consumers on
    /// a site and that sampling never stalled. Returns a summary to print.
    pub(super) fn finish(mut self) -> String {
        let _ = self.now();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let longest = seen.gaps(0).map(|(_, gap)| gap).max().unwrap_or(0);
        let slow: Vec<(i64, i64)> = seen.gaps(0).filter(|(_, g)| *g > POLL_MS).collect();
        assert!(
            longest < 2 * MOVE_GAP_MS,
            "the sampler stalled for {longest} ms"
        );
        format!(
            "{} broker samples, never two active consumers on a site; longest gap {longest} ms \
             (over {POLL_MS} ms at (ms into the run, gap): {slow:?}), longest query {} ms, \
             up to {} consumers waiting at once",
            seen.stamps.len(),
            seen.longest_query_ms,
            seen.most_waiting
        )
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_sample_with_two_active_consumers_on_one_site_fails_the_test() {
    let mut seen = Seen::default();
    seen.record("S 100 1 0 relay.ingest.fproc-a=relay-worker.fproc-a.p1.0a1b");
    seen.record("S 200 1 1 relay.ingest.fproc-b=relay-worker.fproc-b.p2.0c1d");
    assert!(seen.violation.is_none());
    assert_eq!(
        seen.latest.as_ref().and_then(|h| h.get("fproc-b")),
        Some(&"p2".to_owned())
    );
    seen.record(
        "S 300 1 0 relay.ingest.fproc-a=relay-worker.fproc-a.p1.0a1b \
         relay.ingest.fproc-a=relay-worker.fproc-a.p3.9f9f",
    );
    assert_eq!(
        seen.violation.as_deref(),
        Some("sample 3: two active consumers on fproc-a: p1 and p3")
    );
    assert_eq!(seen.gaps(0).map(|(_, gap)| gap).max(), Some(100));
}
