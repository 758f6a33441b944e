//! The exchange with the servers for one candidate name: its questions (A and AAAA together, or
//! one PTR or SRV) sent on one connected UDP socket per server, each with its own random id;
//! `attempts` rounds in which each server in turn gets `timeout` to answer, as glibc does; a
//! truncated answer asked again over TCP; no wait past the look's end. And what the answers say
//! of the name ([`Found`]), or why there are none ([`Failure`]).
//!
//! Each question is a [`Pending`]: its id, its query, and its answer once one came, so a datagram
//! is matched against the questions still waiting, never against parallel lists. Left to
//! [`super`]: which names to ask, in which order, and what a look's failure means to the caller;
//! to [`super::message`]: the bytes of a query and the reading of an answer.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::message::{self, Answer, Qtype, Rcode};
use super::resolv_conf::ResolvConf;
use crate::exec::describe_io_error;

/// A UDP answer without EDNS is at most 512 bytes (RFC 1035 4.2.1).
const UDP_SIZE: usize = 512;
const ADDRESS_TYPES: [Qtype; 2] = [Qtype::A, Qtype::AAAA];

/// What one candidate name has.
#[derive(Debug)]
pub(super) enum Found<T> {
    Records(T),
    NxDomain,
    /// The name exists, without records of the type asked.
    NoData,
}

/// Why a candidate could not be asked.
#[derive(Debug)]
pub(super) enum Failure {
    Timeout,
    /// The server answered, with an error (SERVFAIL, REFUSED, …).
    Server(String),
    /// A socket error (ICMP port unreachable, no route, …), or an answer that makes no sense.
    Network(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout => f.write_str("request timed out"),
            Failure::Server(why) | Failure::Network(why) => f.write_str(why),
        }
    }
}

fn network(server: SocketAddr, e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::Timeout,
        _ => Failure::Network(format!("{server}: {}", describe_io_error(e))),
    }
}

/// The time left until `end`, if any (at least a millisecond: a zero socket timeout is an error).
fn left(end: Instant) -> Option<Duration> {
    let left = end.saturating_duration_since(Instant::now());
    (left >= Duration::from_millis(1)).then_some(left)
}

/// Whether an answer holds any record we asked for.
fn has_records(answer: &Answer) -> bool {
    !(answer.addresses.is_empty() && answer.names.is_empty() && answer.services.is_empty())
}

/// One question of a candidate: what was sent, and what came back.
#[derive(Debug)]
struct Pending {
    qtype: Qtype,
    id: u16,
    /// The message, as sent over UDP (and, after the two-byte length, over TCP).
    query: Vec<u8>,
    /// Waited for in this server's turn: not answered yet, and not given up on in the turn.
    waiting: bool,
    /// A usable answer (NOERROR or NXDOMAIN), once one came.
    answer: Option<Answer>,
}

/// Some questions were not answered: the answers that came, and why the others did not.
#[derive(Debug)]
struct Partial {
    answered: Vec<Answer>,
    failure: Failure,
}

/// One server of the look, and its connected UDP socket (opened when first needed).
#[derive(Debug)]
struct Server {
    addr: SocketAddr,
    socket: Option<UdpSocket>,
}

