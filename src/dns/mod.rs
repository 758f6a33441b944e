//! DNS, asked the way the C library's stub resolver asks (glibc's and musl's, which is what the
//! containers' own programs already do): the A and AAAA records of a name ([`lookup`], the
//! peers), the PTR of an address ([`reverse`], Swarm and Compose name their containers so) and
//! the SRV records of a name with their targets' addresses ([`srv`], Kubernetes StatefulSets).
//!
//! This file owns the look itself: which names to try (the `search` list and `ndots`), the
//! exchange with the servers (UDP, then TCP when the answer is truncated), the deadlines, and
//! what an answer means. [`resolv_conf`] reads the configuration; [`message`] builds and reads
//! the messages with NLnet Labs' `domain` crate. Both are pure.
//!
//! Why `domain` for the messages, and our own transport: hickory-resolver with tokio, moka and
//! idna were 743 KB of a 1.5 MiB size budget (docs/spec.md section 13; BENCHMARKS.md,
//! "What changed which figure"). `domain` with only `std` added 16 KiB to the stripped binary
//! when it replaced our hand-made packet code (BENCHMARKS.md, "What each crate contributes"),
//! from the makers of Unbound and NSD. Its own resolver would bring
//! tokio back; blocking std sockets with timeouts are all a look at boot needs.
//!
//! How a look goes:
//! - Candidates: a name ending in `.` is asked as it is, only. Otherwise, with at least `ndots`
//!   dots it is asked as it is first and then with each search domain appended; with fewer, the
//!   search domains come first and the name as it is last. The first candidate with any record
//!   wins; NXDOMAIN and NODATA go on to the next one. A server failure (SERVFAIL, REFUSED, …)
//!   goes on too, as glibc does, but a look that finds nothing after one is a failure, not "no
//!   peers". A timeout or a network error ends the look. PTR names (`in-addr.arpa`, `ip6.arpa`)
//!   and SRV targets are absolute: never searched.
//! - For each candidate, the queries (A and AAAA together, or one PTR or SRV) are sent on one UDP
//!   socket per server (each with a random id; a connected socket drops datagrams from any other
//!   address, and answers with another id are ignored). For each of `attempts` rounds, each
//!   server in turn gets `timeout` to answer, as glibc does. There is no EDNS, so the server
//!   answers within 512 bytes and sets TC when it cannot; that query is then asked again over TCP.
//! - `deadline`, when given, bounds everything, SRV targets' look-ups included: no wait goes past
//!   it (but a look always gets at least [`MIN_LOOK`], so that the last attempt of
//!   `--wait-peers` is a real one).
//!
//! `/etc/hosts` is read for one question only, the address of a server we connect to by name
//! ([`host_addresses`], Rancher's metadata host), where the C library would read it first. Left
//! out: `/etc/hosts` for peers (peers are a DNS question; in a container that file holds the
//! container itself), caching across looks (each look reads resolv.conf again: in a container
//! it can be written after the entrypoint starts), and any filtering of addresses: loopback
//! addresses are valid peers on one machine. Excluding this node is the caller's job.
//! Nothing outlives a look: no thread, no socket.

pub mod hosts;
pub mod message;
pub mod resolv_conf;

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;

use crate::exec::describe_io_error;
use message::{Answer, Qtype, Rcode};
use resolv_conf::{DNS_PORT, RESOLV_CONF, ResolvConf};

/// The least time a look with a deadline gets, even at or past the deadline.
const MIN_LOOK: Duration = Duration::from_millis(50);
/// A UDP answer without EDNS is at most 512 bytes (RFC 1035 4.2.1).
const UDP_SIZE: usize = 512;
const ADDRESS_TYPES: [Qtype; 2] = [Qtype::A, Qtype::AAAA];

/// The name to look up, checked once before any look.
#[derive(Debug)]
pub struct QueryName {
    /// As given, for messages.
    text: String,
    /// Without the trailing dot.
    bare: String,
    /// Had a trailing dot: asked as it is, never searched.
    absolute: bool,
}

