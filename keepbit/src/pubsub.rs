//! Pub/sub: channel and pattern subscriptions. Each subscriber has a bounded queue; one
//! that falls too far behind is disconnected (Redis's pubsub output-buffer limit).

use std::collections::HashMap;
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

/// Whoever owns a subscription, told to go away when it cannot keep up.
pub trait Disconnect: Send + Sync {
    fn disconnect(&self, reason: &str);
}

#[derive(Clone)]
pub struct Subscriber {
    /// The client's id: one subscription per client and channel.
    pub id: u64,
    pub tx: mpsc::Sender<Push>,
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
    match sub.tx.try_send(msg) {
        Ok(()) => true,
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
