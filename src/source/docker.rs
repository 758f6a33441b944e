//! Docker's embedded DNS (`127.0.0.11`): what the Swarm and Compose sources have in common.
//!
//! Docker names a container's address on each user-defined network by a PTR record there: a
//! Swarm task's overlay address is `<service>.<slot>.<task id>.<network>` (`<stack>_<service>`
//! when deployed as a stack; a global service has the node id for the slot), a Compose
//! container's `<project>_<service>_<n>.<project>_<network>` (docker-compose v1) or
//! `<project>-<service>-<n>.<project>_<network>` (Compose v2): moby's PTR is the endpoint's first
//! DNS name (the container name) and the network's real name, which for a network Compose
//! creates is `<project>_<network>` (compose-go names it so; an `external` network or one with
//! its own `name:` has no project in it, and is not recognised). The ingress and `docker_gwbridge` addresses
//! have none. So the node's IP is the local address whose PTR has one of these shapes, and its
//! service and peer query follow from the name ([`classify`]).
//!
//! The candidates are this machine's addresses that others could reach, less any `/32` (`/128`)
//! (a virtual IP, not a network), or only `--ip` when given. Each is asked at the nameserver
//! (`--dns-server`, else resolv.conf's first) directly: the container's own address answers with
//! its short ID through /etc/hosts, which is no answer here. A task's own PTR is often missing
//! in its first moment, so a look where some address had no answer is retried with the jittered
//! back-off of [`crate::wait`]: briefly ([`AUTO_BOUND`]) under `--source auto`, then detection
//! goes on; to the deadline under `--source swarm`/`compose`, then 78 naming `--ip`. A look where
//! every address has a PTR and none of the shapes is a definite "not here", never retried.
//! Several addresses of the shapes (several overlays): the one whose peer query holds it.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::local::{self, Address};
use super::{Context, Identity, Platform};
use crate::dns;
use crate::exit::{Exit, Fail};
use crate::wait::{self, AttemptError, retry};

/// Docker's embedded DNS server.
pub const DOCKER_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// How long `--source auto` keeps asking for PTR records that are not there yet.
pub const AUTO_BOUND: Duration = Duration::from_secs(2);

/// The longest one PTR look may take within a round.
const PER_ADDRESS: Duration = Duration::from_millis(500);

/// How long a look may retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// `--source auto`: [`AUTO_BOUND`], then the next step.
    Auto,
    /// `--source swarm` or `compose`: to the deadline.
    Deadline,
}

/// What a PTR name of Docker's says about the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub platform: Platform,
    pub service: String,
    /// `tasks.<service>` on Swarm, the service name with Compose.
    pub query: String,
}

/// Pure: the platform, service and peer query a PTR name gives, if it has one of the shapes.
pub fn classify(ptr: &str) -> Option<Named> {
    let labels: Vec<&str> = ptr.split('.').collect();
    if labels.iter().any(|label| label.is_empty()) {
        return None;
    }
    swarm_task(&labels).or_else(|| compose_container(&labels))
}

/// `<service>.<slot>.<task id>.<network>`: a slot number (or, for a global service, the node's
/// id) and a task id of 25 lower-case letters and digits.
fn swarm_task(labels: &[&str]) -> Option<Named> {
    let [service, slot, task, _network, ..] = labels else { return None };
    let id = |s: &str| s.len() == 25 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let slot_ok = (!slot.is_empty() && slot.bytes().all(|b| b.is_ascii_digit())) || id(slot);
    if !slot_ok || !id(task) || crate::cli::check_name(service).is_err() {
        return None;
    }
    Some(Named { platform: Platform::Swarm, service: service.to_string(), query: format!("tasks.{service}") })
}

/// `<project>_<service>_<n>.<project>_<network>` (v1) or `<project>-<service>-<n>.<project>_<network>`
/// (v2, whose default network is `<project>_default` too): the project is a prefix of the network
/// name ending before a `_`, the longest that fits.
fn compose_container(labels: &[&str]) -> Option<Named> {
    let [container, network @ ..] = labels else { return None };
    let network = network.join(".");
    let cuts = network.match_indices('_').map(|(i, _)| i).collect::<Vec<_>>();
    cuts.iter().rev().find_map(|&cut| {
        let project = &network[..cut];
        ['_', '-'].into_iter().find_map(|sep| {
            let rest = container.strip_prefix(project)?.strip_prefix(sep)?;
            let (service, n) = rest.rsplit_once(sep)?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || crate::cli::check_name(service).is_err() {
                return None;
            }
            Some(Named { platform: Platform::Compose, service: service.to_string(), query: service.to_string() })
        })
    })
}

