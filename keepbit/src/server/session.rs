//! `Session`: one client's state — protocol version, selected database, authentication,
//! MULTI queue, WATCHes and subscriptions — and the dispatch of each request.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keepbit_resp::Proto;
use tokio::sync::Notify;

use super::clients::ClientShared;
use super::{admin, replication, Server};
use crate::cmd::args::{is, lossy, parse_i64};
use crate::cmd::{self, flags, Command, Run, SessionCmd};
use crate::error::CmdError;
use crate::machine::Watch;
use crate::metrics::family_index;
use crate::pubsub::{PushQueue, Subscriber};
use crate::reply::Reply;

/// What the connection does after a request.
pub enum Next {
    Reply(Reply),
    /// Several replies (SUBSCRIBE to several channels).
    Replies(Vec<Reply>),
    /// Reply, then close the connection (QUIT).
    Close(Reply),
    /// Wait for one of `keys` to receive data, then retry.
    Block(Blocked),
}

pub struct Blocked {
    pub command: Command,
    pub db: usize,
    pub keys: Vec<Bytes>,
    pub deadline: Option<Instant>,
    pub notify: Arc<Notify>,
}

pub struct Session {
    pub srv: Arc<Server>,
    pub client: Arc<ClientShared>,
    pub proto: Proto,
    pub db: usize,
    authed: bool,
    /// Authenticated as the `admin` user (see `admin::admin_only`).
    admin: bool,
    /// READONLY was sent: a standby may serve (possibly stale) reads on this connection.
    pub readonly: bool,
    multi: Option<Vec<Command>>,
    multi_failed: bool,
    watch: Watch,
    subs: BTreeSet<Bytes>,
    psubs: BTreeSet<Bytes>,
    push_tx: PushQueue,
}

impl Session {
    pub fn new(srv: Arc<Server>, client: Arc<ClientShared>, push_tx: PushQueue) -> Session {
        let authed = srv.config().requirepass.is_none();
        Session {
            srv,
            client,
            proto: Proto::Resp2,
            db: 0,
            authed,
            admin: false,
            readonly: false,
            multi: None,
            multi_failed: false,
            watch: Watch::default(),
            subs: BTreeSet::new(),
            psubs: BTreeSet::new(),
            push_tx,
        }
    }

    fn subscribed(&self) -> bool {
        !self.subs.is_empty() || !self.psubs.is_empty()
    }

    /// Handles one request.
    pub async fn handle(&mut self, args: Vec<Bytes>) -> Next {
        self.srv.stats.commands_processed.fetch_add(1, Relaxed);
        let started = std::time::Instant::now();
        let command = match Command::parse(args) {
            Ok(c) => c,
            Err(e) => {
                if self.multi.is_some() {
                    self.multi_failed = true;
                }
                self.srv.metrics.command(family_index("other"), started.elapsed(), true);
                return Next::Reply(e.to_reply());
            }
        };
        let family = family_index(command.spec.group);
        let next = self.handle_parsed(command).await;
        let failed = matches!(&next, Next::Reply(Reply::Error(_)) | Next::Close(Reply::Error(_)));
        self.srv.metrics.command(family, started.elapsed(), failed);
        next
    }

    /// Checks what the session allows, then queues (MULTI) or runs the command.
    async fn handle_parsed(&mut self, command: Command) -> Next {
        let spec = command.spec;
        self.client.touch(spec.name);
        if !self.authed && !spec.has(flags::NO_AUTH) {
            return Next::Reply(CmdError::NoAuth.to_reply());
        }
        if self.subscribed() && self.proto == Proto::Resp2 && !spec.has(flags::SUBSCRIBED_OK) {
            return Next::Reply(
                CmdError::err(format!(
                    "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    spec.name
                ))
                .to_reply(),
            );
        }
        if self.multi.is_some() && !spec.has(flags::TX_CONTROL) {
            return Next::Reply(self.queue(command));
        }
        self.dispatch(command).await
    }

    fn queue(&mut self, command: Command) -> Reply {
        let allowed = !matches!(command.spec.run, Run::Session(s) if s != SessionCmd::Select);
        if !allowed {
            self.multi_failed = true;
            return CmdError::err(format!("Command not allowed inside a transaction: '{}'", command.spec.name))
                .to_reply();
        }
        if let Err(e) = self.srv.node.check_queued(&command) {
            self.multi_failed = true;
            return e.to_reply();
        }
        let queue = self.multi.get_or_insert_with(Vec::new);
        queue.push(command);
        self.client.multi.store(queue.len() as i64, Relaxed);
        Reply::simple("QUEUED")
    }

