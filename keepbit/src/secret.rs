//! Comparing secrets (passwords, the cluster secret) without leaking where they differ.

/// Constant-time in the content of `given` (time depends only on `expected.len()`).
pub fn secrets_match(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole secrets match; a prefix, an extension, one changed byte or nothing do not.
    #[test]
    fn only_the_whole_secret_matches() {
        assert!(secrets_match(b"abc", b"abc"));
        assert!(secrets_match(b"", b""));
        for wrong in [&b"abd"[..], b"ab", b"abcd", b""] {
            assert!(!secrets_match(b"abc", wrong), "{wrong:?}");
        }
    }
}
