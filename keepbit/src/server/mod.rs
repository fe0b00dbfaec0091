//! The client-facing server: accepts connections and runs one task per client.
//!
//! - [`Server`]: what every connection shares: the node's front, the cluster (if any),
//!   pub/sub, connected clients, counters and the runtime configuration.
//! - [`conn`]: the per-connection loop (RESP2/3, pipelining, limits, blocking waits).
//! - [`session`]: one client's state and the one dispatch of session commands.
//! - [`admin`]: CLIENT, COMMAND, INFO, CONFIG, PUBSUB; [`replication`]: ROLE, INFO
//!   replication, WAIT, SENTINEL, KEEPBIT CLUSTER.
//! - [`clients`]: what the server can see of connected clients; [`stats`]: counters.
//! - [`health`]: the health sampler and its report; [`http`]: the admin HTTP port
//!   (`/health`, `/ready`, `/primary`, `/replica`, `/metrics`); [`dashboard`]: the live
//!   dashboard it serves at `/`; [`proactive`]: moves leadership off this primary when
//!   its health keeps degrading (policy in `health::policy`).

pub mod admin;
pub mod clients;
mod conn;
pub mod dashboard;
pub mod health;
pub mod http;
mod proactive;
mod replication;
pub mod session;
pub mod stats;

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::pubsub::PubSub;
use crate::raft::cluster::{demotion, Cluster};
use crate::tls::TlsAcceptor;
use clients::{ClientShared, Clients};
pub use conn::ConnLimits;
use health::HealthReport;
use stats::Stats;

/// What every connection of this node shares.
pub struct Server {
    pub node: Arc<Node>,
    pub cluster: Option<Arc<Cluster>>,
    pub pubsub: Arc<PubSub>,
    pub clients: Clients,
    pub stats: Stats,
    pub metrics: Arc<Metrics>,
    /// The health sampler's last report.
    pub health: Mutex<HealthReport>,
    config: Mutex<Config>,
    limits: Mutex<ConnLimits>,
    pub started: Instant,
    pub started_unix_s: u64,
    pub run_id: String,
}

impl Server {
    pub fn new(
        config: Config,
        node: Arc<Node>,
        cluster: Option<Arc<Cluster>>,
        pubsub: Arc<PubSub>,
        metrics: Arc<Metrics>,
    ) -> Server {
        let mut rng = rand::thread_rng();
        let run_id: String = (0..40).map(|_| format!("{:x}", rng.gen_range(0..16))).collect();
        Server {
            started_unix_s: node.now_ms() / 1000,
            node,
            cluster,
            pubsub,
            clients: Clients::default(),
            stats: Stats::default(),
            metrics,
            health: Mutex::new(HealthReport::default()),
            limits: Mutex::new(ConnLimits::of(&config)),
            config: Mutex::new(config),
            started: Instant::now(),
            run_id,
        }
    }

    pub fn config(&self) -> Config {
        self.config.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn conn_limits(&self) -> ConnLimits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the runtime configuration (CONFIG SET).
    pub fn set_config(&self, config: Config) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = ConnLimits::of(&config);
        self.node.memory.set_max(config.maxmemory_bytes);
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }

    pub fn databases(&self) -> usize {
        self.node.databases()
    }
}

/// Runs `task` every `interval` until the server is dropped.
fn spawn_every<F, Fut>(server: &Arc<Server>, interval: Duration, task: F)
where
    F: Fn(Arc<Server>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let weak = Arc::downgrade(server);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            let Some(srv) = weak.upgrade() else { return };
            task(srv).await;
        }
    });
}

/// Measures the process's memory for the maxmemory check.
fn spawn_memory_sampler(server: &Arc<Server>, interval: Duration) {
    spawn_every(server, interval, |srv| async move { srv.node.memory.sample(crate::memory::rss_bytes()) });
}

/// Runs active expiry: keeps going while a large share of the sample was due, as Redis does.
fn spawn_expiry(server: &Arc<Server>, interval: Duration) {
    spawn_every(server, interval, |srv| async move {
        loop {
            let n = srv.node.expire_cycle(200).await;
            srv.stats.expired_keys.fetch_add(n as u64, Relaxed);
            if n < 200 {
                break;
            }
            tokio::task::yield_now().await;
        }
    });
}

