//! Loading TLS material: each kind of bad file is a clear error naming the setting and
//! the file, and peers from one CA shake hands while a stranger's certificate is refused.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use super::*;
use crate::config::{ClusterConfig, Config};

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

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("keepbit-tls-unit-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

/// Writes ca.pem, cert.pem and key.pem (a leaf for localhost / 127.0.0.1) into `d`.
fn write_material(d: &Path, ca: &Ca) {
    let key = KeyPair::generate().expect("leaf key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, "keepbit test node");
    let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("leaf cert");
    std::fs::write(d.join("ca.pem"), ca.cert.pem()).expect("write");
    std::fs::write(d.join("cert.pem"), cert.pem()).expect("write");
    std::fs::write(d.join("key.pem"), key.serialize_pem()).expect("write");
}

fn config(d: &Path, client: bool, peer: bool) -> Config {
    Config {
        tls: client,
        tls_cert: Some(d.join("cert.pem")),
        tls_key: Some(d.join("key.pem")),
        tls_ca: Some(d.join("ca.pem")),
        cluster: Some(ClusterConfig { tls: peer, ..ClusterConfig::default() }),
        ..Config::default()
    }
}

fn load_err(c: &Config) -> String {
    match Tls::load(c) {
        Ok(_) => panic!("loaded bad TLS material"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_files_are_errors_that_name_the_setting_and_the_file() {
    let d = dir("bad");
    write_material(&d, &ca());
    let mut c = config(&d, true, true);
    c.tls_cert = Some(d.join("nope.pem"));
    let e = load_err(&c);
    assert!(e.contains("tls_cert") && e.contains("nope.pem") && e.contains("cannot read"), "{e}");

    std::fs::write(d.join("junk.pem"), "not pem at all\n").expect("write");
    c.tls_cert = Some(d.join("junk.pem"));
    let e = load_err(&c);
    assert!(e.contains("tls_cert") && e.contains("no CERTIFICATE"), "{e}");

    let mut c = config(&d, true, false);
    c.tls_key = Some(d.join("cert.pem"));
    let e = load_err(&c);
    assert!(e.contains("tls_key") && e.contains("no PRIVATE KEY"), "{e}");

    let mut c = config(&d, true, false);
    c.tls_ca = Some(d.join("junk.pem"));
    let e = load_err(&c);
    assert!(e.contains("tls_ca") && e.contains("junk.pem"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_key_from_another_certificate_is_a_mismatch() {
    let d = dir("mismatch");
    let other = dir("mismatch-other");
    let authority = ca();
    write_material(&d, &authority);
    write_material(&other, &authority);
    let mut c = config(&d, true, false);
    c.tls_key = Some(other.join("key.pem"));
    let e = load_err(&c);
    assert!(e.contains("does not belong to tls_cert"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn each_switch_sets_up_only_its_port() {
    let d = dir("switches");
    write_material(&d, &ca());
    let both = Tls::load(&config(&d, true, true)).expect("load");
    assert!(both.client.is_some() && both.peer.is_some());
    let client = Tls::load(&config(&d, true, false)).expect("load");
    assert!(client.client.is_some() && client.peer.is_none());
    let none = Tls::load(&Config::default()).expect("load");
    assert!(none.client.is_none() && none.peer.is_none());
    let _ = std::fs::remove_dir_all(&d);
}

/// Runs one peer TLS handshake over an in-memory pipe and echoes a byte through it;
/// (dialer ok, acceptor ok).
async fn shake(dialer: &PeerTls, acceptor: &PeerTls) -> (bool, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, b) = tokio::io::duplex(64 * 1024);
    let ip = std::net::IpAddr::from([127, 0, 0, 9]);
    let accepting = acceptor.acceptor.clone();
    let server = tokio::spawn(async move {
        let mut s = accepting.accept(b).await?;
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await?;
        s.write_all(&byte).await?;
        s.flush().await
    });
    let client = async {
        let mut s = dialer.connect(ip, a).await?;
        s.write_all(b"x").await?;
        s.flush().await?;
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await.map(|_| ())
    };
    let dialed = client.await.is_ok();
    let accepted = server.await.expect("join").is_ok();
    (dialed, accepted)
}

/// Peers check each other's chain but not names (the certificate names 127.0.0.1 and
/// localhost, the dialer asks for 127.0.0.9); a peer with another CA's certificate is
/// refused in both directions.
#[tokio::test]
async fn peers_of_one_ca_connect_and_a_stranger_is_refused() {
    let (d1, d2, d3) = (dir("peer-1"), dir("peer-2"), dir("peer-3"));
    let cluster_ca = ca();
    write_material(&d1, &cluster_ca);
    write_material(&d2, &cluster_ca);
    write_material(&d3, &ca());
    let load = |d: &Path| Tls::load(&config(d, false, true)).expect("load").peer.expect("peer tls");
    let (p1, p2, stranger) = (load(&d1), load(&d2), load(&d3));
    assert_eq!(shake(&p1, &p2).await, (true, true));
    assert!(!shake(&stranger, &p1).await.1, "a stranger's client certificate was accepted");
    assert!(!shake(&p1, &stranger).await.0, "a stranger's server certificate was accepted");
    for d in [d1, d2, d3] {
        let _ = std::fs::remove_dir_all(&d);
    }
}
