//! `/etc/hosts`, for the one question where the C library would read it first: the address of
//! a server we connect to by name (Rancher's metadata host). [`addresses`] is pure: the caller
//! reads the file.
//!
//! The format is hosts(5): an address, then names, `#` starts a comment; names compare without
//! regard to case and without a trailing dot. Peers never come from here (see [`super`]).

use std::net::IpAddr;

/// The path the C library reads.
pub const HOSTS: &str = "/etc/hosts";

/// Every address that `text` (an /etc/hosts) gives `name`, in the file's order.
pub fn addresses(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_ascii_whitespace();
        let Some(ip) = words.next().and_then(|word| word.parse::<IpAddr>().ok()) else { continue };
        if words.any(|word| word.strip_suffix('.').unwrap_or(word).eq_ignore_ascii_case(name)) && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_on_any_position_of_their_line() {
        let hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n# 10.9.9.9 meta\n\
                     10.0.0.5\tmeta  Meta.Rancher.Internal. # the stand-in\n10.0.0.6 other\nnot-an-ip meta\n10.0.0.5 meta\n";
        assert_eq!(addresses(hosts, "meta.rancher.internal"), ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(addresses(hosts, "META."), ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(addresses(hosts, "localhost").len(), 2);
        assert!(addresses(hosts, "missing").is_empty());
        assert!(addresses("", "meta").is_empty());
    }
}
