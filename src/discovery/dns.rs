//! DNS peers: the A and AAAA records of one name, asked through hickory-resolver the way the C
//! library would ask (resolv.conf's nameservers, `search` list, `ndots`, `timeout`, `attempts`,
//! `edns0`; a truncated UDP answer is asked again over TCP).
//!
//! Each look builds everything afresh: resolv.conf is read again (in a container it can be
//! written after the entrypoint starts), and the resolver runs on a current-thread tokio runtime
//! of its own that is dropped before the look returns. Dropping a current-thread runtime drops
//! the tasks it still holds (their sockets close) and joins its blocking pool, which hickory
//! never uses anyway; the runtime installs no signal handler and touches no environment
//! variable. So nothing of it is left when the boot goes on to exec or, with `--init`, to fork.
//!
//! Deliberately left out: `/etc/hosts` (peers are a DNS question; in a container that file holds
//! the container itself), caching across looks, and any filtering of the answer: loopback
//! addresses are valid peers on one machine. Excluding this node is the caller's job.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::Name;
use hickory_resolver::{Resolver, system_conf};

use crate::exec::describe_io_error;

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The name to look up, checked once before any look.
#[derive(Debug)]
pub(super) struct QueryName {
    name: Name,
}

impl QueryName {
    /// A name with a trailing dot is absolute and is asked as it is; any other goes through the
    /// search list (as `ndots` says).
    pub(super) fn parse(text: &str) -> anyhow::Result<QueryName> {
        let shown = || text.escape_debug().to_string();
        if text.is_empty() || text == "." {
            anyhow::bail!("the peer query \"{}\" is not a DNS name", shown());
        }
        let name =
            Name::from_str(text).map_err(|e| anyhow!("the peer query \"{}\" is not a DNS name: {e}", shown()))?;
        Ok(QueryName { name })
    }
}

/// Why a look found no address.
#[derive(Debug)]
pub(super) enum Miss {
    /// Normal for the first container of a service: NXDOMAIN, no A/AAAA record, no resolv.conf.
    NoAddresses(String),
    /// The lookup itself failed: timeout, refused, unreadable configuration.
    Failed(anyhow::Error),
}

/// Every A and AAAA address of `name`. `server` replaces resolv.conf's nameservers (its search
/// list and options still apply); `deadline` bounds the look beyond the resolver's own timeouts.
pub(super) fn lookup(
    name: &QueryName,
    server: Option<SocketAddr>,
    deadline: Option<Instant>,
) -> Result<BTreeSet<IpAddr>, Miss> {
    let (config, options) = configure(server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Miss::Failed(anyhow!("cannot start the DNS runtime: {}", describe_io_error(&e))))?;
    let answer = runtime.block_on(async {
        let resolver =
            Resolver::builder_with_config(config, TokioRuntimeProvider::default()).with_options(options).build()?;
        let look = resolver.lookup_ip(name.name.clone());
        match deadline {
            None => look.await,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(50));
                tokio::time::timeout(left, look).await.unwrap_or(Err(NetError::Timeout))
            }
        }
    });
    // Explicit, because it is the point: the runtime and every task and socket of it end here.
    drop(runtime);

    match answer {
        Ok(answer) => {
            let found: BTreeSet<IpAddr> = answer.iter().collect();
            log::debug!(
                "{} resolves (as {}) to {}",
                name.name,
                answer.query().name(),
                found.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" ")
            );
            if found.is_empty() {
                return Err(Miss::NoAddresses("no A or AAAA record".into()));
            }
            Ok(found)
        }
        Err(e) if e.is_nx_domain() => Err(Miss::NoAddresses("NXDOMAIN".into())),
        Err(e) if e.is_no_records_found() => Err(Miss::NoAddresses("no A or AAAA record".into())),
        Err(e) => Err(Miss::Failed(anyhow!("looking up {}: {e}", name.name))),
    }
}

