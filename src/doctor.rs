//! `rancher-boot doctor`: when nodes don't connect, which link is broken, from both sides.
//!
//! The script, within the doctor's one deadline (`--timeout`, default 5 s) however many peers:
//! 1. this node: who it is and why (the boot's state, else derived as a boot would), long or
//!    short names, its interfaces, whether its host name resolves back to its address, the
//!    distribution flags in effect, the cookie's source and health (never its text);
//! 2. whether its own VM is registered at EPMD, and accepts the cookie;
//! 3. the peers: the query and what it answered;
//! 4. each peer, side by side: EPMD, the name registered, TCP to its port, the handshake, and a
//!    call asking it to reach *this* node back (`net_adm:ping/1`: the one-way failures are the
//!    ones nobody finds);
//! 5. one line per peer with its verdict and the fix in words, a summary (or all of it as JSON).
//!
//! It changes nothing: it registers nothing, joins nothing (a hidden connection that ends with
//! it), and the only thing it asks a peer to do is what the cluster does anyway, to connect to
//! this node. Exit 0 when every check passed, 1 otherwise.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use serde_json::{Value, json};

use crate::cli::{Dist, DoctorArgs, NameBy, Options};
use crate::discovery::{self, PeerQuery};
use crate::dist::term::Term;
use crate::dist::{Error, Failure, NodeName, Reach, Step, handshake, rpc};
use crate::exit::{Exit, Fail};
use crate::{cookie, erl, state};

/// One finding about this node: a name, what was seen, and whether it is a problem.
#[derive(Debug)]
struct Fact {
    name: &'static str,
    text: String,
    ok: bool,
}

/// What a peer's checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReport {
    pub ip: IpAddr,
    pub node: String,
    /// One word or two: `ok`, `epmd refused`, `not registered`, `port timed out`, `cookie`, ...
    pub verdict: String,
    /// What was seen, in a sentence.
    pub detail: String,
    /// What to do about it; empty when all is well.
    pub fix: String,
}

pub fn run(options: &Options, args: &DoctorArgs, started: Instant) -> Result<Exit, Fail> {
    let deadline = started + args.timeout;
    let mut facts = Vec::new();
    let mut fact = |name, ok, text: String| facts.push(Fact { name, text, ok });

    // 1. This node.
    let this = state::this_node(options, deadline)?;
    let config = &this.config;
    let identity = &this.identity;
    let node = NodeName::parse(&this.node)
        .map_err(|why| crate::fail!(Exit::Config, "cannot check node {}: {why}", this.node))?;
    let from = if this.state.is_some() { "as the boot chose it" } else { "as a boot would choose it now" };
    fact("node", true, format!("{} ({}: {}; {from})", this.node, identity.platform, identity.evidence));
    fact("names", true, names(&node));
    fact("address", true, interfaces(identity.ip));
    if config.name_by == NameBy::Hostname {
        let (ok, text) = resolves_back(&node.host, identity.ip, config.dns_server, deadline);
        fact("resolves", ok, text);
    }
    fact("flags", true, flags(config, this.state.as_ref()));
    let own = config.cookie_file.as_deref().or(args.common.cookie_file.as_deref());
    let cookie = match cookie::find(own, this.state.as_ref()) {
        Ok((cookie, source)) => {
            let file = own.or(this.state.as_ref().and_then(|s| match &s.cookie {
                state::CookieSource::File(path) => Some(path.as_path()),
                _ => None,
            }));
            match cookie::lint(&cookie, &source, file) {
                Ok(warnings) if warnings.is_empty() => {
                    fact("cookie", true, format!("from {source}, {} characters", cookie.len()));
                }
                Ok(warnings) => fact("cookie", true, format!("from {source}; {}", warnings.join("; "))),
                Err(fail) => fact("cookie", false, format!("{fail}")),
            }
            Some(cookie)
        }
        Err(fail) => {
            fact("cookie", false, format!("{fail}"));
            None
        }
    };

    // 2. Its own VM, as its peers would reach it.
    let mode = state::reach(this.state.as_ref(), config.dist == Dist::Tls, config.dist_port);
    let (ok, text) = local_vm(&node, identity.ip, mode, cookie.as_deref(), deadline);
    fact("this vm", ok, text);

    // 3. The peers.
    let (peers, peer_names, query_text) = find_peers(config, identity, &node, started, deadline);
    fact("peers", true, query_text);

    // 4. Each peer, side by side.
    let reports: Vec<PeerReport> = std::thread::scope(|scope| {
        let handles: Vec<_> = peers
            .iter()
            .zip(&peer_names)
            .map(|(ip, name)| {
                let cookie = cookie.as_deref();
                let us = &this.node;
                scope.spawn(move || check_peer(*ip, name, us, cookie, mode, deadline))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| panic!("a peer check panicked"))).collect()
    });

    // 5. Say it.
    let healthy = facts.iter().all(|f| f.ok) && reports.iter().all(|r| r.verdict == "ok" || r.verdict == "reachable");
    let summary = summary(&reports, &facts);
    let text = if args.json {
        json_report(&facts, &reports, &summary, healthy)
    } else {
        text_report(&facts, &reports, &summary)
    };
    print!("{text}");
    Ok(if healthy { Exit::Ok } else { Exit::Unhealthy })
}