impl QueryName {
    /// A name with a trailing dot is absolute and is asked as it is; any other goes through the
    /// search list (as `ndots` says).
    pub fn parse(text: &str) -> anyhow::Result<QueryName> {
        let shown = || text.escape_debug().to_string();
        if text.is_empty() || text == "." {
            anyhow::bail!("the peer query \"{}\" is not a DNS name", shown());
        }
        message::check_name(text).map_err(|e| anyhow!("the peer query \"{}\" is not a DNS name: {e}", shown()))?;
        let bare = text.strip_suffix('.').unwrap_or(text);
        Ok(QueryName { text: text.to_owned(), bare: bare.to_owned(), absolute: bare.len() < text.len() })
    }

    /// The names to ask, in order.
    fn candidates(&self, conf: &ResolvConf) -> Vec<String> {
        if self.absolute {
            return vec![self.bare.clone()];
        }
        let searched = conf.search.iter().map(|domain| format!("{}.{domain}", self.bare)).filter(|candidate| {
            let fits = message::check_name(candidate).is_ok();
            if !fits {
                log::debug!("not asking {candidate}: not a name that can be asked");
            }
            fits
        });
        let as_is = std::iter::once(self.bare.clone());
        let dots = self.bare.matches('.').count();
        if dots >= conf.ndots as usize { as_is.chain(searched).collect() } else { searched.chain(as_is).collect() }
    }
}

/// Why a look found nothing.
#[derive(Debug)]
pub enum Miss {
    /// Normal for the first container of a service: NXDOMAIN, no record of the type, no
    /// resolv.conf.
    NoAddresses(String),
    /// The lookup itself failed: timeout, refused, unreadable configuration, an answer that
    /// cannot be used.
    Failed(anyhow::Error),
}

/// Every A and AAAA address of `name`. `server` replaces resolv.conf's nameservers (its search
/// list and options still apply); `deadline` bounds the look beyond the resolver's own timeouts.
pub fn lookup(
    name: &QueryName,
    server: Option<SocketAddr>,
    deadline: Option<Instant>,
) -> Result<BTreeSet<IpAddr>, Miss> {
    let conf = configure(server)?;
    let mut stub = Stub::new(&conf, end(deadline));
    let (candidate, addresses) = search(name, &conf, &mut stub, "no A or AAAA record", Stub::addresses)?;
    let found: BTreeSet<IpAddr> = addresses.into_iter().collect();
    log::debug!("{} resolves (as {candidate}.) to {}", name.text, list(&found));
    Ok(found)
}

/// The addresses of a server's host name, as the C library's `files dns` order finds them:
/// `/etc/hosts` first, then [`lookup`]. This is what the metadata client connects to, so that a
/// name behaves the same under musl and glibc: a network that cannot be reached fails at once,
/// and no thread is left waiting on the C library's resolver.
pub fn host_addresses(name: &str, server: Option<SocketAddr>, deadline: Instant) -> Result<BTreeSet<IpAddr>, Miss> {
    if let Ok(text) = std::fs::read_to_string(hosts::HOSTS) {
        let found = hosts::addresses(&text, name);
        if !found.is_empty() {
            log::debug!("{name} is in {}: {}", hosts::HOSTS, list(&found));
            return Ok(found.into_iter().collect());
        }
    }
    let query = QueryName::parse(name).map_err(Miss::Failed)?;
    lookup(&query, server, Some(deadline))
}

