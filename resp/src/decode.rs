//! Check-then-parse decoding. Checking walks the buffer without allocating and either
//! finds the end of one complete, valid frame or says why not; parsing then slices the
//! frame out of the buffer (`split_to(..).freeze()`), so arguments share its memory.

use bytes::{Buf, Bytes, BytesMut};

use crate::Frame;

/// Protocol limits, as Redis's `proto-max-bulk-len` and friends.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub bulk_len_max: usize,
    pub multibulk_len_max: usize,
    /// Longest inline command line, and longest `*<n>`/`$<n>` header line.
    pub inline_len_max: usize,
    /// Deepest nesting of aggregate reply frames.
    pub depth_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_len_max: 512 * 1024 * 1024,
            multibulk_len_max: 1024 * 1024 * 1024,
            inline_len_max: 64 * 1024,
            depth_max: 64,
        }
    }
}

/// A protocol violation. The text follows `Protocol error: ` in the reply, as in Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for Invalid {}

fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let nl = buf.get(from..)?.iter().position(|&b| b == b'\n')? + from;
    (nl > from && buf[nl - 1] == b'\r').then_some(nl - 1)
}

/// Parses a decimal i64 the strict way Redis does for protocol headers.
fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (neg, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

/// Decodes one client request: a multibulk array of bulk strings, or an inline command
/// line. `Ok(Some(args))` may hold no arguments (`*0`, an empty line): callers skip it.
pub fn decode_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, Invalid> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => decode_multibulk(buf, limits),
        Some(_) => decode_inline(buf, limits),
    }
}

/// A header line `<prefix><int>\r\n` starting at `pos`: its value and the position after it.
fn header_at(buf: &[u8], pos: usize, limits: &Limits, too_big: &str) -> Result<Option<(Option<i64>, usize)>, Invalid> {
    match find_crlf(buf, pos + 1) {
        Some(cr) if cr - pos > limits.inline_len_max => invalid(too_big),
        Some(cr) => Ok(Some((parse_i64(&buf[pos + 1..cr]), cr + 2))),
        None if buf.len() - pos > limits.inline_len_max => invalid(too_big),
        None => Ok(None),
    }
}

fn decode_multibulk(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, Invalid> {
    let Some((count, mut pos)) = header_at(buf, 0, limits, "too big mbulk count string")? else {
        return Ok(None);
    };
    let count = match count {
        Some(n) if n <= 0 => {
            buf.advance(pos);
            return Ok(Some(Vec::new()));
        }
        Some(n) if n as u64 <= limits.multibulk_len_max as u64 => n as usize,
        _ => return invalid("invalid multibulk length"),
    };
    // Check: find every argument's span without copying.
    let mut spans = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&c) => return invalid(format!("expected '$', got '{}'", c as char)),
        }
        let Some((len, start)) = header_at(buf, pos, limits, "too big bulk count string")? else {
            return Ok(None);
        };
        let len = match len {
            Some(n) if n >= 0 && n as u64 <= limits.bulk_len_max as u64 => n as usize,
            _ => return invalid("invalid bulk length"),
        };
        let end = start + len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return invalid("invalid bulk terminator");
        }
        spans.push((start, end));
        pos = end + 2;
    }
    // Parse: slice the arguments out of the frozen frame.
    let frame = buf.split_to(pos).freeze();
    Ok(Some(spans.into_iter().map(|(s, e)| frame.slice(s..e)).collect()))
}

