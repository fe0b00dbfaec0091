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
pub fn parse_count(arg: &[u8], err: CmdError) -> Result<usize, CmdError> {
    match parse_i64(arg) {
        Ok(n) if n >= 0 => Ok(n as usize),
        _ => Err(err),
    }
}

/// Parses a float like Redis's `strtod` checks: no spaces, no NaN; `inf`, `+inf`, `-inf`.
pub fn parse_f64(arg: &[u8]) -> Result<f64, CmdError> {
    let s = std::str::from_utf8(arg).map_err(|_| CmdError::NotFloat)?;
    if s.is_empty() || s.starts_with(|c: char| c.is_whitespace()) || s.ends_with(|c: char| c.is_whitespace()) {
        return Err(CmdError::NotFloat);
    }
    let lower = s.to_ascii_lowercase();
    let v: f64 = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ if lower.contains("inf") || lower.contains("nan") => return Err(CmdError::NotFloat),
        _ => lower.parse().map_err(|_| CmdError::NotFloat)?,
    };
    Ok(v)
}

/// Blocking-command timeout in seconds (a float); `None` means wait forever.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, CmdError> {
    let secs = parse_f64(arg).map_err(|_| CmdError::TimeoutNotFloat)?;
    if secs < 0.0 {
        return Err(CmdError::TimeoutNegative);
    }
    if !secs.is_finite() || secs > 1e12 {
        return Err(CmdError::TimeoutNotFloat);
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
        for bad in [&b"nan"[..], b" 1", b"abc", b""] {
            assert_eq!(parse_f64(bad), Err(CmdError::NotFloat));
        }
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