/// The host name that the PTR record of `ip` names: lower-cased, without the trailing dot.
/// `Ok(None)` when there is none (NXDOMAIN, or no PTR record); a PTR that is not a host name
/// (see [`message::host_name`]) is an error, like a timeout or a server failure.
pub fn reverse(ip: IpAddr, server: Option<SocketAddr>, deadline: Option<Instant>) -> Result<Option<String>, Miss> {
    let conf = configure(server)?;
    let mut stub = Stub::new(&conf, end(deadline));
    let name = arpa_name(ip);
    match stub.pointers(&name) {
        Ok(Found::Records(names)) => {
            let first = names.first().map(String::as_str).unwrap_or_default();
            match message::host_name(first) {
                Ok(host) => {
                    log::debug!("{ip} is {host} (PTR {name}.)");
                    Ok(Some(host))
                }
                Err(why) => Err(Miss::Failed(anyhow!("the PTR record of {ip} ({name}.) names {why}"))),
            }
        }
        Ok(Found::NxDomain | Found::NoData) => {
            log::debug!("{ip} has no PTR record ({name}.)");
            Ok(None)
        }
        Err(failure) => Err(Miss::Failed(anyhow!("looking up the PTR record of {ip}: {failure}"))),
    }
}

/// One target of an SRV answer (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// A host name: lower-cased, without the trailing dot.
    pub target: String,
    /// Its A and AAAA addresses, sorted and unique; empty if it has none.
    pub addresses: Vec<IpAddr>,
}

/// The SRV records of `name` (searched like [`lookup`]'s), sorted by priority (then the heavier
/// first, then by name), each with its target's addresses: from the answer's additional section,
/// else looked up, within the same deadline. A target of `.` ("no such service here") is left
/// out; a target that is not a host name is left out with a warning.
pub fn srv(name: &QueryName, server: Option<SocketAddr>, deadline: Option<Instant>) -> Result<Vec<SrvTarget>, Miss> {
    let conf = configure(server)?;
    let mut stub = Stub::new(&conf, end(deadline));
    let (candidate, (services, glue)) = search(name, &conf, &mut stub, "no SRV record", Stub::services)?;
    let mut targets = Vec::with_capacity(services.len());
    for (priority, weight, port, shown) in services {
        if shown.is_empty() {
            log::debug!("{candidate}. SRV {priority} {weight} {port} . : no service there");
            continue;
        }
        let target = match message::host_name(&shown) {
            Ok(target) => target,
            Err(why) => {
                log::warn!("{candidate}. SRV: leaving out a target: {why}");
                continue;
            }
        };
        let mut addresses: BTreeSet<IpAddr> =
            glue.iter().filter(|(owner, _)| *owner == target).map(|(_, address)| *address).collect();
        if addresses.is_empty() {
            match stub.addresses(&target) {
                Ok(Found::Records(found)) => addresses.extend(found),
                Ok(Found::NxDomain | Found::NoData) => log::debug!("{candidate}. SRV: {target} has no address"),
                Err(failure) => {
                    return Err(Miss::Failed(anyhow!("looking up {target} (SRV of {}): {failure}", name.text)));
                }
            }
        }
        targets.push(SrvTarget { priority, weight, port, target, addresses: addresses.into_iter().collect() });
    }
    targets.sort_by(|a, b| {
        (a.priority, Reverse(a.weight), &a.target, a.port).cmp(&(b.priority, Reverse(b.weight), &b.target, b.port))
    });
    log::debug!(
        "{} has SRV (as {candidate}.): {}",
        name.text,
        targets
            .iter()
            .map(|t| format!("{}:{} [{}]", t.target, t.port, list(&t.addresses)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(targets)
}

/// Tries the candidates of `name` in order with `ask`; the first with records wins.
fn search<'s, T>(
    name: &QueryName,
    conf: &ResolvConf,
    stub: &mut Stub<'s>,
    none: &str,
    mut ask: impl FnMut(&mut Stub<'s>, &str) -> Result<Found<T>, Failure>,
) -> Result<(String, T), Miss> {
    let mut nodata = false;
    let mut server_failure = None;
    for candidate in name.candidates(conf) {
        match ask(stub, &candidate) {
            Ok(Found::Records(records)) => return Ok((candidate, records)),
            Ok(Found::NoData) => nodata = true,
            Ok(Found::NxDomain) => {}
            Err(failure @ Failure::Server(_)) => {
                log::debug!("looking up {candidate}.: {failure}");
                server_failure = Some(failure);
            }
            Err(failure) => return Err(Miss::Failed(anyhow!("looking up {}: {failure}", name.text))),
        }
    }
    match server_failure {
        Some(failure) => Err(Miss::Failed(anyhow!("looking up {}: {failure}", name.text))),
        None if nodata => Err(Miss::NoAddresses(none.into())),
        None => Err(Miss::NoAddresses("NXDOMAIN".into())),
    }
}

/// The name under which the PTR record of `ip` is (RFC 1035 3.5, RFC 3596 2.5), without the
/// trailing dot. An IPv4-mapped IPv6 address is asked as the IPv4 address it maps.
fn arpa_name(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xF, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// The configuration of one look: resolv.conf as the C library reads it, `--dns-server` in place
/// of its nameservers, 127.0.0.1 if it names none.
fn configure(server: Option<SocketAddr>) -> Result<ResolvConf, Miss> {
    let mut conf = match resolv_conf::read() {
        Ok(conf) => conf,
        Err(e) if server.is_some() => {
            log::debug!(
                "{RESOLV_CONF}: {}; asking {} without a search list",
                describe_io_error(&e),
                server.map(|s| s.to_string()).unwrap_or_default()
            );
            ResolvConf::default()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Miss::NoAddresses(format!("no {RESOLV_CONF} yet")));
        }
        Err(e) => return Err(Miss::Failed(anyhow!("cannot read {RESOLV_CONF}: {}", describe_io_error(&e)))),
    };
    if let Some(server) = server {
        conf.nameservers = vec![server];
    } else if conf.nameservers.is_empty() {
        log::debug!("{RESOLV_CONF} names no nameserver; asking 127.0.0.1, as the C library does");
        conf.nameservers = vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), DNS_PORT)];
    }
    Ok(conf)
}

