//! `Reply`: the answer to a command, independent of the protocol version it is sent in.

use bytes::{Bytes, BytesMut};
use keepbit_resp::{encode, Proto};
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

    pub fn encode(&self, proto: Proto, out: &mut BytesMut) {
        match self {
            Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
            Reply::Simple(s) => encode::simple(out, s.as_bytes()),
            Reply::Error(e) => encode::error(out, e.as_bytes()),
            Reply::Int(i) => encode::integer(out, *i),
            Reply::Bulk(b) => encode::bulk(out, b),
            Reply::Nil => encode::null(out, proto),
            Reply::NilArray => encode::null_array(out, proto),
            Reply::Array(items) => {
                encode::array_header(out, items.len());
                items.iter().for_each(|r| r.encode(proto, out));
            }
            Reply::Set(items) => {
                encode::set_header(out, proto, items.len());
                items.iter().for_each(|r| r.encode(proto, out));
            }
            Reply::Push(items) => {
                encode::push_header(out, proto, items.len());
                items.iter().for_each(|r| r.encode(proto, out));
            }
            Reply::Map(pairs) => {
                encode::map_header(out, proto, pairs.len());
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Pairs(pairs) if proto == Proto::Resp3 => {
                encode::array_header(out, pairs.len());
                for (k, v) in pairs {
                    encode::array_header(out, 2);
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Pairs(pairs) => {
                encode::array_header(out, pairs.len() * 2);
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Double(d) => encode::double(out, proto, *d),
            Reply::Bool(b) => encode::boolean(out, proto, *b),
            Reply::Verbatim(text) => encode::verbatim(out, proto, b"txt", text.as_bytes()),
        }
    }
}
