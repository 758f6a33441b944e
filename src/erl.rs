//! Pure: what Erlang itself reads or writes, so that rancher-boot's names match it letter for
//! letter: the text of an IP address as `inet:ntoa/1` prints it, where a release's root is
//! (`ROOT/bin/NAME`), and the warning when an inherited `RELEASE_NODE` would win over ours. The
//! distribution flags (`-proto_dist` and the rest) are `dist_flags.rs`'s.
//!
//! Erlang compares node names as atoms, and libcluster and dns_cluster build a peer's name with
//! `inet:ntoa/1`; a name written any other way (Rust's `Display` prints `::1.2.3.4` as
//! `::102:304`) is another node. The rules below were checked against a real `erl` (OTP 25).

use std::net::{IpAddr, Ipv6Addr};

/// The address as `inet:ntoa/1` prints it: IPv4 dotted decimal; IPv6 lower case without leading
/// zeros, the longest run of two or more zero groups as `::` (the first on a tie), and the last
/// 32 bits dotted for `::a.b.c.d` and `::ffff:a.b.c.d` (but `::` and `::1` as they are).
pub fn ntoa(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => ntoa6(v6),
    }
}

fn ntoa6(ip: Ipv6Addr) -> String {
    let g = ip.segments();
    let dotted = |a: u16, b: u16| format!("{}.{}.{}.{}", a >> 8, a & 0xff, b >> 8, b & 0xff);
    match g {
        [0, 0, 0, 0, 0, 0, 0, 0] => return "::".to_string(),
        [0, 0, 0, 0, 0, 0, 0, 1] => return "::1".to_string(),
        [0, 0, 0, 0, 0, 0, a, b] => return format!("::{}", dotted(a, b)),
        [0, 0, 0, 0, 0, 0xffff, a, b] => return format!("::ffff:{}", dotted(a, b)),
        _ => {}
    }
    // The longest run of zero groups, at least two long; the first of equal runs.
    let (mut best, mut best_len) = (0, 0);
    let mut i = 0;
    while i < 8 {
        let start = i;
        while i < 8 && g[i] == 0 {
            i += 1;
        }
        if i - start > best_len {
            (best, best_len) = (start, i - start);
        }
        i += 1;
    }
    let hex = |groups: &[u16]| groups.iter().map(|x| format!("{x:x}")).collect::<Vec<_>>().join(":");
    if best_len < 2 {
        return hex(&g);
    }
    format!("{}::{}", hex(&g[..best]), hex(&g[best + best_len..]))
}

/// The root of the release whose start script is `program`: `ROOT` for `ROOT/bin/NAME`, the
/// layout of mix releases and relx (where `releases/COOKIE` and `lib/` are); `None` otherwise.
pub fn release_root(program: &std::path::Path) -> Option<&std::path::Path> {
    program.parent().filter(|bin| bin.file_name().is_some_and(|n| n == "bin")).and_then(std::path::Path::parent)
}

/// The warning for an inherited `RELEASE_NODE` that is not the one exported: a release's
/// `env.sh` (Fly's template writes one) sets it after us, and the release script's value wins.
pub fn release_node_warning(inherited: Option<&str>, exported: &str) -> Option<String> {
    let inherited = inherited.filter(|v| !v.is_empty() && *v != exported)?;
    Some(format!(
        "RELEASE_NODE is already set to {inherited:?} in the environment; rancher-boot exports {exported:?}, \
         but a line in the release's rel/env.sh.eex that sets RELEASE_NODE would win: delete it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each pair: an address as written, and what `inet:ntoa/1` printed for it (OTP 25's `erl`).
    const ERL: &[(&str, &str)] = &[
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("fdaa:2:686c:a7b:465:821d:76c3:2", "fdaa:2:686c:a7b:465:821d:76c3:2"),
        ("FDAA:0002:686C::0001", "fdaa:2:686c::1"),
        ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
        ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
        ("::1.2.3.4", "::1.2.3.4"),
        ("::ffff:0:1.2.3.4", "::ffff:0:102:304"),
        ("64:ff9b::1.2.3.4", "64:ff9b::102:304"),
        ("fe80::1", "fe80::1"),
        ("0:0:1::", "0:0:1::"),
        ("1:0:0:0:1:0:0:0", "1::1:0:0:0"),
        ("::102:304", "::1.2.3.4"),
        ("::ffff:102:304", "::ffff:1.2.3.4"),
        ("0:1:0:0:0:0:0:0", "0:1::"),
        ("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"),
        ("2001:db8::ffff:1.2.3.4", "2001:db8::ffff:102:304"),
        ("::0.0.0.1", "::1"),
        ("::0.1.0.0", "::0.1.0.0"),
        ("::ffff:0.0.0.0", "::ffff:0.0.0.0"),
        ("::ffff:0:0", "::ffff:0.0.0.0"),
    ];

    #[test]
    fn ntoa_prints_what_erlang_prints() {
        for (written, erl) in ERL {
            let ip: IpAddr = written.parse().unwrap();
            assert_eq!(ntoa(ip), *erl, "{written}");
        }
        assert_eq!(ntoa("10.0.2.100".parse().unwrap()), "10.0.2.100");
    }

    #[test]
    fn an_inherited_release_node_that_differs_is_warned_about() {
        assert_eq!(release_node_warning(None, "hello@fdaa::2"), None);
        assert_eq!(release_node_warning(Some(""), "hello@fdaa::2"), None);
        assert_eq!(release_node_warning(Some("hello@fdaa::2"), "hello@fdaa::2"), None);
        let warning = release_node_warning(Some("app-01@fdaa::2"), "hello@fdaa::2").unwrap();
        assert!(warning.contains("\"app-01@fdaa::2\"") && warning.contains("env.sh.eex"), "{warning}");
    }
}
