//! Member addresses (`host:port`): the one syntactic check shared by config validation
//! and `KEEPBIT CLUSTER ADD`. A host is an IP literal (IPv6 in brackets) or a DNS name
//! (RFC 1123 labels); names are resolved only when a connection is made, never here.

use std::net::{IpAddr, SocketAddr};

/// Longest DNS name, without its trailing dot (RFC 1035).
const NAME_LEN_MAX: usize = 253;
/// Longest label of a DNS name.
const LABEL_LEN_MAX: usize = 63;

/// Splits and checks `host:port`: `host` is an IPv4 literal, a bracketed IPv6 literal or
/// an RFC 1123 host name (a trailing dot allowed); `port` is 1..=65535. Returns the host
/// normalized (an IP in its canonical form, unbracketed; a name lowercase, without a
/// trailing dot) so that two spellings of one address compare equal.
pub fn host_port(s: &str) -> Result<(String, u16), String> {
    if let Ok(sock) = s.parse::<SocketAddr>() {
        return match sock.port() {
            0 => Err("port 0 is not allowed (1..=65535)".into()),
            port => Ok((sock.ip().to_string(), port)),
        };
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("it has no port".into());
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return Err(format!("{port:?} is not a port (1..=65535)")),
    };
    if host.starts_with('[') || host.contains(':') {
        return Err(format!("{host:?} is not an IPv6 address in brackets ([addr]:port)"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    check_name(name).map_err(|why| format!("{host:?} is not a host name: {why}"))?;
    Ok((name.to_ascii_lowercase(), port))
}

/// Whether `s` (already checked by [`host_port`]) names its host by DNS name rather than
/// by IP literal.
pub fn is_name(s: &str) -> bool {
    s.parse::<SocketAddr>().is_err()
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > NAME_LEN_MAX {
        return Err(format!("longer than {NAME_LEN_MAX} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label".into());
        }
        if label.len() > LABEL_LEN_MAX {
            return Err(format!("label {label:?} is longer than {LABEL_LEN_MAX} characters"));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
            return Err(format!("{c:?} is not a letter, digit or '-'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
    }
    // An all-numeric last label is a mistyped IP address, not a name (RFC 3696 §2).
    if name.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) || name.parse::<IpAddr>().is_ok()
    {
        return Err("it looks like an IP address but is not a valid one".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_normalized() {
        let ok: &[(&str, &str, u16)] = &[
            ("127.0.0.1:7001", "127.0.0.1", 7001),
            ("[::1]:7001", "::1", 7001),
            ("[0:0::1]:65535", "::1", 65535),
            ("localhost:6379", "localhost", 6379),
            (
                "Keepbit-0.keepbit-peers.default.svc.cluster.local:16379",
                "keepbit-0.keepbit-peers.default.svc.cluster.local",
                16379,
            ),
            ("db.example.com.:1", "db.example.com", 1),
            ("a1:80", "a1", 80),
            ("1a.example:80", "1a.example", 80),
        ];
        for &(s, host, port) in ok {
            assert_eq!(host_port(s), Ok((host.to_string(), port)), "{s}");
        }
        let long_label = format!("{}.example:80", "a".repeat(64));
        let long_name = format!("{}:80", vec!["a".repeat(63); 4].join("."));
        let bad: &[(&str, &str)] = &[
            ("", "no port"),
            ("localhost", "no port"),
            (":7001", "empty"),
            ("localhost:", "not a port"),
            ("localhost:0", "not a port"),
            ("127.0.0.1:0", "port 0"),
            ("localhost:65536", "not a port"),
            ("localhost:+80", "not a port"),
            ("local host:80", "not a letter"),
            (" localhost:80", "not a letter"),
            ("localhost: 80", "not a port"),
            ("my_host:80", "not a letter"),
            ("-host:80", "starts or ends"),
            ("a..b:80", "empty label"),
            ("host..:80", "empty label"),
            (&long_label, "longer than 63"),
            (&long_name, "longer than 253"),
            ("::1:7001", "IPv6"),
            ("[::1]:0", "port 0"),
            ("[::1:7001", "IPv6"),
            ("[localhost]:80", "IPv6"),
            ("256.1.1.1:80", "IP address"),
            ("1.2.3:80", "IP address"),
        ];
        for &(s, why) in bad {
            let err = host_port(s).expect_err(s);
            assert!(err.contains(why), "{s:?}: {err}");
        }
    }

    #[test]
    fn names_are_told_from_ip_literals() {
        assert!(!is_name("10.0.0.1:7001"));
        assert!(!is_name("[fe80::1]:7001"));
        assert!(is_name("localhost:7001"));
    }
}
