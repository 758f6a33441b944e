//! `--name-by hostname`: the peers named by their host names, as this node is (a Kubernetes
//! StatefulSet pod is `<pod>.<svc>.<ns>.svc.<zone>`). Names come from SRV records when the peer
//! query is an SRV name (`_<port>._<proto>.<svc>...`, named ports only: the targets are the
//! per-pod names), else from the PTR record of each peer address (CoreDNS answers a pod of a
//! headless service with its per-pod name). A peer is kept only when its name lies in this node's
//! own domain (the FQDN without its first label): a name from anywhere else is not one the
//! distribution would reach under this naming, and a peer named by IP next to host names would
//! never connect. Each one left out is a warning naming the address.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::dns::{self, Miss, QueryName};

/// The parent domain of a FQDN: `hello.shop.svc.k8s.test` for `hello-0.hello.shop.svc.k8s.test`.
fn domain(fqdn: &str) -> &str {
    fqdn.split_once('.').map_or("", |(_, rest)| rest)
}

/// Whether `name` is a host directly in `domain` (one more label).
fn in_domain(name: &str, domain: &str) -> bool {
    name.strip_suffix(domain)
        .and_then(|head| head.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty() && !label.contains('.'))
}

/// Whether a peer query asks for SRV records.
pub fn is_srv_query(query: &str) -> bool {
    query.starts_with('_')
}

/// The peers, each with its host name; sorted by address as PEER_IPS is, this node left out.
/// Each peer left out, and a failed look, is logged.
pub fn name_peers(
    own: &str,
    query: Option<&str>,
    peers: &[IpAddr],
    self_ip: IpAddr,
    server: Option<SocketAddr>,
    deadline: Instant,
) -> Vec<(IpAddr, String)> {
    name_peers_noting(own, query, peers, self_ip, server, deadline, &mut |level, note| log::log!(level, "{note}"))
}

/// [`name_peers`], with each note (a peer left out, a failed look) handed to `note` instead of the
/// log: the mesh keeper looks every interval and logs a lasting failure once.
pub fn name_peers_noting(
    own: &str,
    query: Option<&str>,
    peers: &[IpAddr],
    self_ip: IpAddr,
    server: Option<SocketAddr>,
    deadline: Instant,
    note: &mut dyn FnMut(log::Level, String),
) -> Vec<(IpAddr, String)> {
    use log::Level::{Info, Warn};
    let domain = domain(own);
    let mut named = Vec::new();
    if let Some(query) = query.filter(|q| is_srv_query(q)) {
        let targets =
            match QueryName::parse(query).map_err(Miss::Failed).and_then(|n| dns::srv(&n, server, Some(deadline))) {
                Ok(targets) => targets,
                Err(Miss::NoAddresses(why)) => {
                    note(Info, format!("no peers yet: {query} has no SRV records ({why})"));
                    return named;
                }
                Err(Miss::Failed(error)) => {
                    note(Warn, format!("cannot look up the SRV records of {query}: {error:#}; booting without peers"));
                    return named;
                }
            };
        for target in targets {
            if target.target == own || target.addresses.contains(&self_ip) {
                continue;
            }
            if !in_domain(&target.target, domain) {
                note(Warn, format!("--name-by hostname: leaving out SRV target {}: not in {domain}", target.target));
                continue;
            }
            match target.addresses.first() {
                Some(ip) => named.push((*ip, target.target)),
                None => note(
                    Warn,
                    format!("--name-by hostname: leaving out SRV target {}: it has no address", target.target),
                ),
            }
        }
    } else {
        for ip in peers {
            match dns::reverse(*ip, server, Some(deadline)) {
                Ok(Some(name)) if in_domain(&name, domain) => named.push((*ip, name)),
                Ok(Some(name)) => {
                    note(Warn, format!("--name-by hostname: leaving out peer {ip}: its name {name} is not in {domain}"))
                }
                Ok(None) => note(Warn, format!("--name-by hostname: leaving out peer {ip}: it has no PTR record")),
                Err(Miss::NoAddresses(why)) => note(Warn, format!("--name-by hostname: leaving out peer {ip}: {why}")),
                Err(Miss::Failed(error)) => note(Warn, format!("--name-by hostname: leaving out peer {ip}: {error:#}")),
            }
        }
    }
    named.sort();
    named.dedup_by(|a, b| a.1 == b.1);
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_and_who_is_in_it() {
        let own = "hello-0.hello.shop.svc.k8s.test";
        assert_eq!(domain(own), "hello.shop.svc.k8s.test");
        assert!(in_domain("hello-1.hello.shop.svc.k8s.test", domain(own)));
        assert!(!in_domain("hello.shop.svc.k8s.test", domain(own)));
        assert!(!in_domain("a.hello-1.hello.shop.svc.k8s.test", domain(own)));
        assert!(!in_domain("xhello.shop.svc.k8s.test", domain(own)));
        assert!(!in_domain("10-0-0-1.other.shop.svc.k8s.test", domain(own)));
    }

    #[test]
    fn srv_queries_start_with_an_underscore() {
        assert!(is_srv_query("_epmd._tcp.hello.shop.svc.k8s.test."));
        assert!(!is_srv_query("hello.shop.svc.k8s.test."));
    }
}