/// Pure: the addresses worth asking about: not a `/32` or `/128`, which is a virtual IP (a
/// Swarm VIP on an interface, a keepalived address), not the node's address on a network.
pub fn candidates(addresses: Vec<Address>) -> Vec<Address> {
    addresses
        .into_iter()
        .filter(|a| {
            let host_route = if a.ip.is_ipv4() { 32 } else { 128 };
            if a.prefix >= host_route {
                log::debug!("not asking about {} on {}: a /{} is a virtual IP", a.ip, a.interface, a.prefix);
            }
            a.prefix < host_route
        })
        .collect()
}

/// A local address that has a PTR record of one of the shapes.
#[derive(Clone, Debug)]
struct Hit {
    address: Address,
    ptr: String,
    named: Named,
}

/// The nameserver to ask, and whether it is Docker's (the only one worth asking under auto).
fn nameserver(ctx: &Context<'_>) -> (Option<SocketAddr>, bool) {
    let docker = ctx.nameservers().first().is_some_and(|ns| ns.ip() == IpAddr::V4(DOCKER_DNS));
    (ctx.config.dns_server.or_else(|| docker.then(|| SocketAddr::new(DOCKER_DNS.into(), 53))), docker)
}

/// The identity that a task's or a compose container's PTR gives. `want`: the platform named by
/// `--source` (`None` under auto). `Ok(None)`: not on Docker's DNS, or no address of the shapes
/// (auto only: a named source turns that into a 78 naming `--ip`).
pub fn look(ctx: &Context<'_>, bound: Bound, want: Option<Platform>) -> Result<Option<Identity>, Fail> {
    let (server, docker) = nameserver(ctx);
    if bound == Bound::Auto && !docker {
        log::debug!("not swarm or compose: resolv.conf's nameserver is not Docker's {DOCKER_DNS}");
        return Ok(None);
    }
    let shown = server.map_or_else(|| "resolv.conf's nameserver".to_string(), |s| s.ip().to_string());
    let candidates = match ctx.config.ip {
        Some(ip) => vec![Address { interface: "--ip".into(), ip, prefix: 0 }],
        None => candidates(local::addresses()?),
    };
    let tiers = tiers(candidates, local::default_route_interface().as_deref());
    let what = want.map_or("swarm or compose", Platform::name);
    let attempt = |end: Instant| -> Result<Looked, AttemptError> { ask(&tiers, server, &shown, end) };

    let hits = match bound {
        Bound::Auto => {
            let end = (Instant::now() + AUTO_BOUND).min(ctx.deadline);
            wait::within(what, end, || attempt(end)).unwrap_or_else(|e| {
                log::debug!("not swarm or compose after {AUTO_BOUND:?}: {e}");
                Looked::default()
            })
        }
        Bound::Deadline => retry(what, ctx.started, ctx.deadline, |_| attempt(ctx.deadline))
            .map_err(|fail| nothing_found(what, &fail.error.to_string()))?,
    };
    let Looked { hits, seen } = hits;
    if hits.is_empty() {
        return match want {
            Some(_) => Err(nothing_found(
                what,
                &format!(
                    "no local address has a PTR record of a {what} name at {shown} (found: {})",
                    if seen.is_empty() { "no address to ask".to_string() } else { seen.join(", ") }
                ),
            )),
            None => Ok(None),
        };
    }
    let hit = choose(hits, server, ctx)?;
    if let Some(want) = want
        && want != hit.named.platform
    {
        return Err(crate::fail!(
            Exit::Config,
            "cannot use --source {want}: {} on {} is {}, a {} name; use --source {} or auto (RANCHER_BOOT_SOURCE)",
            hit.address.ip,
            hit.address.interface,
            hit.ptr,
            hit.named.platform,
            hit.named.platform
        ));
    }
    Ok(Some(Identity {
        platform: hit.named.platform,
        ip: hit.address.ip,
        service: hit.named.service,
        peer_query: Some(hit.named.query),
        host_name: None,
        extras: Vec::new(),
        evidence: format!("{} on {} is {}", hit.address.ip, hit.address.interface, hit.ptr),
    }))
}

/// `identify` of the swarm or compose source: to the deadline, then a 78 naming `--ip`.
pub fn identify_as(ctx: &Context<'_>, platform: Platform) -> Result<Identity, Fail> {
    // A named source's look finds the identity or fails; `None` does not come back.
    look(ctx, Bound::Deadline, Some(platform))?.ok_or_else(|| nothing_found(platform.name(), "no address found"))
}

fn nothing_found(what: &str, why: &str) -> Fail {
    Fail::new(
        Exit::Config,
        anyhow!(
            "cannot tell the node's address (--source {what}): {why}; set --ip (RANCHER_BOOT_IP) and --service, \
             or, if this is no {what} container, --source auto"
        ),
    )
}

