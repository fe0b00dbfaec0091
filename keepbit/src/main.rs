//! The `keepbit` command line: wiring only.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use keepbit::clock::{Clock, SystemClock};
use keepbit::config::Config;
use keepbit::machine::{Executor, Machine, Standalone};
use keepbit::node::Node;
use keepbit::pubsub::PubSub;
use keepbit::raft::cluster::Cluster;
use keepbit::server::Server;
use keepbit::tls::{PeerTls, Tls};
use tools::{admin_password, cluster, events, failover, status, ClientTlsArgs, ClusterAction, EventsArgs, StatusArgs};

mod tools;

#[derive(Parser)]
#[command(name = "keepbit", version, about = "Redis-compatible key-value store built for uninterrupted service")]
struct Cli {
    #[command(subcommand)]
    command: CliCommand,
}

#[derive(Subcommand)]
enum CliCommand {
    /// Run a Keepbit node.
    Server(ServerArgs),
    /// Start a local cluster on 127.0.0.1 to try Keepbit (Ctrl-C stops it).
    Up {
        /// Number of nodes (3 or 5 tolerate one or two failures).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Where the nodes keep their data and logs.
        #[arg(long, default_value = "keepbit-data")]
        data_dir: PathBuf,
        /// Client ports are base+1 .. base+N; peer ports add 10000.
        #[arg(long, default_value_t = 6380)]
        base_port: u16,
        /// active-passive or active-active.
        #[arg(long, default_value = "active-passive")]
        mode: String,
    },
    /// Failover drills: inject faults under a checked workload and report recovery times.
    Drill(DrillArgs),
    /// Inspect or change cluster membership through any node.
    Cluster {
        /// A node's client address.
        #[arg(long, global = true, default_value = "127.0.0.1:6381")]
        node: String,
        /// The admin user's password, needed to add or remove members (also read from
        /// $KEEPBIT_ADMIN_PASSWORD).
        #[arg(long, global = true)]
        admin_password: Option<String>,
        /// Read the admin password from this file (`keepbit up` writes one).
        #[arg(long, global = true, conflicts_with = "admin_password")]
        admin_password_file: Option<PathBuf>,
        #[command(flatten)]
        tls: ClientTlsArgs,
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Planned switchover: hand the primary role to a caught-up standby (Redis's FAILOVER),
    /// through any node.
    Failover {
        /// A node's client address (the command runs on the primary it names).
        #[arg(long, default_value = "127.0.0.1:6381")]
        node: String,
        /// Hand over to this node id (once it has caught up); default: any caught-up voter.
        #[arg(long)]
        to: Option<u64>,
        /// Give up (writes resume on the old primary) if no standby caught up in time.
        #[arg(long)]
        timeout: Option<u64>,
        /// The admin user's password (also read from $KEEPBIT_ADMIN_PASSWORD).
        #[arg(long)]
        admin_password: Option<String>,
        /// Read the admin password from this file (`keepbit up` writes one).
        #[arg(long, conflicts_with = "admin_password")]
        admin_password_file: Option<PathBuf>,
        #[command(flatten)]
        tls: ClientTlsArgs,
    },
    /// The failover journal: every leadership change with its cause and timings.
    Events(EventsArgs),
    /// One screen for an operator: nodes, roles, health, lag, failovers and MTTR.
    Status(StatusArgs),
}

#[derive(Args)]
struct DrillArgs {
    /// Scenario to run (repeatable), or `all`: kill-primary, kill-standby, kill-majority,
    /// flap, pause-primary, pause-standby, partition-primary, partition-halves,
    /// partition-bridge, rolling-restart, switchover, slow-disk-primary, crash-loop, failback
    /// (the last three only on the cluster the drill starts).
    #[arg(long = "scenario", default_value = "all")]
    scenarios: Vec<String>,
    /// Rounds per scenario.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Workload seconds per round (stretched to fit the scenario's steps).
    #[arg(long, default_value_t = 6.0)]
    duration: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Nodes in the cluster the drill starts (3 or 5; 5-node scenarios get their own).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seed for the workload's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write a JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an HTML report (with timelines) into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Drill an existing cluster: its nodes' client addresses, comma-separated.
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// For --target: shell command that injects a fault; `{action}` and `{node}` are
    /// replaced (e.g. "ssh {node} sudo systemctl kill -s KILL keepbit").
    #[arg(long)]
    fault_command: Option<String>,
    /// For --target: shell command that heals (e.g. "ssh {node} sudo systemctl start keepbit").
    #[arg(long)]
    heal_command: Option<String>,
    /// Where the drill's own cluster keeps its data.
    #[arg(long, default_value = "keepbit-drill")]
    data_dir: PathBuf,
    /// active-passive or active-active.
    #[arg(long, default_value = "active-passive")]
    mode: String,
    /// Extra arguments for the drill's nodes (testing the drill itself).
    #[arg(long, hide = true, allow_hyphen_values = true)]
    server_arg: Vec<String>,
}

#[derive(Args)]
struct ServerArgs {
    /// TOML config file; flags given here override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on for clients.
    #[arg(long)]
    bind: Option<String>,
    /// Client port (0: any free port).
    #[arg(long, short)]
    port: Option<u16>,
    /// Port of the admin HTTP server (/health, /ready, /primary, /replica, /metrics);
    /// off unless set; 0 picks a free port.
    #[arg(long)]
    admin_port: Option<u16>,
    /// Address the admin HTTP server binds to (default: --bind).
    #[arg(long)]
    admin_bind: Option<String>,
    /// Password clients must AUTH with.
    #[arg(long)]
    requirepass: Option<String>,
    /// Password of the `admin` user (membership, CONFIG SET, CLIENT KILL).
    #[arg(long)]
    admin_password: Option<String>,
    /// Number of logical databases.
    #[arg(long)]
    databases: Option<usize>,
    /// Most simultaneous clients.
    #[arg(long)]
    maxclients: Option<usize>,
    /// Refuse growing writes above this much memory (0: no limit).
    #[arg(long)]
    maxmemory_bytes: Option<u64>,
    /// Longest bulk string a client may send, in bytes.
    #[arg(long)]
    proto_max_bulk_len_bytes: Option<usize>,
    /// Most buffered unparsed bytes per client.
    #[arg(long)]
    client_query_buffer_limit_bytes: Option<usize>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long)]
    log_level: Option<String>,
    /// Load and validate the configuration (and read the TLS files it names), print
    /// `config ok`, and exit without starting: 0 when valid, 1 with the reason otherwise.
    #[arg(long)]
    check_config: bool,
    /// Deliberately broken node for testing `keepbit drill`: acknowledge writes before
    /// they commit. Never use it otherwise.
    #[arg(long, hide = true)]
    unsafe_ack_before_commit: bool,
}

