//! The peer handshake: mutual challenge–response over the cluster secret, which never
//! crosses the wire.
//!
//! ```text
//! dialer → server   Hello { magic, version, from, nonce: Nd }
//! server → dialer   Challenge { nonce: Ns, proof: HMAC(secret, "server" · from · Nd · Ns) }
//!                   (or Refused: bad magic or version)
//! dialer → server   HelloProof { proof: HMAC(secret, "dialer" · from · Nd · Ns) }
//!                   (only if the server's proof checked out: a server that does not know
//!                   the secret learns nothing it could replay)
//! server → dialer   Ok | Refused
//! ```
//!
//! Both nonces are fresh random 32-byte values, so a recorded exchange proves nothing on
//! a later connection, and neither side can be used as an oracle for the other's proof
//! (the side label differs).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{decode_payload, encode_frame, read_frame, write_parts, FrameError, PEER_MAGIC, PEER_PROTOCOL_VERSION};
use crate::raft::types::NodeId;

/// Hello frames (and their replies) are tiny; an unauthenticated peer can make us buffer at
/// most this much.
pub const HELLO_LEN_MAX_BYTES: usize = 4096;

pub type Nonce = [u8; 32];

/// What a node proves and declares in every handshake: the cluster secret, and the
/// parameters every member must share (`databases=16`): a node configured differently
/// would apply the same ops with different results, so it is refused with a clear reason.
#[derive(Clone, Debug, Default)]
pub struct PeerAuth {
    pub secret: String,
    pub params: String,
}

impl From<&str> for PeerAuth {
    fn from(secret: &str) -> Self {
        PeerAuth { secret: secret.to_string(), params: String::new() }
    }
}

/// The first frame on every connection. Carries no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub magic: u32,
    pub version: u16,
    pub from: NodeId,
    pub nonce: Nonce,
    /// The dialer's [`PeerAuth::params`].
    pub params: String,
}

impl Hello {
    pub fn new(from: NodeId) -> Self {
        Hello { magic: PEER_MAGIC, version: PEER_PROTOCOL_VERSION, from, nonce: rand::random(), params: String::new() }
    }
}

/// The server's answers during the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The server's nonce and its proof that it knows the secret.
    Challenge {
        nonce: Nonce,
        proof: Vec<u8>,
    },
    Ok,
    Refused {
        reason: String,
    },
}

/// The dialer's proof that it knows the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloProof {
    pub proof: Vec<u8>,
}

/// Which side computes a proof; part of what is signed.
#[derive(Clone, Copy, Debug)]
pub enum Side {
    Server,
    Dialer,
}

fn mac(secret: &str, side: Side, from: NodeId, dialer: &Nonce, server: &Nonce) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    m.update(b"keepbit peer handshake v2\0");
    m.update(match side {
        Side::Server => b"server",
        Side::Dialer => b"dialer",
    });
    m.update(&from.to_be_bytes());
    m.update(dialer);
    m.update(server);
    m
}

/// `side`'s proof of knowing `secret` for this exchange.
pub fn proof(secret: &str, side: Side, from: NodeId, dialer: &Nonce, server: &Nonce) -> Vec<u8> {
    mac(secret, side, from, dialer, server).finalize().into_bytes().to_vec()
}

/// Checks `given` against the proof `side` should have sent, in constant time.
pub fn verify(secret: &str, side: Side, from: NodeId, dialer: &Nonce, server: &Nonce, given: &[u8]) -> bool {
    mac(secret, side, from, dialer, server).verify_slice(given).is_ok()
}

/// Why a hello is refused before any proof: an alien or incompatible peer.
pub fn check_hello(hello: &Hello) -> Result<(), String> {
    if hello.magic != PEER_MAGIC {
        return Err(format!("bad magic {:#010x}", hello.magic));
    }
    if hello.version != PEER_PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} unsupported (this node speaks {PEER_PROTOCOL_VERSION})",
            hello.version
        ));
    }
    Ok(())
}

