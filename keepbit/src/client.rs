//! A minimal RESP client for Keepbit's own tools (`keepbit up`, `keepbit cluster`, tests):
//! one request at a time, every call under a deadline.

use std::time::Duration;

use bytes::BytesMut;
use keepbit_resp::{decode_frame, Frame, Limits, Proto};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::ClientTls;

/// A plain or TLS connection.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    stream: Box<dyn Io>,
    buf: BytesMut,
    timeout: Duration,
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out")
}

impl Client {
    pub async fn connect(addr: &str, timeout: Duration) -> std::io::Result<Client> {
        Client::connect_with(addr, timeout, None).await
    }

    /// Connects to `addr` (`host:port`), over TLS when `tls` is given; connecting and the
    /// TLS handshake together must finish within `timeout`.
    pub async fn connect_with(addr: &str, timeout: Duration, tls: Option<&ClientTls>) -> std::io::Result<Client> {
        let stream: Box<dyn Io> = tokio::time::timeout(timeout, async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            Ok::<Box<dyn Io>, std::io::Error>(match tls {
                None => Box::new(tcp),
                Some(tls) => {
                    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                    Box::new(tls.connect(host, tcp).await?)
                }
            })
        })
        .await
        .map_err(|_| timed_out())??;
        Ok(Client { stream, buf: BytesMut::with_capacity(4096), timeout })
    }

    /// Sends one command and reads its reply.
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<Frame> {
        let frame = Frame::Array(args.iter().map(|a| Frame::Bulk(bytes::Bytes::copy_from_slice(a.as_ref()))).collect());
        let mut out = BytesMut::new();
        frame.encode(Proto::Resp2, &mut out);
        tokio::time::timeout(self.timeout, async {
            self.stream.write_all(&out).await?;
            loop {
                if let Some(f) = decode_frame(&mut self.buf, &Limits::default()).map_err(std::io::Error::other)? {
                    return Ok(f);
                }
                if self.stream.read_buf(&mut self.buf).await? == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
                }
            }
        })
        .await
        .map_err(|_| timed_out())?
    }
}

/// One command on a fresh connection.
pub async fn call_once<A: AsRef<[u8]>>(addr: &str, args: &[A], timeout: Duration) -> std::io::Result<Frame> {
    Client::connect(addr, timeout).await?.call(args).await
}

/// The text of a bulk, simple or verbatim reply.
pub fn text(f: &Frame) -> Option<String> {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) | Frame::Error(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Frame::Verbatim { text, .. } => Some(String::from_utf8_lossy(text).into_owned()),
        _ => None,
    }
}