/// When a look with a deadline ends: the deadline, but at least [`MIN_LOOK`] from now.
fn end(deadline: Option<Instant>) -> Option<Instant> {
    deadline.map(|deadline| deadline.max(Instant::now() + MIN_LOOK))
}

fn list<'a>(addresses: impl IntoIterator<Item = &'a IpAddr>) -> String {
    addresses.into_iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" ")
}

/// What one candidate name has.
#[derive(Debug)]
enum Found<T> {
    Records(T),
    NxDomain,
    /// The name exists, without records of the type asked.
    NoData,
}

/// Why a candidate could not be asked.
#[derive(Debug)]
enum Failure {
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

/// The resolver of one look: the servers, their sockets (opened when first needed, closed when
/// the look ends), the options, and the query ids.
struct Stub<'a> {
    servers: &'a [SocketAddr],
    sockets: Vec<Option<UdpSocket>>,
    timeout: Duration,
    attempts: u32,
    end: Option<Instant>,
    ids: QueryIds,
}

/// The answers to the queries of one candidate, one slot per query type.
type Answers = Vec<Option<Answer>>;

impl<'a> Stub<'a> {
    fn new(conf: &'a ResolvConf, end: Option<Instant>) -> Self {
        Stub {
            servers: &conf.nameservers,
            sockets: conf.nameservers.iter().map(|_| None).collect(),
            timeout: conf.timeout,
            attempts: conf.attempts,
            end,
            ids: QueryIds::new(),
        }
    }

    /// A and AAAA of `name`.
    fn addresses(&mut self, name: &str) -> Result<Found<Vec<IpAddr>>, Failure> {
        let (answers, failure) = self.ask(name, &ADDRESS_TYPES)?;
        if let [Some(a), Some(aaaa)] = answers.as_slice() {
            let addresses: Vec<IpAddr> = a.addresses.iter().chain(&aaaa.addresses).copied().collect();
            return Ok(if !addresses.is_empty() {
                Found::Records(addresses)
            } else if a.rcode == Rcode::NXDOMAIN.to_int() || aaaa.rcode == Rcode::NXDOMAIN.to_int() {
                Found::NxDomain
            } else {
                Found::NoData
            });
        }
        // One of the two never came: what the other found is still peers.
        let partial: Vec<IpAddr> =
            answers.iter().flatten().flat_map(|answer| answer.addresses.iter().copied()).collect();
        if partial.is_empty() {
            return Err(failure);
        }
        log::debug!("looking up {name}.: using a partial answer; the other query failed: {failure}");
        Ok(Found::Records(partial))
    }