async fn send<W: AsyncWrite + Unpin, T: Serialize>(io: &mut W, msg: &T, wait: Duration) -> Result<(), FrameError> {
    write_parts(io, &[&encode_frame(msg, HELLO_LEN_MAX_BYTES)?], wait).await
}

async fn recv<R: AsyncRead + Unpin, T: serde::de::DeserializeOwned>(
    io: &mut R,
    wait: Duration,
) -> Result<T, FrameError> {
    decode_payload(&read_frame(io, HELLO_LEN_MAX_BYTES, wait, wait).await?)
}

/// Server side: runs the handshake and returns the dialer's node id, or why it was refused.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    auth: &PeerAuth,
    wait: Duration,
) -> Result<NodeId, String> {
    let secret = auth.secret.as_str();
    let hello: Hello = recv(io, wait).await.map_err(|e| format!("bad hello: {e}"))?;
    let verdict = check_hello(&hello).and_then(|()| match hello.params == auth.params {
        true => Ok(()),
        false => Err(format!(
            "cluster parameters differ: the dialer has \"{}\", this node \"{}\"",
            hello.params, auth.params
        )),
    });
    if let Err(reason) = verdict {
        let _ = send(io, &HelloReply::Refused { reason: reason.clone() }, wait).await;
        return Err(format!("{reason} (node {})", hello.from));
    }
    let nonce: Nonce = rand::random();
    let challenge =
        HelloReply::Challenge { nonce, proof: proof(secret, Side::Server, hello.from, &hello.nonce, &nonce) };
    send(io, &challenge, wait).await.map_err(|e| format!("cannot answer hello: {e}"))?;
    let answer: HelloProof =
        recv(io, wait).await.map_err(|e| format!("no proof after hello (node {}): {e}", hello.from))?;
    if !verify(secret, Side::Dialer, hello.from, &hello.nonce, &nonce, &answer.proof) {
        let reason = "wrong cluster secret".to_string();
        let _ = send(io, &HelloReply::Refused { reason: reason.clone() }, wait).await;
        return Err(format!("{reason} (node {})", hello.from));
    }
    send(io, &HelloReply::Ok, wait).await.map_err(|e| format!("cannot answer hello: {e}"))?;
    Ok(hello.from)
}

/// Why a dialed handshake failed.
#[derive(Debug)]
pub enum DialError {
    Frame(FrameError),
    /// The server refused us, or proved it does not know the secret.
    Refused(String),
}

impl From<FrameError> for DialError {
    fn from(e: FrameError) -> Self {
        DialError::Frame(e)
    }
}