/// One round's answer: the addresses of the shapes, and what every other address is called.
#[derive(Debug, Default)]
struct Looked {
    hits: Vec<Hit>,
    /// `10.0.1.4 on eth1 is web.net`, for the message when nothing has the shapes.
    seen: Vec<String>,
}

/// Pure: the candidates in the order they are asked. Docker's DNS forwards the PTR of an address
/// it does not know to the host's upstream resolver, and the address on the default-route
/// interface of a Swarm task is docker_gwbridge's, which it never knows: so that interface's
/// addresses come last, asked only when the others gave a definite "none of the shapes". (With
/// one network, its interface holds the default route and is the only tier.)
pub fn tiers(candidates: Vec<Address>, default_route: Option<&str>) -> Vec<Vec<Address>> {
    let (last, first): (Vec<Address>, Vec<Address>) =
        candidates.into_iter().partition(|a| Some(a.interface.as_str()) == default_route);
    [first, last].into_iter().filter(|tier| !tier.is_empty()).collect()
}

/// One round of PTR look-ups, tier by tier (see [`tiers`]). `Ok` with hits: at least one address
/// of the shapes; `Ok` without: every address has a PTR and none of the shapes (or there is no
/// address), a definite answer; `Err`: some address had no answer yet (ask again). A later tier
/// is asked only when every earlier one gave a definite answer without a hit.
fn ask(tiers: &[Vec<Address>], server: Option<SocketAddr>, shown: &str, end: Instant) -> Result<Looked, AttemptError> {
    let mut hits = Vec::new();
    let mut seen = Vec::new();
    let mut missing = Vec::new();
    for tier in tiers {
        if !hits.is_empty() || !missing.is_empty() {
            break;
        }
        for address in tier {
            // Docker answers its own records at once; an address it does not know (ingress,
            // gwbridge) may be forwarded upstream, which must not hold the others up.
            match dns::reverse(address.ip, server, Some((Instant::now() + PER_ADDRESS).min(end))) {
                Ok(Some(ptr)) => match classify(&ptr) {
                    Some(named) => hits.push(Hit { address: address.clone(), ptr, named }),
                    None => {
                        log::debug!(
                            "{} on {} is {ptr}: not a swarm task's or a compose container's name",
                            address.ip,
                            address.interface
                        );
                        seen.push(format!("{} on {} is {ptr}", address.ip, address.interface));
                    }
                },
                Ok(None) => missing.push(format!("{} on {}", address.ip, address.interface)),
                Err(dns::Miss::NoAddresses(why)) => {
                    missing.push(format!("{} on {} ({why})", address.ip, address.interface))
                }
                Err(dns::Miss::Failed(e)) => missing.push(format!("{} on {} ({e:#})", address.ip, address.interface)),
            }
        }
    }
    if !hits.is_empty() || missing.is_empty() {
        return Ok(Looked { hits, seen });
    }
    Err(AttemptError::Unavailable(anyhow!("no PTR record at {shown} yet for {}", missing.join(", "))))
}

/// One hit: it. Several (several overlays): the one whose peer query holds its address, else a
/// 78 listing them, naming `--ip`.
fn choose(hits: Vec<Hit>, server: Option<SocketAddr>, ctx: &Context<'_>) -> Result<Hit, Fail> {
    if hits.len() == 1 {
        return Ok(hits.into_iter().next().expect("one hit"));
    }
    let mut holding: Vec<Hit> = hits
        .iter()
        .filter(|hit| {
            let held = super::resolve(&hit.named.query, server, (Instant::now() + AUTO_BOUND).min(ctx.deadline))
                .is_some_and(|found| found.contains(&hit.address.ip));
            log::debug!("{} {} {}", hit.named.query, if held { "holds" } else { "does not hold" }, hit.address.ip);
            held
        })
        .cloned()
        .collect();
    if holding.len() == 1 {
        return Ok(holding.remove(0));
    }
    let mut listed = String::new();
    for hit in &hits {
        let _ = write!(
            listed,
            "{}{} on {} ({})",
            if listed.is_empty() { "" } else { ", " },
            hit.address.ip,
            hit.address.interface,
            hit.ptr
        );
    }
    Err(crate::fail!(
        Exit::Config,
        "cannot choose the node's address: several local addresses are named by Docker's DNS and {} of them by their peer query: {listed}; \
         set --ip (RANCHER_BOOT_IP) to the one peers reach",
        if holding.is_empty() { "none".to_string() } else { format!("{}", holding.len()) }
    ))
}

