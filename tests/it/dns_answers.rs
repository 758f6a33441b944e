//! Hostile DNS answers, through the binary (issue 11): a server that answers the peers look with
//! a compression loop, a pointer past the end, a name longer than 255 octets, 10,000 records over
//! TCP, or the answer to another question. Each must give one clear line and no peers (or the
//! next server's peers), never a crash, a hang past the resolver's timeout, or memory beyond a
//! few MB (the boot peaks at about 6.5 MiB resident, a debug build included; the tests allow 16).
//!
//! The server is [`ScriptedDns`] on loopback; resolv.conf (bind-mounted in a private mount
//! namespace, as the peers tests do: needs root and `unshare`) sets `timeout:1 attempts:1`, so
//! a malformed answer, which the look ignores as a possible forgery and waits on past, costs one
//! second.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::dns::{
    A, AAAA, ANSWER, AT_QNAME, CNAME, ScriptedDns, TC, answer_header, qtype, record, wire_name, with_resolv_conf,
};
use crate::support::{assert_code, rancher_boot, run, stderr, stdout, tempdir, write_file};

/// A boot that prints `PEER_IPS`, with a local identity, asking `svc.test.` of `server`.
fn boot(resolv_conf: &str, server: Option<&ScriptedDns>, verbose: bool) -> (tempfile::TempDir, Command) {
    let dir = tempdir();
    let resolv = write_file(&dir.path().join("resolv.conf"), resolv_conf);
    let mut command = with_resolv_conf(&resolv);
    command.args(["--source", "local", "--ip", "10.5.0.1", "--service", "svc", "--node-basename", "hello"]);
    command.args(["--peers", "dns", "--peer-query", "svc.test."]);
    if let Some(server) = server {
        command.args(["--dns-server", &server.server()]);
    }
    if verbose {
        command.arg("-v");
    }
    command.args(["--", "/bin/sh", "-c", r#"printf '%s' "$PEER_IPS""#]);
    (dir, command)
}

const ONE_SECOND: &str = "options timeout:1 attempts:1\n";

/// Runs the boot; returns its output, how long it took, and how much larger (KiB) the largest
/// resident set of this test's children became than that of a boot that looks nothing up, run
/// first, the same way (nextest runs each test in a process of its own). Relative, because under
/// emulation (the aarch64 run in qemu) the resident set is mostly the emulator's own.
fn measured(command: &mut Command) -> (Output, Duration, i64) {
    let dir = tempdir();
    let mut baseline = with_resolv_conf(&write_file(&dir.path().join("resolv.conf"), ONE_SECOND));
    baseline.args([
        "--source",
        "local",
        "--ip",
        "10.5.0.1",
        "--service",
        "svc",
        "--peers",
        "none",
        "--",
        "/bin/sh",
        "-c",
        ":",
    ]);
    assert_code(&run(&mut baseline), 0);
    let base = max_rss_of_children();
    let started = Instant::now();
    let output = run(command);
    let elapsed = started.elapsed();
    (output, elapsed, max_rss_of_children() - base)
}

fn max_rss_of_children() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).expect("getrusage").max_rss()
}

