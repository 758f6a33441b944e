//! For the DNS unit tests: a UDP server on loopback that answers what a closure makes of each
//! query, and well-formed answers built with `domain`. Answers made by hand, byte for byte, are
//! [`super::packets`]'s, the one hand-made builder, shared with the integration tests.

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