impl ServerArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_toml(path)?,
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { c.$field = v; })* };
        }
        set!(
            bind,
            port,
            databases,
            maxclients,
            maxmemory_bytes,
            proto_max_bulk_len_bytes,
            client_query_buffer_limit_bytes,
            data_dir,
            log_level
        );
        if self.admin_port.is_some() {
            c.admin_port = self.admin_port;
        }
        if self.admin_bind.is_some() {
            c.admin_bind = self.admin_bind;
        }
        if self.requirepass.is_some() {
            c.requirepass = self.requirepass;
        }
        if self.admin_password.is_some() {
            c.admin_password = self.admin_password;
        }
        if let Some(cluster) = c.cluster.as_mut() {
            cluster.unsafe_ack_before_commit = self.unsafe_ack_before_commit;
        }
        c.validate()?;
        let guard = std::env::var(keepbit::faults::ENV_GUARD).ok();
        keepbit::faults::check_guard(&c.faults, guard.as_deref())?;
        Ok(c)
    }
}

fn init_logging(level: &str) {
    let level = level.parse().unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

async fn server(config: Config) -> anyhow::Result<()> {
    init_logging(&config.log_level);
    if config.faults.enable {
        // `into_config` refused the section unless the environment allows it.
        keepbit::faults::global().arm(&config.faults)?;
        tracing::warn!(faults = ?config.faults.settings(), "fault injection is ON (test only: KEEPBIT FAULT SET | CLEAR)");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let tls = Tls::load(&config)?;
    let addr = format!("{}:{}", config.bind, config.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.client.is_some() { "TLS" } else { "plain TCP" };
    tracing::info!("keepbit {} listening on {local} ({scheme})", env!("CARGO_PKG_VERSION"));
    // Tests and scripts started with port 0 read the chosen port from this line.
    println!("listening on {local}");
    let admin = match config.admin_addr() {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
            let local = l.local_addr()?;
            tracing::info!("admin HTTP on http://{local}");
            println!("admin listening on {local}");
            Some(l)
        }
        None => None,
    };
    let server = wire(config, tls.peer).await?;
    if let Some(listener) = admin {
        let srv = server.clone();
        tokio::spawn(async move { keepbit::server::http::serve(&srv, listener).await });
    }
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutting down");
    };
    let cluster = server.cluster.clone();
    let stopped = async move {
        match cluster {
            Some(c) => c.stopped().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = keepbit::server::run(server, listener, tls.client, shutdown) => Ok(()),
        reason = stopped => {
            tracing::error!("replication stopped for good, exiting: {reason}");
            anyhow::bail!("replication stopped for good: {reason}")
        }
    }
}

/// The runtime replication runs on, for the life of the process.
fn raft_runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("raft").enable_all().build()?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Builds one node: the replicated state, its executor (standalone, or the cluster when
/// configured), the front, and what the server shares between connections.
async fn wire(config: Config, peer_tls: Option<PeerTls>) -> anyhow::Result<Arc<Server>> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let metrics = Arc::new(keepbit::metrics::Metrics::new());
    let pubsub = Arc::new(PubSub::default());
    let machine = Arc::new(Machine::new(config.databases, pubsub.clone()));
    let (executor, cluster): (Arc<dyn Executor>, _) = match config.cluster {
        Some(_) => {
            // Replication runs on a runtime of its own: openraft's core, heartbeats,
            // replication streams and the peer server keep their threads while client
            // connections wait on the node lock or move large values, so a busy node
            // keeps its lease instead of failing over.
            let runtime = raft_runtime()?;
            let start = Cluster::start(machine.clone(), clock.clone(), config.clone(), peer_tls, metrics.clone());
            let cluster = runtime.spawn(start).await??;
            (cluster.clone(), Some(cluster))
        }
        None => (Arc::new(Standalone::new(machine.clone(), clock.clone())), None),
    };
    let memory = Arc::new(keepbit::memory::MemoryLimit::new(config.maxmemory_bytes));
    let node = Arc::new(Node::new(machine, executor, clock, memory));
    Ok(Arc::new(Server::new(config, node, cluster, pubsub, metrics)))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        CliCommand::Server(args) => {
            let check = args.check_config;
            let config = args.into_config()?;
            if check {
                Tls::load(&config)?;
                println!("config ok");
                return Ok(());
            }
            rt.block_on(server(config))
        }
        CliCommand::Up { nodes, data_dir, base_port, mode } => {
            if !(1..=9).contains(&nodes) {
                anyhow::bail!("--nodes must be between 1 and 9");
            }
            if mode != "active-passive" && mode != "active-active" {
                anyhow::bail!("--mode must be active-passive or active-active");
            }
            let options = keepbit::up::UpOptions {
                admin_http: true,
                ..keepbit::up::UpOptions::new(nodes, data_dir, base_port, &mode)
            };
            rt.block_on(keepbit::up::run(options))
        }
        CliCommand::Cluster { node, admin_password: flag, admin_password_file, tls, action } => {
            let password = admin_password(flag, admin_password_file)?;
            rt.block_on(cluster(node, password, tls.load()?, action))
        }
        CliCommand::Events(a) => rt.block_on(events(a)),
        CliCommand::Status(a) => rt.block_on(status(a)),
        CliCommand::Failover { node, to, timeout, admin_password: flag, admin_password_file, tls } => {
            let password = admin_password(flag, admin_password_file)?;
            rt.block_on(failover(node, to, timeout, password, tls.load()?))
        }
        CliCommand::Drill(d) => {
            if !(d.duration.is_finite() && d.duration > 0.0 && d.duration < 3600.0) {
                anyhow::bail!("--duration must be between 0 and 3600 seconds");
            }
            if d.target.is_empty() && !(3..=9).contains(&d.nodes) {
                anyhow::bail!("--nodes must be between 3 and 9");
            }
            if !d.target.is_empty() && (d.fault_command.is_none() || d.heal_command.is_none()) {
                anyhow::bail!("--target needs --fault-command and --heal-command");
            }
            let passed = rt.block_on(keepbit::drill::run::run(keepbit::drill::run::DrillOptions {
                scenarios: d.scenarios,
                rounds: d.rounds.max(1),
                duration: std::time::Duration::from_secs_f64(d.duration),
                clients: d.clients.max(1),
                nodes: d.nodes,
                seed: d.seed,
                json: d.json,
                report: d.report,
                target: d.target,
                fault_command: d.fault_command,
                heal_command: d.heal_command,
                data_dir: d.data_dir,
                mode: d.mode,
                server_args: d.server_arg,
                check_budget: std::time::Duration::from_secs(10),
            }))?;
            if !passed {
                eprintln!("drill FAILED: violations found (see above)");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
