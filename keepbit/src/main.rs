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
}

#[derive(Args)]
struct DrillArgs {
    /// Scenario to run (repeatable), or `all`: kill-primary, kill-standby, kill-majority,
    /// flap, pause-primary, pause-standby, partition-primary, partition-halves,
    /// partition-bridge, rolling-restart, switchover.
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

/// How the CLI reaches a node whose client port speaks TLS (as redis-cli's flags).
#[derive(Args)]
struct ClientTlsArgs {
    /// Speak TLS to the node.
    #[arg(long, global = true, requires = "cacert")]
    tls: bool,
    /// CA certificate (PEM) the node's certificate must chain to.
    #[arg(long, global = true, requires = "tls")]
    cacert: Option<PathBuf>,
    /// Client certificate (PEM), for a node with `tls_auth_clients`.
    #[arg(long, global = true, requires_all = ["tls", "key"])]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, requires = "cert")]
    key: Option<PathBuf>,
}

impl ClientTlsArgs {
    fn load(&self) -> anyhow::Result<Option<keepbit::tls::ClientTls>> {
        let Some(ca) = self.cacert.as_deref().filter(|_| self.tls) else { return Ok(None) };
        let identity = self.cert.as_deref().zip(self.key.as_deref());
        Ok(Some(keepbit::tls::ClientTls::load(ca, identity)?))
    }
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Members, roles, term, commit/applied index and per-peer lag.
    Status,
    /// Add a node: it joins as a learner, catches up, then becomes a voter.
    Add {
        id: u64,
        /// Its peer address, ip:port.
        addr: String,
        /// Its client address, ip:port.
        #[arg(long)]
        client_addr: String,
    },
    /// Remove a node from the cluster.
    Remove { id: u64 },
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
    let server = wire(config, tls.peer).await?;
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
    let pubsub = Arc::new(PubSub::default());
    let machine = Arc::new(Machine::new(config.databases, pubsub.clone()));
    let (executor, cluster): (Arc<dyn Executor>, _) = match config.cluster {
        Some(_) => {
            // Replication runs on a runtime of its own: openraft's core, heartbeats,
            // replication streams and the peer server keep their threads while client
            // connections wait on the node lock or move large values, so a busy node
            // keeps its lease instead of failing over.
            let runtime = raft_runtime()?;
            let start = Cluster::start(machine.clone(), clock.clone(), config.clone(), peer_tls);
            let cluster = runtime.spawn(start).await??;
            (cluster.clone(), Some(cluster))
        }
        None => (Arc::new(Standalone::new(machine.clone(), clock.clone())), None),
    };
    let memory = Arc::new(keepbit::memory::MemoryLimit::new(config.maxmemory_bytes));
    let node = Arc::new(Node::new(machine, executor, clock, memory));
    Ok(Arc::new(Server::new(config, node, cluster, pubsub)))
}

/// The admin password from the flag, the file or `$KEEPBIT_ADMIN_PASSWORD`, in that order.
fn admin_password(flag: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(Some(text.trim().to_string()));
    }
    Ok(flag.or_else(|| std::env::var("KEEPBIT_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty())))
}

async fn cluster(
    node: String,
    password: Option<String>,
    tls: Option<keepbit::tls::ClientTls>,
    action: ClusterAction,
) -> anyhow::Result<()> {
    let args: Vec<String> = match action {
        ClusterAction::Status => vec!["KEEPBIT".into(), "CLUSTER".into(), "STATUS".into()],
        ClusterAction::Add { id, addr, client_addr } => {
            vec!["KEEPBIT".into(), "CLUSTER".into(), "ADD".into(), id.to_string(), addr, client_addr]
        }
        ClusterAction::Remove { id } => vec!["KEEPBIT".into(), "CLUSTER".into(), "REMOVE".into(), id.to_string()],
    };
    let timeout = std::time::Duration::from_secs(60);
    let mut client = keepbit::client::Client::connect_with(&node, timeout, tls.as_ref())
        .await
        .with_context(|| format!("cannot reach {node}"))?;
    if let Some(password) = password {
        if let keepbit_resp::Frame::Error(e) = client.call(&["AUTH", "admin", &password]).await? {
            anyhow::bail!("{node} refused the admin password: {}", String::from_utf8_lossy(&e));
        }
    }
    let reply = client.call(&args).await.with_context(|| format!("no answer from {node}"))?;
    match reply {
        keepbit_resp::Frame::Error(e) => anyhow::bail!("{}", String::from_utf8_lossy(&e)),
        other => println!("{}", keepbit::client::text(&other).unwrap_or_else(|| format!("{other:?}"))),
    }
    Ok(())
}

/// Connects to `node` and authenticates as admin.
async fn admin_client(
    node: &str,
    password: Option<&str>,
    tls: Option<&keepbit::tls::ClientTls>,
) -> anyhow::Result<keepbit::client::Client> {
    let timeout = std::time::Duration::from_secs(60);
    let mut client =
        keepbit::client::Client::connect_with(node, timeout, tls).await.with_context(|| format!("cannot reach {node}"))?;
    if let Some(password) = password {
        if let keepbit_resp::Frame::Error(e) = client.call(&["AUTH", "admin", password]).await? {
            anyhow::bail!("{node} refused the admin password: {}", String::from_utf8_lossy(&e));
        }
    }
    Ok(client)
}

/// `keepbit failover`: finds the primary through `node` (ROLE), names the target's client
/// address from the membership (KEEPBIT CLUSTER STATUS), and runs FAILOVER there.
async fn failover(
    node: String,
    to: Option<u64>,
    timeout_ms: Option<u64>,
    password: Option<String>,
    tls: Option<keepbit::tls::ClientTls>,
) -> anyhow::Result<()> {
    use keepbit::client::text;
    use keepbit_resp::Frame;
    let mut client = admin_client(&node, password.as_deref(), tls.as_ref()).await?;
    let mut primary = node.clone();
    if let Frame::Array(role) = client.call(&["ROLE"]).await? {
        if role.first().and_then(text).as_deref() == Some("slave") {
            let ip = role.get(1).and_then(text).unwrap_or_default();
            let port = match role.get(2) {
                Some(Frame::Integer(p)) if *p > 0 => *p,
                _ => anyhow::bail!("{node} knows no primary now; retry in a moment"),
            };
            primary = format!("{ip}:{port}");
            client = admin_client(&primary, password.as_deref(), tls.as_ref()).await?;
        }
    }
    let mut args: Vec<String> = vec!["FAILOVER".into()];
    if let Some(id) = to {
        let status = text(&client.call(&["KEEPBIT", "CLUSTER", "STATUS"]).await?).unwrap_or_default();
        let addr = status
            .lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("{id} ")))
            .find_map(|rest| rest.split_whitespace().find_map(|w| w.strip_prefix("clients=")))
            .with_context(|| format!("node {id} is not a member"))?;
        let (host, port) = addr.rsplit_once(':').with_context(|| format!("bad client address {addr}"))?;
        args.extend(["TO".into(), host.into(), port.into()]);
    }
    if let Some(ms) = timeout_ms {
        args.extend(["TIMEOUT".into(), ms.to_string()]);
    }
    let started = std::time::Instant::now();
    match client.call(&args).await.with_context(|| format!("no answer from {primary}"))? {
        Frame::Error(e) => anyhow::bail!("{}", String::from_utf8_lossy(&e)),
        _ => println!("switched over from {primary} in {:?}", started.elapsed()),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        CliCommand::Server(args) => {
            let config = args.into_config()?;
            rt.block_on(server(config))
        }
        CliCommand::Up { nodes, data_dir, base_port, mode } => {
            if !(1..=9).contains(&nodes) {
                anyhow::bail!("--nodes must be between 1 and 9");
            }
            if mode != "active-passive" && mode != "active-active" {
                anyhow::bail!("--mode must be active-passive or active-active");
            }
            rt.block_on(keepbit::up::run(keepbit::up::UpOptions::new(nodes, data_dir, base_port, &mode)))
        }
        CliCommand::Cluster { node, admin_password: flag, admin_password_file, tls, action } => {
            let password = admin_password(flag, admin_password_file)?;
            rt.block_on(cluster(node, password, tls.load()?, action))
        }
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