/// A boot against `server` that must end, within the resolver's one second and a margin, in no
/// peers and the warning line holding `why`, using little memory.
#[track_caller]
fn no_peers_and_a_clear_line(server: &ScriptedDns, why: &str) -> String {
    let (_dir, mut command) = boot(ONE_SECOND, Some(server), false);
    let (output, elapsed, grown) = measured(&mut command);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    let line = err
        .lines()
        .find(|line| line.contains("warn: cannot look up peers: looking up svc.test.:"))
        .unwrap_or_else(|| panic!("no warning line:\n{err}"));
    assert!(line.contains(why) && line.ends_with("; booting without peers"), "{line}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(grown < 8 * 1024, "the resident set grew by {grown} KiB");
    line.to_string()
}

/// An answer to `query` with `records` (each: owner, type, rdata) and the question as asked.
fn answer(query: &[u8], records: &[(&[u8], u16, &[u8])]) -> Vec<u8> {
    let count = u16::try_from(records.len()).expect("count");
    let mut packet = answer_header(query, ANSWER, [count, 0, 0], None);
    for (owner, rtype, rdata) in records {
        record(&mut packet, owner, *rtype, rdata);
    }
    packet
}

/// The good answer: 10.5.0.2 for A, nothing for AAAA.
fn good(query: &[u8]) -> Option<Vec<u8>> {
    Some(if qtype(query) == A { answer(query, &[(&AT_QNAME, A, &[10, 5, 0, 2])]) } else { answer(query, &[]) })
}

#[test]
fn a_compression_loop_is_a_clear_line_and_no_peers() {
    // The CNAME's target is a label, then a pointer back to that label: a name without end.
    let server = ScriptedDns::start(
        |query| {
            let target_at = (query.len() + 12) as u8; // the CNAME's rdata, after its owner pointer and header
            let looped = [3, b'w', b'e', b'b', 0xC0, target_at];
            Some(answer(query, &[(&AT_QNAME, CNAME, &looped), (&[0xC0, target_at], A, &[10, 5, 0, 3])]))
        },
        |_| None,
    );
    let line = no_peers_and_a_clear_line(&server, "malformed answer: the answer cannot be read");
    assert!(line.contains(&server.server()), "{line}");
}

#[test]
fn a_pointer_past_the_end_is_a_clear_line_and_no_peers() {
    let server = ScriptedDns::start(|query| Some(answer(query, &[(&[0xC3, 0xFF], A, &[10, 5, 0, 3])])), |_| None);
    no_peers_and_a_clear_line(&server, "malformed answer: the answer cannot be read");
}

#[test]
fn a_name_longer_than_255_octets_is_a_clear_line_and_no_peers() {
    // Four labels of 63 and one of 8: 265 octets with the root, uncompressed.
    let long = wire_name(&format!("{0}.{0}.{0}.{0}.abcdefgh", "x".repeat(63)));
    assert!(long.len() > 255);
    let server = ScriptedDns::start(move |query| Some(answer(query, &[(&long, A, &[10, 5, 0, 3])])), |_| None);
    no_peers_and_a_clear_line(&server, "malformed answer: the answer cannot be read");
}

#[test]
fn the_answer_to_another_question_is_a_clear_line_and_no_peers() {
    let server = ScriptedDns::start(
        |query| {
            let mut other = wire_name("other.test");
            other.extend_from_slice(&query[query.len() - 4..]);
            let mut packet = answer_header(query, ANSWER, [1, 0, 0], Some(&other));
            record(&mut packet, &AT_QNAME, qtype(query), &[10, 5, 0, 3]);
            Some(packet)
        },
        |_| None,
    );
    no_peers_and_a_clear_line(&server, "malformed answer: the answer is not for our question");
}

#[test]
fn ten_thousand_records_announced_over_tcp_are_a_clear_line_and_no_peers() {
    // UDP says "truncated"; over TCP the answer announces 10,000 A records and holds as many as
    // fit in the 65,535 bytes a TCP message can have (4,094 of 16 bytes): the rest is missing.
    let server = ScriptedDns::start(
        |query| Some(answer_header(query, ANSWER | TC, [0, 0, 0], None)),
        |query| {
            let mut packet = answer_header(query, ANSWER, [10_000, 0, 0], None);
            let mut n = 0u32;
            while packet.len() + 16 <= 65_535 {
                let [_, b, c, d] = (0x0A00_0000 + n).to_be_bytes();
                record(&mut packet, &AT_QNAME, qtype(query), &[10, b, c, d]);
                n += 1;
            }
            Some(packet)
        },
    );
    no_peers_and_a_clear_line(&server, "malformed answer over TCP: the answer cannot be read");
    assert!(server.tcp_queries() >= 1, "never asked over TCP");
}

#[test]
fn four_thousand_real_records_over_tcp_are_all_peers_in_little_memory() {
    // The most A records one TCP answer can hold, all different: every one is a peer.
    let server = ScriptedDns::start(
        |query| Some(answer_header(query, ANSWER | TC, [0, 0, 0], None)),
        |query| {
            if qtype(query) == AAAA {
                return Some(answer(query, &[]));
            }
            let mut packet = answer_header(query, ANSWER, [0, 0, 0], None);
            let mut n = 0u16;
            while packet.len() + 16 <= 65_535 {
                let [hi, lo] = n.to_be_bytes();
                record(&mut packet, &AT_QNAME, A, &[10, 6, hi, lo]);
                n += 1;
            }
            packet[6..8].copy_from_slice(&n.to_be_bytes());
            Some(packet)
        },
    );
    let (_dir, mut command) = boot(ONE_SECOND, Some(&server), false);
    let (output, elapsed, grown) = measured(&mut command);
    assert_code(&output, 0);
    let peers = stdout(&output);
    assert_eq!(peers.split(' ').count(), 4094, "{}", stderr(&output));
    assert!(peers.starts_with("10.6.0.0 10.6.0.1 "), "{}", &peers[..40]);
    assert!(stderr(&output).contains("4094 peers; exec /bin/sh"), "{}", stderr(&output));
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(grown < 8 * 1024, "the resident set grew by {grown} KiB");
}

/// A loopback address whose port 53 is free for UDP and TCP (resolv.conf cannot name a port).
fn spare_port_53(range: u8) -> impl Iterator<Item = SocketAddr> {
    (2..60)
        .map(move |n| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, range, 0, n)), 53))
        .filter(|addr| UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok())
}