impl Server {
    /// The connected UDP socket, opened on first use.
    fn socket(&mut self) -> Result<&UdpSocket, Failure> {
        let socket = match self.socket.take() {
            Some(socket) => socket,
            None => {
                let addr = self.addr;
                let local: SocketAddr = match addr {
                    SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                    SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                let socket = UdpSocket::bind(local).map_err(|e| network(addr, &e))?;
                socket.connect(addr).map_err(|e| network(addr, &e))?;
                socket
            }
        };
        Ok(self.socket.insert(socket))
    }

    /// Sends the questions not answered yet and waits for their answers until `limit` (the end
    /// of this server's turn). `Ok` once every question is answered.
    fn exchange(&mut self, name: &str, pending: &mut [Pending], limit: Instant) -> Result<(), Failure> {
        let addr = self.addr;
        let socket = self.socket()?;
        for question in pending.iter_mut() {
            question.waiting = question.answer.is_none();
            if question.waiting {
                socket.send(&question.query).map_err(|e| network(addr, &e))?;
            }
        }
        let mut failure = Failure::Timeout;
        let mut buffer = [0u8; UDP_SIZE];
        while pending.iter().any(|question| question.waiting) {
            // At the end of the turn, say why it ended: a malformed answer came, or none.
            let Some(left) = left(limit) else { return Err(failure) };
            socket.set_read_timeout(Some(left)).map_err(|e| network(addr, &e))?;
            let datagram = match socket.recv(&mut buffer) {
                Ok(len) => buffer.get(..len).unwrap_or_default(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => match network(addr, &e) {
                    Failure::Timeout => return Err(failure),
                    other => return Err(other),
                },
            };
            for question in pending.iter_mut().filter(|question| question.waiting) {
                let answer = match message::read_answer(datagram, question.id, name, question.qtype) {
                    Ok(answer) => answer,
                    Err(message::Error::WrongId(_)) => continue,
                    Err(e) => {
                        // Could be a forgery that guessed the id: wait on for the real answer.
                        log::debug!("{addr}: ignoring an answer for {name}. {}: {e}", question.qtype);
                        failure = Failure::Network(format!("{addr}: malformed answer: {e}"));
                        continue;
                    }
                };
                question.waiting = false;
                let answer = if answer.truncated {
                    log::debug!("{addr}: the answer for {name}. {} is truncated; asking over TCP", question.qtype);
                    match tcp_exchange(addr, question, name, limit) {
                        Ok(answer) => answer,
                        Err(why) => {
                            failure = why;
                            continue;
                        }
                    }
                } else {
                    answer
                };
                let rcode = Rcode::checked_from_int(answer.rcode).unwrap_or(Rcode::SERVFAIL);
                if rcode == Rcode::NOERROR || rcode == Rcode::NXDOMAIN {
                    question.answer = Some(answer);
                } else {
                    failure = Failure::Server(format!("{addr} answered {rcode}"));
                }
            }
        }
        if pending.iter().all(|question| question.answer.is_some()) { Ok(()) } else { Err(failure) }
    }
}

/// The resolver of one look: the servers with their sockets (closed when the look ends), the
/// options, and the query ids.
#[derive(Debug)]
pub(super) struct Stub {
    servers: Vec<Server>,
    timeout: Duration,
    attempts: u32,
    end: Option<Instant>,
    ids: QueryIds,
}

impl Stub {
    pub(super) fn new(conf: &ResolvConf, end: Option<Instant>) -> Self {
        Stub {
            servers: conf.nameservers.iter().map(|&addr| Server { addr, socket: None }).collect(),
            timeout: conf.timeout,
            attempts: conf.attempts,
            end,
            ids: QueryIds::new(),
        }
    }

    /// A and AAAA of `name`.
    pub(super) fn addresses(&mut self, name: &str) -> Result<Found<Vec<IpAddr>>, Failure> {
        match self.ask(name, ADDRESS_TYPES) {
            Ok([a, aaaa]) => {
                let addresses: Vec<IpAddr> = a.addresses.iter().chain(&aaaa.addresses).copied().collect();
                Ok(if !addresses.is_empty() {
                    Found::Records(addresses)
                } else if a.rcode == Rcode::NXDOMAIN.to_int() || aaaa.rcode == Rcode::NXDOMAIN.to_int() {
                    Found::NxDomain
                } else {
                    Found::NoData
                })
            }
            // One of the two never came: what the other found is still peers.
            Err(Partial { answered, failure }) => {
                let partial: Vec<IpAddr> = answered.into_iter().flat_map(|answer| answer.addresses).collect();
                if partial.is_empty() {
                    return Err(failure);
                }
                log::debug!("looking up {name}.: using a partial answer; the other query failed: {failure}");
                Ok(Found::Records(partial))
            }
        }
    }

    /// The PTR records of `name` (an `in-addr.arpa` or `ip6.arpa` name): their names, unchecked.
    pub(super) fn pointers(&mut self, name: &str) -> Result<Found<Vec<String>>, Failure> {
        let answer = self.ask_one(name, Qtype::PTR)?;
        Ok(found(!answer.names.is_empty(), &answer, || answer.names.clone()))
    }

    /// The SRV records of `name`, and the additional section's addresses.
    #[allow(clippy::type_complexity)]
    pub(super) fn services(
        &mut self,
        name: &str,
    ) -> Result<Found<(Vec<(u16, u16, u16, String)>, Vec<(String, IpAddr)>)>, Failure> {
        let answer = self.ask_one(name, Qtype::SRV)?;
        Ok(found(!answer.services.is_empty(), &answer, || (answer.services.clone(), answer.glue.clone())))
    }

    /// The answer to one question, or why none came.
    fn ask_one(&mut self, name: &str, qtype: Qtype) -> Result<Answer, Failure> {
        self.ask(name, [qtype]).map(|[answer]| answer).map_err(|partial| partial.failure)
    }

    /// Asks `qtypes` of `name`: `attempts` rounds over the servers, until every question is
    /// answered (NOERROR or NXDOMAIN). The answers in the order asked, or those that came and why
    /// the others did not.
    fn ask<const N: usize>(&mut self, name: &str, qtypes: [Qtype; N]) -> Result<[Answer; N], Partial> {
        let mut pending = Vec::with_capacity(N);
        for (id, qtype) in self.ids.distinct(N).into_iter().zip(qtypes) {
            match message::query(id, name, qtype) {
                Ok(query) => pending.push(Pending { qtype, id, query, waiting: false, answer: None }),
                Err(e) => return Err(Partial { answered: Vec::new(), failure: Failure::Network(e.to_string()) }),
            }
        }
        let mut failure = Failure::Timeout;
        'rounds: for _ in 0..self.attempts {
            for server in &mut self.servers {
                if self.end.is_some_and(|end| left(end).is_none()) {
                    break 'rounds;
                }
                // This server's turn: `timeout` from now, or the look's end if sooner.
                let turn = Instant::now() + self.timeout;
                let limit = self.end.map_or(turn, |end| end.min(turn));
                match server.exchange(name, &mut pending, limit) {
                    Ok(()) => break 'rounds,
                    // One query found records and the server refused the other (dnsmasq without
                    // an upstream refuses AAAA of a name it has only A for): take what was found,
                    // as glibc does, instead of asking again.
                    Err(why @ Failure::Server(_))
                        if pending.iter().filter_map(|question| question.answer.as_ref()).any(has_records) =>
                    {
                        failure = why;
                        break 'rounds;
                    }
                    Err(why) => failure = why,
                }
            }
        }
        let answered: Vec<Answer> = pending.into_iter().filter_map(|question| question.answer).collect();
        <[Answer; N]>::try_from(answered).map_err(|answered| Partial { answered, failure })
    }
}

/// What a single answer (NOERROR or NXDOMAIN) says of its name.
fn found<T>(any: bool, answer: &Answer, records: impl FnOnce() -> T) -> Found<T> {
    if any {
        Found::Records(records())
    } else if answer.rcode == Rcode::NXDOMAIN.to_int() {
        Found::NxDomain
    } else {
        Found::NoData
    }
}

/// One question over TCP (RFC 1035 4.2.2: a two-byte length before each message), until `limit`.
fn tcp_exchange(addr: SocketAddr, question: &Pending, name: &str, limit: Instant) -> Result<Answer, Failure> {
    let fail = |e: io::Error| network(addr, &e);
    let query = &question.query;
    let mut stream = TcpStream::connect_timeout(&addr, left(limit).ok_or(Failure::Timeout)?).map_err(fail)?;
    let _ = stream.set_nodelay(true);
    let length = u16::try_from(query.len()).map_err(|_| Failure::Network("query too long".into()))?;
    let mut message = Vec::with_capacity(query.len() + 2);
    message.extend_from_slice(&length.to_be_bytes());
    message.extend_from_slice(query);
    stream.set_write_timeout(Some(left(limit).ok_or(Failure::Timeout)?)).map_err(fail)?;
    stream.write_all(&message).map_err(fail)?;
    let mut length = [0u8; 2];
    read_until(&mut stream, &mut length, limit).map_err(fail)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
    read_until(&mut stream, &mut answer, limit).map_err(fail)?;
    message::read_answer(&answer, question.id, name, question.qtype)
        .map_err(|e| Failure::Network(format!("{addr}: malformed answer over TCP: {e}")))
}

/// Fills `buffer`, each read bounded by the time left until `limit`.
fn read_until(stream: &mut TcpStream, buffer: &mut [u8], limit: Instant) -> io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        let left = left(limit).ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?;
        stream.set_read_timeout(Some(left))?;
        let rest = buffer.get_mut(filled..).unwrap_or_default();
        match stream.read(rest) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the answer")),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Query ids: xorshift64* seeded from the clock and the pid (as [`crate::wait::Backoff`]), so
/// that an off-path guess is 1 in 65536 per query and two containers booting together differ.
#[derive(Debug)]
struct QueryIds(u64);

impl QueryIds {
    fn new() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        QueryIds((nanos ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    fn next(&mut self) -> u16 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 48) as u16
    }