fn names(node: &NodeName) -> String {
    if node.host.parse::<IpAddr>().is_ok() {
        "long (-name): the host part is an address; every peer must use -name too".to_string()
    } else if node.is_long() {
        "long (-name): the host part is a domain name; every peer must use -name too".to_string()
    } else {
        "short (-sname): the host part has no dot; every peer must use -sname too".to_string()
    }
}

/// `eth1 10.0.1.4 (the node's); also eth0 10.0.0.12, eth2 172.18.0.5`.
fn interfaces(ip: IpAddr) -> String {
    let addresses = crate::source::local::addresses().unwrap_or_default();
    let own = addresses.iter().find(|a| a.ip == ip).map(|a| format!("{} {}", a.interface, erl::ntoa(a.ip)));
    // The default route is docker_gwbridge's in a Swarm task, and the ingress network has no
    // name of the service: the two addresses a node must never be named by.
    let route = crate::source::local::default_route_interface();
    let others: Vec<String> = addresses
        .iter()
        .filter(|a| a.ip != ip)
        .map(|a| {
            let why = if route.as_deref() == Some(a.interface.as_str()) { " (the default route)" } else { "" };
            format!("{} {}{why}", a.interface, erl::ntoa(a.ip))
        })
        .collect();
    let mut text = match own {
        Some(own) => format!("{own} (the node's)"),
        None => format!("{} (not an address of this machine: the node is elsewhere, or behind NAT)", erl::ntoa(ip)),
    };
    if !others.is_empty() {
        let _ = write!(text, "; not taken: {}", others.join(", "));
    }
    text
}

fn resolves_back(host: &str, ip: IpAddr, server: Option<SocketAddr>, deadline: Instant) -> (bool, String) {
    match crate::dns::host_addresses(host, server, deadline) {
        Ok(found) if found.contains(&ip) => (true, format!("{host} resolves to {}", erl::ntoa(ip))),
        Ok(found) => (
            false,
            format!(
                "{host} resolves to {}, not {}: peers would reach another address",
                found.iter().map(|a| erl::ntoa(*a)).collect::<Vec<_>>().join(", "),
                erl::ntoa(ip)
            ),
        ),
        Err(_) => (false, format!("{host} does not resolve: peers cannot reach this node by its name")),
    }
}

