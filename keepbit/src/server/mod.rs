//! The client-facing server: accepts connections and runs one task per client.

pub mod admin;
pub mod client;
mod conn;
mod replication;
pub mod session;

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::node::Node;

/// Serves clients on `listener` until `shutdown` resolves. The caller binds the
/// listener (tests use port 0).
pub async fn run(node: Arc<Node>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    node.spawn_expiry(Duration::from_millis(100));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (mut stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        node.stats.connections_received.fetch_add(1, Relaxed);
        let _ = stream.set_nodelay(true);
        let laddr = stream.local_addr().unwrap_or(addr);
        let max = node.config().maxclients;
        let Some(client) = node.clients.register(addr, laddr, max) else {
            node.stats.rejected_connections.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
            });
            continue;
        };
        tokio::spawn(conn::serve(node.clone(), stream, client));
    }
    for c in node.clients.all() {
        c.kill("server shutting down");
    }
}