/// Dialer side: proves this node (`from`) knows `secret` to a server that proves it too.
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    auth: &PeerAuth,
    from: NodeId,
    wait: Duration,
) -> Result<(), DialError> {
    let secret = auth.secret.as_str();
    let hello = Hello { params: auth.params.clone(), ..Hello::new(from) };
    send(io, &hello, wait).await?;
    let (nonce, server_proof) = match recv(io, wait).await? {
        HelloReply::Challenge { nonce, proof } => (nonce, proof),
        HelloReply::Refused { reason } => return Err(DialError::Refused(reason)),
        HelloReply::Ok => return Err(DialError::Refused("accepted without a challenge (not a Keepbit peer?)".into())),
    };
    if !verify(secret, Side::Server, from, &hello.nonce, &nonce, &server_proof) {
        return Err(DialError::Refused("the peer does not know the cluster secret".into()));
    }
    send(io, &HelloProof { proof: proof(secret, Side::Dialer, from, &hello.nonce, &nonce) }, wait).await?;
    match recv(io, wait).await? {
        HelloReply::Ok => Ok(()),
        HelloReply::Refused { reason } => Err(DialError::Refused(reason)),
        HelloReply::Challenge { .. } => Err(DialError::Refused("a second challenge".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCES: (Nonce, Nonce) = ([1; 32], [2; 32]);

    /// A proof verifies only for the same secret, side, node and nonces.
    #[test]
    fn proofs_bind_secret_side_node_and_nonces() {
        let (d, s) = NONCES;
        let p = proof("secret", Side::Dialer, 7, &d, &s);
        assert!(verify("secret", Side::Dialer, 7, &d, &s, &p));
        assert!(!verify("secreT", Side::Dialer, 7, &d, &s, &p));
        assert!(!verify("secret", Side::Server, 7, &d, &s, &p), "a server proof is no dialer proof");
        assert!(!verify("secret", Side::Dialer, 8, &d, &s, &p));
        assert!(!verify("secret", Side::Dialer, 7, &s, &d, &p));
        assert!(!verify("secret", Side::Dialer, 7, &d, &s, &p[..31]));
    }

    /// Magic and version are checked before any proof.
    #[test]
    fn hello_checks() {
        assert!(check_hello(&Hello::new(1)).is_ok());
        let old = Hello { version: 1, ..Hello::new(1) };
        assert!(check_hello(&old).is_err_and(|r| r.contains("version")));
        let alien = Hello { magic: 1, ..Hello::new(1) };
        assert!(check_hello(&alien).is_err_and(|r| r.contains("magic")));
    }

    /// Both sides over an in-memory pipe: the same secret connects, a different one is
    /// refused by whichever side checks first, and the secret never appears in the bytes
    /// the dialer sends.
    #[tokio::test]
    async fn handshake_over_a_pipe() {
        let wait = Duration::from_secs(5);
        let (secret, other): (PeerAuth, PeerAuth) = ("s3cret-value".into(), "other".into());
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        let (dialed, accepted) = tokio::join!(dial(&mut a, &secret, 4, wait), accept(&mut b, &secret, wait));
        assert!(dialed.is_ok(), "{dialed:?}");
        assert_eq!(accepted, Ok(4));

        // A server with another secret: the dialer refuses to send its proof.
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        let (dialed, accepted) = tokio::join!(dial(&mut a, &secret, 4, wait), async {
            let r = accept(&mut b, &other, wait).await;
            drop(b);
            r
        });
        assert!(matches!(&dialed, Err(DialError::Refused(r)) if r.contains("does not know")), "{dialed:?}");
        assert!(accepted.is_err_and(|r| r.contains("no proof")));

        // Record what a dialer sends to a server that knows the secret.
        let (mut a, b) = tokio::io::duplex(64 * 1024);
        let (mut rd, mut wr) = tokio::io::split(b);
        let recorder = async {
            let mut seen = Vec::new();
            let hello: Hello = recv(&mut rd, wait).await.expect("hello");
            seen.extend(postcard::to_allocvec(&hello).expect("encode"));
            let nonce = [9; 32];
            let challenge =
                HelloReply::Challenge { nonce, proof: proof("s3cret-value", Side::Server, 4, &hello.nonce, &nonce) };
            send(&mut wr, &challenge, wait).await.expect("challenge");
            let p: HelloProof = recv(&mut rd, wait).await.expect("proof");
            seen.extend(p.proof);
            send(&mut wr, &HelloReply::Ok, wait).await.expect("ok");
            seen
        };
        let (dialed, seen) = tokio::join!(dial(&mut a, &secret, 4, wait), recorder);
        assert!(dialed.is_ok(), "{dialed:?}");
        assert!(!seen.windows(b"s3cret-value".len()).any(|w| w == b"s3cret-value"), "the secret went over the wire");

        // Same secret, different shared parameters: refused, saying which.
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        let mine = PeerAuth { secret: "s".into(), params: "databases=16".into() };
        let theirs = PeerAuth { secret: "s".into(), params: "databases=8".into() };
        let (dialed, accepted) = tokio::join!(dial(&mut a, &theirs, 4, wait), accept(&mut b, &mine, wait));
        assert!(matches!(&dialed, Err(DialError::Refused(r)) if r.contains("databases=8")), "{dialed:?}");
        assert!(accepted.is_err_and(|r| r.contains("parameters differ")));
    }
}
