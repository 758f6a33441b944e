//! `/etc/resolv.conf` as the C library reads it (resolv.conf(5); glibc's `res_init` and musl's
//! `__get_resolv_conf` agree on everything here):
//!
//! - `nameserver ADDR`: IPv4 or IPv6 (a link-local one may carry `%scope`), port 53, at most
//!   three ([`MAX_NAMESERVERS`]); the others, and addresses that do not parse, are ignored.
//! - `search D…` and `domain D`: the search list; the last of these lines wins.
//! - `options ndots:N timeout:N attempts:N`, clamped as glibc does (ndots ≤ 15, timeout ≤ 30 s,
//!   attempts ≤ 5; timeout and attempts at least 1). Other options (`edns0`, `rotate`, …) are
//!   ignored: we never send EDNS (a truncated answer is asked again over TCP) and always ask the
//!   servers in their order.
//! - Comments start with `#` or `;`, at the start of a line or after a value. A keyword must
//!   start its line.
//!
//! Not read: `LOCALDOMAIN` and `RES_OPTIONS`, and the host name's domain as a default search list
//! (glibc has both; musl neither). With no `nameserver` line the caller asks 127.0.0.1, as both
//! C libraries do. [`parse_resolv_conf`] is pure; reading the file is the caller's job.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

pub const RESOLV_CONF: &str = "/etc/resolv.conf";

pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_NDOTS: u32 = 15;
pub const MAX_TIMEOUT_SECS: u64 = 30;
pub const MAX_ATTEMPTS: u32 = 5;
pub const DNS_PORT: u16 = 53;

/// What resolv.conf says, with the C library's defaults for what it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// In the file's order; empty if it names none.
    pub nameservers: Vec<SocketAddr>,
    /// The search domains, without trailing dots.
    pub search: Vec<String>,
    /// A name with at least this many dots is tried as it is before the search list.
    pub ndots: u32,
    /// How long to wait for one server's answer.
    pub timeout: Duration,
    /// How many rounds over the servers.
    pub attempts: u32,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

/// Reads and parses `/etc/resolv.conf` (bytes that are not UTF-8 are read as U+FFFD).
pub fn read() -> io::Result<ResolvConf> {
    let text = fs::read(RESOLV_CONF)?;
    Ok(parse(&String::from_utf8_lossy(&text)))
}

/// Parses the text of a resolv.conf. Never fails: what it does not understand it ignores, as the
/// C library does.
pub fn parse(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        // A keyword counts only at the start of its line, as in both C libraries.
        if line.starts_with(char::is_whitespace) {
            continue;
        }
        let line = line.find(['#', ';']).map_or(line, |comment| &line[..comment]);
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(server) = words.next().and_then(nameserver)
                    && conf.nameservers.len() < MAX_NAMESERVERS
                {
                    conf.nameservers.push(server);
                }
            }
            Some("domain") => {
                if let Some(domain) = words.next() {
                    conf.search = domains([domain]);
                }
            }
            Some("search") => conf.search = domains(words),
            Some("options") => words.for_each(|option| apply_option(&mut conf, option)),
            _ => {}
        }
    }
    conf
}

fn domains<'a>(words: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    words
        .into_iter()
        .map(|domain| domain.strip_suffix('.').unwrap_or(domain))
        .filter(|domain| !domain.is_empty()) // `.`: the root, which the name as it is covers
        .map(str::to_owned)
        .collect()
}

fn apply_option(conf: &mut ResolvConf, option: &str) {
    let Some((key, value)) = option.split_once(':') else { return };
    // glibc reads the number with atoi: digits only, anything too large is clamped below.
    let Ok(n) = value.parse::<u64>() else { return };
    match key {
        "ndots" => conf.ndots = n.min(u64::from(MAX_NDOTS)) as u32,
        "timeout" => conf.timeout = Duration::from_secs(n.clamp(1, MAX_TIMEOUT_SECS)),
        "attempts" => conf.attempts = n.clamp(1, u64::from(MAX_ATTEMPTS)) as u32,
        _ => {}
    }
}