    async fn dispatch(&mut self, command: Command) -> Next {
        match command.spec.run {
            Run::Read(_) if command.spec.name == "ping" && self.subscribed() && self.proto == Proto::Resp2 => {
                let msg = command.args.get(1).cloned().unwrap_or_default();
                Next::Reply(Reply::Array(vec![Reply::bulk("pong"), Reply::Bulk(msg)]))
            }
            Run::Read(_) => Next::Reply(self.srv.node.read(self.db, &command, self.readonly).await),
            Run::Write(..) if command.spec.has(flags::BLOCKING) => self.blocking(command).await,
            Run::Write(..) => Next::Reply(self.srv.node.write(self.db, command).await),
            Run::Session(which) => self.session_command(which, command.args).await,
        }
    }

    async fn blocking(&mut self, command: Command) -> Next {
        // A node that would refuse the write must say so now, not after the wait.
        if let Some(refused) = self.srv.node.write_refused() {
            return Next::Reply(refused);
        }
        let args = &command.args;
        let name = command.spec.name;
        let spec = if name.starts_with("bz") { cmd::bz_blocking_spec(args) } else { cmd::blocking_spec(args) };
        let (keys, timeout) = match spec {
            Ok(s) => s,
            Err(e) => return Next::Reply(e.to_reply()),
        };
        if let Some(reply) = self.srv.node.try_blocking(self.db, &command, &keys).await {
            return Next::Reply(reply);
        }
        let notify = Arc::new(Notify::new());
        self.srv.node.block_on(self.db, &keys, &notify);
        Next::Block(Blocked {
            command,
            db: self.db,
            keys,
            // A deadline too far to represent waits forever.
            deadline: timeout.and_then(|t: Duration| Instant::now().checked_add(t)),
            notify,
        })
    }

    /// The one dispatch of connection and server commands.
    async fn session_command(&mut self, which: SessionCmd, args: Vec<Bytes>) -> Next {
        use SessionCmd as S;
        if let Some(name) = admin::admin_only(&args).filter(|_| !self.admin) {
            let user = if self.authed { "default" } else { "(unauthenticated)" };
            return Next::Reply(CmdError::NoPerm { user: user.into(), command: name }.to_reply());
        }
        let srv = self.srv.clone();
        let reply = match which {
            S::Readonly | S::Readwrite => {
                self.readonly = which == S::Readonly;
                Ok(Reply::Ok)
            }
            S::Exec => self.exec().await,
            S::Wait => replication::wait(&srv, &args).await,
            S::Sentinel => replication::sentinel(&srv, &args).await,
            S::Keepbit => replication::keepbit_admin(&srv, &args).await,
            S::Failover => admin::failover(&srv, self.client.id, &args).await,
            S::Role => Ok(replication::role(&srv)),
            S::Hello => self.hello(&args),
            S::Auth => self.auth(&args),
            S::Select => self.select(&args),
            S::Quit => return Next::Close(Reply::Ok),
            S::Reset => self.reset(),
            S::Multi => self.multi(),
            S::Discard => self.discard(),
            S::Watch => self.watch(&args),
            S::Unwatch => {
                self.unwatch_all();
                Ok(Reply::Ok)
            }
            S::Subscribe | S::Psubscribe => return Next::Replies(self.subscribe(&args, which == S::Psubscribe)),
            S::Unsubscribe | S::Punsubscribe => {
                return Next::Replies(self.unsubscribe(&args, which == S::Punsubscribe))
            }
            S::Client => admin::client(&srv, &self.client, &args),
            S::Command => admin::command(&args),
            S::Info => Ok(admin::info(&srv, &args[1..])),
            S::Config => admin::config(&srv, &args),
            S::Pubsub => admin::pubsub(&srv, &args),
            S::Lastsave => Ok(Reply::Int(srv.started_unix_s as i64)),
        };
        Next::Reply(reply.unwrap_or_else(|e| e.to_reply()))
    }

