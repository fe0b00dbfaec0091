//! `Config`: parsed and validated once, from a TOML file and command-line overrides.
//! Units are the last word of each field name.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::addr::host_port;
pub use crate::faults::FaultsConfig;
pub use crate::health::HealthConfig;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the client listener binds to.
    pub bind: String,
    /// Client port; 0 picks a free port (tests).
    pub port: u16,
    /// Password clients must send with AUTH or HELLO … AUTH; none when unset.
    pub requirepass: Option<String>,
    /// Password of the `admin` user (`AUTH admin <password>`), the only user allowed to
    /// change membership, configuration or other clients' connections. Unset: nobody is.
    pub admin_password: Option<String>,
    /// Number of logical databases (SELECT 0..databases-1).
    pub databases: usize,
    /// Most simultaneous client connections.
    pub maxclients: usize,
    /// Longest bulk string a client may send (Redis's proto-max-bulk-len).
    pub proto_max_bulk_len_bytes: usize,
    /// Most elements in one multibulk request.
    pub multibulk_len_max: usize,
    /// Most unparsed bytes buffered for one client (Redis's client-query-buffer-limit).
    pub client_query_buffer_limit_bytes: usize,
    /// Most pub/sub messages queued for a slow subscriber before it is disconnected.
    pub pubsub_queue_len_max: usize,
    /// Most bytes of pub/sub messages queued for a slow subscriber before it is
    /// disconnected (Redis's pubsub client-output-buffer-limit is 32 MB).
    pub pubsub_queue_bytes_max: u64,
    /// Close idle client connections after this many seconds (0: never).
    pub timeout_s: u64,
    /// Refuse writes that may grow the dataset once the node uses more memory than this
    /// (Redis's `maxmemory` with the `noeviction` policy); 0: no limit.
    pub maxmemory_bytes: u64,
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
    /// Log level: error, warn, info, debug, trace.
    pub log_level: String,
    /// The client port speaks TLS only (with `tls_cert` and `tls_key`); plain TCP when off.
    pub tls: bool,
    /// PEM certificate chain this node presents, on the client port (`tls`) and the peer
    /// port (`cluster.tls`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates that client certificates (`tls_auth_clients`) and peer
    /// certificates (`cluster.tls`) must chain to.
    pub tls_ca: Option<PathBuf>,
    /// Clients must present a certificate signed by `tls_ca` (Redis's tls-auth-clients;
    /// off by default here, unlike Redis).
    pub tls_auth_clients: bool,
    /// Port of the read-only admin HTTP server (`/health`, `/ready`, `/primary`,
    /// `/replica`, `/metrics`); unset: off. 0 picks a free port.
    pub admin_port: Option<u16>,
    /// Address the admin HTTP server binds to; unset: `bind`.
    pub admin_bind: Option<String>,
    /// Health check cadence and thresholds.
    pub health: HealthConfig,
    /// Replication; absent for a standalone node.
    pub cluster: Option<ClusterConfig>,
    /// Test-only fault injection (`faults::check_guard` decides whether it may start).
    pub faults: FaultsConfig,
}

/// How a cluster node serves clients.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Only the primary serves data; standbys refuse writes (and reads, unless READONLY).
    #[default]
    ActivePassive,
    /// Every node serves: reads locally, writes forwarded to the primary.
    ActiveActive,
}

/// When the replicated log is synced to disk.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// fdatasync every append on its own.
    Always,
    /// One fdatasync for all appends waiting at that moment (group commit).
    #[default]
    Batch,
    /// Leave it to the OS: survives a process crash, not a power loss.
    Os,
}

/// Linearizable reads on the primary, or possibly stale local reads.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReadConsistency {
    #[default]
    Linearizable,
    Stale,
}

/// A cluster member in the static peer list.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: u64,
    /// Peer (Raft) address, `host:port`: an IP (IPv6 in brackets) or a DNS name, resolved
    /// at each connection.
    pub addr: String,
    /// Client address, `host:port`, reported to clients as given (ROLE, Sentinel).
    pub client_addr: String,
    /// Leadership preference: a higher one takes over from a lower one once caught up
    /// (`failback_quiet_ms`); 0: never primary (it hands leadership away if it wins).
    #[serde(default = "default_priority")]
    pub priority: u32,
}