/// `10.0.0.1`, `fd00::53`, `fe80::1%2` or `fe80::1%eth0`, on port 53.
fn nameserver(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, DNS_PORT));
    }
    let (ip, scope) = text.split_once('%')?;
    let ip: Ipv6Addr = ip.parse().ok()?;
    let scope = match scope.parse::<u32>() {
        Ok(index) => index,
        Err(_) => nix::net::if_::if_nametoindex(scope).ok()?,
    };
    Some(SocketAddr::V6(SocketAddrV6::new(ip, DNS_PORT, 0, scope)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(conf: &ResolvConf) -> Vec<String> {
        conf.nameservers.iter().map(SocketAddr::to_string).collect()
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let conf = parse("");
        assert_eq!(conf, ResolvConf::default());
        assert_eq!((conf.ndots, conf.timeout, conf.attempts), (1, Duration::from_secs(5), 2));
    }

    #[test]
    fn a_typical_container_file() {
        let conf = parse(
            "# Generated by Rancher\nsearch demo.rancher.internal rancher.internal.\nnameserver 169.254.169.250\n\
             options ndots:5 timeout:2 attempts:3\n",
        );
        assert_eq!(servers(&conf), ["169.254.169.250:53"]);
        assert_eq!(conf.search, ["demo.rancher.internal", "rancher.internal"]);
        assert_eq!((conf.ndots, conf.timeout, conf.attempts), (5, Duration::from_secs(2), 3));
    }

    #[test]
    fn at_most_three_nameservers_of_either_family() {
        let conf = parse(
            "nameserver 10.0.0.1\nnameserver not-an-address\nnameserver fd00::53\nnameserver\n\
             nameserver fe80::1%2\nnameserver 10.0.0.4\n",
        );
        assert_eq!(servers(&conf), ["10.0.0.1:53", "[fd00::53]:53", "[fe80::1%2]:53"]);
        let conf = parse("nameserver 10.0.0.1:5353\nnameserver fe80::1%no-such-interface-x\n");
        assert!(conf.nameservers.is_empty());
    }

    #[test]
    fn the_last_search_or_domain_line_wins() {
        assert_eq!(parse("search a.test b.test\ndomain c.test\n").search, ["c.test"]);
        assert_eq!(parse("domain c.test\nsearch a.test b.test\n").search, ["a.test", "b.test"]);
        assert_eq!(parse("search a.test\nsearch\n").search, Vec::<String>::new());
        assert_eq!(parse("search a.test\ndomain\n").search, ["a.test"]);
        assert_eq!(parse("search .\n").search, Vec::<String>::new());
    }

    #[test]
    fn options_are_clamped_like_glibc() {
        let conf = parse("options ndots:99 timeout:99 attempts:99\n");
        assert_eq!((conf.ndots, conf.timeout, conf.attempts), (15, Duration::from_secs(30), 5));
        let conf = parse("options ndots:0 timeout:0 attempts:0\n");
        assert_eq!((conf.ndots, conf.timeout, conf.attempts), (0, Duration::from_secs(1), 1));
        let conf = parse("options ndots:x timeout:-1 attempts: rotate edns0 ndots:99999999999999999999\n");
        assert_eq!((conf.ndots, conf.timeout, conf.attempts), (1, Duration::from_secs(5), 2));
        // Options add up over several lines; a later value replaces an earlier one.
        let conf = parse("options ndots:3\noptions timeout:1\noptions ndots:2\n");
        assert_eq!((conf.ndots, conf.timeout), (2, Duration::from_secs(1)));
    }

    #[test]
    fn comments_whitespace_and_unknown_lines() {
        let conf = parse(
            "; comment\n# nameserver 10.9.9.9\n  nameserver 10.0.0.3\nnameserver\t10.0.0.1 # trailing\n\nsearch a.test ; b.test\n\
             sortlist 10.0.0.0/8\nlookup file bind\nNAMESERVER 10.0.0.2\noptions ndots:2#x\r\n",
        );
        assert_eq!(servers(&conf), ["10.0.0.1:53"]);
        assert_eq!(conf.search, ["a.test"]);
        assert_eq!(conf.ndots, 2);
    }
}
