//! Whether a store's host is this machine: the one definition behind "plain http only to
//! loopback" (REST, config) and "no TLS needed to loopback" (MySQL).

use std::net::IpAddr;

/// `localhost`, an IPv4 or IPv6 loopback address, or an IPv4-mapped IPv6 loopback address
/// (`::ffff:127.0.0.1`: the kernel delivers it to 127.0.0.1, so it never leaves the
/// machine). Brackets around an IPv6 address (`[::1]`, as URLs write it) are allowed.
/// Names are not looked up: any other name counts as another machine, so a DNS answer
/// cannot turn TLS off or plain http on.
pub fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_hosts_in_every_spelling() {
        for host in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "example.org",
            "localhost.example.org",
            "10.0.0.1",
            "::ffff:10.0.0.1",
            "[::2]",
            "[::1",
            "",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