fn default_priority() -> u32 {
    1
}

/// Largest `max_entry_bytes` (Redis's own bulk limit, 512 MiB).
pub const ENTRY_BYTES_MAX: usize = 512 << 20;
/// Entry bytes one AppendEntries carries before the rest waits for the next one (at least
/// one entry is always sent).
pub const APPEND_BATCH_BYTES: usize = 8 << 20;
/// What a peer frame holds besides entry or snapshot bytes: headers, log ids, membership.
pub const PEER_FRAME_OVERHEAD_BYTES: usize = 1 << 20;

/// The peer frame limit: the largest of one entry, one AppendEntries batch and one
/// snapshot chunk, plus overhead. Snapshots are chunked, so the dataset does not count.
pub fn peer_frame_len_bytes(max_entry_bytes: usize, snapshot_chunk_bytes: usize) -> usize {
    max_entry_bytes.max(snapshot_chunk_bytes).max(APPEND_BATCH_BYTES) + PEER_FRAME_OVERHEAD_BYTES
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's id; must appear in `peers`.
    pub node_id: u64,
    /// Name the Sentinel discovery commands answer to.
    pub name: String,
    /// Shared secret every peer connection must present.
    pub secret: String,
    /// The members a fresh cluster forms with (each node lists all of them). A joining
    /// node lists them plus itself.
    pub peers: Vec<PeerConfig>,
    /// This node joins a running cluster (`keepbit cluster add`) instead of forming one:
    /// it never proposes an initial membership, and waits until the primary adds it.
    pub join: bool,
    pub mode: Mode,
    pub fsync: Fsync,
    pub read_consistency: ReadConsistency,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot after this many applied entries (scaled per node, see
    /// `raft::compaction`).
    pub snapshot_entries: u64,
    /// ... or after this many bytes of applied entries, whichever comes first.
    pub snapshot_bytes: u64,
    /// Entries kept behind the last snapshot (so briefly lagging peers need no snapshot).
    pub log_keep_entries: u64,
    /// ... but no more than this many bytes of them.
    pub log_keep_bytes: u64,
    /// Snapshots travel to peers in chunks of this many bytes.
    pub snapshot_chunk_bytes: usize,
    /// Overrides the largest peer frame, which is otherwise derived from
    /// `max_entry_bytes` and `snapshot_chunk_bytes` ([`peer_frame_len_bytes`]); it may
    /// only be raised above that.
    pub peer_frame_len_max_bytes: Option<usize>,
    /// Largest replicated log entry (one write or MULTI block, encoded); larger writes are
    /// refused before they are proposed, so no entry can outgrow a peer frame or stall
    /// replication.
    pub max_entry_bytes: usize,
    /// How long `KEEPBIT CLUSTER ADD` waits for a new node to catch up before it gives up
    /// and takes the node out again (it never becomes a voter unless it caught up). At most
    /// 25 s, so an add forwarded from a standby is answered within the peer handler's 30 s.
    pub add_node_timeout_ms: u64,
    /// The peer port speaks mutual TLS: every member presents `tls_cert` and checks the
    /// others' certificates against `tls_ca`. All members must agree.
    pub tls: bool,
    /// The member leadership returns to (a planned switchover journaled as `failback`)
    /// once it has been reachable and caught up for `failback_quiet_ms`.
    pub preferred_primary: Option<u64>,
    /// How long a member must stay reachable and caught up before leadership moves to it
    /// for its priority or as `preferred_primary`.
    pub failback_quiet_ms: u64,
    /// Deliberately broken, for testing the drill: the primary acknowledges writes before
    /// they are committed (set only by the hidden `--unsafe-ack-before-commit` flag).
    #[serde(skip)]
    pub unsafe_ack_before_commit: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: 0,
            name: "keepbit".into(),
            secret: String::new(),
            peers: Vec::new(),
            join: false,
            mode: Mode::default(),
            fsync: Fsync::default(),
            read_consistency: ReadConsistency::default(),
            // Measured with bench/failover.py (kill -9 of the primary, 20 rounds, loopback):
            // 20/60/120 ms gives a client-observed write gap of p50 216 ms, p99 254 ms;
            // 50/150/300 gave p50 586 ms, p99 616 ms. Pre-vote keeps a slow or returning
            // follower from deposing a healthy primary at these settings.
            heartbeat_ms: 20,
            election_timeout_min_ms: 60,
            election_timeout_max_ms: 120,
            snapshot_entries: 10_000,
            snapshot_bytes: 64 << 20,
            log_keep_entries: 5_000,
            log_keep_bytes: 64 << 20,
            snapshot_chunk_bytes: 4 << 20,
            peer_frame_len_max_bytes: None,
            add_node_timeout_ms: 20_000,
            max_entry_bytes: 64 * 1024 * 1024,
            tls: false,
            preferred_primary: None,
            failback_quiet_ms: 10_000,
            unsafe_ack_before_commit: false,
        }
    }
}

