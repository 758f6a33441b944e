//! Peers at boot (docs/spec.md section 5): who else belongs to this service, so that the node can be
//! handed a first set of peers (`PEER_IPS`, `PEER_NODES`, `PEER_NODES_ERL`).
//!
//! Two ways to ask: DNS ([`dns`], the default: Rancher's DNS answers a service name with the
//! addresses of its healthy containers; an SRV name, `_epmd._tcp.<svc>...`, is asked as SRV and
//! gives its targets' addresses) and metadata (Rancher's `self/service` lists the
//! containers with their state: [`rancher::fetch_peers`]). Either way the answer is sorted,
//! unique and without this node. The DNS look itself is [`crate::dns`]'s.
//!
//! Finding nobody is normal: the first container of a service is alone. It is one info line and an
//! empty list, unless `--wait-peers N` asks for N others; then every look that finds fewer is a
//! failed attempt of [`wait::retry`], and the deadline ends the boot with exit 69. A source that
//! names no peer query (and no `--peer-query`) means no peers, with one info line.
//! Ongoing discovery after the exec is the application's job, or the mesh keeper's (`--mesh`,
//! [`crate::mesh`]): it asks the same query through [`look_again`] every interval.

pub mod hostnames;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use anyhow::anyhow;

use crate::cli::PeerMode;
use crate::dns;
use crate::exit::{Exit, Fail};
use crate::source::rancher;
use crate::wait::{self, AttemptError};

/// What to look up, and how long to wait.
#[derive(Debug)]
pub struct PeerQuery<'a> {
    pub mode: PeerMode,
    /// The DNS name (`--peer-query`, else the source's); `None`: the source names none.
    pub name: Option<&'a str>,
    /// The platform whose source named no query, for the info line.
    pub platform: crate::source::Platform,
    pub dns_server: Option<SocketAddr>,
    /// `--wait-peers N`: wait until at least N others are known.
    pub wait: usize,
    /// The metadata base URL, for `--peers metadata`.
    pub metadata_url: &'a str,
    /// This node's address, excluded from the answer.
    pub self_ip: IpAddr,
    pub started: Instant,
    pub deadline: Instant,
}

/// The other peers' addresses: sorted, unique, self excluded.
pub fn discover(query: &PeerQuery<'_>) -> Result<Vec<IpAddr>, Fail> {
    match query.mode {
        PeerMode::None => Ok(Vec::new()),
        PeerMode::Dns => match query.name {
            Some(name) => from_dns(query, name),
            None if query.wait > 0 => Err(crate::fail!(
                Exit::Config,
                "cannot wait for {} peers without a peer query: the {} source names none; set --peer-query",
                query.wait,
                query.platform
            )),
            None => {
                log::info!(
                    "no peers: the {} source names no peer query; set --peer-query to find some",
                    query.platform
                );
                Ok(Vec::new())
            }
        },
        PeerMode::Metadata => from_metadata(query),
    }
}

/// The addresses a peer query names: an SRV name (`_<service>._<proto>.<name>`) is asked as SRV
/// and gives its targets' addresses; any other name is asked for A and AAAA. (An SRV name has no
/// A record: asked as one, it is "no peers" for ever.)
fn look(
    name: &dns::QueryName,
    text: &str,
    server: Option<SocketAddr>,
    deadline: Option<Instant>,
) -> Result<BTreeSet<IpAddr>, dns::Miss> {
    if !hostnames::is_srv_query(text) {
        return dns::lookup(name, server, deadline);
    }
    let targets = dns::srv(name, server, deadline)?;
    let found: BTreeSet<IpAddr> = targets.into_iter().flat_map(|target| target.addresses).collect();
    if found.is_empty() {
        return Err(dns::Miss::NoAddresses("no SRV target with an address".into()));
    }
    Ok(found)
}

/// One DNS look, or (with `--wait-peers`) looks until enough peers are known.
fn from_dns(query: &PeerQuery<'_>, text: &str) -> Result<Vec<IpAddr>, Fail> {
    let name =
        dns::QueryName::parse(text).map_err(|e| Fail::new(Exit::Usage, e.context("cannot look up the peers")))?;
    if query.wait == 0 {
        // A single look, bounded by the resolver's own timeouts (resolv.conf's `timeout` and
        // `attempts`), not by --timeout: that deadline is for metadata and --wait-peers.
        return Ok(match look(&name, text, query.dns_server, None) {
            Ok(found) => alone_is_normal(text, query.self_ip, others(found, query.self_ip), None),
            Err(dns::Miss::NoAddresses(why)) => alone_is_normal(text, query.self_ip, Vec::new(), Some(&why)),
            Err(dns::Miss::Failed(error)) => {
                log::warn!("cannot look up peers: {error:#}; booting without peers");
                Vec::new()
            }
        });
    }
    wait::retry("peers", query.started, query.deadline, |_| {
        let found = match look(&name, text, query.dns_server, Some(query.deadline)) {
            Ok(found) => found,
            Err(dns::Miss::NoAddresses(why)) => return Err(too_few(query, text, &[], Some(&why))),
            Err(dns::Miss::Failed(error)) => return Err(AttemptError::Unavailable(error)),
        };
        enough(query, text, others(found, query.self_ip))
    })
}

