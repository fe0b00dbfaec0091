//! Pub/sub: channel and pattern subscriptions. Each subscriber has a queue bounded in
//! messages and in bytes; one that falls too far behind is disconnected (Redis's pubsub
//! output-buffer limit).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::cmd::Effects;
use crate::glob;

/// A message on its way to one subscriber.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    Message { channel: Bytes, payload: Bytes },
    PMessage { pattern: Bytes, channel: Bytes, payload: Bytes },
}

impl Push {
    /// What the message holds in memory while queued, roughly.
    pub fn len_bytes(&self) -> u64 {
        const OVERHEAD: usize = 64;
        let n = match self {
            Push::Message { channel, payload } => channel.len() + payload.len(),
            Push::PMessage { pattern, channel, payload } => pattern.len() + channel.len() + payload.len(),
        };
        (n + OVERHEAD) as u64
    }
}

/// The sending side of one connection's message queue.
#[derive(Clone)]
pub struct PushQueue {
    tx: mpsc::Sender<Push>,
    queued_bytes: Arc<AtomicU64>,
    bytes_max: u64,
}

/// The receiving side: counts bytes out as messages leave.
pub struct PushReceiver {
    rx: mpsc::Receiver<Push>,
    queued_bytes: Arc<AtomicU64>,
}

impl PushReceiver {
    pub async fn recv(&mut self) -> Option<Push> {
        let p = self.rx.recv().await?;
        self.queued_bytes.fetch_sub(p.len_bytes(), Relaxed);
        Some(p)
    }

    pub fn try_recv(&mut self) -> Option<Push> {
        let p = self.rx.try_recv().ok()?;
        self.queued_bytes.fetch_sub(p.len_bytes(), Relaxed);
        Some(p)
    }
}

/// A connection's message queue: at most `len_max` messages and `bytes_max` bytes.
pub fn push_queue(len_max: usize, bytes_max: u64) -> (PushQueue, PushReceiver) {
    let (tx, rx) = mpsc::channel(len_max.max(1));
    let queued_bytes = Arc::new(AtomicU64::new(0));
    (PushQueue { tx, queued_bytes: queued_bytes.clone(), bytes_max }, PushReceiver { rx, queued_bytes })
}

/// Whoever owns a subscription, told to go away when it cannot keep up.
pub trait Disconnect: Send + Sync {
    fn disconnect(&self, reason: &str);
}

#[derive(Clone)]
pub struct Subscriber {
    /// The client's id: one subscription per client and channel.
    pub id: u64,
    pub queue: PushQueue,
    pub owner: Arc<dyn Disconnect>,
}

#[derive(Default)]
struct Registry {
    channels: HashMap<Bytes, HashMap<u64, Subscriber>>,
    patterns: HashMap<Bytes, HashMap<u64, Subscriber>>,
}

#[derive(Default)]
pub struct PubSub {
    inner: Mutex<Registry>,
}

fn deliver(sub: &Subscriber, msg: Push) -> bool {
    let q = &sub.queue;
    let size = msg.len_bytes();
    if q.queued_bytes.load(Relaxed).saturating_add(size) > q.bytes_max {
        sub.owner.disconnect("pubsub output buffer limit reached (bytes)");
        return false;
    }
    match q.tx.try_send(msg) {
        Ok(()) => {
            q.queued_bytes.fetch_add(size, Relaxed);
            true
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            sub.owner.disconnect("pubsub output queue limit reached");
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

impl PubSub {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers to local subscribers; returns how many received the message.
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> i64 {
        let reg = self.lock();
        let mut n = 0;
        if let Some(subs) = reg.channels.get(channel) {
            for sub in subs.values() {
                let msg = Push::Message { channel: channel.clone(), payload: payload.clone() };
                n += deliver(sub, msg) as i64;
            }
        }
        for (pattern, subs) in &reg.patterns {
            if !glob::matches(pattern, channel) {
                continue;
            }
            for sub in subs.values() {
                let msg =
                    Push::PMessage { pattern: pattern.clone(), channel: channel.clone(), payload: payload.clone() };
                n += deliver(sub, msg) as i64;
            }
        }
        n
    }

    /// True if the subscription is new.
    pub fn subscribe(&self, channel: &Bytes, sub: &Subscriber, pattern: bool) -> bool {
        let mut reg = self.lock();
        let map = if pattern { &mut reg.patterns } else { &mut reg.channels };
        map.entry(channel.clone()).or_default().insert(sub.id, sub.clone()).is_none()
    }

    pub fn unsubscribe(&self, channel: &Bytes, client_id: u64, pattern: bool) -> bool {
        let mut reg = self.lock();
        let map = if pattern { &mut reg.patterns } else { &mut reg.channels };
        let Some(subs) = map.get_mut(channel) else { return false };
        let removed = subs.remove(&client_id).is_some();
        if subs.is_empty() {
            map.remove(channel);
        }
        removed
    }

    /// Active channels, optionally matching a pattern (PUBSUB CHANNELS).
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.lock().channels.keys().filter(|c| pattern.is_none_or(|p| glob::matches(p, c))).cloned().collect()
    }

    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.lock().channels.get(channel).map_or(0, |s| s.len())
    }

    pub fn numpat(&self) -> usize {
        self.lock().patterns.len()
    }
}

/// PUBLISH ops deliver to this node's subscribers when they apply.
impl Effects for PubSub {
    fn publish(&self, channel: &Bytes, message: &Bytes) -> i64 {
        PubSub::publish(self, channel, message)
    }
}