fn decode_inline(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, Invalid> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.inline_len_max {
            return invalid("too big inline request");
        }
        return Ok(None);
    };
    if nl > limits.inline_len_max {
        return invalid("too big inline request");
    }
    let line = buf.split_to(nl + 1);
    let line = line[..nl].strip_suffix(b"\r").unwrap_or(&line[..nl]);
    split_args(line).map(Some).ok_or_else(|| Invalid("unbalanced quotes in request".into()))
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline command line like Redis's `sdssplitargs`: whitespace separates
/// arguments; `"…"` understands `\n \r \t \b \a \\ \" \xHH`; `'…'` understands `\'`.
/// `None` for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let c = line.get(i).copied();
            if in_dq {
                match c? {
                    b'\\'
                        if line.get(i + 1) == Some(&b'x')
                            && line.get(i + 2).and_then(|&c| hex(c)).is_some()
                            && line.get(i + 3).and_then(|&c| hex(c)).is_some() =>
                    {
                        cur.push(hex(line[i + 2])? * 16 + hex(line[i + 3])?);
                        i += 3;
                    }
                    b'\\' if i + 1 < line.len() => {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    }
                    b'"' => {
                        // The closing quote must end the argument.
                        if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        in_dq = false;
                        i += 1;
                        break;
                    }
                    other => cur.push(other),
                }
            } else if in_sq {
                match c? {
                    b'\\' if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    b'\'' => {
                        if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        in_sq = false;
                        i += 1;
                        break;
                    }
                    other => cur.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(c) => cur.push(c),
                }
            }
            i += 1;
        }
        debug_assert!(!in_dq && !in_sq);
        args.push(Bytes::from(cur));
    }
}

