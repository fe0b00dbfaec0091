//! Argument parsing with Redis's exact strictness and error texts.

use std::time::Duration;

use bytes::Bytes;

use crate::error::CmdError;

/// Parses an integer the way Redis's `string2ll` does: no sign but `-`, no leading zeros,
/// no spaces.
pub fn parse_i64(arg: &[u8]) -> Result<i64, CmdError> {
    let (neg, digits) = match arg.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, arg),
    };
    let valid = match digits {
        [] => false,
        [b'0'] => !neg,
        [first, ..] => (b'1'..=b'9').contains(first) && digits.len() <= 19,
    };
    if !valid {
        return Err(CmdError::NotInteger);
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(CmdError::NotInteger);
        }
        let digit = (d - b'0') as i64;
        v = v
            .checked_mul(10)
            .and_then(|v| if neg { v.checked_sub(digit) } else { v.checked_add(digit) })
            .ok_or(CmdError::NotInteger)?;
    }
    Ok(v)
}

/// A non-negative integer that fits in `usize`; `err` otherwise.
/// Most members SRANDMEMBER / HRANDFIELD / ZRANDMEMBER pick for one negative count
/// (picks may repeat, so the reply is not bounded by the collection): about a million
/// replies, tens of MB. A larger count could only exhaust the node's memory.
pub const REPEATED_PICKS_MAX: u64 = 1 << 20;

/// Refuses a negative-count pick larger than [`REPEATED_PICKS_MAX`].
pub fn check_repeats(n: u64) -> Result<(), CmdError> {
    if n > REPEATED_PICKS_MAX {
        return Err(CmdError::err(format!(
            "value is out of range, a negative count may ask for at most {REPEATED_PICKS_MAX} members"
        )));
    }
    Ok(())
}

pub fn parse_count(arg: &[u8], err: CmdError) -> Result<usize, CmdError> {
    match parse_i64(arg) {
        Ok(n) if n >= 0 => Ok(n as usize),
        _ => Err(err),
    }
}

/// A C `strtod` over the whole argument: decimal, hexadecimal (`0x1p4`), `inf`,
/// `infinity`, `nan`, with a sign. Returns the value and whether it was out of range
/// (overflow to infinity, or underflow), or `None` if the text is not a number.
fn strtod(s: &str) -> Option<(f64, bool)> {
    let lower = s.to_ascii_lowercase();
    let (neg, body) = match lower.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, lower.strip_prefix('+').unwrap_or(&lower)),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    match body {
        "inf" | "infinity" => return Some((sign * f64::INFINITY, false)),
        "nan" => return Some((f64::NAN, false)),
        _ => {}
    }
    let (v, nonzero_digits) = if let Some(hex) = body.strip_prefix("0x") {
        parse_hex_float(hex)?
    } else {
        if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-')) {
            return None;
        }
        let v: f64 = body.parse().ok()?;
        let mantissa = body.split('e').next().unwrap_or("");
        (v, mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c)))
    };
    let out_of_range = v.is_infinite() || (nonzero_digits && (v == 0.0 || v.is_subnormal()));
    Some((sign * v, out_of_range))
}

/// `hh.hhp±d` after `0x`: the value and whether any digit was non-zero.
fn parse_hex_float(s: &str) -> Option<(f64, bool)> {
    let (mantissa, exp) = match s.split_once('p') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    let mut nonzero = false;
    for c in int.chars() {
        let d = c.to_digit(16)?;
        nonzero |= d != 0;
        v = v * 16.0 + d as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        let d = c.to_digit(16)?;
        nonzero |= d != 0;
        v += d as f64 * scale;
        scale /= 16.0;
    }
    Some((v * 2f64.powi(exp.clamp(-2000, 2000)), nonzero))
}

/// Parses a float as Redis's `string2d` does: C `strtod` syntax (hex floats included),
/// no spaces, no NaN, and no out-of-range values.
pub fn parse_f64(arg: &[u8]) -> Result<f64, CmdError> {
    let s = std::str::from_utf8(arg).map_err(|_| CmdError::NotFloat)?;
    match strtod(s) {
        Some((v, false)) if !v.is_nan() => Ok(v),
        _ => Err(CmdError::NotFloat),
    }
}

/// Like [`parse_f64`] but out-of-range values saturate instead of failing (score range
/// bounds, which Redis reads with a bare `strtod`).
pub fn parse_f64_saturating(arg: &[u8]) -> Result<f64, CmdError> {
    let s = std::str::from_utf8(arg).map_err(|_| CmdError::NotFloat)?;
    match strtod(s) {
        Some((v, _)) if !v.is_nan() => Ok(v),
        _ => Err(CmdError::NotFloat),
    }
}

/// Blocking-command timeout in seconds (a float); `None` means wait forever. As Redis:
/// a timeout whose deadline does not fit in milliseconds since the epoch is out of range.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, CmdError> {
    let s = std::str::from_utf8(arg).map_err(|_| CmdError::TimeoutNotFloat)?;
    let secs = match strtod(s) {
        Some((v, _)) if !v.is_nan() => v,
        _ => return Err(CmdError::TimeoutNotFloat),
    };
    if secs < 0.0 {
        return Err(CmdError::TimeoutNegative);
    }
    let out_of_range = || CmdError::err("timeout is out of range");
    let ms = secs * 1000.0;
    if !ms.is_finite() || ms > (i64::MAX / 2) as f64 {
        return Err(out_of_range());
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

/// Case-insensitive option match.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

pub fn lossy(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// Formats an integer as a bulk value.
pub fn int_bytes(v: i64) -> Bytes {
    Bytes::from(itoa::Buffer::new().format(v).to_owned())
}

/// Redis's rule for turning a (start, stop) pair with negative indexes into a clamped
/// inclusive range over `len` items; `None` when empty.
pub fn clamp_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_i64(b"123"), Ok(123));
        assert_eq!(parse_i64(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Ok(i64::MAX));
        for bad in [&b"9223372036854775808"[..], b"+1", b"01", b"-0", b" 1", b"1 ", b"", b"-", b"1.0"] {
            assert_eq!(parse_i64(bad), Err(CmdError::NotInteger), "{:?}", lossy(bad));
        }
    }

    #[test]
    fn floats_refuse_nan_and_spaces() {
        assert_eq!(parse_f64(b"1.5"), Ok(1.5));
        assert_eq!(parse_f64(b"-inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Ok(1000.0));
        assert_eq!(parse_f64(b"0x10"), Ok(16.0));
        assert_eq!(parse_f64(b"0x1p4"), Ok(16.0));
        assert_eq!(parse_f64(b"-0x.8"), Ok(-0.5));
        for bad in [&b"nan"[..], b" 1", b"abc", b"", b"1e400", b"-1e400", b"1e-400", b"0x"] {
            assert_eq!(parse_f64(bad), Err(CmdError::NotFloat), "{:?}", lossy(bad));
        }
        assert_eq!(parse_f64_saturating(b"1e400"), Ok(f64::INFINITY));
        assert_eq!(parse_timeout(b"1e13").map(|d| d.is_some()), Ok(true));
        assert_eq!(parse_timeout(b"inf"), Err(CmdError::err("timeout is out of range")));
        assert_eq!(parse_timeout(b"-1"), Err(CmdError::TimeoutNegative));
        assert_eq!(parse_timeout(b"x"), Err(CmdError::TimeoutNotFloat));
    }

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(5, 10, 3), None);
        assert_eq!(clamp_range(0, -1, 0), None);
    }
}