/// One look of the mesh keeper (`--mesh`): the same query as the boot's, by the same code (SRV
/// names as SRV, TCP when the UDP answer is truncated; metadata's `self/service` with `--peers
/// metadata`), but quiet and without retries: the keeper asks again at its next interval, and
/// decides itself what is worth a log line. No address is no peers (`Ok`, empty); a failed look
/// is `Err` with the reason.
pub fn look_again(
    mode: PeerMode,
    name: &str,
    server: Option<SocketAddr>,
    metadata_url: &str,
    self_ip: IpAddr,
    deadline: Instant,
) -> Result<Vec<IpAddr>, String> {
    match mode {
        PeerMode::None => Ok(Vec::new()),
        PeerMode::Dns => {
            let query = dns::QueryName::parse(name).map_err(|e| format!("{e:#}"))?;
            match look(&query, name, server, Some(deadline)) {
                Ok(found) => Ok(others(found, self_ip)),
                Err(dns::Miss::NoAddresses(_)) => Ok(Vec::new()),
                Err(dns::Miss::Failed(error)) => Err(format!("cannot look up {name}: {error:#}")),
            }
        }
        PeerMode::Metadata => {
            let client = crate::http::Client::new();
            let mut endpoint = rancher::Endpoint::new(metadata_url, "self/service");
            rancher::fetch_peers(&client, &mut endpoint, self_ip, deadline)
                .map_err(|e| format!("cannot read self/service: {e}"))
        }
    }
}

/// Asks metadata for the service's containers, retrying like the identity request does.
fn from_metadata(query: &PeerQuery<'_>) -> Result<Vec<IpAddr>, Fail> {
    let client = crate::http::Client::new();
    let mut endpoint = rancher::Endpoint::new(query.metadata_url, "self/service");
    let peers = wait::retry("peers", query.started, query.deadline, |_| {
        let found = rancher::fetch_peers(&client, &mut endpoint, query.self_ip, query.deadline)?;
        if query.wait == 0 { Ok(found) } else { enough(query, query.name.unwrap_or("self/service"), found) }
    })?;
    if peers.is_empty() {
        log::info!("no peers yet: self/service lists no running container but this one");
    } else {
        log::debug!("peers from self/service: {}", list(&peers));
    }
    Ok(peers)
}

/// The addresses other than this node's, sorted and unique.
fn others(found: BTreeSet<IpAddr>, self_ip: IpAddr) -> Vec<IpAddr> {
    found.into_iter().filter(|ip| *ip != self_ip).collect()
}

/// Passes the DNS peers through, with the one info line when there are none.
fn alone_is_normal(name: &str, self_ip: IpAddr, peers: Vec<IpAddr>, why: Option<&str>) -> Vec<IpAddr> {
    if peers.is_empty() {
        match why {
            Some(why) => log::info!("no peers yet: {name} has no addresses ({why})"),
            None => log::info!("no peers yet: {name} lists no address but this node's ({self_ip})"),
        }
    } else {
        log::debug!("peers of {name}: {}", list(&peers));
    }
    peers
}

/// `Ok` once at least `--wait-peers` others are known; otherwise a failed attempt saying how many.
fn enough(query: &PeerQuery<'_>, name: &str, peers: Vec<IpAddr>) -> Result<Vec<IpAddr>, AttemptError> {
    if peers.len() >= query.wait { Ok(peers) } else { Err(too_few(query, name, &peers, None)) }
}

fn too_few(query: &PeerQuery<'_>, name: &str, peers: &[IpAddr], why: Option<&str>) -> AttemptError {
    let mut message = format!("found {} of {} peers for {name}", peers.len(), query.wait);
    if !peers.is_empty() {
        let _ = write!(message, " ({})", list(peers));
    }
    if let Some(why) = why {
        let _ = write!(message, " ({why})");
    }
    AttemptError::Unavailable(anyhow!(message))
}

fn list(peers: &[IpAddr]) -> String {
    peers.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn query(wait: usize) -> PeerQuery<'static> {
        let now = Instant::now();
        PeerQuery {
            mode: PeerMode::Dns,
            name: Some("web"),
            platform: crate::source::Platform::Local,
            dns_server: None,
            wait,
            metadata_url: "http://127.0.0.1:1/2016-07-29",
            self_ip: "10.0.0.2".parse().unwrap(),
            started: now,
            deadline: now + Duration::from_secs(1),
        }
    }

    fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn self_is_excluded_and_the_rest_sorted() {
        let found = ips(&["10.0.0.10", "10.0.0.2", "fd00::1", "10.0.0.9", "10.0.0.10"]);
        let peers = others(found, "10.0.0.2".parse().unwrap());
        assert_eq!(list(&peers), "10.0.0.9 10.0.0.10 fd00::1");
    }

    #[test]
    fn too_few_says_how_many_of_how_many() {
        let q = query(2);
        let err = enough(&q, "web", vec!["10.0.0.9".parse().unwrap()]).unwrap_err();
        assert!(matches!(err, AttemptError::Unavailable(_)));
        assert_eq!(err.to_string(), "found 1 of 2 peers for web (10.0.0.9)");
        let err = too_few(&q, "web", &[], Some("NXDOMAIN"));
        assert_eq!(err.to_string(), "found 0 of 2 peers for web (NXDOMAIN)");
        assert!(enough(&q, "web", vec!["10.0.0.9".parse().unwrap(), "10.0.0.8".parse().unwrap()]).is_ok());
    }

    #[test]
    fn a_source_that_names_no_query_means_no_peers_unless_some_are_required() {
        let mut q = query(0);
        q.name = None;
        assert!(discover(&q).unwrap().is_empty());
        q.wait = 2;
        let fail = discover(&q).unwrap_err();
        assert_eq!(fail.exit, Exit::Config);
        assert!(fail.to_string().contains("set --peer-query"), "{fail}");
    }

    #[test]
    fn none_looks_nothing_up() {
        let mut q = query(5);
        q.mode = PeerMode::None;
        assert!(discover(&q).unwrap().is_empty());
    }
}