/// `-proto_dist` and the listen range, from the exported `ERL_AFLAGS` and the rendered vm.args.
fn flags(config: &crate::cli::Config, state: Option<&state::State>) -> String {
    let aflags =
        state.and_then(|s| s.erl_aflags.clone()).or_else(|| std::env::var("ERL_AFLAGS").ok()).unwrap_or_default();
    let vm_args = std::fs::read_to_string(config.runtime_dir.join("vm.args")).unwrap_or_default();
    let words: Vec<&str> = aflags
        .split_whitespace()
        .chain(vm_args.lines().filter(|l| !l.trim_start().starts_with('#')).flat_map(str::split_whitespace))
        .collect();
    let after = |flag: &str| words.windows(2).find(|w| w[0] == flag).map(|w| w[1].to_string());
    let proto = after("-proto_dist").map_or("inet_tcp (the default)".to_string(), |p| p);
    let range = match (after("inet_dist_listen_min"), after("inet_dist_listen_max")) {
        (Some(min), Some(max)) => format!("listen ports {min}-{max}"),
        (Some(min), None) => format!("listen ports from {min}"),
        _ => "listen port: any (no inet_dist_listen_min/max: a firewall must allow them all)".to_string(),
    };
    format!("-proto_dist {proto}; {range}")
}

fn local_vm(node: &NodeName, ip: IpAddr, mode: Reach, cookie: Option<&str>, deadline: Instant) -> (bool, String) {
    let at = SocketAddr::new(ip, mode.epmd_port);
    let (port, registered) = match (mode.port(ip, &node.alive, deadline), mode.dist_port) {
        (Ok(Some(port)), Some(_)) => {
            (port, format!("no epmd (--dist-port): the VM should listen on {}", SocketAddr::new(ip, port)))
        }
        (Ok(Some(port)), None) => (port, format!("{} is registered at epmd on {at}, port {port}", node.alive)),
        (Ok(None), _) => {
            return (false, format!("{} is not registered at epmd on {at}: is the VM running?", node.alive));
        }
        (Err(e), _) => return (false, format!("{e}: the VM is not running, or epmd is not on the node's address")),
    };
    let addr = SocketAddr::new(ip, port);
    if mode.tls {
        return match crate::dist::connect_port(addr, deadline) {
            Ok(()) => (true, format!("{registered}; listens (TLS distribution: the handshake is not attempted)")),
            Err(e) => (false, format!("{registered}; {e}")),
        };
    }
    let Some(cookie) = cookie else { return (false, format!("{registered}; no cookie to go further")) };
    match handshake::connect(addr, node, cookie, deadline) {
        Ok(conn) if conn.peer == node.to_string() => (true, format!("{registered}; accepts the cookie")),
        Ok(conn) => (false, format!("{registered}, but the VM there is {}, not {node}", conn.peer)),
        Err(e) => (false, format!("{registered}; {e}")),
    }
}

/// The peers as the boot finds them (one look, no waiting), each with its node name, and a line
/// saying what was asked and what came back.
fn find_peers(
    config: &crate::cli::Config,
    identity: &crate::source::Identity,
    node: &NodeName,
    started: Instant,
    deadline: Instant,
) -> (Vec<IpAddr>, Vec<String>, String) {
    let query = PeerQuery {
        mode: config.peers,
        name: identity.peer_query.as_deref(),
        platform: identity.platform,
        dns_server: config.dns_server,
        wait: 0,
        metadata_url: &config.metadata_url,
        self_ip: identity.ip,
        started,
        deadline,
    };
    let asked = match (config.peers, identity.peer_query.as_deref()) {
        (crate::cli::PeerMode::None, _) => "--peers none".to_string(),
        (crate::cli::PeerMode::Metadata, _) => "Rancher's self/service".to_string(),
        (_, Some(q)) if discovery::hostnames::is_srv_query(q) => format!("{q} (SRV)"),
        (_, Some(q)) => format!("{q} (A and AAAA)"),
        (_, None) => "no peer query (set --peer-query)".to_string(),
    };
    let ips = match discovery::discover(&query) {
        Ok(ips) => ips,
        Err(fail) => return (Vec::new(), Vec::new(), format!("{asked}: {fail}")),
    };
    let named: Vec<(IpAddr, String)> = match (config.name_by, identity.host_name.as_deref()) {
        (NameBy::Hostname, Some(own)) => discovery::hostnames::name_peers(
            own,
            identity.peer_query.as_deref(),
            &ips,
            identity.ip,
            config.dns_server,
            deadline,
        )
        .into_iter()
        .map(|(ip, host)| (ip, format!("{}@{host}", node.alive)))
        .collect(),
        _ => ips.iter().map(|ip| (*ip, crate::env::node_name(&node.alive, *ip))).collect(),
    };
    let text = if named.is_empty() {
        format!("{asked}: no other node (alone, or the query names nobody)")
    } else {
        format!("{asked}: {}", named.iter().map(|(ip, _)| erl::ntoa(*ip)).collect::<Vec<_>>().join(", "))
    };
    let (ips, names) = named.into_iter().unzip();
    (ips, names, text)
}

