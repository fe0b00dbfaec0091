//! keepbit-resp: the Redis serialization protocol (RESP2 and RESP3), without I/O.
//!
//! - [`decode`]: client requests (multibulk and inline) and whole reply frames, parsed
//!   check-then-parse over `bytes`: a frame is first scanned for completeness and
//!   validity without allocating, then sliced out of the buffer zero-copy.
//!   Results are `Ok(Some(_))` (a frame), `Ok(None)` (incomplete: read more) or
//!   `Err(Invalid)` (a protocol error: the connection must close).
//! - [`encode`]: writers for every RESP type, with RESP2 fallbacks for RESP3-only types.

pub mod decode;
pub mod encode;
mod frame;

pub use decode::{decode_frame, decode_request, Invalid, Limits};
pub use frame::Frame;

/// The protocol version spoken on a connection (`HELLO 2|3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}
