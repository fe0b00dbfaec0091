//! One client connection: read, decode every complete request in the buffer, answer
//! them in one write (pipelining), deliver pub/sub pushes, and wait for blocked commands.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use keepbit_resp::decode_request;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::clients::ClientShared;
use super::session::{Blocked, Next, Session};
use super::Server;
use crate::pubsub::{push_queue, Push, PushReceiver};
use crate::reply::Reply;

const READ_BUF_BYTES: usize = 16 * 1024;
/// Replies buffered before they are written out mid-pipeline.
const OUT_FLUSH_BYTES: usize = 64 * 1024;

/// The limits a connection checks on every read, kept apart from `Config` so reading
/// them costs no allocation.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub resp: keepbit_resp::Limits,
    pub query_buffer_bytes: usize,
    pub idle_timeout_s: u64,
}

impl ConnLimits {
    pub fn of(c: &crate::config::Config) -> ConnLimits {
        ConnLimits {
            resp: c.resp_limits(),
            query_buffer_bytes: c.client_query_buffer_limit_bytes,
            idle_timeout_s: c.timeout_s,
        }
    }
}

/// A client's byte stream, plain TCP or TLS, split so pushes can be written while a
/// read is pending.
pub trait ClientIo: Send + 'static {
    type Rd: AsyncRead + Unpin + Send;
    type Wr: AsyncWrite + Unpin + Send;
    fn into_halves(self) -> (Self::Rd, Self::Wr);
}

/// Plain TCP splits without a lock.
impl ClientIo for TcpStream {
    type Rd = OwnedReadHalf;
    type Wr = OwnedWriteHalf;
    fn into_halves(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

/// One TLS session serves both directions, so its halves share it behind tokio's lock.
impl ClientIo for tokio_rustls::server::TlsStream<TcpStream> {
    type Rd = ReadHalf<Self>;
    type Wr = WriteHalf<Self>;
    fn into_halves(self) -> (Self::Rd, Self::Wr) {
        tokio::io::split(self)
    }
}

pub async fn serve<S: ClientIo>(srv: Arc<Server>, stream: S, client: Arc<ClientShared>) {
    let (rd, wr) = stream.into_halves();
    let config = srv.config();
    let (push_tx, push_rx) = push_queue(config.pubsub_queue_len_max, config.pubsub_queue_bytes_max);
    let mut conn = Conn {
        session: Session::new(srv, client, push_tx),
        rd,
        wr,
        push_rx,
        buf: BytesMut::with_capacity(READ_BUF_BYTES),
        out: BytesMut::with_capacity(READ_BUF_BYTES),
    };
    if let Err(e) = conn.run().await {
        tracing::debug!("client {} closed: {e}", conn.session.client.addr);
    }
    conn.session.close();
}

struct Conn<R, W> {
    session: Session,
    rd: R,
    wr: W,
    push_rx: PushReceiver,
    buf: BytesMut,
    out: BytesMut,
}

/// Reads more input; `Ok(false)` when the client has gone.
async fn read_more<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut, srv: &Server) -> io::Result<bool> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(READ_BUF_BYTES);
    }
    let n = rd.read_buf(buf).await?;
    srv.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
    Ok(n > 0)
}

fn push_reply(p: Push) -> Reply {
    match p {
        Push::Message { channel, payload } => {
            Reply::Push(vec![Reply::bulk("message"), Reply::Bulk(channel), Reply::Bulk(payload)])
        }
        Push::PMessage { pattern, channel, payload } => {
            Reply::Push(vec![Reply::bulk("pmessage"), Reply::Bulk(pattern), Reply::Bulk(channel), Reply::Bulk(payload)])
        }
    }
}

