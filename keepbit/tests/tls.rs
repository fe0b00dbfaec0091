//! TLS with real processes: redis-cli and redis-py talk to a node whose client port
//! speaks TLS, plain text on that port is dropped without harm, a cluster elects and
//! replicates over mutual TLS between peers, and a peer whose certificate comes from
//! another CA is kept out.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::cluster::{ClusterOptions, TestCluster};
use support::TestServer;

const ELECTION: Duration = Duration::from_secs(20);
const TOOL_DEADLINE: Duration = Duration::from_secs(20);

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Issuer and subject must differ, or OpenSSL takes the leaf for self-signed.
    params.distinguished_name.push(rcgen::DnType::CommonName, "keepbit test CA");
    let key = KeyPair::generate().expect("ca key");
    Ca { cert: params.self_signed(&key).expect("ca cert"), key }
}

/// PEM files for one node: the CA it trusts, and its certificate and key signed by it.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// Writes a certificate for localhost / 127.0.0.1 signed by `ca` under a fresh directory.
    fn issue(name: &str, ca: &Ca) -> Certs {
        let dir = std::env::temp_dir().join(format!("keepbit-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("keepbit {name}"));
        let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("cert");
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).expect("write");
        std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write");
        Certs { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The top-level config lines naming these files.
    fn config_lines(&self) -> String {
        let path = |f: &str| self.dir.join(f).display().to_string();
        format!("tls_cert = {:?}\ntls_key = {:?}\ntls_ca = {:?}\n", path("cert.pem"), path("key.pem"), path("ca.pem"))
    }

    /// A standalone node whose client port speaks TLS.
    fn server(&self) -> TestServer {
        self.server_with("")
    }

    /// A standalone TLS node with `extra` config lines.
    fn server_with(&self, extra: &str) -> TestServer {
        let config = self.dir.join("keepbit.toml");
        std::fs::write(&config, format!("tls = true\n{}{extra}", self.config_lines())).expect("write config");
        TestServer::start_with(&["--config", config.to_str().expect("utf-8 path")])
    }

    /// redis-cli over TLS to `port` with these files (and this certificate as the client's
    /// when `as_client`); (success, output).
    fn redis_cli(&self, port: u16, as_client: bool, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["--tls", "--cacert"]).arg(self.ca());
        if as_client {
            cmd.arg("--cert").arg(self.dir.join("cert.pem")).arg("--key").arg(self.dir.join("key.pem"));
        }
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args);
        let (ok, out) = run(&mut cmd, TOOL_DEADLINE);
        (ok, out.trim().to_string())
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd` to completion within `deadline` (killed by PID after it); (success, stdout
/// and stderr).
fn run(cmd: &mut Command, deadline: Duration) -> (bool, String) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let end = Instant::now() + deadline;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// A TLS session to a client port (the server checked against `ca`), kept open.
struct TlsSession {
    conn: rustls::ClientConnection,
    sock: TcpStream,
}

impl TlsSession {
    fn open(port: u16, ca: &Path) -> TlsSession {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("ca file") {
            roots.add(cert.expect("ca pem")).expect("ca cert");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        TlsSession { conn, sock }
    }

    /// Sends one inline command and returns the first reply line.
    fn call(&mut self, command: &str) -> String {
        let mut tls = rustls::Stream::new(&mut self.conn, &mut self.sock);
        tls.write_all(format!("{command}\r\n").as_bytes()).expect("write");
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") {
            tls.read_exact(&mut byte).expect("read reply");
            reply.push(byte[0]);
        }
        String::from_utf8_lossy(&reply).trim_end().to_string()
    }
}

/// Sends one inline command over TLS (checking the server against `ca`) and returns the
/// first reply line.
fn tls_call(port: u16, ca: &Path, command: &str) -> String {
    TlsSession::open(port, ca).call(command)
}

/// redis-cli --tls --cacert reaches a TLS client port: PING, SET and GET.
#[test]
fn redis_cli_talks_to_a_tls_client_port() {
    if !support::tool_works("sh", &["-c", "redis-cli --help 2>&1 | grep -q -- --cacert"], "redis-cli with TLS") {
        return;
    }
    let certs = Certs::issue("cli", &ca());
    let server = certs.server();
    let cli = |args: &[&str]| {
        let (ok, out) = certs.redis_cli(server.port, false, args);
        assert!(ok, "redis-cli {args:?} failed: {out}");
        out
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "k", "over tls"]), "OK");
    assert_eq!(cli(&["GET", "k"]), "over tls");
}

/// With `tls_auth_clients`, redis-cli without a client certificate is refused at the TLS
/// step, and with one signed by `tls_ca` it is served.
#[test]
fn tls_auth_clients_refuses_a_client_without_a_certificate() {
    if !support::tool_works("sh", &["-c", "redis-cli --help 2>&1 | grep -q -- --cacert"], "redis-cli with TLS") {
        return;
    }
    let certs = Certs::issue("auth", &ca());
    let mut server = certs.server_with("tls_auth_clients = true\n");
    let (ok, out) = certs.redis_cli(server.port, false, &["SET", "k", "no cert"]);
    assert!(!out.contains("OK"), "served a client without a certificate: ok={ok} {out}");
    let (ok, out) = certs.redis_cli(server.port, true, &["SET", "k", "with cert"]);
    assert!(ok && out == "OK", "refused a client with a certificate: {out}");
    let (_, out) = certs.redis_cli(server.port, true, &["GET", "k"]);
    assert_eq!(out, "with cert");
    assert!(server.alive(), "node died");
}

/// A client of a TLS port turned away at `maxclients` is told why over TLS (plain text
/// there would be garbage to its TLS layer), and the client already in is still served.
#[test]
fn a_tls_client_over_maxclients_is_told_why_over_tls() {
    let certs = Certs::issue("full", &ca());
    let mut server = certs.server_with("maxclients = 1\n");
    // The start-up check's own connection may take a moment to leave.
    let mut held = None;
    support::wait_for("one TLS client to be served", Duration::from_secs(10), || {
        let mut s = TlsSession::open(server.port, &certs.ca());
        let ok = s.call("PING") == "+PONG";
        held = Some(s);
        ok
    });
    let mut held = held.expect("a served session");
    assert_eq!(tls_call(server.port, &certs.ca(), "PING"), "-ERR max number of clients reached");
    assert_eq!(held.call("PING"), "+PONG");
    assert!(server.alive(), "node died");
}

/// `keepbit cluster --tls --cacert` (and `--cert/--key` where client certificates are
/// required) reaches a TLS client port; without `--tls` it gets no answer.
#[test]
fn keepbit_cluster_speaks_tls_to_a_tls_client_port() {
    let certs = Certs::issue("tool", &ca());
    let server = certs.server_with("tls_auth_clients = true\n");
    let node = format!("127.0.0.1:{}", server.port);
    let file = |f: &str| certs.dir.join(f).display().to_string();
    let keepbit = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keepbit"));
        cmd.args(["cluster", "--node", &node]).args(args).arg("status");
        run(&mut cmd, TOOL_DEADLINE)
    };
    let (ok, out) =
        keepbit(&["--tls", "--cacert", &file("ca.pem"), "--cert", &file("cert.pem"), "--key", &file("key.pem")]);
    // A standalone node answers, over TLS, that it is not in a cluster.
    assert!(!ok && out.contains("cluster") && !out.contains("cannot reach") && !out.contains("no answer"), "{out}");
    let (ok, out) = keepbit(&[]);
    assert!(!ok && (out.contains("cannot reach") || out.contains("no answer")), "answered plain text: {out}");
    let (ok, out) = keepbit(&["--tls", "--cacert", &file("ca.pem")]);
    assert!(!ok && (out.contains("cannot reach") || out.contains("no answer")), "served without a certificate: {out}");
}

/// redis-py with ssl=True and the CA file writes and reads back over TLS.
#[test]
fn redis_py_talks_to_a_tls_client_port() {
    if !support::tool_works("python3", &["-c", "import redis"], "python3 with redis-py") {
        return;
    }
    let certs = Certs::issue("py", &ca());
    let server = certs.server();
    let script = "import sys, redis\n\
        r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), ssl=True, ssl_ca_certs=sys.argv[2], socket_timeout=5)\n\
        r.set('py', 'tls')\n\
        print(r.get('py').decode())\n";
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, &server.port.to_string()]).arg(certs.ca());
    let (ok, out) = run(&mut cmd, TOOL_DEADLINE);
    assert!(ok, "redis-py failed: {out}");
    assert_eq!(out.trim(), "tls");
}

/// A client speaking plain RESP to the TLS port is disconnected; the node keeps running
/// and keeps serving TLS clients.
#[test]
fn plain_text_on_the_tls_port_is_dropped_and_the_node_carries_on() {
    let certs = Certs::issue("plain", &ca());
    let mut server = certs.server();
    assert_eq!(tls_call(server.port, &certs.ca(), "PING"), "+PONG");
    let mut raw = server.raw();
    raw.write_all(b"PING\r\n").expect("write");
    assert!(support::closed(&mut raw), "plain-text client was not disconnected");
    let mut raw = server.raw();
    raw.write_all(b"*1\r\n$4\r\nPING\r\n").expect("write");
    let answer = support::read_some(&mut raw, 7);
    assert!(!answer.starts_with(b"+PONG"), "the TLS port answered plain text");
    assert!(server.alive(), "node died");
    assert_eq!(tls_call(server.port, &certs.ca(), "SET a 1"), "+OK");
    assert_eq!(tls_call(server.port, &certs.ca(), "GET a"), "$1");
}

/// Three nodes whose peer ports speak mutual TLS elect a primary and replicate a write to
/// every standby; plain text on a peer port is refused at the TLS step.
#[test]
fn a_cluster_elects_and_replicates_over_peer_tls() {
    let certs = Certs::issue("cluster", &ca());
    let top = vec![certs.config_lines(); 3];
    let c = TestCluster::start(ClusterOptions { extra: "tls = true", top, ..ClusterOptions::default() });
    let p = c.wait_primary(ELECTION);
    let mut con = c.conn(p).expect("connect to primary");
    redis::cmd("SET").arg("k").arg("replicated").query::<()>(&mut con).expect("SET");
    let index = c.applied(p).expect("primary's applied index");
    for id in c.ids() {
        c.wait_applied(id, index, ELECTION);
        let mut con = c.readonly_conn(id).expect("connect");
        let v: String = redis::cmd("GET").arg("k").query(&mut con).expect("GET");
        assert_eq!(v, "replicated", "node {id}");
    }
    // A dialer that gives up mid-handshake (its call timed out on a loaded machine) leaves
    // a refusal in the log too; what must never appear is a member's certificate refused.
    for id in c.ids() {
        let log = c.log(id);
        let refused_cert = log.lines().any(|l| {
            let l = l.to_lowercase();
            l.contains("refused peer connection") && (l.contains("certificate") || l.contains("alert"))
        });
        assert!(!refused_cert, "node {id} refused a member's certificate:\n{log}");
    }
    let mut raw = TcpStream::connect(c.node(1).peer_addr()).expect("connect to peer port");
    raw.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    raw.write_all(b"KBPR plain hello, not TLS\r\n").expect("write");
    assert!(support::closed(&mut raw), "plain text on the peer port was not dropped");
    support::wait_for("the refusal in node 1's log", ELECTION, || {
        c.log(1).lines().any(|l| l.contains("refused peer connection") && l.contains("TLS"))
    });
}

/// A member whose certificate (and CA) differ from the cluster's never gets in: the two
/// others elect a primary and commit without it, and refuse its connections at the TLS step.
#[test]
fn a_peer_with_another_cas_certificate_is_refused() {
    let cluster_ca = ca();
    let good = Certs::issue("good", &cluster_ca);
    let stranger = Certs::issue("stranger", &ca());
    let top = vec![good.config_lines(), good.config_lines(), stranger.config_lines()];
    let c = TestCluster::start(ClusterOptions { extra: "tls = true", top, ..ClusterOptions::default() });
    let p = c.wait_primary(ELECTION);
    assert_ne!(p, 3, "the stranger became primary");
    let mut con = c.conn(p).expect("connect to primary");
    redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con).expect("SET");
    let index = c.applied(p).expect("primary's applied index");
    let other = if p == 1 { 2 } else { 1 };
    c.wait_applied(other, index, ELECTION);
    let refused = |id: u64| c.log(id).lines().any(|l| l.contains("refused peer connection") && l.contains("TLS"));
    support::wait_for("nodes 1 and 2 to refuse the stranger", ELECTION, || refused(1) && refused(2));
    assert!(c.applied(3).unwrap_or(0) < index, "the stranger received the write");
    assert_ne!(c.role(3).as_deref(), Some("master"));
}

/// A TLS file that cannot be used stops start-up with an error naming the setting and the
/// file, not a panic.
#[test]
fn a_bad_tls_file_stops_start_up_with_a_clear_error() {
    let certs = Certs::issue("bad", &ca());
    let config = certs.dir.join("keepbit.toml");
    let lines = certs.config_lines().replace("cert.pem", "missing.pem");
    std::fs::write(&config, format!("tls = true\nport = 0\ndata_dir = {:?}\n{lines}", certs.dir.join("data")))
        .expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keepbit"));
    cmd.args(["server", "--config"]).arg(&config);
    let (ok, out) = run(&mut cmd, TOOL_DEADLINE);
    assert!(!ok, "started with a missing certificate: {out}");
    assert!(out.contains("tls_cert") && out.contains("missing.pem"), "unclear error: {out}");
    assert!(!out.contains("panicked"), "{out}");
}
