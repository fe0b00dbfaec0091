//! The `keepbit` command line: wiring only.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use keepbit::config::Config;
use keepbit::node::{Node, SystemClock};

#[derive(Parser)]
#[command(name = "keepbit", version, about = "Redis-compatible key-value store built for uninterrupted service")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a Keepbit node.
    Server(ServerArgs),
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
    /// Number of logical databases.
    #[arg(long)]
    databases: Option<usize>,
    /// Most simultaneous clients.
    #[arg(long)]
    maxclients: Option<usize>,
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
        set!(bind, port, databases, maxclients, proto_max_bulk_len_bytes, client_query_buffer_limit_bytes, data_dir, log_level);
        if self.requirepass.is_some() {
            c.requirepass = self.requirepass;
        }
        c.validate()?;
        Ok(c)
    }
}

fn init_logging(level: &str) {
    let level = level.parse().unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).init();
}

async fn server(config: Config) -> anyhow::Result<()> {
    init_logging(&config.log_level);
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let addr = format!("{}:{}", config.bind, config.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!("keepbit {} listening on {local}", env!("CARGO_PKG_VERSION"));
    // Tests and scripts started with port 0 read the chosen port from this line.
    println!("listening on {local}");
    let node = Arc::new(Node::new(config, Arc::new(SystemClock)));
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutting down");
    };
    keepbit::server::run(node, listener, shutdown).await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Server(args) => {
            let config = args.into_config()?;
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(server(config))
        }
    }
}
