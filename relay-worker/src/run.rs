//! The worker's life: serve the HTTP endpoints, connect, declare the topology,
//! run every site's pipeline, reconnect with capped backoff when the broker is
//! lost, and shut down cleanly when asked.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::{Connection, ConnectionProperties};
use relay_contract::Validator;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::connect::{self, Brokers};
use crate::fleet::{self, membership};
use crate::http::{self, Readiness};
use crate::metrics;
use crate::moodle::gateway::MoodleGateway;
use crate::pipeline::{SiteContext, SitePipeline};
use crate::topology::{Topology, TopologyError, retry_steps};

/// Why the worker stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("schemas: {0}")]
    Schemas(#[from] relay_contract::validate::SchemaError),
    #[error("site {site}: {source}")]
    Moodle {
        site: String,
        source: crate::moodle::MoodleError,
    },
}

/// The broker connection broke while `what`; the error without credentials.
fn lost(what: &str, error: lapin::Error) -> Ended {
    Ended::Lost(relay_contract::redact::credentials(&format!(
        "{what}: {error}"
    )))
}

/// A connection attempt ended.
enum Ended {
    /// Asked to stop, and stopped.
    Stopped,
    /// Lost the broker; try again.
    Lost(String),
}

/// Runs the worker until `shutdown` resolves (then drains and returns `Ok`) or
/// a fatal error (a topology conflict, a port in use).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let listen = config.worker.listen;
    let listener = http::bind(listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: listen,
            source,
        })?;
    run_with_listener(listener, config, shutdown).await
}

/// [`run`] with the HTTP endpoints on an already bound listener (tests bind
/// port 0 and read the port).
pub async fn run_with_listener(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let metrics_handle = metrics::install();
    let ready = Arc::new(Readiness::default());
    let listen = listener.local_addr().unwrap_or(config.worker.listen);
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // The endpoints stop when the worker does, whether asked to or not.
    let (http_stop_tx, http_stop) = watch::channel(false);
    let http = tokio::spawn(http::serve(
        listener,
        metrics_handle,
        ready.clone(),
        wait_for(http_stop),
    ));
    tracing::info!(listen = %listen, sites = config.sites.len(), version = crate::properties::VERSION,
        "relay-worker starting");

    let member: Arc<str> = membership::member_id(&config.fleet).into();
    let contexts = contexts(&config, &member)?;
    let topology = Topology::for_config(&config);
    let brokers = Brokers::from_config(&config.amqp);
    let max_backoff = Duration::from_secs(config.worker.reconnect_max_backoff_s);
    let mut backoff = Duration::from_millis(500);
    let result = loop {
        if *stop.borrow() {
            break Ok(());
        }
        let attempt = connect_and_run(
            &config,
            &brokers,
            &topology,
            &contexts,
            &member,
            &ready,
            stop.clone(),
        );
        match attempt.await {
            Ok(Ended::Stopped) => break Ok(()),
            Ok(Ended::Lost(error)) => {
                ready.set(false);
                metrics::reconnecting(&error, backoff.as_secs_f64());
                let mut stop_wait = stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop_wait.wait_for(|s| *s) => break Ok(()),
                }
                backoff = (backoff * 2).min(max_backoff);
            }
            Err(fatal) => break Err(fatal),
        }
        if ready.get() {
            backoff = Duration::from_millis(500);
        }
    };
    ready.set(false);
    metrics::broker_connected(false);
    let _ = http_stop_tx.send(true);
    let _ = http.await;
    tracing::info!("relay-worker stopped");
    result
}

/// A configured site: what its pipeline needs on every connection, and the
/// switch the fleet's share turns.
struct Site {
    ctx: SiteContext,
    owned: Arc<watch::Sender<bool>>,
}

fn contexts(config: &Config, member: &Arc<str>) -> Result<Vec<Site>, RunError> {
    let validator = Arc::new(Validator::new()?.with_max_bytes(config.worker.max_event_bytes));
    let steps = Arc::new(retry_steps(config));
    let in_flight = Arc::new(Semaphore::new(config.worker.max_in_flight));
    config
        .sites
        .iter()
        .map(|site| {
            let moodle = MoodleGateway::from_config(site).map_err(|source| RunError::Moodle {
                site: site.id.to_string(),
                source,
            })?;
            if let Some(m) = &moodle {
                tokio::spawn(heartbeat(
                    Arc::downgrade(m),
                    Duration::from_secs(site.heartbeat_s),
                ));
            }
            let (owned, owned_rx) = watch::channel(false);
            let ctx = SiteContext {
                site: site.id.clone(),
                validator: validator.clone(),
                retry_steps: steps.clone(),
                in_flight: in_flight.clone(),
                shutdown_grace: Duration::from_secs(config.worker.shutdown_grace_s),
                metrics: metrics::SiteMetrics::new(site.id.as_str()),
                moodle,
                auth_probe_interval: Duration::from_secs(site.auth_probe_interval_s),
                owned: owned_rx,
                member: member.clone(),
            };
            Ok(Site {
                ctx,
                owned: Arc::new(owned),
            })
        })
        .collect()
}

