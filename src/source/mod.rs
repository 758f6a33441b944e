//! Who is this node: the sources of an identity, one file per platform, all of the same shape.
//!
//! A source answers four things (docs/platforms.md, "The contract of a source"): the node's IP (the
//! address its peers reach it on), its service (what the node's peers have in common), the peer
//! query (the DNS name whose A/AAAA records are the peers; `None` when the platform names none),
//! and extras exported as they are. It also says why (`evidence`), for the info line and
//! `print-env`, and it logs its decisions at `debug`. What it cannot learn is a [`Fail`] naming
//! the flag or variable that fixes it, never a name built from a wrong address.
//!
//! Each platform file has `identify(&Context) -> Result<Identity, Fail>` and, where a signal of
//! its own says it is there, `detect(&Context) -> Option<String>` (the evidence, for `--source
//! auto`, which [`detect`] runs in docs/platforms.md's order); Swarm and Compose share one look at
//! Docker's DNS ([`docker`]), which tells them apart. A platform named by `--source` (or
//! `RANCHER_BOOT_SOURCE`) is identified with no detection.
//!
//! This file applies the overrides, once, to whatever a source found: `--ip`, `--service` (where
//! the platform's DNS names services, the peer query follows it), `--peer-query`, and an inherited
//! `DNS_CLUSTER_QUERY` standing in for `--peer-query`; and `--name-by hostname`'s need of a FQDN.
//! Kubernetes' source reads `--service` itself: its query needs the namespace it found.
//!
//! It also maps `--source` to its [`Platform`] (a test binds the two enums) and makes the
//! [`Context`] a source reads. Left to the platform files: everything a platform's own signal,
//! variables and metadata say.

pub mod compose;
pub mod detect;
mod docker;
pub mod ecs;
pub mod fly;
pub mod kubernetes;
pub mod local;
pub mod nomad;
pub mod rancher;
pub mod swarm;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Instant;

use crate::cli::{Config, NameBy, PeerMode, Source};
use crate::exit::{Exit, Fail};
use crate::fail;

/// The platform that named the node; exported as `RANCHER_BOOT_PLATFORM` (its lower-case name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Rancher,
    Kubernetes,
    Ecs,
    Nomad,
    Fly,
    Swarm,
    Compose,
    Local,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::Rancher => "rancher",
            Platform::Kubernetes => "kubernetes",
            Platform::Ecs => "ecs",
            Platform::Nomad => "nomad",
            Platform::Fly => "fly",
            Platform::Swarm => "swarm",
            Platform::Compose => "compose",
            Platform::Local => "local",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who the node is, validated by its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub platform: Platform,
    pub ip: IpAddr,
    pub service: String,
    /// The DNS name whose A/AAAA records are the peers; `None`: this source names no query.
    pub peer_query: Option<String>,
    /// A FQDN that names this node, for `--name-by hostname`.
    pub host_name: Option<String>,
    /// Exported as they are (`STACK_NAME`, `CONTAINER_NAME`, ...).
    pub extras: Vec<(&'static str, String)>,
    /// Why: for the info line and `print-env` (`10.0.1.4 on eth1 is hello.2.x.appnet`).
    pub evidence: String,
}

/// What a source may read: the checked configuration, the environment and files (both
/// injectable, so that detection is tested without a platform), and the time it has.
#[allow(missing_debug_implementations)] // closures
pub struct Context<'a> {
    pub config: &'a Config,
    /// A variable of the environment rancher-boot was started with.
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
    /// The names of all its variables, for a source whose variable names are the user's (Nomad's
    /// port labels); their values are read through `env`.
    pub env_names: &'a dyn Fn() -> Vec<OsString>,
    /// The text of a file, `None` when it cannot be read.
    pub read_file: &'a dyn Fn(&Path) -> Option<String>,
    pub started: Instant,
    /// `--timeout` from the start.
    pub deadline: Instant,
}

fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

fn process_env_names() -> Vec<OsString> {
    std::env::vars_os().map(|(name, _)| name).collect()
}

fn real_file(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
impl<'a> Context<'a> {
    /// For tests: the environment and files given, started now, with no time left.
    pub(crate) fn injected(
        config: &'a Config,
        env: &'a dyn Fn(&str) -> Option<OsString>,
        read_file: &'a dyn Fn(&Path) -> Option<String>,
    ) -> Context<'a> {
        let now = Instant::now();
        Context { config, env, env_names: &Vec::new, read_file, started: now, deadline: now }
    }
}

impl<'a> Context<'a> {
    /// The real environment and file system.
    pub fn new(config: &'a Config, started: Instant) -> Context<'a> {
        Context {
            config,
            env: &process_env,
            env_names: &process_env_names,
            read_file: &real_file,
            started,
            deadline: started + config.timeout,
        }
    }

    /// A variable that is set, not empty and UTF-8.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).and_then(|v| v.into_string().ok()).filter(|v| !v.is_empty())
    }

    pub fn read(&self, path: &str) -> Option<String> {
        (self.read_file)(Path::new(path))
    }

    /// resolv.conf's nameservers (not `--dns-server`'s): what the platform set up.
    pub fn nameservers(&self) -> Vec<SocketAddr> {
        self.read("/etc/resolv.conf").map(|text| crate::dns::resolv_conf::parse(&text).nameservers).unwrap_or_default()
    }
}

/// The identity of this node: the source `--source` names, or the one [`detect`] finds, with the
/// overrides applied.
pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    let found = match named(ctx.config.source) {
        None => detect::detect(ctx)?,
        Some(platform) => identify_as(platform, ctx)?,
    };
    log::debug!("{} source: {} ({})", found.platform, found.ip, found.evidence);
    apply_overrides(found, ctx)
}

/// The platform `--source` names; `None` for `auto`.
fn named(source: Source) -> Option<Platform> {
    Some(match source {
        Source::Auto => return None,
        Source::Rancher => Platform::Rancher,
        Source::Kubernetes => Platform::Kubernetes,
        Source::Ecs => Platform::Ecs,
        Source::Nomad => Platform::Nomad,
        Source::Fly => Platform::Fly,
        Source::Swarm => Platform::Swarm,
        Source::Compose => Platform::Compose,
        Source::Local => Platform::Local,
    })
}

/// The source of `platform`, with no detection.
fn identify_as(platform: Platform, ctx: &Context<'_>) -> Result<Identity, Fail> {
    match platform {
        Platform::Rancher => rancher::identify(ctx),
        Platform::Kubernetes => kubernetes::identify(ctx),
        Platform::Ecs => ecs::identify(ctx),
        Platform::Nomad => nomad::identify(ctx),
        Platform::Fly => fly::identify(ctx),
        Platform::Swarm => swarm::identify(ctx),
        Platform::Compose => compose::identify(ctx),
        Platform::Local => local::identify(ctx),
    }
}

/// The peer query a platform's DNS derives from a service name, where it names services by
/// them (so `--service` changes both); `None` where the source's own rule stands (Fly keeps
/// `<app>.internal`, Kubernetes builds it itself, ECS and Nomad name none).
fn query_of_service(platform: Platform, service: &str) -> Option<String> {
    match platform {
        Platform::Rancher | Platform::Compose | Platform::Local => Some(service.to_string()),
        Platform::Swarm => Some(format!("tasks.{service}")),
        Platform::Kubernetes | Platform::Ecs | Platform::Nomad | Platform::Fly => None,
    }
}