    fn check_password(&mut self, user: Option<&Bytes>, pass: &Bytes) -> Result<(), CmdError> {
        if user.is_some_and(|u| &u[..] == b"admin") {
            let config = self.srv.config();
            let ok = config.admin_password.as_ref().is_some_and(|p| crate::secret::secrets_match(p.as_bytes(), pass));
            if !ok {
                return Err(CmdError::WrongPass);
            }
            (self.authed, self.admin) = (true, true);
            return Ok(());
        }
        let Some(expected) = self.srv.config().requirepass else {
            return Err(CmdError::err(
                "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        };
        let user_ok = user.is_none_or(|u| &u[..] == b"default");
        if !user_ok || !crate::secret::secrets_match(expected.as_bytes(), pass) {
            return Err(CmdError::WrongPass);
        }
        (self.authed, self.admin) = (true, false);
        Ok(())
    }

    fn auth(&mut self, args: &[Bytes]) -> Result<Reply, CmdError> {
        match args {
            [_, pass] => self.check_password(None, pass)?,
            [_, user, pass] => {
                if self.srv.config().requirepass.is_none() && &user[..] == b"default" {
                    self.admin = false;
                    // The default user without a password accepts any password.
                    return Ok(Reply::Ok);
                }
                self.check_password(Some(user), pass)?
            }
            _ => return Err(CmdError::Syntax),
        }
        Ok(Reply::Ok)
    }

    fn hello(&mut self, args: &[Bytes]) -> Result<Reply, CmdError> {
        let mut proto = self.proto;
        let mut i = 1;
        if let Some(v) = args.get(1) {
            let v = parse_i64(v).map_err(|_| CmdError::err("Protocol version is not an integer or out of range"))?;
            proto = match v {
                2 => Proto::Resp2,
                3 => Proto::Resp3,
                _ => return Err(CmdError::Coded("NOPROTO unsupported protocol version".into())),
            };
            i = 2;
        }
        let mut setname = None;
        while i < args.len() {
            if is(&args[i], "auth") && i + 2 < args.len() {
                self.check_password(Some(&args[i + 1]), &args[i + 2])?;
                i += 3;
            } else if is(&args[i], "setname") && i + 1 < args.len() {
                setname = Some(admin::valid_client_name(&args[i + 1])?);
                i += 2;
            } else {
                return Err(CmdError::err(format!("Syntax error in HELLO option '{}'", lossy(&args[i]))));
            }
        }
        if !self.authed {
            return Err(CmdError::Coded(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
            ));
        }
        if let Some(n) = setname {
            *self.client.name.lock().unwrap_or_else(|e| e.into_inner()) = n;
        }
        self.proto = proto;
        self.client.resp.store(if proto == Proto::Resp3 { 3 } else { 2 }, Relaxed);
        Ok(Reply::Map(vec![
            (Reply::bulk("server"), Reply::bulk("redis")),
            (Reply::bulk("version"), Reply::bulk(admin::REDIS_VERSION)),
            (Reply::bulk("proto"), Reply::Int(if proto == Proto::Resp3 { 3 } else { 2 })),
            (Reply::bulk("id"), Reply::Int(self.client.id as i64)),
            (Reply::bulk("mode"), Reply::bulk("standalone")),
            (Reply::bulk("role"), Reply::bulk("master")),
            (Reply::bulk("modules"), Reply::Array(vec![])),
        ]))
    }

    fn select(&mut self, args: &[Bytes]) -> Result<Reply, CmdError> {
        let d = parse_i64(&args[1])?;
        if d < 0 || d as usize >= self.srv.databases() {
            return Err(CmdError::DbIndex);
        }
        self.db = d as usize;
        self.client.db.store(self.db, Relaxed);
        Ok(Reply::Ok)
    }

    fn reset(&mut self) -> Result<Reply, CmdError> {
        self.multi = None;
        self.multi_failed = false;
        self.client.multi.store(-1, Relaxed);
        self.unwatch_all();
        self.unsubscribe(&[Bytes::from_static(b"unsubscribe")], false);
        self.unsubscribe(&[Bytes::from_static(b"punsubscribe")], true);
        self.db = 0;
        self.client.db.store(0, Relaxed);
        self.proto = Proto::Resp2;
        self.client.resp.store(2, Relaxed);
        self.client.name.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.authed = self.srv.config().requirepass.is_none();
        self.admin = false;
        Ok(Reply::simple("RESET"))
    }

    fn multi(&mut self) -> Result<Reply, CmdError> {
        if self.multi.is_some() {
            return Err(CmdError::err("MULTI calls can not be nested"));
        }
        self.multi = Some(Vec::new());
        self.multi_failed = false;
        self.client.multi.store(0, Relaxed);
        Ok(Reply::Ok)
    }

    fn end_multi(&mut self) -> Option<Vec<Command>> {
        self.client.multi.store(-1, Relaxed);
        self.multi.take()
    }

    async fn exec(&mut self) -> Result<Reply, CmdError> {
        let Some(queued) = self.end_multi() else {
            return Err(CmdError::err("EXEC without MULTI"));
        };
        if std::mem::take(&mut self.multi_failed) {
            self.unwatch_all();
            return Err(CmdError::Coded("EXECABORT Transaction discarded because of previous errors.".into()));
        }
        let result = self.srv.node.exec(self.db, queued, &self.watch).await;
        self.unwatch_all();
        Ok(match result {
            Ok(None) => Reply::NilArray,
            Ok(Some(written)) => {
                self.db = written.db_after;
                self.client.db.store(written.db_after, Relaxed);
                written.reply
            }
            Err(e) => e.to_reply(),
        })
    }

    fn discard(&mut self) -> Result<Reply, CmdError> {
        if self.end_multi().is_none() {
            return Err(CmdError::err("DISCARD without MULTI"));
        }
        self.multi_failed = false;
        self.unwatch_all();
        Ok(Reply::Ok)
    }

    fn watch(&mut self, args: &[Bytes]) -> Result<Reply, CmdError> {
        if self.multi.is_some() {
            return Err(CmdError::err("WATCH inside MULTI is not allowed"));
        }
        let keys: Vec<Bytes> = args[1..].iter().map(|k| Bytes::copy_from_slice(k)).collect();
        self.srv.node.machine.watch(self.db, &keys, &mut self.watch);
        Ok(Reply::Ok)
    }

    pub fn unwatch_all(&mut self) {
        if !self.watch.keys.is_empty() {
            self.srv.node.machine.unwatch(&self.watch);
        }
        // A fresh flag: the old one may still be in flight with an EXEC's op.
        self.watch = Watch::default();
    }

    fn sub_count(&self) -> i64 {
        (self.subs.len() + self.psubs.len()) as i64
    }

    fn sync_counts(&self) {
        self.client.subs.store(self.subs.len(), Relaxed);
        self.client.psubs.store(self.psubs.len(), Relaxed);
    }

    fn subscribe(&mut self, args: &[Bytes], pattern: bool) -> Vec<Reply> {
        let sub = Subscriber { id: self.client.id, queue: self.push_tx.clone(), owner: self.client.clone() };
        let kind = if pattern { "psubscribe" } else { "subscribe" };
        let mut replies = Vec::new();
        for ch in &args[1..] {
            let ch = Bytes::copy_from_slice(ch);
            self.srv.pubsub.subscribe(&ch, &sub, pattern);
            if pattern {
                self.psubs.insert(ch.clone());
            } else {
                self.subs.insert(ch.clone());
            }
            replies.push(Reply::Push(vec![Reply::bulk(kind), Reply::Bulk(ch), Reply::Int(self.sub_count())]));
        }
        self.sync_counts();
        replies
    }

    fn unsubscribe(&mut self, args: &[Bytes], pattern: bool) -> Vec<Reply> {
        let kind = if pattern { "punsubscribe" } else { "unsubscribe" };
        let targets: Vec<Bytes> = if args.len() > 1 {
            args[1..].to_vec()
        } else if pattern {
            self.psubs.iter().cloned().collect()
        } else {
            self.subs.iter().cloned().collect()
        };
        let mut replies = Vec::new();
        for ch in targets {
            self.srv.pubsub.unsubscribe(&ch, self.client.id, pattern);
            if pattern {
                self.psubs.remove(&ch);
            } else {
                self.subs.remove(&ch);
            }
            replies.push(Reply::Push(vec![Reply::bulk(kind), Reply::Bulk(ch), Reply::Int(self.sub_count())]));
        }
        if replies.is_empty() {
            replies.push(Reply::Push(vec![Reply::bulk(kind), Reply::Nil, Reply::Int(self.sub_count())]));
        }
        self.sync_counts();
        replies
    }

    /// Releases everything the session holds in the node (on disconnect).
    pub fn close(&mut self) {
        self.unwatch_all();
        for ch in std::mem::take(&mut self.subs) {
            self.srv.pubsub.unsubscribe(&ch, self.client.id, false);
        }
        for ch in std::mem::take(&mut self.psubs) {
            self.srv.pubsub.unsubscribe(&ch, self.client.id, true);
        }
        self.srv.clients.remove(self.client.id);
    }
}
