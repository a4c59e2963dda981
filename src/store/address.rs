//! The host part of a store address: `HOST[:PORT]` taken apart (MySQL and site addresses
//! alike), and whether the host is this machine: the one definition behind "plain http
//! only to loopback" (REST, config) and "no TLS needed to loopback" (MySQL).

use std::net::{IpAddr, Ipv6Addr};

/// `HOST[:PORT]` or `[IPV6][:PORT]` as (host, port), the host without brackets. The
/// port, when there, is a number from 1 to 65535; a bracketed host is an IPv6 address.
/// Errors never repeat the text: in a MySQL address a password may sit where the port is.
pub fn host_and_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| "an IPv6 address without its closing ']'".to_string())?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err("the part in [ ] is not an IPv6 address".to_string());
        }
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| "unexpected text after ']'".to_string())?,
                ),
            ),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| "the port is not a number from 1 to 65535".to_string())?,
        ),
    };
    Ok((host, port))
}

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
    use super::{host_and_port, is_loopback};

    #[test]
    fn hosts_and_ports() {
        assert_eq!(host_and_port("db:3307"), Ok(("db", Some(3307))));
        assert_eq!(host_and_port("db"), Ok(("db", None)));
        assert_eq!(host_and_port("[::1]:3310"), Ok(("::1", Some(3310))));
        assert_eq!(host_and_port("[::1]"), Ok(("::1", None)));
        for bad in [
            "db:x",
            "db:0",
            "db:99999",
            "[::1",
            "[db]:1",
            "[::1]x",
            "db:Sekr3t",
        ] {
            let err = host_and_port(bad).unwrap_err();
            assert!(!err.contains("Sekr3t"), "{err}");
        }
    }

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