/// Decodes one reply frame of any RESP2/RESP3 type.
pub fn decode_frame(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, Invalid> {
    let Some(end) = check_frame(buf, 0, 0, limits)? else {
        return Ok(None);
    };
    let frame = buf.split_to(end).freeze();
    Ok(Some(parse_frame(&frame, &mut 0)))
}

fn check_frame(buf: &[u8], pos: usize, depth: usize, limits: &Limits) -> Result<Option<usize>, Invalid> {
    if depth > limits.depth_max {
        return invalid("frame nested too deeply");
    }
    let Some(&kind) = buf.get(pos) else { return Ok(None) };
    let Some(cr) = find_crlf(buf, pos + 1) else {
        if buf.len() - pos > limits.inline_len_max {
            return invalid("too big header line");
        }
        return Ok(None);
    };
    let body = &buf[pos + 1..cr];
    let after = cr + 2;
    match kind {
        b'+' | b'-' | b',' | b'(' => Ok(Some(after)),
        b'_' => Ok(Some(after)),
        b'#' if body == b"t" || body == b"f" => Ok(Some(after)),
        b':' => parse_i64(body).map(|_| Some(after)).ok_or_else(|| Invalid("invalid integer".into())),
        b'$' | b'=' | b'!' => match parse_i64(body) {
            Some(-1) if kind == b'$' => Ok(Some(after)),
            Some(n) if n >= 0 && n as u64 <= limits.bulk_len_max as u64 => {
                let end = after + n as usize;
                if buf.len() < end + 2 {
                    Ok(None)
                } else if &buf[end..end + 2] != b"\r\n" {
                    invalid("invalid bulk terminator")
                } else {
                    Ok(Some(end + 2))
                }
            }
            _ => invalid("invalid bulk length"),
        },
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = match parse_i64(body) {
                Some(-1) if kind == b'*' => return Ok(Some(after)),
                Some(n) if n >= 0 && n as u64 <= limits.multibulk_len_max as u64 => n as usize,
                _ => return invalid("invalid multibulk length"),
            };
            let items = if kind == b'%' || kind == b'|' { 2 * n } else { n };
            let mut pos = after;
            for _ in 0..items {
                match check_frame(buf, pos, depth + 1, limits)? {
                    Some(next) => pos = next,
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // An attribute precedes the frame it describes.
                return check_frame(buf, pos, depth + 1, limits);
            }
            Ok(Some(pos))
        }
        other => invalid(format!("unknown frame type '{}'", other as char)),
    }
}

/// Parses a frame already validated by `check_frame`.
fn parse_frame(buf: &Bytes, pos: &mut usize) -> Frame {
    let kind = buf[*pos];
    let cr = find_crlf(buf, *pos + 1).unwrap_or(buf.len());
    let body = buf.slice(*pos + 1..cr);
    *pos = cr + 2;
    let int = || parse_i64(&body).unwrap_or(0);
    let items = |n: usize, pos: &mut usize| (0..n).map(|_| parse_frame(buf, pos)).collect::<Vec<_>>();
    match kind {
        b'+' => Frame::Simple(body),
        b'-' => Frame::Error(body),
        b':' => Frame::Integer(int()),
        b'_' => Frame::Null,
        b'#' => Frame::Boolean(&body[..] == b"t"),
        b',' => Frame::Double(parse_double(&body)),
        b'(' => Frame::BigNumber(body),
        b'$' | b'=' | b'!' => {
            let n = int();
            if n < 0 {
                return Frame::Null;
            }
            let data = buf.slice(*pos..*pos + n as usize);
            *pos += n as usize + 2;
            match kind {
                b'=' if data.len() >= 4 => {
                    Frame::Verbatim { format: [data[0], data[1], data[2]], text: data.slice(4..) }
                }
                b'!' => Frame::Error(data),
                _ => Frame::Bulk(data),
            }
        }
        b'*' if int() < 0 => Frame::Null,
        b'*' => Frame::Array(items(int() as usize, pos)),
        b'~' => Frame::Set(items(int() as usize, pos)),
        b'>' => Frame::Push(items(int() as usize, pos)),
        b'%' => {
            let flat = items(2 * int() as usize, pos);
            let mut it = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Frame::Map(pairs)
        }
        _ => {
            // '|': skip the attribute map, return the frame it annotates.
            let _ = items(2 * int() as usize, pos);
            parse_frame(buf, pos)
        }
    }
}

fn parse_double(body: &[u8]) -> f64 {
    match body {
        b"inf" => f64::INFINITY,
        b"-inf" => f64::NEG_INFINITY,
        _ => std::str::from_utf8(body).ok().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Proto;

    fn req(input: &[u8]) -> Result<Option<Vec<Bytes>>, Invalid> {
        decode_request(&mut BytesMut::from(input), &Limits::default())
    }

    #[test]
    fn multibulk_and_inline_requests() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n"[..]);
        let limits = Limits::default();
        assert_eq!(decode_request(&mut buf, &limits).unwrap().unwrap(), vec!["GET", "k"]);
        assert_eq!(decode_request(&mut buf, &limits).unwrap().unwrap(), vec!["PING"]);
        assert!(buf.is_empty());
        assert_eq!(
            req(b"set \"a b\" 'c\\'d' \"\\x41\\n\"\n").unwrap().unwrap(),
            vec![&b"set"[..], b"a b", b"c'd", b"A\n"]
        );
    }

    #[test]
    fn incomplete_requests_wait_for_more() {
        let full = b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
        for cut in 0..full.len() {
            assert_eq!(req(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(req(full).unwrap().is_some());
    }

    #[test]
    fn protocol_errors_use_redis_texts() {
        assert_eq!(req(b"*x\r\n").unwrap_err().0, "invalid multibulk length");
        assert_eq!(req(b"*1\r\n:1\r\n").unwrap_err().0, "expected '$', got ':'");
        assert_eq!(req(b"*1\r\n$-5\r\n").unwrap_err().0, "invalid bulk length");
        assert_eq!(req(b"\"abc\n").unwrap_err().0, "unbalanced quotes in request");
        let limits = Limits { bulk_len_max: 4, ..Limits::default() };
        let err = decode_request(&mut BytesMut::from(&b"*1\r\n$5\r\n"[..]), &limits).unwrap_err();
        assert_eq!(err.0, "invalid bulk length");
        let big = vec![b'a'; 70 * 1024];
        assert_eq!(req(&big).unwrap_err().0, "too big inline request");
    }

    #[test]
    fn reply_frames_round_trip() {
        let frame = Frame::Array(vec![
            Frame::Simple("OK".into()),
            Frame::Integer(-3),
            Frame::Bulk(Bytes::from_static(b"bin\r\nary")),
            Frame::Null,
            Frame::Map(vec![(Frame::Bulk("k".into()), Frame::Double(1.5))]),
            Frame::Set(vec![Frame::Boolean(true)]),
            Frame::Error("ERR x".into()),
        ]);
        let mut out = BytesMut::new();
        frame.encode(Proto::Resp3, &mut out);
        let wire = out.clone();
        for cut in 0..wire.len() {
            let mut part = BytesMut::from(&wire[..cut]);
            assert_eq!(decode_frame(&mut part, &Limits::default()), Ok(None));
        }
        assert_eq!(decode_frame(&mut out, &Limits::default()).unwrap().unwrap(), frame);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut wire = BytesMut::new();
        for _ in 0..100 {
            wire.extend_from_slice(b"*1\r\n");
        }
        assert!(decode_frame(&mut wire, &Limits::default()).is_err());
    }
}