/// The resolver's configuration: resolv.conf as the C library reads it, `--dns-server` in place
/// of its nameservers.
fn configure(server: Option<SocketAddr>) -> Result<(ResolverConfig, ResolverOpts), Miss> {
    let text = match fs::read(RESOLV_CONF) {
        Ok(text) => Some(text),
        Err(e) if server.is_some() => {
            log::debug!(
                "{RESOLV_CONF}: {}; asking {} without a search list",
                describe_io_error(&e),
                server_text(server)
            );
            None
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Miss::NoAddresses(format!("no {RESOLV_CONF} yet")));
        }
        Err(e) => return Err(Miss::Failed(anyhow!("cannot read {RESOLV_CONF}: {}", describe_io_error(&e)))),
    };
    let (config, mut options) = match (text, server) {
        (Some(text), None) => parse(&text)?,
        (Some(mut text), Some(server)) => {
            // hickory refuses a resolv.conf without nameservers, and these are replaced anyway.
            text.extend_from_slice(b"\nnameserver 127.0.0.1\n");
            let (config, options) = parse(&text)?;
            let (domain, search, _) = config.into_parts();
            (ResolverConfig::from_parts(domain, search, vec![name_server(server)]), options)
        }
        (None, Some(server)) => {
            let mut options = ResolverOpts::default();
            options.edns0 = false; // as the C library does without `options edns0`
            (ResolverConfig::from_parts(None, Vec::new(), vec![name_server(server)]), options)
        }
        (None, None) => unreachable!("a missing resolv.conf without --dns-server returned above"),
    };
    // resolv.conf's `attempts` counts every try (default 2); hickory's counts the retries after the
    // first. Without this a silent server would hold the boot for 3 × `timeout` instead of 2 ×.
    options.attempts = options.attempts.saturating_sub(1);
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.use_hosts_file = ResolveHosts::Never;
    Ok((config, options))
}

fn parse(text: &[u8]) -> Result<(ResolverConfig, ResolverOpts), Miss> {
    system_conf::parse_resolv_conf(text).map_err(|e| Miss::Failed(anyhow!("cannot use {RESOLV_CONF}: {e}")))
}

/// One server, UDP first and TCP for truncated answers, on the port given.
fn name_server(server: SocketAddr) -> NameServerConfig {
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut connection| {
            connection.port = server.port();
            connection
        })
        .collect();
    NameServerConfig::new(server.ip(), true, connections)
}

fn server_text(server: Option<SocketAddr>) -> String {
    server.map(|s| s.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// The threads of this process that belong to a tokio runtime (named `tokio-runtime-w…`).
    fn runtime_threads() -> usize {
        fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.starts_with("tokio-runtime"))
            .count()
    }

    #[test]
    fn names_are_checked_once() {
        assert!(QueryName::parse("").is_err());
        assert!(QueryName::parse(".").is_err());
        assert!(QueryName::parse("a..b").is_err());
        assert!(!QueryName::parse("my-hello-service").unwrap().name.is_fqdn());
        assert!(QueryName::parse("web.demo.rancher.internal.").unwrap().name.is_fqdn());
    }

    #[test]
    fn the_given_server_and_port_are_used_for_udp_and_tcp() {
        let server = name_server("127.0.0.1:5353".parse().unwrap());
        assert_eq!(server.ip.to_string(), "127.0.0.1");
        assert_eq!(server.connections.len(), 2);
        assert!(server.connections.iter().all(|c| c.port == 5353));
    }

    #[test]
    fn a_server_that_never_answers_times_out_and_leaves_no_thread() {
        // A bound UDP socket that reads nothing: the look can only end by the deadline.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let name = QueryName::parse("peers.test.").unwrap();
        let before = runtime_threads();
        let started = Instant::now();
        let miss = lookup(&name, Some(silent.local_addr().unwrap()), Some(started + Duration::from_millis(300)));
        let elapsed = started.elapsed();
        assert!(matches!(miss, Err(Miss::Failed(_))), "{miss:?}");
        assert!(elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert_eq!(runtime_threads(), before);
        assert_eq!(before, 0);
    }
}