/// One set of connections: declare, consume every site, until stopped or lost.
async fn connect_and_run(
    config: &Config,
    brokers: &Brokers,
    topology: &Topology,
    sites: &[Site],
    member: &str,
    ready: &Readiness,
    stop: watch::Receiver<bool>,
) -> Result<Ended, RunError> {
    // A broker that is still starting accepts TCP before it answers AMQP: every
    // step of setting up is bounded (connecting, and each declaration, by
    // `amqp.connect_timeout_s`, so declaring many sites may take longer in
    // all), and a stop request is honoured meanwhile.
    let mut stop_wait = stop.clone();
    let (connections, mut tasks) = tokio::select! {
        result = set_up(config, brokers, topology, sites, member, stop.clone()) => match result {
            Ok(Ok(running)) => running,
            Ok(Err(ended)) => return Ok(ended),
            Err(fatal) => return Err(fatal),
        },
        _ = stop_wait.wait_for(|s| *s) => return Ok(Ended::Stopped),
    };
    ready.set(true);
    metrics::broker_connected(true);
    tracing::info!(sites = sites.len(), "connected; consuming");

    let mut ended = Ended::Stopped;
    // Any connection gone ends them all: the sites on the others are given
    // back by closing those, and every site starts again on a new set.
    let mut watching: FuturesUnordered<_> = connections.iter().map(|c| connect::lost(c)).collect();
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(joined) => joined,
                None => break,
            },
            Some(reason) = watching.next() => {
                ended = Ended::Lost(reason);
                tasks.abort_all();
                continue;
            }
        };
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                ended = lost("site pipeline", e);
                // The others share the dead connection; end them now.
                tasks.abort_all();
            }
            Err(join) if join.is_cancelled() => {}
            Err(join) => {
                ended = Ended::Lost(format!("site pipeline panicked: {join}"));
                tasks.abort_all();
            }
        }
    }
    drop(watching);
    ready.set(false);
    // Channels are closed by each pipeline; the connection last (closing it right
    // after the last ack can lose acks otherwise).
    for connection in connections {
        let _ = connection.close(200, "relay-worker stopping".into()).await;
    }
    Ok(ended)
}

/// Connects, declares the topology and starts every site's pipeline. Sites
/// are spread over connections of at most `amqp.sites_per_connection` each:
/// a site it consumes holds two channels, and RabbitMQ allows 2,047 per
/// connection.
async fn set_up(
    config: &Config,
    brokers: &Brokers,
    topology: &Topology,
    sites: &[Site],
    member: &str,
    stop: watch::Receiver<bool>,
) -> Result<Result<(Vec<Arc<Connection>>, JoinSet<lapin::Result<()>>), Ended>, RunError> {
    let per_connection = config.amqp.sites_per_connection.max(1);
    let first = match connect(config, brokers).await {
        Ok(connection) => connection,
        Err(ended) => return Ok(Err(ended)),
    };
    match topology.declare(&first).await {
        Ok(()) => {}
        Err(TopologyError::Broker { source, .. }) => {
            return Ok(Err(lost("declaring the topology", source)));
        }
        Err(slow @ TopologyError::Slow { .. }) => return Ok(Err(Ended::Lost(slow.to_string()))),
        Err(conflict) => return Err(conflict.into()),
    }
    let mut connections = vec![first.clone()];
    while connections.len() < sites.len().div_ceil(per_connection) {
        match connect(config, brokers).await {
            Ok(connection) => connections.push(connection),
            Err(ended) => {
                for connection in connections {
                    let _ = connection
                        .close(200, "relay-worker: set-up failed".into())
                        .await;
                }
                return Ok(Err(ended));
            }
        }
    }
    let mut tasks = JoinSet::new();
    // Until this worker has heard its peers, every site is its own: single
    // active consumer keeps its consumer waiting where another worker's is
    // active, and the fleet's share sorts the rest out once it is known.
    let mut switches = Vec::new();
    for site in sites {
        site.owned.send_replace(true);
        switches.push((site.ctx.site.clone(), site.owned.clone()));
    }
    let (view_tx, view) = watch::channel(None);
    tasks.spawn(membership::run(
        first,
        member.to_string(),
        config.fleet.clone(),
        view_tx,
        stop.clone(),
    ));
    tasks.spawn(fleet::follow(view, member.to_string(), switches));
    for (site, connection) in sites.iter().zip(
        connections
            .iter()
            .flat_map(|c| std::iter::repeat_n(c, per_connection)),
    ) {
        let connection = connection.clone();
        let pipeline = SitePipeline::new(connection, site.ctx.clone(), config.amqp.prefetch);
        tasks.spawn(pipeline.run(stop.clone()));
    }
    Ok(Ok((connections, tasks)))
}

/// One connection to the next of the cluster's nodes (or the one broker),
/// bounded by `amqp.connect_timeout_s`.
async fn connect(config: &Config, brokers: &Brokers) -> Result<Arc<Connection>, Ended> {
    let limit = Duration::from_secs(config.amqp.connect_timeout_s);
    let connecting = connect::connect(brokers, ConnectionProperties::default());
    let Ok(connected) = tokio::time::timeout(limit, connecting).await else {
        return Err(Ended::Lost(format!(
            "the broker did not answer within {} s while connecting",
            limit.as_secs()
        )));
    };
    // Shared by the sites on it: each opens its channels again after a pause.
    // The error is already without credentials.
    connected
        .map(Arc::new)
        .map_err(|e| Ended::Lost(e.to_string()))
}

/// `core_webservice_get_site_info` every `every`, driving `relay_moodle_up`
/// and the token's expiry (its file is read with each call); ends when the
/// site is dropped.
async fn heartbeat(site: std::sync::Weak<MoodleGateway>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Some(site) = site.upgrade() else { return };
        let up = site.probe().await.is_ok();
        metrics::moodle_up(site.site.as_str(), up);
        metrics::token_expiry(site.site.as_str(), site.token_expiry());
    }
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
