//! Fuzz target: a `self/container` answer, arbitrary bytes through `serde_json::from_slice` and
//! `source::rancher::parse_container`, as `http::Client::get_json` hands it over.
//!
//! Invariants checked (docs/spec.md sections 2 and 3):
//! 1. no panic, whatever the JSON;
//! 2. an accepted identity's IP is not unspecified, loopback or link-local, also when written as
//!    an IPv4-mapped IPv6 address (`::ffff:127.0.0.1` is loopback to every other node);
//! 3. every accepted name matches `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}`;
//! 4. `env::node_name(basename, ip)` for a basename that `cli::check_node_basename` accepts is a
//!    valid Erlang long node name: no whitespace or control character, exactly one `@`, a name
//!    part `[0-9A-Za-z_-]+`, a non-empty host, and at most 255 characters (node names are atoms,
//!    and Erlang refuses an atom longer than 255 characters). The basenames tried are `hello`,
//!    and the `"__basename"` string of the answer when the checker accepts it, so the fuzzer
//!    explores basenames too (`parse_container` ignores unknown fields).
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use rancher_boot::cli::check_node_basename;
use rancher_boot::env::node_name;
use rancher_boot::source::rancher::parse_container;

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn reachable(ip: IpAddr) -> bool {
    // Judge the address as the network does: a v4-mapped v6 address is the v4 one.
    match ip.to_canonical() {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_loopback() || v4.is_link_local()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_loopback() || (v6.segments()[0] & 0xffc0) == 0xfe80),
    }
}

fn check_node_name(node: &str) {
    assert!(
        node.chars().count() <= 255,
        "node name longer than an Erlang atom allows ({} chars): {node}",
        node.len()
    );
    assert!(!node.chars().any(|c| c.is_whitespace() || c.is_control()), "{node:?}");
    assert_eq!(node.matches('@').count(), 1, "{node:?}");
    let (name, host) = node.split_once('@').expect("one @");
    assert!(!name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'), "{node:?}");
    assert!(!host.is_empty(), "{node:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(identity) = parse_container(&answer) else { return };

    assert_eq!(identity.ip.to_canonical(), identity.ip, "an IPv4-mapped address is returned as the IPv4 it maps");
    assert!(
        reachable(identity.ip),
        "accepted an address other nodes cannot reach: {}",
        identity.ip
    );
    // What the node will be called must round-trip through text.
    assert_eq!(identity.ip.to_string().parse::<IpAddr>().ok(), Some(identity.ip));
    assert!(valid_name(&identity.service), "service {:?}", identity.service);
    for (_, name) in &identity.extras {
        assert!(valid_name(name), "name {name:?}");
    }

    let mut basenames = vec!["hello".to_string()];
    if let Some(b) = answer.get("__basename").and_then(|b| b.as_str())
        && check_node_basename(b).is_ok()
    {
        basenames.push(b.to_string());
    }
    for basename in &basenames {
        check_node_name(&node_name(basename, identity.ip));
    }
});