/// Every check of one peer, before `deadline`.
pub fn check_peer(
    ip: IpAddr,
    name: &str,
    us: &str,
    cookie: Option<&str>,
    mode: Reach,
    deadline: Instant,
) -> PeerReport {
    let report = |verdict: &str, detail: String, fix: &str| PeerReport {
        ip,
        node: name.to_string(),
        verdict: verdict.to_string(),
        detail,
        fix: fix.to_string(),
    };
    let Ok(target) = NodeName::parse(name) else {
        return report("bad name", format!("{name} is not a node name"), "check --node-basename and the peer query");
    };
    let port = match mode.port(ip, &target.alive, deadline) {
        Ok(Some(port)) => port,
        Ok(None) => {
            return report(
                "not registered",
                format!("{} is not registered at epmd on {}", target.alive, SocketAddr::new(ip, mode.epmd_port)),
                "its VM is not running, or runs under another name: check its NODE_NAME and --node-basename",
            );
        }
        Err(e) => return failed(report, &e),
    };
    let addr = SocketAddr::new(ip, port);
    if mode.tls {
        return match crate::dist::connect_port(addr, deadline) {
            Ok(()) => report(
                "reachable",
                format!("port {port} listens; TLS distribution: the handshake (certificates, cookie) is not attempted"),
                "",
            ),
            Err(e) => failed(report, &e),
        };
    }
    let Some(cookie) = cookie else {
        return report("no cookie", format!("port {port}; no cookie to go further"), "give --cookie-file");
    };
    let mut conn = match handshake::connect(addr, &target, cookie, deadline) {
        Ok(conn) => conn,
        Err(e) => return failed(report, &e),
    };
    if conn.peer != target.to_string() {
        return report(
            "other name",
            format!("the VM on {addr} is {}, not {name}", conn.peer),
            "the nodes name each other differently: use the same --name-by and --node-basename everywhere",
        );
    }
    let Ok(us_atom) = NodeName::parse(us) else { return report("ok", format!("port {port}"), "") };
    match rpc::call(&mut conn, "net_adm", "ping", vec![Term::Atom(us_atom.to_string())], deadline) {
        Ok(Term::Atom(answer)) if answer == "pong" => {
            report("ok", format!("port {port}, handshake ok, reaches this node back"), "")
        }
        Ok(Term::Atom(answer)) if answer == "pang" => report(
            "no way back",
            format!("port {port}, handshake ok, but it cannot connect to {us}"),
            "a one-way failure: this node's address is not reachable from that peer (a firewall in one direction, \
             or this node is named by an address its peers cannot reach)",
        ),
        Ok(other) => report("call failed", format!("net_adm:ping answered {other}"), "look at that node's logs"),
        Err(e) if e.failure == Failure::TimedOut => report(
            "no way back",
            format!("port {port}, handshake ok, but its ping of {us} did not answer in time"),
            "that peer cannot reach this node quickly: a firewall dropping packets towards this node?",
        ),
        Err(e) => failed(report, &e),
    }
}

