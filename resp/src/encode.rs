//! Writers for each RESP type. RESP3-only types fall back to their RESP2 shape
//! (map → flat array, set/push → array, double → bulk string, boolean → 0/1, null → `$-1`).

use bytes::{BufMut, BytesMut};

use crate::Proto;

fn line(out: &mut BytesMut, prefix: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.put_u8(prefix);
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, prefix: u8, n: i64) {
    let mut buf = itoa::Buffer::new();
    line(out, prefix, buf.format(n).as_bytes());
}

pub fn simple(out: &mut BytesMut, s: &[u8]) {
    line(out, b'+', s);
}

/// `e` is the whole error text, code first (`ERR syntax error`).
pub fn error(out: &mut BytesMut, e: &[u8]) {
    line(out, b'-', e);
}

pub fn integer(out: &mut BytesMut, i: i64) {
    header(out, b':', i);
}

pub fn bulk(out: &mut BytesMut, b: &[u8]) {
    header(out, b'$', b.len() as i64);
    out.reserve(b.len() + 2);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

pub fn null(out: &mut BytesMut, proto: Proto) {
    out.put_slice(match proto {
        Proto::Resp2 => b"$-1\r\n",
        Proto::Resp3 => b"_\r\n",
    });
}

/// The null reply where RESP2 uses a null array (`*-1`): EXEC aborted by WATCH, timed-out
/// blocking pops.
pub fn null_array(out: &mut BytesMut, proto: Proto) {
    out.put_slice(match proto {
        Proto::Resp2 => b"*-1\r\n",
        Proto::Resp3 => b"_\r\n",
    });
}

pub fn array_header(out: &mut BytesMut, n: usize) {
    header(out, b'*', n as i64);
}

pub fn set_header(out: &mut BytesMut, proto: Proto, n: usize) {
    header(out, if proto == Proto::Resp3 { b'~' } else { b'*' }, n as i64);
}

pub fn push_header(out: &mut BytesMut, proto: Proto, n: usize) {
    header(out, if proto == Proto::Resp3 { b'>' } else { b'*' }, n as i64);
}

/// A map of `n` pairs; in RESP2 a flat array of `2n` items.
pub fn map_header(out: &mut BytesMut, proto: Proto, n: usize) {
    match proto {
        Proto::Resp3 => header(out, b'%', n as i64),
        Proto::Resp2 => header(out, b'*', 2 * n as i64),
    }
}

/// Formats a double the way Redis does for replies (`%.17g`, shortest round-trip form,
/// `inf`/`-inf`, `nan`).
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = d.abs();
    if d == d.trunc() && a < 1e17 {
        // Integral values print without a fraction, as %.17g does.
        return format!("{}", d as i64);
    }
    if a >= 1e17 || a < 1e-4 {
        // C's exponent form: mantissa, 'e', sign, at least two digits.
        let s = format!("{d:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(digits) => ('-', digits),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    format!("{d}")
}

pub fn double(out: &mut BytesMut, proto: Proto, d: f64) {
    let s = format_double(d);
    match proto {
        Proto::Resp3 => line(out, b',', s.as_bytes()),
        Proto::Resp2 => bulk(out, s.as_bytes()),
    }
}

pub fn boolean(out: &mut BytesMut, proto: Proto, b: bool) {
    match proto {
        Proto::Resp3 => out.put_slice(if b { b"#t\r\n" } else { b"#f\r\n" }),
        Proto::Resp2 => integer(out, b as i64),
    }
}

pub fn big_number(out: &mut BytesMut, proto: Proto, n: &[u8]) {
    match proto {
        Proto::Resp3 => line(out, b'(', n),
        Proto::Resp2 => bulk(out, n),
    }
}

pub fn verbatim(out: &mut BytesMut, proto: Proto, format: &[u8; 3], text: &[u8]) {
    match proto {
        Proto::Resp3 => {
            header(out, b'=', text.len() as i64 + 4);
            out.put_slice(format);
            out.put_u8(b':');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        Proto::Resp2 => bulk(out, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_redis() {
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(10.5), "10.5");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(0.1), "0.1");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e-5), "1.5e-05");
    }

    #[test]
    fn resp2_fallbacks() {
        let mut out = BytesMut::new();
        map_header(&mut out, Proto::Resp2, 2);
        boolean(&mut out, Proto::Resp2, true);
        null(&mut out, Proto::Resp2);
        double(&mut out, Proto::Resp2, 1.5);
        assert_eq!(&out[..], b"*4\r\n:1\r\n$-1\r\n$3\r\n1.5\r\n");
        let mut out = BytesMut::new();
        map_header(&mut out, Proto::Resp3, 2);
        boolean(&mut out, Proto::Resp3, false);
        null(&mut out, Proto::Resp3);
        double(&mut out, Proto::Resp3, 1.5);
        assert_eq!(&out[..], b"%2\r\n#f\r\n_\r\n,1.5\r\n");
    }
}