impl<R: AsyncRead + Unpin + Send, W: AsyncWrite + Unpin + Send> Conn<R, W> {
    fn srv(&self) -> &Arc<Server> {
        &self.session.srv
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.wr.write_all(&self.out).await?;
            // A TLS session may hold the tail of the reply back until flushed.
            self.wr.flush().await?;
            self.srv().stats.net_output_bytes.fetch_add(self.out.len() as u64, Relaxed);
            self.out.clear();
        }
        Ok(())
    }

    fn encode(&mut self, r: Reply) {
        r.encode(self.session.proto, &mut self.out);
    }

    async fn run(&mut self) -> io::Result<()> {
        loop {
            if !self.process().await? {
                return self.flush().await;
            }
            self.flush().await?;
            let limits = self.srv().conn_limits();
            if self.buf.len() > limits.query_buffer_bytes {
                tracing::warn!("closing client {}: query buffer limit reached", self.session.client.addr);
                return Ok(());
            }
            let idle = (limits.idle_timeout_s > 0 && !self.session.client.is_pubsub())
                .then(|| Duration::from_secs(limits.idle_timeout_s));
            let client = self.session.client.clone();
            let srv = self.srv().clone();
            tokio::select! {
                biased;
                _ = client.kill_signal.notified() => return Ok(()),
                Some(p) = self.push_rx.recv() => {
                    self.encode(push_reply(p));
                    while let Some(p) = self.push_rx.try_recv() {
                        self.encode(push_reply(p));
                    }
                }
                more = read_more(&mut self.rd, &mut self.buf, &srv) => if !more? { return Ok(()) },
                _ = async { match idle { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => return Ok(()),
            }
        }
    }

    /// Handles every complete request in the buffer; `Ok(false)` to close the connection.
    async fn process(&mut self) -> io::Result<bool> {
        let limits = self.srv().conn_limits().resp;
        loop {
            if self.session.client.is_killed() {
                return Ok(false);
            }
            let args = match decode_request(&mut self.buf, &limits) {
                Ok(Some(args)) if args.is_empty() => continue,
                Ok(Some(args)) => args,
                Ok(None) => return Ok(true),
                Err(e) => {
                    // As Redis: report the protocol error, then close.
                    tracing::debug!("protocol error from {}: {e}", self.session.client.addr);
                    self.encode(Reply::Error(format!("ERR {e}")));
                    return Ok(false);
                }
            };
            if self.out.len() >= OUT_FLUSH_BYTES {
                // Pipelined replies go out as they are made: a client that sends many
                // requests and reads slowly (or never) holds one socket's worth of
                // replies here, not all of them.
                self.flush().await?;
            }
            match self.session.handle(args).await {
                Next::Reply(r) => self.encode(r),
                Next::Replies(rs) => rs.into_iter().for_each(|r| self.encode(r)),
                Next::Close(r) => {
                    self.encode(r);
                    return Ok(false);
                }
                Next::Block(b) => {
                    self.flush().await?;
                    match self.wait(b).await? {
                        Some(r) => self.encode(r),
                        None => return Ok(false),
                    }
                }
            }
        }
    }

    /// Waits for a blocked command to be served or time out; `None` if the client went
    /// away (so nothing is popped for a client that cannot receive it).
    async fn wait(&mut self, b: Blocked) -> io::Result<Option<Reply>> {
        let srv = self.srv().clone();
        let client = self.session.client.clone();
        client.blocked.store(true, Relaxed);
        let limit = srv.conn_limits().query_buffer_bytes;
        let result = loop {
            if let Some(r) = srv.node.try_blocking(b.db, &b.command, &b.keys).await {
                break Some(r);
            }
            let deadline = b.deadline;
            tokio::select! {
                _ = b.notify.notified() => {}
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d.into()).await, None => std::future::pending().await } } => {
                    break Some(Reply::NilArray);
                }
                _ = client.kill_signal.notified() => break None,
                more = read_more(&mut self.rd, &mut self.buf, &srv) => {
                    // Input while blocked stays buffered; EOF means the client is gone.
                    if !more? || self.buf.len() > limit {
                        break None;
                    }
                }
            }
        };
        srv.node.unblock(b.db, &b.keys, &b.notify);
        client.blocked.store(false, Relaxed);
        Ok(result)
    }
}