#[test]
fn after_a_hostile_answer_the_next_server_is_asked() {
    // The first nameserver answers with a pointer past the end, the second correctly.
    let hostile = spare_port_53(54)
        .find_map(|addr| {
            ScriptedDns::start_on(addr, |query| Some(answer(query, &[(&[0xC3, 0xFF], A, &[10, 5, 0, 3])])), |_| None)
        })
        .expect("a loopback address with port 53 free");
    let honest = spare_port_53(55)
        .find_map(|addr| ScriptedDns::start_on(addr, good, |_| None))
        .expect("a loopback address with port 53 free");
    let conf = format!("nameserver {}\nnameserver {}\n{ONE_SECOND}", hostile.addr.ip(), honest.addr.ip());
    let (_dir, mut command) = boot(&conf, None, true);
    let (output, elapsed, _) = measured(&mut command);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "10.5.0.2", "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("{}: ignoring an answer for svc.test. A: the answer cannot be read", hostile.addr)),
        "{err}"
    );
    assert!(hostile.udp_queries() >= 1 && honest.udp_queries() >= 1);
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}

#[test]
fn a_ptr_that_is_not_a_host_name_is_a_clear_line_and_no_name_from_it() {
    // Every PTR asked names "evil name.test": a space, which no host name has (and which would
    // split a vm.args argument). --source swarm must not take it: 78 naming --ip, and a line why.
    let server = ScriptedDns::start(
        |query| {
            let mut rdata = vec![9];
            rdata.extend_from_slice(b"evil name");
            rdata.extend_from_slice(&[4, b't', b'e', b's', b't', 0]);
            let mut packet = answer_header(query, ANSWER, [1, 0, 0], None);
            record(&mut packet, &AT_QNAME, 12, &rdata);
            Some(packet)
        },
        |_| None,
    );
    let mut command = rancher_boot();
    command.args(["--source", "swarm", "--dns-server", &server.server(), "--timeout", "1s"]);
    command.args(["--node-basename", "hello", "print-env"]);
    let output = run(&mut command);
    assert_code(&output, 78);
    let err = stderr(&output);
    assert!(err.contains("is not a host name"), "{err}");
    assert!(err.contains("--ip"), "{err}");
    assert!(!stdout(&output).contains("evil"), "{}", stdout(&output));
}
