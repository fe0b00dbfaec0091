//! `Frame`: one RESP value, as decoded from the wire or about to be encoded onto it.

use bytes::{Bytes, BytesMut};

use crate::{encode, Proto};

/// One RESP value, as read from or written to the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Simple(Bytes),
    Error(Bytes),
    Integer(i64),
    Bulk(Bytes),
    /// `$-1`, `*-1` and RESP3's `_`.
    Null,
    /// A null written as `*-1` in RESP2 (an aborted EXEC, a timed-out blocking pop) and
    /// `_` in RESP3. Decoding never yields it: `*-1` reads back as `Null`.
    NullArray,
    Array(Vec<Frame>),
    Map(Vec<(Frame, Frame)>),
    Set(Vec<Frame>),
    Push(Vec<Frame>),
    Double(f64),
    Boolean(bool),
    BigNumber(Bytes),
    Verbatim {
        format: [u8; 3],
        text: Bytes,
    },
}

impl Frame {
    /// Appends the frame's wire form in `proto` to `out`.
    pub fn encode(&self, proto: Proto, out: &mut BytesMut) {
        match self {
            Frame::Simple(s) => encode::simple(out, s),
            Frame::Error(e) => encode::error(out, e),
            Frame::Integer(i) => encode::integer(out, *i),
            Frame::Bulk(b) => encode::bulk(out, b),
            Frame::Null => encode::null(out, proto),
            Frame::NullArray => encode::null_array(out, proto),
            Frame::Array(items) => {
                encode::array_header(out, items.len());
                items.iter().for_each(|f| f.encode(proto, out));
            }
            Frame::Set(items) => {
                encode::set_header(out, proto, items.len());
                items.iter().for_each(|f| f.encode(proto, out));
            }
            Frame::Push(items) => {
                encode::push_header(out, proto, items.len());
                items.iter().for_each(|f| f.encode(proto, out));
            }
            Frame::Map(pairs) => {
                encode::map_header(out, proto, pairs.len());
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Frame::Double(d) => encode::double(out, proto, *d),
            Frame::Boolean(b) => encode::boolean(out, proto, *b),
            Frame::BigNumber(n) => encode::big_number(out, proto, n),
            Frame::Verbatim { format, text } => encode::verbatim(out, proto, format, text),
        }
    }

    /// A request frame: an array of bulk strings.
    pub fn command<I, A>(args: I) -> Frame
    where
        I: IntoIterator<Item = A>,
        A: Into<Bytes>,
    {
        Frame::Array(args.into_iter().map(|a| Frame::Bulk(a.into())).collect())
    }
}
