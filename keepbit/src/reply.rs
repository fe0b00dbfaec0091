//! `Reply`: the answer to a command, independent of the protocol version it is sent in;
//! it becomes a `keepbit_resp::Frame` (whose encoder writes it) only when sent.

use bytes::{Bytes, BytesMut};
use keepbit_resp::{Frame, Proto};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    Simple(String),
    /// The whole error line, code first: `ERR syntax error`.
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// Null bulk string (`$-1` in RESP2).
    Nil,
    /// Null array (`*-1` in RESP2): aborted EXEC, timed-out blocking pop.
    NilArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    /// Pairs such as member/score: `[[m, s], …]` in RESP3, flattened `[m, s, …]` in RESP2
    /// (ZRANGE … WITHSCORES, HRANDFIELD … WITHVALUES).
    Pairs(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    Bool(bool),
    /// Text with a format tag (INFO, CLIENT INFO): verbatim in RESP3, bulk in RESP2.
    Verbatim(String),
    Push(Vec<Reply>),
}

impl Reply {
    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn opt_bulk(b: Option<Bytes>) -> Reply {
        b.map_or(Reply::Nil, Reply::Bulk)
    }

    pub fn bulks<I: IntoIterator<Item = Bytes>>(items: I) -> Reply {
        Reply::Array(items.into_iter().map(Reply::Bulk).collect())
    }

    pub fn simple(s: &str) -> Reply {
        Reply::Simple(s.to_string())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// The RESP frame this reply is sent as in `proto` (RESP2 flattens pairs).
    pub fn into_frame(self, proto: Proto) -> Frame {
        let all = |items: Vec<Reply>| items.into_iter().map(|r| r.into_frame(proto)).collect();
        let pair = |(k, v): (Reply, Reply)| (k.into_frame(proto), v.into_frame(proto));
        match self {
            Reply::Ok => Frame::Simple(Bytes::from_static(b"OK")),
            Reply::Simple(s) => Frame::Simple(Bytes::from(s)),
            Reply::Error(e) => Frame::Error(Bytes::from(e)),
            Reply::Int(i) => Frame::Integer(i),
            Reply::Bulk(b) => Frame::Bulk(b),
            Reply::Nil => Frame::Null,
            Reply::NilArray => Frame::NullArray,
            Reply::Array(items) => Frame::Array(all(items)),
            Reply::Set(items) => Frame::Set(all(items)),
            Reply::Push(items) => Frame::Push(all(items)),
            Reply::Map(pairs) => Frame::Map(pairs.into_iter().map(pair).collect()),
            Reply::Pairs(pairs) if proto == Proto::Resp3 => Frame::Array(
                pairs
                    .into_iter()
                    .map(|p| {
                        let (k, v) = pair(p);
                        Frame::Array(vec![k, v])
                    })
                    .collect(),
            ),
            Reply::Pairs(pairs) => Frame::Array(pairs.into_iter().flat_map(|p| <[Frame; 2]>::from(pair(p))).collect()),
            Reply::Double(d) => Frame::Double(d),
            Reply::Bool(b) => Frame::Boolean(b),
            Reply::Verbatim(text) => Frame::Verbatim { format: *b"txt", text: Bytes::from(text) },
        }
    }

    /// Appends the wire form in `proto` to `out`.
    pub fn encode(self, proto: Proto, out: &mut BytesMut) {
        self.into_frame(proto).encode(proto, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: Reply, proto: Proto) -> String {
        let mut out = BytesMut::new();
        r.encode(proto, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Pairs are flat in RESP2 and nested in RESP3; the two nulls differ in RESP2 only.
    #[test]
    fn replies_encode_per_protocol() {
        let pairs = || Reply::Pairs(vec![(Reply::bulk("m"), Reply::Double(1.5))]);
        assert_eq!(wire(pairs(), Proto::Resp2), "*2\r\n$1\r\nm\r\n$3\r\n1.5\r\n");
        assert_eq!(wire(pairs(), Proto::Resp3), "*1\r\n*2\r\n$1\r\nm\r\n,1.5\r\n");
        assert_eq!(wire(Reply::NilArray, Proto::Resp2), "*-1\r\n");
        assert_eq!(wire(Reply::Nil, Proto::Resp2), "$-1\r\n");
        assert_eq!(wire(Reply::NilArray, Proto::Resp3), "_\r\n");
        assert_eq!(wire(Reply::Ok, Proto::Resp2), "+OK\r\n");
        assert_eq!(wire(Reply::Verbatim("x".into()), Proto::Resp3), "=5\r\ntxt:x\r\n");
    }
}