    /// The PTR records of `name` (an `in-addr.arpa` or `ip6.arpa` name): their names, unchecked.
    fn pointers(&mut self, name: &str) -> Result<Found<Vec<String>>, Failure> {
        let answer = self.ask_one(name, Qtype::PTR)?;
        Ok(found(!answer.names.is_empty(), &answer, || answer.names.clone()))
    }

    /// The SRV records of `name`, and the additional section's addresses.
    #[allow(clippy::type_complexity)]
    fn services(
        &mut self,
        name: &str,
    ) -> Result<Found<(Vec<(u16, u16, u16, String)>, Vec<(String, IpAddr)>)>, Failure> {
        let answer = self.ask_one(name, Qtype::SRV)?;
        Ok(found(!answer.services.is_empty(), &answer, || (answer.services.clone(), answer.glue.clone())))
    }

    /// The answer to one query, or why none came.
    fn ask_one(&mut self, name: &str, qtype: Qtype) -> Result<Answer, Failure> {
        let (mut answers, failure) = self.ask(name, &[qtype])?;
        answers.pop().flatten().ok_or(failure)
    }

    /// Asks `qtypes` of `name`: `attempts` rounds over the servers, until every one is answered
    /// (NOERROR or NXDOMAIN). The answers that came, and why the others did not.
    fn ask(&mut self, name: &str, qtypes: &[Qtype]) -> Result<(Answers, Failure), Failure> {
        let ids = self.ids.distinct(qtypes.len());
        let mut queries = Vec::with_capacity(qtypes.len());
        for (id, qtype) in ids.iter().zip(qtypes) {
            queries.push(message::query(*id, name, *qtype).map_err(|e| Failure::Network(e.to_string()))?);
        }
        let mut answers: Answers = qtypes.iter().map(|_| None).collect();
        let mut failure = Failure::Timeout;
        'rounds: for _ in 0..self.attempts {
            for server in 0..self.servers.len() {
                if self.end.is_some_and(|end| left(end).is_none()) {
                    break 'rounds;
                }
                match self.exchange(server, name, &ids, qtypes, &queries, &mut answers) {
                    Ok(()) => {
                        failure = Failure::Timeout;
                        break 'rounds;
                    }
                    // One query found records and the server refused the other (dnsmasq without
                    // an upstream refuses AAAA of a name it has only A for): take what was found,
                    // as glibc does, instead of asking again.
                    Err(why @ Failure::Server(_)) if answers.iter().flatten().any(has_records) => {
                        failure = why;
                        break 'rounds;
                    }
                    Err(why) => failure = why,
                }
            }
        }
        Ok((answers, failure))
    }

    /// Sends the queries not answered yet to one server and waits for its answers, at most
    /// `timeout`. `Ok` once every query is answered.
    fn exchange(
        &mut self,
        server: usize,
        name: &str,
        ids: &[u16],
        qtypes: &[Qtype],
        queries: &[Vec<u8>],
        answers: &mut Answers,
    ) -> Result<(), Failure> {
        let addr = self.servers.get(server).copied().ok_or(Failure::Timeout)?;
        let limit = self.limit();
        let socket = self.socket(server)?;
        let mut waiting: Vec<bool> = answers.iter().map(Option::is_none).collect();
        for (query, _) in queries.iter().zip(&waiting).filter(|(_, waiting)| **waiting) {
            socket.send(query).map_err(|e| network(addr, &e))?;
        }
        let mut failure = Failure::Timeout;
        let mut buffer = [0u8; UDP_SIZE];
        while waiting.contains(&true) {
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
            for (i, ((&id, &qtype), query)) in ids.iter().zip(qtypes).zip(queries).enumerate() {
                if !waiting.get(i).copied().unwrap_or(false) {
                    continue;
                }
                let answer = match message::read_answer(datagram, id, name, qtype) {
                    Ok(answer) => answer,
                    Err(message::Error::WrongId(_)) => continue,
                    Err(e) => {
                        // Could be a forgery that guessed the id: wait on for the real answer.
                        log::debug!("{addr}: ignoring an answer for {name}. {qtype}: {e}");
                        failure = Failure::Network(format!("{addr}: malformed answer: {e}"));
                        continue;
                    }
                };
                if let Some(slot) = waiting.get_mut(i) {
                    *slot = false;
                }
                let answer = if answer.truncated {
                    log::debug!("{addr}: the answer for {name}. {qtype} is truncated; asking over TCP");
                    match tcp_exchange(addr, query, id, name, qtype, limit) {
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
                    if let Some(slot) = answers.get_mut(i) {
                        *slot = Some(answer);
                    }
                } else {
                    failure = Failure::Server(format!("{addr} answered {rcode}"));
                }
            }
        }
        if answers.iter().all(Option::is_some) { Ok(()) } else { Err(failure) }
    }

    /// When one server's turn ends: `timeout` from now, or the deadline if sooner.
    fn limit(&self) -> Instant {
        let turn = Instant::now() + self.timeout;
        self.end.map_or(turn, |end| end.min(turn))
    }

    /// The connected UDP socket for a server, opened on first use.
    fn socket(&mut self, server: usize) -> Result<&UdpSocket, Failure> {
        let addr = self.servers.get(server).copied().ok_or(Failure::Timeout)?;
        let slot = self.sockets.get_mut(server).ok_or(Failure::Timeout)?;
        if slot.is_none() {
            let local: SocketAddr = match addr {
                SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let socket = UdpSocket::bind(local).map_err(|e| network(addr, &e))?;
            socket.connect(addr).map_err(|e| network(addr, &e))?;
            *slot = Some(socket);
        }
        slot.as_ref().ok_or(Failure::Timeout)
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

/// One query over TCP (RFC 1035 4.2.2: a two-byte length before each message), until `limit`.
fn tcp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    name: &str,
    qtype: Qtype,
    limit: Instant,
) -> Result<Answer, Failure> {
    let fail = |e: io::Error| network(addr, &e);
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
    message::read_answer(&answer, id, name, qtype)
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

    /// `n` different ids, one per query of a candidate.
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
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    fn conf(search: &[&str], ndots: u32) -> ResolvConf {
        ResolvConf { search: search.iter().map(|s| s.to_string()).collect(), ndots, ..ResolvConf::default() }
    }

    fn candidates(name: &str, conf: &ResolvConf) -> Vec<String> {
        QueryName::parse(name).unwrap().candidates(conf)
    }

    #[test]
    fn names_are_checked_once() {
        assert!(QueryName::parse("").is_err());
        assert!(QueryName::parse(".").is_err());
        assert!(QueryName::parse("a..b").is_err());
        assert!(QueryName::parse("a b").is_err());
        let message = QueryName::parse(&"x".repeat(64)).unwrap_err().to_string();
        assert!(message.starts_with("the peer query \"xxx") && message.contains("longer than 63"), "{message}");
        assert!(!QueryName::parse("my-hello-service").unwrap().absolute);
        assert!(QueryName::parse("web.demo.rancher.internal.").unwrap().absolute);
    }

    #[test]
    fn the_search_list_and_ndots_order_the_candidates() {
        let two = conf(&["demo.test", "test"], 1);
        assert_eq!(candidates("svc", &two), ["svc.demo.test", "svc.test", "svc"]);
        assert_eq!(candidates("svc.demo", &two), ["svc.demo", "svc.demo.demo.test", "svc.demo.test"]);
        assert_eq!(candidates("svc.", &two), ["svc"]);
        assert_eq!(candidates("svc.demo", &conf(&["test"], 2)), ["svc.demo.test", "svc.demo"]);
        assert_eq!(candidates("svc.demo", &conf(&[], 5)), ["svc.demo"]);
        assert_eq!(candidates("svc", &conf(&["test"], 0)), ["svc", "svc.test"]);
        // A search domain that would make the name too long, or that is not a name, is skipped.
        let long = "d".repeat(63);
        let odd = conf(&[&format!("{long}.{long}.{long}.{long}"), "bad domain", "ok"], 1);
        assert_eq!(candidates("svc", &odd), ["svc.ok", "svc"]);
    }

    #[test]
    fn query_ids_differ() {
        let mut ids = QueryIds(1);
        let pairs: Vec<Vec<u16>> = (0..100).map(|_| ids.distinct(2)).collect();
        assert!(pairs.iter().all(|pair| pair[0] != pair[1]));
        let distinct: BTreeSet<u16> = pairs.iter().flatten().copied().collect();
        assert!(distinct.len() > 190, "{}", distinct.len());
    }

    /// A test server on loopback: answers each UDP query with what `reply` makes of it (none: no
    /// answer), for `count` queries.
    fn udp_server(count: usize, reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> SocketAddr {
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
    fn answer_to(query: &[u8], rcode: u8, truncated: bool, addresses: &[IpAddr]) -> Vec<u8> {
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

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
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

    #[test]
    fn a_server_that_never_answers_times_out_at_the_deadline() {
        // A bound UDP socket that reads nothing: the look can only end by the deadline.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let name = QueryName::parse("peers.test.").unwrap();
        let started = Instant::now();
        let miss = lookup(&name, Some(silent.local_addr().unwrap()), Some(started + Duration::from_millis(300)));
        let elapsed = started.elapsed();
        assert!(matches!(&miss, Err(Miss::Failed(e)) if e.to_string().ends_with("request timed out")), "{miss:?}");
        assert!(elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3), "{elapsed:?}");
        // At or past the deadline, a look still gets MIN_LOOK, and no more.
        let started = Instant::now();
        let miss = lookup(&name, Some(silent.local_addr().unwrap()), Some(started - Duration::from_secs(1)));
        let elapsed = started.elapsed();
        assert!(matches!(miss, Err(Miss::Failed(_))), "{miss:?}");
        assert!(elapsed >= MIN_LOOK - Duration::from_millis(5) && elapsed < Duration::from_secs(1), "{elapsed:?}");
    }

    /// The answer to `query` built with `domain`: `rcode`, then what `fill` pushes (answer
    /// records, then additional ones).
    fn built_answer(
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

    fn dname(text: &str) -> domain::base::Name<Vec<u8>> {
        std::str::FromStr::from_str(text).unwrap()
    }

    fn qtype_of(query: &[u8]) -> Qtype {
        domain::base::Message::from_slice(query).unwrap().sole_question().unwrap().qtype()
    }

    #[test]
    fn arpa_names() {
        assert_eq!(arpa_name("10.0.1.2".parse().unwrap()), "2.1.0.10.in-addr.arpa");
        assert_eq!(arpa_name("::ffff:10.0.1.2".parse().unwrap()), "2.1.0.10.in-addr.arpa");
        assert_eq!(
            arpa_name("2001:db8::567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
        assert!(message::check_name(&arpa_name("fd00::1".parse().unwrap())).is_ok());
    }

    #[test]
    fn reverse_gives_the_host_name_or_none() {
        use domain::base::Ttl;
        use domain::rdata::Ptr;
        let server = udp_server(1, |query| {
            assert_eq!(qtype_of(query), Qtype::PTR);
            vec![built_answer(query, Rcode::NOERROR, |answer, _| {
                let owner = dname("9.0.0.10.in-addr.arpa");
                answer.push((owner, Ttl::from_secs(60), Ptr::new(dname("Web_1.My-Net.")))).unwrap();
            })]
        });
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        let found = reverse("10.0.0.9".parse().unwrap(), Some(server), deadline);
        assert_eq!(found.unwrap(), Some("web_1.my-net".to_string()));

        let server = udp_server(1, |query| vec![built_answer(query, Rcode::NXDOMAIN, |_, _| {})]);
        assert_eq!(reverse("10.0.0.9".parse().unwrap(), Some(server), deadline).unwrap(), None);
        let server = udp_server(1, |query| vec![built_answer(query, Rcode::NOERROR, |_, _| {})]);
        assert_eq!(reverse("fd00::9".parse().unwrap(), Some(server), deadline).unwrap(), None);
    }

    #[test]
    fn a_ptr_that_is_not_a_host_name_is_an_error() {
        use domain::base::Ttl;
        use domain::rdata::Ptr;
        let server = udp_server(1, |query| {
            vec![built_answer(query, Rcode::NOERROR, |answer, _| {
                let owner = dname("9.0.0.10.in-addr.arpa");
                answer.push((owner, Ttl::from_secs(60), Ptr::new(dname("evil\\032name.test")))).unwrap();
            })]
        });
        let miss = reverse("10.0.0.9".parse().unwrap(), Some(server), Some(Instant::now() + Duration::from_secs(5)));
        let Err(Miss::Failed(error)) = miss else { panic!("{miss:?}") };
        let error = error.to_string();
        assert!(
            error.starts_with(
                "the PTR record of 10.0.0.9 (9.0.0.10.in-addr.arpa.) names \"evil\\\\ name.test\" is not a host name"
            ),
            "{error}"
        );
    }

    #[test]
    fn srv_targets_come_with_their_addresses_by_priority() {
        use domain::base::Ttl;
        use domain::rdata::Srv;
        // Two targets: one with glue in the additional section, one that must be looked up.
        let server = udp_server(3, |query| {
            let qtype = qtype_of(query);
            if qtype == Qtype::SRV {
                vec![built_answer(query, Rcode::NOERROR, |answer, glue| {
                    let owner = dname("_epmd._tcp.web.test");
                    let ttl = Ttl::from_secs(60);
                    answer.push((owner.clone(), ttl, Srv::new(20, 0, 4369, dname("web-1.web.test")))).unwrap();
                    answer.push((owner.clone(), ttl, Srv::new(10, 5, 4369, dname("Web-0.web.test")))).unwrap();
                    answer.push((owner, ttl, Srv::new(30, 0, 0, dname(".")))).unwrap();
                    glue.push(("web-0.WEB.test", "10.0.0.10".parse().unwrap()));
                    glue.push(("other.test", "10.6.6.6".parse().unwrap()));
                })]
            } else if qtype == Qtype::A {
                vec![answer_to(query, 0, false, &ips(&["10.0.0.11"]))]
            } else {
                vec![answer_to(query, 0, false, &[])]
            }
        });
        let name = QueryName::parse("_epmd._tcp.web.test.").unwrap();
        let targets = srv(&name, Some(server), Some(Instant::now() + Duration::from_secs(5))).unwrap();
        assert_eq!(
            targets,
            [
                SrvTarget {
                    priority: 10,
                    weight: 5,
                    port: 4369,
                    target: "web-0.web.test".into(),
                    addresses: ips(&["10.0.0.10"])
                },
                SrvTarget {
                    priority: 20,
                    weight: 0,
                    port: 4369,
                    target: "web-1.web.test".into(),
                    addresses: ips(&["10.0.0.11"])
                },
            ]
        );
        let server = udp_server(1, |query| vec![built_answer(query, Rcode::NXDOMAIN, |_, _| {})]);
        let miss = srv(&name, Some(server), Some(Instant::now() + Duration::from_secs(5)));
        assert!(matches!(&miss, Err(Miss::NoAddresses(why)) if why == "NXDOMAIN"), "{miss:?}");
    }
}
