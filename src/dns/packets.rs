//! DNS messages made by hand, byte for byte, for tests: the answers no real server gives
//! (compression loops, pointers past the end, other questions, odd lengths), and plain ones.
//! The one packet builder of the repository: the unit tests of `src/dns/` use it as
//! `crate::dns::packets`, and the integration tests include this same file (`tests/it/support/
//! dns.rs`), so it needs nothing but `std`. Reading messages is `src/dns/message.rs`'s, on the
//! `domain` crate, which the tests that build well-formed answers use too.
#![allow(dead_code)] // each test crate uses its own part

use std::net::IpAddr;

pub const A: u16 = 1;
pub const CNAME: u16 = 5;
pub const PTR: u16 = 12;
pub const AAAA: u16 = 28;
pub const SRV: u16 = 33;
pub const CLASS_IN: u16 = 1;
/// Flags of an answer: QR, RD, RA, NOERROR; add TC or an rcode.
pub const ANSWER: u16 = 0x8180;
pub const TC: u16 = 0x0200;
/// A pointer to the question's name, right after the header.
pub const AT_QNAME: [u8; 2] = [0xC0, 12];

/// A header: id, flags, and the four counts.
pub fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        packet.extend_from_slice(&count.to_be_bytes());
    }
    packet
}

/// A question of class IN.
pub fn question(packet: &mut Vec<u8>, name: &str, qtype: u16) {
    packet.extend_from_slice(&wire_name(name));
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
}

/// An answer to `query`: its id, `flags`, one question and the other counts given, and the
/// question as asked (or, with `question`, that question's wire bytes instead).
pub fn answer_header(query: &[u8], flags: u16, counts: [u16; 3], question: Option<&[u8]>) -> Vec<u8> {
    let [answers, authority, additional] = counts;
    let id = u16::from_be_bytes([query[0], query[1]]);
    let mut packet = header(id, flags, [1, answers, authority, additional]);
    packet.extend_from_slice(question.unwrap_or(&query[12..]));
    packet
}

/// A resource record of class IN, TTL 60; `owner` in wire bytes (possibly a pointer).
pub fn record(packet: &mut Vec<u8>, owner: &[u8], rtype: u16, rdata: &[u8]) {
    record_of_class(packet, owner, rtype, CLASS_IN, rdata);
}

/// A resource record of any class, TTL 60.
pub fn record_of_class(packet: &mut Vec<u8>, owner: &[u8], rtype: u16, class: u16, rdata: &[u8]) {
    packet.extend_from_slice(owner);
    packet.extend_from_slice(&rtype.to_be_bytes());
    packet.extend_from_slice(&class.to_be_bytes());
    packet.extend_from_slice(&60u32.to_be_bytes());
    packet.extend_from_slice(&u16::try_from(rdata.len()).expect("rdata length").to_be_bytes());
    packet.extend_from_slice(rdata);
}

/// A name in wire format, uncompressed.
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|label| !label.is_empty()) {
        wire.push(u8::try_from(label.len()).expect("label length"));
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// The query type of a query (the last question's type: there is one).
pub fn qtype(query: &[u8]) -> u16 {
    u16::from_be_bytes([query[query.len() - 4], query[query.len() - 3]])
}

/// The answer to `query` with `rcode`, TC as given, and one A or AAAA record per address of
/// the type asked (the others are left out).
pub fn answer_to(query: &[u8], rcode: u8, truncated: bool, addresses: &[IpAddr]) -> Vec<u8> {
    let mut packet = query.to_vec();
    packet[2] |= 0x80 | if truncated { 0x02 } else { 0 };
    packet[3] = 0x80 | rcode;
    let asked = qtype(&packet);
    let mut count = 0u16;
    for address in addresses {
        let (rtype, rdata) = match address {
            IpAddr::V4(v4) => (A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (AAAA, v6.octets().to_vec()),
        };
        if rtype == asked {
            count += 1;
            record(&mut packet, &AT_QNAME, rtype, &rdata);
        }
    }
    packet[6..8].copy_from_slice(&count.to_be_bytes());
    packet
}
