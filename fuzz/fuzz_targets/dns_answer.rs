//! Fuzz target: a datagram from the network as the answer to a known query, through
//! `dns::message::read_answer`, the function every look (UDP and TCP) hands its bytes to, and the
//! checks the look then makes (`dns::message::host_name` on PTR names and SRV targets).
//!
//! Byte 0 picks the question: its low two bits the type (A, AAAA, PTR, SRV), bit 2 the name
//! (`web.test`, or a PTR-style `9.0.0.10.in-addr.arpa`), and bit 7 whether the datagram keeps
//! its own id (else bytes 1..3 are overwritten with the query's id, so that the fuzzer gets past
//! the id check). The rest is the datagram.
//!
//! Invariants checked:
//! 1. no panic, no hang, no allocation beyond a few times the input, whatever the bytes;
//! 2. an accepted answer has the query's id, and holds no more records than its bytes can carry
//!    (an A record takes at least 11 octets on the wire, a PTR or SRV 12, a glue A record 11);
//! 3. only the records of the type asked are taken (addresses for A/AAAA, names for PTR,
//!    services and glue for SRV), and only from a NOERROR answer;
//! 4. a name that `host_name` accepts is a host name: lower case, labels of 1 to 63 letters,
//!    digits, `-` or `_`, at most 253 characters, no trailing dot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rancher_boot::dns::message::{Qtype, Rcode, host_name, read_answer};

const ID: u16 = 0x5eed;

fn check_host_name(shown: &str) {
    let Ok(host) = host_name(shown) else { return };
    assert!(!host.is_empty() && host.len() <= 253, "{host:?}");
    assert!(!host.ends_with('.'), "{host:?}");
    for label in host.split('.') {
        assert!((1..=63).contains(&label.len()), "{host:?}");
        assert!(label.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_'), "{host:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, datagram)) = data.split_first() else { return };
    let qtype = [Qtype::A, Qtype::AAAA, Qtype::PTR, Qtype::SRV][usize::from(selector & 3)];
    let name = if selector & 4 == 0 { "web.test" } else { "9.0.0.10.in-addr.arpa" };
    let mut datagram = datagram.to_vec();
    if selector & 0x80 == 0 && datagram.len() >= 2 {
        datagram[..2].copy_from_slice(&ID.to_be_bytes());
    }
    let Ok(answer) = read_answer(&datagram, ID, name, qtype) else { return };

    assert!(datagram.len() >= 12 && datagram[..2] == ID.to_be_bytes(), "accepted an answer with another id");
    let len = datagram.len();
    assert!(answer.addresses.len() <= len / 11, "{} addresses from {len} bytes", answer.addresses.len());
    assert!(answer.names.len() <= len / 12, "{} names from {len} bytes", answer.names.len());
    assert!(answer.services.len() <= len / 12, "{} services from {len} bytes", answer.services.len());
    assert!(answer.glue.len() <= len / 11, "{} glue records from {len} bytes", answer.glue.len());
    if answer.rcode != Rcode::NOERROR.to_int() {
        assert!(answer.addresses.is_empty() && answer.names.is_empty() && answer.services.is_empty());
    }
    if qtype != Qtype::A && qtype != Qtype::AAAA {
        assert!(answer.addresses.is_empty(), "addresses taken for a {qtype} question");
    }
    if qtype != Qtype::PTR {
        assert!(answer.names.is_empty(), "PTR names taken for a {qtype} question");
    }
    if qtype != Qtype::SRV {
        assert!(answer.services.is_empty() && answer.glue.is_empty(), "SRV records taken for a {qtype} question");
    }
    for name in &answer.names {
        check_host_name(name);
    }
    for (_, _, _, target) in &answer.services {
        check_host_name(target);
    }
    for (owner, _) in &answer.glue {
        check_host_name(owner);
    }
});