    /// `n` different ids, one per question of a candidate.
    fn distinct(&mut self, n: usize) -> Vec<u16> {
        let mut ids: Vec<u16> = Vec::with_capacity(n);
        while ids.len() < n {
            let id = self.next();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::packets::answer_to;
    use crate::dns::testing::{ips, udp_server};
    use std::collections::BTreeSet;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    #[test]
    fn query_ids_differ() {
        let mut ids = QueryIds(1);
        let pairs: Vec<Vec<u16>> = (0..100).map(|_| ids.distinct(2)).collect();
        assert!(pairs.iter().all(|pair| pair[0] != pair[1]));
        let distinct: BTreeSet<u16> = pairs.iter().flatten().copied().collect();
        assert!(distinct.len() > 190, "{}", distinct.len());
    }

    fn resolve(servers: &[SocketAddr], name: &str, timeout_ms: u64) -> Result<Found<Vec<IpAddr>>, Failure> {
        let conf = ResolvConf {
            nameservers: servers.to_vec(),
            timeout: Duration::from_millis(timeout_ms),
            ..ResolvConf::default()
        };
        let mut stub = Stub::new(&conf, Some(Instant::now() + Duration::from_secs(5)));
        stub.addresses(name)
    }

    #[test]
    fn foreign_ids_and_forgeries_are_ignored_and_both_families_kept() {
        let found = ips(&["10.0.0.1", "fd00::1"]);
        let server = udp_server(2, move |query| {
            let mut wrong_id = answer_to(query, 0, false, &ips(&["10.6.6.6"]));
            wrong_id[0] ^= 0xFF;
            let mut other_question = answer_to(query, 0, false, &ips(&["10.6.6.7"]));
            other_question[13] = b'x';
            vec![wrong_id, other_question, b"junk".to_vec(), answer_to(query, 0, false, &found)]
        });
        match resolve(&[server], "web.test", 2000) {
            Ok(Found::Records(addresses)) => assert_eq!(addresses, ips(&["10.0.0.1", "fd00::1"])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nxdomain_and_nodata() {
        let server = udp_server(2, |query| vec![answer_to(query, 3, false, &[])]);
        assert!(matches!(resolve(&[server], "web.test", 2000), Ok(Found::NxDomain)));
        let server = udp_server(2, |query| vec![answer_to(query, 0, false, &[])]);
        assert!(matches!(resolve(&[server], "web.test", 2000), Ok(Found::NoData)));
    }

    #[test]
    fn servfail_and_silence_move_on_to_the_next_server() {
        let failing = udp_server(2, |query| vec![answer_to(query, 2, false, &[])]);
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let good = udp_server(2, |query| vec![answer_to(query, 0, false, &ips(&["10.0.0.3"]))]);
        let started = Instant::now();
        let found = resolve(&[failing, silent.local_addr().unwrap(), good], "web.test", 300);
        assert!(matches!(found, Ok(Found::Records(ref a)) if *a == ips(&["10.0.0.3"])), "{found:?}");
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2), "{elapsed:?}");

        let failing = udp_server(4, |query| vec![answer_to(query, 5, false, &[])]);
        let failure = resolve(&[failing], "web.test", 300).unwrap_err();
        assert_eq!(failure.to_string(), format!("{failing} answered REFUSED"));
    }

    #[test]
    fn addresses_of_one_family_are_kept_when_the_other_is_refused() {
        let queries = Arc::new(AtomicUsize::new(0));
        let counter = queries.clone();
        let server = udp_server(4, move |query| {
            counter.fetch_add(1, Ordering::SeqCst);
            let aaaa = query[query.len() - 3] == 28;
            vec![if aaaa { answer_to(query, 5, false, &[]) } else { answer_to(query, 0, false, &ips(&["10.0.0.7"])) }]
        });
        match resolve(&[server], "web.test", 2000) {
            Ok(Found::Records(addresses)) => assert_eq!(addresses, ips(&["10.0.0.7"])),
            other => panic!("{other:?}"),
        }
        assert_eq!(queries.load(Ordering::SeqCst), 2, "asked again although the answer was in hand");
    }

    #[test]
    fn a_closed_port_fails_fast() {
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let started = Instant::now();
        let failure = resolve(&[closed], "web.test", 2000).unwrap_err();
        assert!(failure.to_string().contains("Connection refused"), "{failure}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_truncated_answer_is_asked_again_over_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let udp = UdpSocket::bind(addr).unwrap();
        let many: Vec<IpAddr> = (1..=60).map(|i| IpAddr::V4(Ipv4Addr::new(10, 2, 0, i))).collect();
        let few = many[..3].to_vec();
        thread::spawn(move || {
            let mut buffer = [0u8; 512];
            for _ in 0..2 {
                let (len, from) = udp.recv_from(&mut buffer).unwrap();
                let _ = udp.send_to(&answer_to(&buffer[..len], 0, true, &few), from);
            }
        });
        let tcp_many = many.clone();
        thread::spawn(move || {
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                let mut length = [0u8; 2];
                stream.read_exact(&mut length).unwrap();
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
                stream.read_exact(&mut query).unwrap();
                let answer = answer_to(&query, 0, false, &tcp_many);
                // In two writes, to make the reader put it together.
                stream.write_all(&(answer.len() as u16).to_be_bytes()).unwrap();
                stream.write_all(&answer[..7]).unwrap();
                thread::sleep(Duration::from_millis(20));
                stream.write_all(&answer[7..]).unwrap();
            }
        });
        match resolve(&[addr], "big.test", 2000) {
            Ok(Found::Records(addresses)) => assert_eq!(addresses, many),
            other => panic!("{other:?}"),
        }
    }
}
