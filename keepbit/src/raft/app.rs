//! The application protocol between nodes, carried inside the peer protocol's opaque
//! frames: writes and MULTI blocks forwarded by active-active standbys, read indexes,
//! membership changes from any node, "are you primary?" for discovery, and "campaign now"
//! for a switchover whose target did not take over. A request is
//! validated before use: it comes from the network.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::cluster::Cluster;
use super::peer::AppHandler;
use super::types::{Member, NodeId};
use crate::cmd::{Command, Run, SessionCmd};
use crate::error::{CmdError, ExecError};
use crate::machine::{Watch, Written};
use crate::reply::Reply;
use crate::store::journal::Cause;
use crate::store::op::Watched;

#[derive(Debug, Serialize, Deserialize)]
pub enum AppRequest {
    /// A write received by a standby in active-active mode.
    Write {
        db: u32,
        args: Vec<Bytes>,
    },
    /// A MULTI block received by a standby in active-active mode.
    Exec {
        db: u32,
        cmds: Vec<Vec<Bytes>>,
        /// The keys the client WATCHed on the forwarding node, with their versions there.
        watched: Vec<Watched>,
    },
    /// The primary's commit index, for a linearizable read on a standby.
    ReadIndex,
    /// Membership changes from `keepbit cluster add/remove` on any node.
    AddNode {
        id: NodeId,
        member: Member,
    },
    RemoveNode {
        id: NodeId,
    },
    /// Whether the receiver is primary now (discovery double-checks before naming it).
    IsPrimary,
    /// Whether the receiver belongs to a formed cluster, and its commit index (a node
    /// starting with an empty disk asks before it forms anything).
    Progress,
    /// Campaign now: a switchover's target did not take over in time (`switchover`), or
    /// a crashed leader's survivor failed its own campaign (`crash`). `from` asks in its
    /// `term`. Refused by a node with priority 0, and by one that already follows a live
    /// leader other than `from` in that term or later: that leader is the new primary the
    /// asker has not heard of yet, and an election would only depose it.
    Elect {
        from: NodeId,
        term: u64,
    },
    /// The primary is about to hand over proactively because of this check (`proactive`).
    Handover {
        check: String,
    },
    /// This node's own health as a switchover target (`proactive`).
    Health,
    /// The primary is about to hand leadership to the receiver for this reason (the cause
    /// it journals if it takes over: planned switchover, `failback`, …).
    Announce(Cause),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum AppResponse {
    Written {
        reply: Reply,
        db_after: usize,
    },
    /// The request failed; the error keeps "rejected" apart from "outcome unknown".
    Failed(ExecError),
    ReadIndex(u64),
    IsPrimary(bool),
    Done,
    Progress {
        initialized: bool,
        committed: u64,
    },
    /// `health::Status::level`, or `None` before the first evaluation.
    Health(Option<u8>),
}

impl From<Result<Written, ExecError>> for AppResponse {
    fn from(r: Result<Written, ExecError>) -> Self {
        match r {
            Ok(Written { reply, db_after }) => AppResponse::Written { reply, db_after },
            Err(e) => AppResponse::Failed(e),
        }
    }
}

/// A forwarded database index, checked against this node's databases.
fn valid_db(db: u32, databases: usize) -> Result<usize, ExecError> {
    let db = db as usize;
    (db < databases).then_some(db).ok_or(ExecError::Cmd(CmdError::DbIndex))
}

/// A forwarded write: a known command, of the right arity, that writes.
pub fn valid_write(args: Vec<Bytes>) -> Result<Command, ExecError> {
    let command = Command::parse(args)?;
    match command.spec.run {
        Run::Write(..) => Ok(command),
        _ => Err(CmdError::err(format!("'{}' is not a write command and is not forwarded", command.spec.name)).into()),
    }
}

/// A forwarded MULTI block: writes, reads and SELECT only.
fn valid_block(cmds: Vec<Vec<Bytes>>) -> Result<Vec<Command>, ExecError> {
    cmds.into_iter()
        .map(|args| {
            let command = Command::parse(args)?;
            match command.spec.run {
                Run::Session(SessionCmd::Select) | Run::Read(_) | Run::Write(..) => Ok(command),
                Run::Session(_) => {
                    Err(CmdError::err(format!("Command not allowed inside a transaction: '{}'", command.spec.name))
                        .into())
                }
            }
        })
        .collect()
}

/// The leader this node follows if it is live (heard from within the lease), is not
/// `asker`, and leads in `term` or later.
fn live_leader_since(cluster: &Cluster, asker: NodeId, term: u64) -> Option<NodeId> {
    let m = openraft::async_runtime::WatchReceiver::borrow_watched(&cluster.raft.metrics()).clone();
    let contact = *cluster.leader_contact.lock().unwrap_or_else(|e| e.into_inner());
    let here = Following {
        me: cluster.id,
        leader: m.current_leader,
        term: m.current_term,
        contact: contact.map(|(id, at)| (id, at.elapsed().as_millis() as u64)),
    };
    here.live_leader_other_than(asker, term, cluster.config.election_timeout_max_ms)
}

/// Whom this node follows, as plain data (ages instead of instants).
struct Following {
    me: NodeId,
    leader: Option<NodeId>,
    term: u64,
    /// The leader that last replicated here, and how many milliseconds ago.
    contact: Option<(NodeId, u64)>,
}

impl Following {
    fn live_leader_other_than(&self, asker: NodeId, term: u64, lease_ms: u64) -> Option<NodeId> {
        let leader = self.leader.filter(|&l| l != asker && l != self.me && self.term >= term)?;
        self.contact.filter(|&(id, age)| id == leader && age <= lease_ms).map(|_| leader)
    }
}

/// Answers one peer request on `cluster`.
pub async fn handle(cluster: &Cluster, req: AppRequest) -> AppResponse {
    let databases = cluster.machine.databases();
    match req {
        AppRequest::Write { db, args } => {
            let _admitted = cluster.switchover.gate.admit().await;
            let checked = valid_db(db, databases).and_then(|db| Ok((db, valid_write(args)?)));
            match checked {
                Ok((db, command)) => cluster.write_here(db, &command).await.into(),
                Err(e) => AppResponse::Failed(e),
            }
        }
        AppRequest::Exec { db, cmds, watched } => {
            let _admitted = cluster.switchover.gate.admit().await;
            let checked = valid_db(db, databases)
                .and_then(|db| watched.iter().try_for_each(|w| valid_db(w.db, databases).map(|_| ())).map(|()| db))
                .and_then(|db| Ok((db, valid_block(cmds)?)));
            let watch = Watch { keys: watched, ..Watch::default() };
            match checked {
                Ok((db, queued)) => match cluster.exec_here(db, &queued, &watch).await {
                    Ok(Some(w)) => Ok(w).into(),
                    Ok(None) => AppResponse::Written { reply: Reply::NilArray, db_after: db },
                    Err(e) => AppResponse::Failed(e),
                },
                Err(e) => AppResponse::Failed(e),
            }
        }
        AppRequest::IsPrimary => AppResponse::IsPrimary(cluster.is_primary()),
        AppRequest::Announce(cause) => {
            cluster.network.observations().announced(cause);
            AppResponse::Done
        }
        AppRequest::Elect { from, term } if live_leader_since(cluster, from, term).is_some() => {
            AppResponse::Failed(ExecError::Fatal("a newer primary is live here; not campaigning".into()))
        }
        AppRequest::Elect { .. } if cluster.config.priority_of(cluster.id) == 0 => {
            AppResponse::Failed(ExecError::Fatal("priority 0: this node never campaigns".into()))
        }
        AppRequest::Elect { .. } => match cluster.raft.trigger().elect(false).await {
            Ok(()) => AppResponse::Done,
            Err(e) => AppResponse::Failed(ExecError::Fatal(e.to_string())),
        },
        AppRequest::Handover { check } => {
            cluster.network.observations().proactive_announced(&check);
            AppResponse::Done
        }
        AppRequest::Health => AppResponse::Health(cluster.local_health()),
        AppRequest::Progress => {
            let (initialized, committed) = cluster.progress().await;
            AppResponse::Progress { initialized, committed }
        }
        AppRequest::ReadIndex => match cluster.read_index().await {
            Ok(i) => AppResponse::ReadIndex(i),
            Err(e) => AppResponse::Failed(e),
        },
        AppRequest::AddNode { id, member } => match cluster.add_node(id, member).await {
            Ok(()) => AppResponse::Done,
            Err(e) => AppResponse::Failed(e),
        },
        AppRequest::RemoveNode { id } => match cluster.remove_node(id).await {
            Ok(()) => AppResponse::Done,
            Err(e) => AppResponse::Failed(e),
        },
    }
}

/// Serves application requests from peers.
pub struct Handler {
    pub cluster: Weak<Cluster>,
}

impl AppHandler for Handler {
    fn handle(&self, _from: NodeId, req: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let cluster = self.cluster.upgrade();
        Box::pin(async move {
            let resp = match (cluster, postcard::from_bytes::<AppRequest>(&req)) {
                (Some(c), Ok(req)) => handle(&c, req).await,
                (None, _) => AppResponse::Failed(ExecError::ShuttingDown),
                (_, Err(e)) => AppResponse::Failed(ExecError::Peer(format!("bad peer request: {e}"))),
            };
            encode(&resp)
        })
    }
}

/// Encodes a response. Should that ever fail, the caller gets an empty answer, which it
/// reports as a bad reply from the primary (`ExecError::Peer`): never silently a success.
fn encode(resp: &AppResponse) -> Vec<u8> {
    match postcard::to_stdvec(resp) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!("cannot encode a peer response: {e}");
            Vec::new()
        }
    }
}