/// Closes the client connections of a primary that has been demoted, so pools
/// reconnect and rediscover (subscribers stay: pub/sub works on any node).
fn spawn_demotion_watch(server: &Arc<Server>) {
    let Some(cluster) = &server.cluster else { return };
    let mut primary = cluster.primary_changes();
    let grace = cluster.demotion_grace();
    let weak = Arc::downgrade(server);
    tokio::spawn(async move {
        loop {
            if primary.wait_for(|p| *p).await.is_err() || !demotion(&mut primary, grace).await {
                return;
            }
            let Some(srv) = weak.upgrade() else { return };
            tracing::warn!("this node is no longer primary: closing client connections");
            srv.clients.all().iter().filter(|c| !c.is_pubsub()).for_each(|c| c.kill("primary demoted"));
        }
    });
}

/// How long a client gets to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one accepted client, after the TLS handshake when the port speaks TLS; a client
/// that fails it (plain text on a TLS port, a rejected certificate) is dropped.
async fn serve(server: Arc<Server>, stream: TcpStream, client: Arc<ClientShared>, tls: Option<TlsAcceptor>) {
    let Some(tls) = tls else {
        return conn::serve(server, stream, client).await;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
        Ok(Ok(stream)) => conn::serve(server, stream, client).await,
        Ok(Err(e)) => {
            tracing::debug!("client {}: TLS handshake failed: {e}", client.addr);
            server.clients.remove(client.id);
        }
        Err(_) => {
            tracing::debug!("client {}: no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}", client.addr);
            server.clients.remove(client.id);
        }
    }
}

/// Connections turned away at `maxclients` that may still be told why at once; beyond
/// this (a flood), they are closed without a reply.
const REJECTIONS_IN_FLIGHT_MAX: usize = 64;

/// Tells a client turned away at `maxclients` why, in the protocol its port speaks: on a
/// TLS port the error follows the handshake (plain text there would be garbage to the
/// client's TLS layer).
fn reject_full(mut stream: TcpStream, tls: Option<TlsAcceptor>, rejections: &Arc<tokio::sync::Semaphore>) {
    let Ok(permit) = rejections.clone().try_acquire_owned() else {
        return;
    };
    const REPLY: &[u8] = b"-ERR max number of clients reached\r\n";
    tokio::spawn(async move {
        let _permit = permit;
        let Some(tls) = tls else {
            let _ = stream.write_all(REPLY).await;
            return;
        };
        let _ = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, async {
            let mut stream = tls.accept(stream).await?;
            stream.write_all(REPLY).await?;
            stream.shutdown().await
        })
        .await;
    });
}

/// Serves clients on `listener` until `shutdown` resolves, over TLS when `tls` is given.
/// The caller binds the listener (tests use port 0).
pub async fn run(
    server: Arc<Server>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    spawn_expiry(&server, Duration::from_millis(100));
    spawn_memory_sampler(&server, Duration::from_millis(100));
    spawn_demotion_watch(&server);
    health::spawn_sampler(&server);
    if crate::faults::global().armed() {
        admin::spawn_stalls();
    }
    tokio::pin!(shutdown);
    let rejections = Arc::new(tokio::sync::Semaphore::new(REJECTIONS_IN_FLIGHT_MAX));
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        server.stats.connections_received.fetch_add(1, Relaxed);
        let _ = stream.set_nodelay(true);
        let laddr = stream.local_addr().unwrap_or(addr);
        let max = server.config().maxclients;
        let Some(client) = server.clients.register(addr, laddr, max) else {
            server.stats.rejected_connections.fetch_add(1, Relaxed);
            reject_full(stream, tls.clone(), &rejections);
            continue;
        };
        tokio::spawn(serve(server.clone(), stream, client, tls.clone()));
    }
    for c in server.clients.all() {
        c.kill("server shutting down");
    }
}
