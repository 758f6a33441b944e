//! DNS, asked the way the C library's stub resolver asks (glibc's and musl's, which is what the
//! containers' own programs already do): the A and AAAA records of a name ([`lookup`], the
//! peers), the PTR of an address ([`reverse`], Swarm and Compose name their containers so) and
//! the SRV records of a name with their targets' addresses ([`srv`], Kubernetes StatefulSets).
//!
//! This file owns the look itself: which names to try (the `search` list and `ndots`), the
//! look's deadline, and what its outcome means to the caller ([`Miss`]). [`transport`] owns the
//! exchange with the servers for one name (UDP, then TCP when the answer is truncated, each
//! server's turn, the query ids); [`resolv_conf`] reads the configuration; [`message`] builds
//! and reads the messages with NLnet Labs' `domain` crate. Those two are pure.
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
#[cfg(test)]
mod packets;
pub mod resolv_conf;
#[cfg(test)]
mod testing;
mod transport;

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::exec::describe_io_error;
use resolv_conf::{DNS_PORT, RESOLV_CONF, ResolvConf};
use transport::{Failure, Found, Stub};

/// The least time a look with a deadline gets, even at or past the deadline.
const MIN_LOOK: Duration = Duration::from_millis(50);

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
fn search<T>(
    name: &QueryName,
    conf: &ResolvConf,
    stub: &mut Stub,
    none: &str,
    mut ask: impl FnMut(&mut Stub, &str) -> Result<Found<T>, Failure>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use message::{Qtype, Rcode};
    use packets::answer_to;
    use std::net::UdpSocket;
    use testing::{built_answer, dname, ips, qtype_of, udp_server};

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