/// `--ip`, `--service`, `--peer-query` (or an inherited `DNS_CLUSTER_QUERY`) over what the source
/// found; then `--name-by hostname`'s FQDN must be there.
pub fn apply_overrides(mut identity: Identity, ctx: &Context<'_>) -> Result<Identity, Fail> {
    let config = ctx.config;
    if let Some(ip) = config.ip {
        if ip.is_unspecified() {
            return Err(fail!(Exit::Usage, "cannot use --ip {ip}: it is unspecified"));
        }
        if ip != identity.ip {
            log::debug!("--ip {ip} given: not {}", identity.ip);
            identity.evidence = format!("--ip given; the source found {}", identity.evidence);
            identity.ip = ip;
        }
    }
    if let Some(service) = &config.service
        && *service != identity.service
    {
        log::debug!("--service {service} given: not {}", identity.service);
        identity.service = service.clone();
        if let Some(query) = query_of_service(identity.platform, service) {
            identity.peer_query = Some(query);
        }
    }
    if let Some(query) = &config.peer_query {
        identity.peer_query = Some(query.clone());
    } else if let Some(query) = ctx.var("DNS_CLUSTER_QUERY") {
        log::debug!("DNS_CLUSTER_QUERY {query} from the environment stands in for --peer-query");
        identity.peer_query = Some(query);
    }
    if config.name_by == NameBy::Hostname && identity.host_name.is_none() {
        return Err(fail!(
            Exit::Config,
            "cannot name the node by host name (--name-by hostname): the {} source knows no host name (FQDN) for this node; use --name-by ip \
             (RANCHER_BOOT_NAME_BY)",
            identity.platform
        ));
    }
    Ok(identity)
}

/// The `DNS_CLUSTER_QUERY` to export: exactly the name asked, only with `--peers dns`, and only
/// when the inherited environment does not set it (then it already is what was asked).
pub fn exported_query<'i>(identity: &'i Identity, ctx: &Context<'_>) -> Option<&'i str> {
    if ctx.config.peers != PeerMode::Dns || ctx.var("DNS_CLUSTER_QUERY").is_some() {
        return None;
    }
    identity.peer_query.as_deref()
}

/// The addresses of `name`, or `None` when it has none by `deadline` (detection's bounded look).
fn resolve(name: &str, server: Option<SocketAddr>, deadline: Instant) -> Option<BTreeSet<IpAddr>> {
    let query = crate::dns::QueryName::parse(name).ok()?;
    match crate::dns::lookup(&query, server, Some(deadline)) {
        Ok(found) if !found.is_empty() => Some(found),
        Ok(_) | Err(crate::dns::Miss::NoAddresses(_)) => None,
        Err(crate::dns::Miss::Failed(e)) => {
            log::debug!("looking up {name}: {e:#}");
            None
        }
    }
}