/// Under `--source auto`, after falling through to the local source on Docker's DNS: a warning
/// when the address it chose is not on the network of the service's tasks (or, with no query
/// known, that it is a guess among several networks).
pub fn warn_if_off_the_tasks_network(ctx: &Context<'_>, identity: &Identity) {
    let (server, docker) = nameserver(ctx);
    if !docker || ctx.config.ip.is_some() {
        return;
    }
    let Ok(addresses) = local::addresses() else { return };
    let Some(own) = addresses.iter().find(|a| a.ip == identity.ip) else { return };
    let query = ctx
        .config
        .peer_query
        .clone()
        .or_else(|| ctx.var("DNS_CLUSTER_QUERY"))
        .or_else(|| ctx.config.service.as_ref().map(|s| format!("tasks.{s}")));
    let Some(query) = query else {
        if candidates(addresses.clone()).len() > 1 {
            log::warn!(
                "Docker's DNS named none of this container's addresses; {} on {} is a guess among several \
                 networks (on Swarm the default route is docker_gwbridge's, which peers cannot reach): set --ip, \
                 or --service to check it",
                own.ip,
                own.interface
            );
        }
        return;
    };
    let Some(found) = super::resolve(&query, server, Instant::now() + super::rancher::DETECT_RESOLVE) else { return };
    if !found.iter().any(|ip| local::on_network(own, *ip)) {
        log::warn!(
            "{} on {} (the local source's choice) is not on the network of {query} ({}): peers cannot reach \
             this node by that name; set --ip, or --source swarm",
            own.ip,
            own.interface,
            super::list(&found)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(platform: Platform, service: &str, query: &str) -> Option<Named> {
        Some(Named { platform, service: service.into(), query: query.into() })
    }

    #[test]
    fn swarm_task_names() {
        let task = "5xwjda19plzm0iq9g63obujy0";
        assert_eq!(classify(&format!("hello.3.{task}.rbtest-net")), named(Platform::Swarm, "hello", "tasks.hello"));
        // Deployed as a stack: <stack>_<service>, and the network is the stack's too.
        assert_eq!(
            classify(&format!("demo_hello.1.{task}.demo_appnet")),
            named(Platform::Swarm, "demo_hello", "tasks.demo_hello")
        );
        // A global service: the node's id stands for the slot.
        assert_eq!(
            classify(&format!("agent.k1q2w3e4r5t6y7u8i9o0p1a2s.{task}.net")),
            named(Platform::Swarm, "agent", "tasks.agent")
        );
        // A network name with dots.
        assert_eq!(classify(&format!("hello.12.{task}.my.net")), named(Platform::Swarm, "hello", "tasks.hello"));
    }

    #[test]
    fn compose_container_names() {
        assert_eq!(classify("demo_web_2.demo_default"), named(Platform::Compose, "web", "web"));
        assert_eq!(classify("demo-web-2.demo_default"), named(Platform::Compose, "web", "web"));
        // Services with - and _ in their names, a project with _ (v2 allows it).
        assert_eq!(classify("demo_my-web_10.demo_backend"), named(Platform::Compose, "my-web", "my-web"));
        assert_eq!(
            classify("my_app-api-server-1.my_app_default"),
            named(Platform::Compose, "api-server", "api-server")
        );
        assert_eq!(classify("demo-my_web-1.demo_default"), named(Platform::Compose, "my_web", "my_web"));
    }

    #[test]
    fn names_of_other_shapes_are_none() {
        for ptr in [
            "",
            "hello",
            "web.rbtest-net",                        // docker run --name web --network rbtest-net
            "hello.3.tooshort.net",                  // not a task id
            "hello.x.5xwjda19plzm0iq9g63obujy0.net", // not a slot
            "hello.3.5xwjda19plzm0iq9g63obujy0",     // no network
            "demo_web.demo_default",                 // no replica number
            "demo_web_.demo_default",
            "other_web_1.demo_default", // not this network's project
            "demo_web_1.external",      // an external network: the project is unknown
            "host-10-0-0-1.example.com",
            "a..b",
            "9c6b1e7f2d3a", // a short container id (what /etc/hosts says)
        ] {
            assert_eq!(classify(ptr), None, "{ptr:?}");
        }
    }

    #[test]
    fn virtual_ips_are_not_candidates() {
        let a = |interface: &str, ip: &str, prefix| Address {
            interface: interface.into(),
            ip: ip.parse().unwrap(),
            prefix,
        };
        let kept = candidates(vec![
            a("eth0", "10.0.0.5", 24),
            a("eth0", "10.0.0.2", 32), // a VIP on the ingress interface
            a("eth1", "10.0.1.4", 24),
            a("eth1", "fd00::1:4", 64),
            a("eth1", "fd00::1:9", 128),
        ]);
        let kept: Vec<String> = kept.iter().map(|a| a.ip.to_string()).collect();
        assert_eq!(kept, ["10.0.0.5", "10.0.1.4", "fd00::1:4"]);
    }
}