impl ClusterConfig {
    pub fn me(&self) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| p.id == self.node_id)
    }

    /// A member's priority: as listed, or 1 for one the peer list does not name (added
    /// later with `keepbit cluster add`).
    pub fn priority_of(&self, id: u64) -> u32 {
        self.peers.iter().find(|p| p.id == id).map_or(1, |p| p.priority)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: String| Err(ConfigError::Invalid { field, message });
        if self.node_id == 0 {
            return invalid("cluster.node_id", "must be set (a positive integer)".into());
        }
        if self.me().is_none() {
            return invalid("cluster.peers", format!("must include this node (id {})", self.node_id));
        }
        let mut ids: Vec<u64> = self.peers.iter().map(|p| p.id).collect();
        ids.sort();
        ids.dedup();
        if ids.len() != self.peers.len() {
            return invalid("cluster.peers", "ids must be unique".into());
        }
        let mut addrs = std::collections::BTreeSet::new();
        for p in &self.peers {
            for (field, addr) in [("cluster.peers.addr", &p.addr), ("cluster.peers.client_addr", &p.client_addr)] {
                let normalized = host_port(addr).map_err(|why| ConfigError::Invalid {
                    field,
                    message: format!("{addr:?} is not a host:port address: {why}"),
                })?;
                // Two members on one address would each get the other's messages.
                if !addrs.insert(normalized) {
                    return invalid(field, format!("{addr} is used twice"));
                }
            }
        }
        if self.secret.is_empty() {
            return invalid("cluster.secret", "must be set".into());
        }
        if self.heartbeat_ms == 0 || self.election_timeout_min_ms <= self.heartbeat_ms {
            return invalid("cluster.election_timeout_min_ms", "must be greater than heartbeat_ms (> 0)".into());
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return invalid("cluster.election_timeout_max_ms", "must be greater than election_timeout_min_ms".into());
        }
        if !(1 << 20..=ENTRY_BYTES_MAX).contains(&self.max_entry_bytes) {
            return invalid("cluster.max_entry_bytes", format!("must be between 1 MiB and {ENTRY_BYTES_MAX}"));
        }
        if !(64 << 10..=64 << 20).contains(&self.snapshot_chunk_bytes) {
            return invalid("cluster.snapshot_chunk_bytes", "must be between 64 KiB and 64 MiB".into());
        }
        let derived = peer_frame_len_bytes(self.max_entry_bytes, self.snapshot_chunk_bytes);
        if let Some(set) = self.peer_frame_len_max_bytes.filter(|&set| set < derived || set > u32::MAX as usize) {
            return invalid(
                "cluster.peer_frame_len_max_bytes",
                format!(
                    "{set} is outside {derived}..={}: a frame must hold the largest entry or \
                    snapshot chunk plus 1 MiB (max(max_entry_bytes, snapshot_chunk_bytes, 8 MiB) + 1 MiB); \
                    leave it unset to use that",
                    u32::MAX
                ),
            );
        }
        if !(100..=25_000).contains(&self.add_node_timeout_ms) {
            return invalid("cluster.add_node_timeout_ms", "must be between 100 and 25000".into());
        }
        if self.snapshot_entries == 0 {
            return invalid("cluster.snapshot_entries", "must be at least 1".into());
        }
        if self.snapshot_bytes < 1 << 20 {
            return invalid("cluster.snapshot_bytes", "must be at least 1 MiB".into());
        }
        if !self.peers.iter().any(|p| p.priority > 0) {
            return invalid("cluster.peers.priority", "at least one member needs a priority above 0".into());
        }
        if let Some(id) = self.preferred_primary.filter(|id| !self.peers.iter().any(|p| p.id == *id && p.priority > 0))
        {
            return invalid("cluster.preferred_primary", format!("{id} is not a member with a priority above 0"));
        }
        if self.failback_quiet_ms < self.election_timeout_max_ms {
            return invalid("cluster.failback_quiet_ms", "must be at least election_timeout_max_ms".into());
        }
        Ok(())
    }

    /// The largest peer frame this node sends or accepts: the override if set, else
    /// [`peer_frame_len_bytes`].
    pub fn peer_frame_len_bytes(&self) -> usize {
        let derived = peer_frame_len_bytes(self.max_entry_bytes, self.snapshot_chunk_bytes);
        self.peer_frame_len_max_bytes.unwrap_or(derived).max(derived)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1".into(),
            port: 6379,
            requirepass: None,
            admin_password: None,
            databases: 16,
            maxclients: 10_000,
            proto_max_bulk_len_bytes: 512 * 1024 * 1024,
            multibulk_len_max: 16 * 1024 * 1024,
            client_query_buffer_limit_bytes: 1024 * 1024 * 1024,
            pubsub_queue_len_max: 100_000,
            pubsub_queue_bytes_max: 32 * 1024 * 1024,
            timeout_s: 0,
            maxmemory_bytes: 0,
            data_dir: PathBuf::from("keepbit-data"),
            log_level: "info".into(),
            tls: false,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_auth_clients: false,
            admin_port: None,
            admin_bind: None,
            health: HealthConfig::default(),
            cluster: None,
            faults: FaultsConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {field}: {message}")]
    Invalid { field: &'static str, message: String },
}

impl Config {
    pub fn from_toml(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.message().to_string() })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_string() });
        if self.databases == 0 || self.databases > 1 << 20 {
            return invalid("databases", "must be between 1 and 1048576");
        }
        if let Some(admin) = &self.admin_password {
            if admin.is_empty() {
                return invalid("admin_password", "must not be empty (leave it unset to disable admin commands)");
            }
            if self.requirepass.as_ref() == Some(admin) {
                return invalid("admin_password", "must differ from requirepass");
            }
        }
        if self.maxclients == 0 {
            return invalid("maxclients", "must be at least 1");
        }
        if self.proto_max_bulk_len_bytes < 1024 {
            return invalid("proto_max_bulk_len_bytes", "must be at least 1024");
        }
        if self.multibulk_len_max == 0 {
            return invalid("multibulk_len_max", "must be at least 1");
        }
        if self.client_query_buffer_limit_bytes < 1024 * 1024 {
            return invalid("client_query_buffer_limit_bytes", "must be at least 1048576");
        }
        if self.pubsub_queue_bytes_max < 1024 * 1024 {
            return invalid("pubsub_queue_bytes_max", "must be at least 1048576");
        }
        if self.pubsub_queue_len_max == 0 {
            return invalid("pubsub_queue_len_max", "must be at least 1");
        }
        if self.bind.parse::<std::net::IpAddr>().is_err() && self.bind != "localhost" {
            return invalid("bind", "must be an IP address");
        }
        if self.admin_bind.as_ref().is_some_and(|b| b.parse::<std::net::IpAddr>().is_err() && b != "localhost") {
            return invalid("admin_bind", "must be an IP address");
        }
        if let Some((field, message)) = self.health.problem() {
            return invalid(field, message);
        }
        if let Some((field, message)) = self.faults.problem() {
            return Err(ConfigError::Invalid { field, message });
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log_level.as_str()) {
            return invalid("log_level", "must be one of error, warn, info, debug, trace");
        }
        self.validate_tls()?;
        match &self.cluster {
            Some(c) => c.validate(),
            None => Ok(()),
        }
    }

    /// Which TLS files each switch needs; the files themselves are read by `tls::Tls::load`.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_string() });
        let peer_tls = self.cluster.as_ref().is_some_and(|c| c.tls);
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            let field = if self.tls_cert.is_some() { "tls_key" } else { "tls_cert" };
            return invalid(field, "tls_cert and tls_key must be set together");
        }
        if (self.tls || peer_tls) && self.tls_cert.is_none() {
            return invalid("tls_cert", "must be set (with tls_key) when tls or cluster.tls is on");
        }
        if self.tls_auth_clients && !self.tls {
            return invalid("tls_auth_clients", "needs tls = true");
        }
        if self.tls_auth_clients && self.tls_ca.is_none() {
            return invalid("tls_ca", "must be set when tls_auth_clients is on");
        }
        if peer_tls && self.tls_ca.is_none() {
            return invalid("tls_ca", "must be set when cluster.tls is on (peers check each other against it)");
        }
        Ok(())
    }

    /// Where the admin HTTP server listens, if it is on.
    pub fn admin_addr(&self) -> Option<String> {
        let port = self.admin_port?;
        Some(format!("{}:{port}", self.admin_bind.as_deref().unwrap_or(&self.bind)))
    }

    pub fn resp_limits(&self) -> keepbit_resp::Limits {
        keepbit_resp::Limits {
            bulk_len_max: self.proto_max_bulk_len_bytes,
            multibulk_len_max: self.multibulk_len_max,
            ..keepbit_resp::Limits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c: Config = toml::from_str("port = 7000\nrequirepass = \"s\"").unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.requirepass.as_deref(), Some("s"));
        assert_eq!(c.databases, 16);
        assert!(toml::from_str::<Config>("prot = 1").is_err());
        let bad = Config { databases: 0, ..Config::default() };
        assert!(bad.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn cluster_section_parses_and_validates() {
        let text = r#"
            port = 7000
            [cluster]
            node_id = 2
            secret = "s"
            mode = "active-active"
            fsync = "always"
            peers = [
                { id = 1, addr = "127.0.0.11:7001", client_addr = "127.0.0.11:6379" },
                { id = 2, addr = "127.0.0.12:7001", client_addr = "127.0.0.12:6379" },
            ]
        "#;
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        let cluster = c.cluster.as_ref().unwrap();
        assert_eq!(cluster.mode, Mode::ActiveActive);
        assert_eq!(cluster.fsync, Fsync::Always);
        assert_eq!(cluster.me().unwrap().addr, "127.0.0.12:7001");
        let mut bad = c.clone();
        bad.cluster.as_mut().unwrap().node_id = 9;
        assert!(bad.validate().is_err());
        let mut shared = c.clone();
        let peers = &mut shared.cluster.as_mut().unwrap().peers;
        peers[1].addr = peers[0].addr.clone();
        assert!(shared.validate().is_err_and(|e| e.to_string().contains("used twice")));
        let mut shared = c.clone();
        let peers = &mut shared.cluster.as_mut().unwrap().peers;
        peers[1].client_addr = peers[0].addr.clone();
        assert!(shared.validate().is_err());
        assert!(toml::from_str::<Config>("[cluster]\nmode = \"both\"").is_err());
        assert_eq!(cluster.priority_of(1), 1, "priority defaults to 1");
        let mut zero = c.clone();
        zero.cluster.as_mut().expect("cluster").peers.iter_mut().for_each(|p| p.priority = 0);
        assert!(zero.validate().is_err_and(|e| e.to_string().contains("priority above 0")));
        zero.cluster.as_mut().expect("cluster").peers[1].priority = 2;
        zero.cluster.as_mut().expect("cluster").preferred_primary = Some(1);
        let err = zero.validate().expect_err("a priority-0 preferred primary").to_string();
        assert!(err.contains("cluster.preferred_primary"), "{err}");
        // Names are accepted; two spellings of one name are one address.
        let mut named = c.clone();
        let peers = &mut named.cluster.as_mut().expect("cluster").peers;
        peers[0].addr = "Keepbit-0.peers.local.:7001".into();
        peers[1].addr = "[::1]:7001".into();
        named.validate().expect("names and bracketed IPv6 are valid");
        named.cluster.as_mut().expect("cluster").peers[1].addr = "keepbit-0.peers.local:7001".into();
        assert!(named.validate().is_err_and(|e| e.to_string().contains("used twice")));
        named.cluster.as_mut().expect("cluster").peers[1].addr = "keepbit_1:7001".into();
        let err = named.validate().expect_err("an underscore is refused").to_string();
        assert!(err.contains("cluster.peers.addr") && err.contains("is not a host:port address"), "{err}");
    }

    /// The admin port is off unless set; its bind defaults to the client bind; health
    /// thresholds are checked.
    #[test]
    fn admin_port_and_health_settings() {
        assert_eq!(Config::default().admin_addr(), None);
        let c: Config = toml::from_str("bind = \"127.0.0.5\"\nadmin_port = 9000").expect("parses");
        assert_eq!(c.admin_addr().as_deref(), Some("127.0.0.5:9000"));
        let c: Config = toml::from_str("admin_port = 0\nadmin_bind = \"0.0.0.0\"").expect("parses");
        assert_eq!(c.admin_addr().as_deref(), Some("0.0.0.0:0"));
        let c: Config = toml::from_str("[health]\nphi_threshold = 12.0\ninterval_ms = 100").expect("parses");
        c.validate().expect("valid");
        assert_eq!(c.health.phi_threshold, 12.0);
        let bad: Config = toml::from_str("[health]\nmemory_degraded_percent = 120").expect("parses");
        assert!(bad.validate().is_err_and(|e| e.to_string().contains("memory_failing_percent")));
        assert!(toml::from_str::<Config>("[health]\nphi = 1").is_err());
    }

    /// The peer frame limit follows `max_entry_bytes` (and the snapshot chunk), not the
    /// dataset; `peer_frame_len_max_bytes` can still raise it, and one too small to hold
    /// an entry is refused saying what it must be.
    #[test]
    fn the_peer_frame_limit_is_derived_from_the_entry_limit() {
        let base = "[cluster]\nnode_id = 1\nsecret = \"s\"\n\
            peers = [{ id = 1, addr = \"127.0.0.1:7001\", client_addr = \"127.0.0.1:6379\" }]\n";
        let parse = |extra: &str| -> Config { toml::from_str(&format!("{base}{extra}")).expect("parses") };
        let c = parse("max_entry_bytes = 8388608");
        c.validate().expect("valid");
        assert_eq!(c.cluster.as_ref().expect("cluster").peer_frame_len_bytes(), 9 << 20);
        assert_eq!(parse("").cluster.expect("cluster").peer_frame_len_bytes(), 65 << 20);
        let raised = parse("peer_frame_len_max_bytes = 536870912");
        raised.validate().expect("an old config that raised the limit still starts");
        assert_eq!(raised.cluster.expect("cluster").peer_frame_len_bytes(), 512 << 20);
        let err = parse("peer_frame_len_max_bytes = 4194304").validate().expect_err("too small").to_string();
        assert!(err.contains("peer_frame_len_max_bytes") && err.contains(&(65 << 20).to_string()), "{err}");
        assert!(parse("snapshot_chunk_bytes = 100").validate().is_err());
        assert!(parse("max_entry_bytes = 1073741824").validate().is_err());
    }

    /// Each TLS switch names the files it needs, and a half-set pair is refused.
    #[test]
    fn tls_settings_need_their_files() {
        let err = |text: &str| toml::from_str::<Config>(text).expect("parses").validate().err().map(|e| e.to_string());
        let pair = "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n";
        assert_eq!(err(pair), None, "files without a switch are allowed");
        assert!(err("tls = true").expect("refused").contains("tls_cert"));
        assert!(err("tls_cert = \"c.pem\"").expect("refused").contains("tls_key"));
        assert!(err("tls_key = \"k.pem\"").expect("refused").contains("tls_cert"));
        assert_eq!(err(&format!("tls = true\n{pair}")), None);
        assert!(err(&format!("tls_auth_clients = true\n{pair}")).expect("refused").contains("needs tls = true"));
        assert!(err(&format!("tls = true\ntls_auth_clients = true\n{pair}")).expect("refused").contains("tls_ca"));
        assert_eq!(err(&format!("tls = true\ntls_auth_clients = true\ntls_ca = \"ca.pem\"\n{pair}")), None);
        let cluster = "[cluster]\nnode_id = 1\nsecret = \"s\"\ntls = true\n\
            peers = [{ id = 1, addr = \"127.0.0.1:7001\", client_addr = \"127.0.0.1:6379\" }]\n";
        assert!(err(cluster).expect("refused").contains("tls_cert"));
        assert!(err(&format!("{pair}{cluster}")).expect("refused").contains("tls_ca"));
        assert_eq!(err(&format!("{pair}tls_ca = \"ca.pem\"\n{cluster}")), None);
    }
}
