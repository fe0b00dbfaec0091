//! The CLI's client commands (`keepbit cluster`, `failover`, `events`, `status`): their
//! arguments and how they talk to nodes, over plain TCP or TLS, as admin where needed.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct EventsArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 6381)]
    port: u16,
    /// Newest records to show.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The client password, if the nodes require one (also $KEEPBIT_PASSWORD).
    #[arg(long)]
    password: Option<String>,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The nodes' client addresses, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:6381,127.0.0.1:6382,127.0.0.1:6383")]
    nodes: Vec<String>,
    /// Refresh every --interval seconds until interrupted.
    #[arg(long)]
    watch: bool,
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// Print JSON instead of the screen.
    #[arg(long)]
    json: bool,
    /// The client password, if the nodes require one (also $KEEPBIT_PASSWORD).
    #[arg(long)]
    password: Option<String>,
}

/// How the CLI reaches a node whose client port speaks TLS (as redis-cli's flags).
#[derive(Args)]
pub struct ClientTlsArgs {
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
    pub fn load(&self) -> anyhow::Result<Option<keepbit::tls::ClientTls>> {
        let Some(ca) = self.cacert.as_deref().filter(|_| self.tls) else { return Ok(None) };
        let identity = self.cert.as_deref().zip(self.key.as_deref());
        Ok(Some(keepbit::tls::ClientTls::load(ca, identity)?))
    }
}

#[derive(Subcommand)]
pub enum ClusterAction {
    /// Members, roles, term, commit/applied index and per-peer lag.
    Status,
    /// Add a node: it joins as a learner, catches up, then becomes a voter.
    Add {
        id: u64,
        /// Its peer address, host:port (an IP, IPv6 in brackets, or a DNS name).
        addr: String,
        /// Its client address, host:port.
        #[arg(long)]
        client_addr: String,
    },
    /// Remove a node from the cluster.
    Remove { id: u64 },
}
/// The admin password from the flag, the file or `$KEEPBIT_ADMIN_PASSWORD`, in that order.
pub fn admin_password(flag: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(Some(text.trim().to_string()));
    }
    Ok(flag.or_else(|| std::env::var("KEEPBIT_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty())))
}

pub async fn cluster(
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

/// The client password from the flag or `$KEEPBIT_PASSWORD`.
pub fn client_password(flag: Option<String>) -> Option<String> {
    flag.or_else(|| std::env::var("KEEPBIT_PASSWORD").ok().filter(|p| !p.is_empty()))
}

pub async fn events(a: EventsArgs) -> anyhow::Result<()> {
    use keepbit::console::events;
    let addr = format!("{}:{}", a.host, a.port);
    let password = client_password(a.password);
    let list =
        events::fetch(&addr, password.as_deref(), a.count.max(1)).await.with_context(|| format!("asking {addr}"))?;
    match a.json {
        true => println!("{}", serde_json::to_string_pretty(&list)?),
        false => print!("{}", events::render(&list, keepbit::console::unix_ms())),
    }
    Ok(())
}

/// Connects to `node` and authenticates as admin.
pub async fn admin_client(
    node: &str,
    password: Option<&str>,
    tls: Option<&keepbit::tls::ClientTls>,
) -> anyhow::Result<keepbit::client::Client> {
    let timeout = std::time::Duration::from_secs(60);
    let mut client = keepbit::client::Client::connect_with(node, timeout, tls)
        .await
        .with_context(|| format!("cannot reach {node}"))?;
    if let Some(password) = password {
        if let keepbit_resp::Frame::Error(e) = client.call(&["AUTH", "admin", password]).await? {
            anyhow::bail!("{node} refused the admin password: {}", String::from_utf8_lossy(&e));
        }
    }
    Ok(client)
}

/// `keepbit failover`: finds the primary through `node` (ROLE), names the target's client
/// address from the membership (KEEPBIT CLUSTER STATUS), and runs FAILOVER there.
pub async fn failover(
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

pub async fn status(a: StatusArgs) -> anyhow::Result<()> {
    use keepbit::console::status;
    if !(a.interval.is_finite() && a.interval >= 0.1) {
        anyhow::bail!("--interval must be at least 0.1 seconds");
    }
    let password = client_password(a.password);
    loop {
        let g = status::gather(&a.nodes, password.as_deref()).await;
        let shown = match a.json {
            true => serde_json::to_string(&status::to_json(&g))? + "\n",
            false => status::render(&g),
        };
        if !a.watch {
            print!("{shown}");
            return Ok(());
        }
        // Like watch(1): clear the screen, then draw.
        print!("\x1b[2J\x1b[H{shown}");
        std::io::Write::flush(&mut std::io::stdout())?;
        tokio::time::sleep(std::time::Duration::from_secs_f64(a.interval)).await;
    }
}