/// The verdict and fix for a failed step.
fn failed(report: impl Fn(&str, String, &str) -> PeerReport, e: &Error) -> PeerReport {
    let detail = e.to_string();
    match (e.step, &e.failure) {
        (Step::Epmd, Failure::Refused) => report(
            "epmd refused",
            detail,
            "nothing listens on 4369 there: the VM is not running, or the address is wrong",
        ),
        (Step::Epmd, Failure::TimedOut) => {
            report("epmd timed out", detail, "a firewall or a network policy drops port 4369 between the two")
        }
        (Step::Epmd | Step::Connect, Failure::Unreachable) => report(
            "unreachable",
            detail,
            "no host has this address: a stale DNS record, a node that is gone, or a wrong network",
        ),
        (Step::Connect, Failure::Refused) => {
            report("port refused", detail, "the VM registered a port it no longer listens on: is it restarting?")
        }
        (Step::Connect, Failure::TimedOut) => report(
            "port timed out",
            detail,
            "a firewall or a network policy between the two drops the distribution port (open the listen range)",
        ),
        (Step::Handshake, Failure::Cookie) => {
            report("cookie", detail, "the cookie differs from this node's: check RELEASE_COOKIE/--cookie-file on both")
        }
        (Step::Handshake, Failure::Status(status)) if status == "not_allowed" => {
            report("not_allowed", detail, "that node allows only some nodes (net_kernel:allow/1)")
        }
        (Step::Handshake, Failure::Status(status)) if status == "alive" || status == "nok" => {
            report("name clash", detail, "another connection with the same name is up there; run again")
        }
        (_, Failure::TimedOut) => {
            report("timed out", detail, "the peer is overloaded or frozen; or give doctor more --timeout")
        }
        _ => report("failed", detail, "look at that node's logs"),
    }
}

fn summary(reports: &[PeerReport], facts: &[Fact]) -> String {
    let ok = reports.iter().filter(|r| r.verdict == "ok").count();
    let mut text = format!("{ok} of {} peer{} ok", reports.len(), if reports.len() == 1 { "" } else { "s" });
    let mut verdicts: Vec<&str> = reports.iter().map(|r| r.verdict.as_str()).filter(|v| *v != "ok").collect();
    // "reachable" (TLS) is listed like a problem would be, but is none: it is all that can be known.
    verdicts.sort_unstable();
    verdicts.dedup();
    for verdict in verdicts {
        let _ = write!(text, "; {} {verdict}", reports.iter().filter(|r| r.verdict == verdict).count());
    }
    let bad: Vec<&str> = facts.iter().filter(|f| !f.ok).map(|f| f.name).collect();
    if !bad.is_empty() {
        let _ = write!(text, "; this node: {} to look at", bad.join(", "));
    }
    text
}

fn text_report(facts: &[Fact], reports: &[PeerReport], summary: &str) -> String {
    let mut out = String::new();
    for f in facts {
        let _ = writeln!(out, "{:<9} {}{}", f.name, if f.ok { "" } else { "PROBLEM: " }, f.text);
    }
    for r in reports {
        let fix = if r.fix.is_empty() { String::new() } else { format!(" -> {}", r.fix) };
        let _ = writeln!(out, "{} {} {}: {}{fix}", erl::ntoa(r.ip), r.node, r.verdict, r.detail);
    }
    let _ = writeln!(out, "summary   {summary}");
    out
}

fn json_report(facts: &[Fact], reports: &[PeerReport], summary: &str, healthy: bool) -> String {
    let node: serde_json::Map<String, Value> =
        facts.iter().map(|f| (f.name.replace(' ', "_"), json!({ "ok": f.ok, "text": f.text }))).collect();
    let peers: Vec<Value> = reports
        .iter()
        .map(|r| json!({ "ip": erl::ntoa(r.ip), "node": r.node, "verdict": r.verdict, "detail": r.detail, "fix": r.fix }))
        .collect();
    format!("{:#}\n", json!({ "healthy": healthy, "this": node, "peers": peers, "summary": summary }))
}