/// Addresses as text, space-separated.
fn list<'a>(ips: impl IntoIterator<Item = &'a IpAddr>) -> String {
    ips.into_iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::config;

    fn found(platform: Platform) -> Identity {
        Identity {
            platform,
            ip: "10.0.1.4".parse().unwrap(),
            service: "hello".into(),
            peer_query: Some(if platform == Platform::Swarm { "tasks.hello" } else { "hello" }.into()),
            host_name: None,
            extras: Vec::new(),
            evidence: "seen".into(),
        }
    }

    /// `apply_overrides` and `exported_query` for a command line and an inherited environment.
    fn applied(args: &[&str], vars: &[(&str, &str)], platform: Platform) -> Result<(Identity, Option<String>), String> {
        let mut line = vec!["rancher-boot"];
        line.extend(args);
        line.extend(["--", "/opt/app/bin/hello"]);
        let config = config(&line);
        let vars: Vec<(String, OsString)> = vars.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let read = |_: &Path| None;
        let ctx = Context::injected(&config, &env, &read);
        let identity = apply_overrides(found(platform), &ctx).map_err(|f| f.to_string())?;
        let exported = exported_query(&identity, &ctx).map(str::to_string);
        Ok((identity, exported))
    }

    #[test]
    fn the_service_override_carries_the_query_where_dns_names_services() {
        let (id, exported) = applied(&["--service", "web"], &[], Platform::Swarm).unwrap();
        assert_eq!((id.service.as_str(), id.peer_query.as_deref()), ("web", Some("tasks.web")));
        assert_eq!(exported.as_deref(), Some("tasks.web"));
        let (id, _) = applied(&["--service", "web"], &[], Platform::Compose).unwrap();
        assert_eq!(id.peer_query.as_deref(), Some("web"));
        // Fly keeps <app>.internal, ECS and Nomad name none: their sources' rule stands.
        assert_eq!(query_of_service(Platform::Fly, "web"), None);
        assert_eq!(query_of_service(Platform::Ecs, "web"), None);
    }

    #[test]
    fn peer_query_and_an_inherited_dns_cluster_query() {
        let (id, exported) = applied(&[], &[("DNS_CLUSTER_QUERY", "hello.svc")], Platform::Swarm).unwrap();
        assert_eq!(id.peer_query.as_deref(), Some("hello.svc"));
        assert_eq!(exported, None, "already in the environment");
        let (id, exported) =
            applied(&["--peer-query", "x.y", "--service", "web"], &[("DNS_CLUSTER_QUERY", "z")], Platform::Swarm)
                .unwrap();
        assert_eq!(id.peer_query.as_deref(), Some("x.y"));
        assert_eq!(exported, None);
        let (_, exported) = applied(&["--peer-query", "x.y"], &[], Platform::Rancher).unwrap();
        assert_eq!(exported.as_deref(), Some("x.y"));
        for peers in ["none", "metadata"] {
            assert_eq!(applied(&["--peers", peers], &[], Platform::Rancher).unwrap().1, None, "--peers {peers}");
        }
        // An empty variable is not set.
        let (id, _) = applied(&[], &[("DNS_CLUSTER_QUERY", "")], Platform::Swarm).unwrap();
        assert_eq!(id.peer_query.as_deref(), Some("tasks.hello"));
    }

    /// `cli::Source` and `Platform` are two enums kept in step: each `--source` value but `auto`
    /// names the platform of the same name, and every platform has its `--source` value.
    #[test]
    fn every_source_names_the_platform_of_its_name_and_every_platform_has_one() {
        use clap::ValueEnum;
        // Exhaustive on purpose: a new platform does not compile until it is listed here.
        let position = |platform: Platform| match platform {
            Platform::Rancher => 0,
            Platform::Kubernetes => 1,
            Platform::Ecs => 2,
            Platform::Nomad => 3,
            Platform::Fly => 4,
            Platform::Swarm => 5,
            Platform::Compose => 6,
            Platform::Local => 7,
        };
        let mut named_platforms = BTreeSet::new();
        for source in Source::value_variants() {
            let value = source.to_possible_value().unwrap();
            match named(*source) {
                None => assert_eq!(value.get_name(), "auto"),
                Some(platform) => {
                    assert_eq!(platform.name(), value.get_name());
                    assert!(named_platforms.insert(position(platform)), "{platform} named twice");
                }
            }
        }
        assert_eq!(named_platforms, (0..8).collect(), "a platform that no --source value names");
    }

    #[test]
    fn ip_override_and_name_by_hostname() {
        let (id, _) = applied(&["--ip", "10.9.9.9"], &[], Platform::Swarm).unwrap();
        assert_eq!(id.ip.to_string(), "10.9.9.9");
        assert!(id.evidence.starts_with("--ip given"), "{}", id.evidence);
        assert!(applied(&["--ip", "0.0.0.0"], &[], Platform::Swarm).unwrap_err().contains("--ip 0.0.0.0"));
        let err = applied(&["--name-by", "hostname"], &[], Platform::Swarm).unwrap_err();
        assert!(err.contains("--name-by hostname") && err.contains("swarm"), "{err}");
        assert_eq!(Platform::Compose.to_string(), "compose");
    }
}
