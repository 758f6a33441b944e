//! Test servers and answers for the DNS unit tests: a UDP server on loopback that answers what
//! a closure makes of each query, and answers built by hand or with `domain`. Only for tests.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread;

use super::message::{Qtype, Rcode};

/// A test server on loopback: answers each UDP query with what `reply` makes of it (none: no
/// answer), for `count` queries.
pub(super) fn udp_server(count: usize, reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buffer = [0u8; 512];
        for _ in 0..count {
            let Ok((len, from)) = socket.recv_from(&mut buffer) else { return };
            for datagram in reply(&buffer[..len]) {
                let _ = socket.send_to(&datagram, from);
            }
        }
    });
    addr
}

/// The answer to `query` with `rcode`, TC as given, and one A or AAAA record per address.
pub(super) fn answer_to(query: &[u8], rcode: u8, truncated: bool, addresses: &[IpAddr]) -> Vec<u8> {
    let mut packet = query.to_vec();
    packet[2] |= 0x80 | if truncated { 0x02 } else { 0 };
    packet[3] = 0x80 | rcode;
    let qtype = u16::from_be_bytes([packet[packet.len() - 4], packet[packet.len() - 3]]);
    let mut count = 0u16;
    for address in addresses {
        let (rtype, rdata) = match address {
            IpAddr::V4(v4) => (1u16, v4.octets().to_vec()),
            IpAddr::V6(v6) => (28u16, v6.octets().to_vec()),
        };
        if rtype != qtype {
            continue;
        }
        count += 1;
        packet.extend_from_slice(&[0xC0, 12]);
        packet.extend_from_slice(&rtype.to_be_bytes());
        packet.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        packet.extend_from_slice(&rdata);
    }
    packet[6..8].copy_from_slice(&count.to_be_bytes());
    packet
}

pub(super) fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().unwrap()).collect()
}

/// records, then additional ones).
pub(super) fn built_answer(
    query: &[u8],
    rcode: Rcode,
    fill: impl FnOnce(&mut domain::base::message_builder::AnswerBuilder<Vec<u8>>, &mut Vec<(&'static str, IpAddr)>),
) -> Vec<u8> {
    use domain::base::{Message, MessageBuilder, Name, Ttl};
    use domain::rdata::{A, Aaaa};
    use std::str::FromStr;
    let query = Message::from_slice(query).unwrap();
    let mut answer = MessageBuilder::new_vec().start_answer(query, rcode).unwrap();
    let mut glue = Vec::new();
    fill(&mut answer, &mut glue);
    let mut additional = answer.additional();
    for (owner, ip) in glue {
        let owner = Name::<Vec<u8>>::from_str(owner).unwrap();
        match ip {
            IpAddr::V4(v4) => additional.push((owner, Ttl::from_secs(60), A::new(v4))).unwrap(),
            IpAddr::V6(v6) => additional.push((owner, Ttl::from_secs(60), Aaaa::new(v6))).unwrap(),
        }
    }
    additional.finish()
}

pub(super) fn dname(text: &str) -> domain::base::Name<Vec<u8>> {
    std::str::FromStr::from_str(text).unwrap()
}

pub(super) fn qtype_of(query: &[u8]) -> Qtype {
    domain::base::Message::from_slice(query).unwrap().sole_question().unwrap().qtype()
}
