//! TLS (rustls with the ring provider) for the client port and the peer port: the PEM
//! files the config names are read once at start-up, and every problem with them (missing,
//! unreadable, not PEM, key and certificate that do not belong together) is an error that
//! names the setting and the file, never a panic.
//!
//! Peers present the same certificate as server and as client, and each side checks the
//! other's chain against `tls_ca` (mutual TLS). Host names are not checked between peers,
//! as Redis does not check them on its replication link: members are named by `ip:port`,
//! one certificate serves every member, the CA is the cluster's own, and the HMAC
//! handshake still runs inside the TLS session.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::Config;

/// Why TLS could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid setting {field}: {path}: {reason}")]
    File { field: &'static str, path: PathBuf, reason: String },
    #[error("invalid setting tls_key: {key} does not belong to tls_cert {cert}: {reason}")]
    KeyMismatch { cert: PathBuf, key: PathBuf, reason: String },
    #[error("invalid setting {field}: {reason}")]
    Missing { field: &'static str, reason: &'static str },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// What the node's listeners and dialer need; `None` where a port speaks plain TCP.
#[derive(Clone, Default)]
pub struct Tls {
    /// The client port speaks TLS (`tls = true`).
    pub client: Option<TlsAcceptor>,
    /// The peer port speaks mutual TLS (`cluster.tls = true`).
    pub peer: Option<PeerTls>,
}

/// Both ends of a peer connection.
#[derive(Clone)]
pub struct PeerTls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

impl PeerTls {
    /// Opens TLS on a connection to the peer at `addr` (its certificate's chain is
    /// checked, not its names).
    pub async fn connect<IO>(
        &self,
        addr: std::net::IpAddr,
        io: IO,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        self.connector.connect(ServerName::IpAddress(addr.into()), io).await
    }
}

/// The certificate, key and CA the config names, loaded and checked.
struct Material {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: Option<Arc<RootCertStore>>,
}

impl Tls {
    /// Loads what `config` asks for; `Tls::default()` (plain TCP) when neither port
    /// speaks TLS.
    pub fn load(config: &Config) -> Result<Tls, TlsError> {
        let peer_tls = config.cluster.as_ref().is_some_and(|c| c.tls);
        if !config.tls && !peer_tls {
            return Ok(Tls::default());
        }
        let m = Material::load(config)?;
        let client = match config.tls {
            true => Some(TlsAcceptor::from(Arc::new(m.client_server_config(config.tls_auth_clients)?))),
            false => None,
        };
        let peer = match peer_tls {
            true => Some(m.peer_tls()?),
            false => None,
        };
        Ok(Tls { client, peer })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn setup(e: impl std::fmt::Display) -> TlsError {
    TlsError::Setup(e.to_string())
}

fn read_pem(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        field,
        path: path.to_owned(),
        reason: format!("cannot read: {e}"),
    })
}

fn read_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File { field, path: path.to_owned(), reason };
    let pem = read_pem(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bad = |reason: String| TlsError::File { field: "tls_key", path: path.to_owned(), reason };
    let pem = read_pem("tls_key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => bad("no PRIVATE KEY block found".into()),
        e => bad(format!("not a PEM private key file: {e}")),
    })
}

fn read_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("tls_ca", path)? {
        roots.add(cert).map_err(|e| TlsError::File {
            field: "tls_ca",
            path: path.to_owned(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(Arc::new(roots))
}

impl Material {
    fn load(config: &Config) -> Result<Material, TlsError> {
        let missing = |field, reason| TlsError::Missing { field, reason };
        let cert = config.tls_cert.as_deref().ok_or(missing("tls_cert", "must be set for TLS"))?;
        let key = config.tls_key.as_deref().ok_or(missing("tls_key", "must be set for TLS"))?;
        let certs = read_certs("tls_cert", cert)?;
        let private = read_key(key)?;
        let mismatch = |e: rustls::Error| TlsError::KeyMismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        };
        rustls::sign::CertifiedKey::from_der(certs.clone(), private.clone_key(), &provider()).map_err(mismatch)?;
        let ca = config.tls_ca.as_deref().map(read_roots).transpose()?;
        Ok(Material { certs, key: private, ca })
    }

    fn ca(&self, needed_by: &'static str) -> Result<Arc<RootCertStore>, TlsError> {
        self.ca.clone().ok_or(TlsError::Missing { field: "tls_ca", reason: needed_by })
    }

    fn server_builder(&self) -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>, TlsError> {
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(setup)
    }

    /// The client port: client certificates are required (checked against `tls_ca`) only
    /// with `tls_auth_clients`.
    fn client_server_config(&self, auth_clients: bool) -> Result<ServerConfig, TlsError> {
        let builder = self.server_builder()?;
        let builder = match auth_clients {
            true => {
                let ca = self.ca("must be set with tls_auth_clients")?;
                let verifier = WebPkiClientVerifier::builder_with_provider(ca, provider()).build().map_err(setup)?;
                builder.with_client_cert_verifier(verifier)
            }
            false => builder.with_no_client_auth(),
        };
        builder.with_single_cert(self.certs.clone(), self.key.clone_key()).map_err(setup)
    }

    fn peer_tls(&self) -> Result<PeerTls, TlsError> {
        let ca = self.ca("must be set with cluster.tls")?;
        let verifier = WebPkiClientVerifier::builder_with_provider(ca.clone(), provider()).build().map_err(setup)?;
        let server = self
            .server_builder()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(setup)?;
        let chain_only = ChainOnly(WebPkiServerVerifier::builder_with_provider(ca, provider()).build().map_err(setup)?);
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(setup)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(chain_only))
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .map_err(setup)?;
        Ok(PeerTls { acceptor: TlsAcceptor::from(Arc::new(server)), connector: TlsConnector::from(Arc::new(client)) })
    }
}

/// What Keepbit's own tools (`keepbit cluster …`) need to reach a TLS client port, as
/// redis-cli's `--tls --cacert FILE [--cert FILE --key FILE]`: the server's certificate must
/// chain to the CA and name the host dialed.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
}

impl ClientTls {
    /// Loads the CA and, for a port with `tls_auth_clients`, the client's certificate and key.
    pub fn load(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientTls, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(setup)?
            .with_root_certificates(read_roots(ca)?);
        let config = match identity {
            Some((cert, key)) => {
                builder.with_client_auth_cert(read_certs("tls_cert", cert)?, read_key(key)?).map_err(setup)?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(ClientTls { connector: TlsConnector::from(Arc::new(config)) })
    }

    /// Opens TLS on `io`, a connection to `host` (a DNS name or an IP address).
    pub async fn connect<IO>(&self, host: &str, io: IO) -> std::io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
        self.connector.connect(name, io).await
    }
}

/// Checks a peer's certificate chain against the cluster CA like any TLS client, but
/// accepts it whatever names it carries (see the module docs). webpki checks the chain
/// before the name, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests;