/// Keeps the handler's type reachable for wiring.
pub fn handler(cluster: &Arc<Cluster>) -> Arc<dyn AppHandler> {
    Arc::new(Handler { cluster: Arc::downgrade(cluster) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    fn err_text(r: Result<impl Sized, ExecError>) -> String {
        match r {
            Ok(_) => panic!("accepted"),
            Err(e) => match e.to_reply() {
                Reply::Error(t) => t,
                other => panic!("{other:?}"),
            },
        }
    }

    /// An empty argv from a peer is refused with a clear error (it used to index out of
    /// bounds while holding the node lock).
    #[test]
    fn forwarded_empty_argv_is_refused() {
        assert!(err_text(valid_write(vec![])).starts_with("ERR unknown command"));
        assert!(err_text(valid_block(vec![b(&["SET", "k", "v"]), vec![]])).starts_with("ERR unknown command"));
    }

    /// A database index past the configured databases is refused, not indexed.
    #[test]
    fn forwarded_bad_db_is_refused() {
        assert_eq!(err_text(valid_db(16, 16)), "ERR DB index is out of range");
        assert_eq!(err_text(valid_db(u32::MAX, 16)), "ERR DB index is out of range");
        assert_eq!(valid_db(15, 16).ok(), Some(15));
    }

    /// Unknown commands, wrong arity, internal commands, reads and session commands are
    /// not forwarded writes.
    #[test]
    fn forwarded_unknown_or_non_write_commands_are_refused() {
        assert!(err_text(valid_write(b(&["NOSUCH", "x"]))).starts_with("ERR unknown command 'NOSUCH'"));
        assert_eq!(err_text(valid_write(b(&["SET", "k"]))), "ERR wrong number of arguments for 'set' command");
        assert!(err_text(valid_write(b(&["spop-chosen", "k", "1", "m"]))).starts_with("ERR unknown command"));
        assert!(err_text(valid_write(b(&["GET", "k"]))).contains("not a write command"));
        assert!(err_text(valid_write(b(&["KEEPBIT", "CLUSTER", "STATUS"]))).contains("not a write command"));
        assert!(err_text(valid_block(vec![b(&["MULTI"])])).contains("not allowed inside a transaction"));
        assert_eq!(valid_write(b(&["SET", "k", "v"])).map(|c| c.spec.name).ok(), Some("set"));
        assert_eq!(valid_block(vec![b(&["SELECT", "1"]), b(&["GET", "k"])]).map(|v| v.len()).ok(), Some(2));
    }
}

#[cfg(test)]
mod elect_tests {
    use super::Following;

    /// (case, following, asker, asker's term, declines because of this leader)
    #[test]
    fn a_node_following_a_newer_live_leader_declines_to_campaign() {
        let f = |leader, term, contact| Following { me: 2, leader, term, contact };
        let cases = [
            ("the switchover target took over; the old primary asks", f(Some(1), 3, Some((1, 10))), 3, 2, Some(1)),
            ("still following the asker (the target never took over)", f(Some(3), 2, Some((3, 10))), 3, 2, None),
            ("a leader elected in the asker's own failed term", f(Some(1), 5, Some((1, 10))), 3, 5, Some(1)),
            ("the dead leader of an older term", f(Some(1), 4, Some((1, 10))), 3, 5, None),
            ("a leader not heard from within the lease", f(Some(1), 3, Some((1, 500))), 3, 2, None),
            ("no leader known", f(None, 3, None), 3, 2, None),
            ("contact from another node than the leader", f(Some(1), 3, Some((3, 10))), 3, 2, None),
        ];
        for (case, following, asker, term, want) in cases {
            assert_eq!(following.live_leader_other_than(asker, term, 120), want, "{case}");
        }
    }
}
