//! The Rancher source: one `GET {url}/self/container` as JSON, retried with jittered back-off
//! until the deadline, and the validation of what comes back; and Rancher's `self/service`, the
//! containers of the service, for `--peers metadata`.
//!
//! The metadata service is often not ready when a container starts (no DNS name yet, 404 until
//! the server reloads, an empty 200, the IP assigned late), so every failure short of the deadline
//! is retried. Detection (`--source auto`, step 5) asks no metadata: an explicit URL, a
//! resolv.conf naming Rancher's link-local DNS, or the metadata host name resolving within 250 ms.
//!
//! This file owns Rancher's side: which URL to ask (and the link-local fallback), what
//! `self/container` and `self/service` must hold, and the `primary_ip` rules. Left to others: the
//! request itself, its bounds and what its failures mean ([`crate::http`], shared with ECS), the
//! retry loop ([`crate::wait`], shared with every source and with `--wait-peers`), and which
//! addresses other nodes can reach ([`super::local::reachable`]).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use serde_json::Value;

use super::{Context, Identity, Platform};
use crate::cli::{DEFAULT_METADATA_URL, check_name};
use crate::exit::Fail;
use crate::http::{Client, escape_prefix};
use crate::wait::{AttemptError, retry};

/// What Rancher's own components use when the metadata name does not resolve.
pub const LINK_LOCAL_METADATA_URL: &str = "http://169.254.169.250/2016-07-29";

/// One metadata key to ask, `{base}/{key}`. With the default base URL, a name that does not
/// resolve sends the next attempt to the link-local address Rancher's own agents use, and back,
/// alternating until one answers. Shared by the identity and the `self/service` peer requests.
#[derive(Debug)]
pub struct Endpoint {
    primary: String,
    fallback: Option<String>,
    next_is_fallback: bool,
}

impl Endpoint {
    pub fn new(base_url: &str, key: &str) -> Endpoint {
        Endpoint {
            primary: format!("{base_url}/{key}"),
            fallback: (base_url == DEFAULT_METADATA_URL).then(|| format!("{LINK_LOCAL_METADATA_URL}/{key}")),
            next_is_fallback: false,
        }
    }

    /// One attempt (see [`Client::get_json`]), at whichever URL is next.
    pub fn get_json(&mut self, client: &Client, deadline: Instant) -> Result<Value, AttemptError> {
        let url = match (&self.fallback, self.next_is_fallback) {
            (Some(fallback), true) => fallback,
            _ => &self.primary,
        };
        let answer = client.get_json(url, deadline);
        self.next_is_fallback = self.fallback.is_some()
            && !self.next_is_fallback
            && matches!(answer, Err(AttemptError::NameNotResolved(_)));
        answer
    }
}

/// Step 5 of detection: an explicit metadata URL (flag or `RANCHER_METADATA_URL`), a resolv.conf
/// nameserver that is Rancher's `169.254.169.250`, or the metadata host name resolving within
/// [`DETECT_RESOLVE`]. No request goes to the metadata service here.
pub fn detect(ctx: &Context<'_>) -> Option<String> {
    let url = &ctx.config.metadata_url;
    if ctx.var("RANCHER_METADATA_URL").is_some() || url != DEFAULT_METADATA_URL {
        return Some(format!("metadata URL {url} given"));
    }
    let rancher_dns: std::net::IpAddr = [169, 254, 169, 250].into();
    if ctx.nameservers().iter().any(|ns| ns.ip() == rancher_dns) {
        return Some(format!("resolv.conf names Rancher's DNS {rancher_dns}"));
    }
    let host = metadata_host(url)?;
    // On Docker's DNS (127.0.0.11) the name is no Rancher's: Rancher 1.x gives its containers its
    // own DNS (169.254.169.250, above). Docker forwards a name it does not know to the host's
    // upstream resolver, so asking would send rancher-metadata.rancher.internal off the host on
    // every Swarm and Compose boot (and every `docker exec ... rancher-boot`). Only /etc/hosts is
    // read there; a Compose demo with a metadata stand-in sets RANCHER_METADATA_URL.
    if ctx.nameservers().first().is_some_and(|ns| ns.ip() == std::net::IpAddr::V4(super::docker::DOCKER_DNS)) {
        let found = std::fs::read_to_string(crate::dns::hosts::HOSTS)
            .map(|text| crate::dns::hosts::addresses(&text, host))
            .unwrap_or_default();
        if found.is_empty() {
            log::debug!(
                "not rancher: on Docker's DNS, and {host} is not in /etc/hosts (not asked: Docker would forward it)"
            );
            return None;
        }
        return Some(format!("{host} is in /etc/hosts: {}", super::list(&found)));
    }
    // As the client will find it (/etc/hosts, then DNS), but asked as the absolute name it is:
    // Docker copies the host's search list into containers, and each search domain would cost
    // every Swarm and Compose boot one more round trip (docs/spec.md section 13 allows one in all).
    let absolute = format!("{}.", host.trim_end_matches('.'));
    match crate::dns::host_addresses(&absolute, ctx.config.dns_server, Instant::now() + DETECT_RESOLVE) {
        Ok(found) if !found.is_empty() => Some(format!("{host} resolves to {}", super::list(&found))),
        Ok(_) | Err(crate::dns::Miss::NoAddresses(_)) => {
            log::debug!("not rancher: {host} does not resolve within {DETECT_RESOLVE:?}");
            None
        }
        Err(crate::dns::Miss::Failed(e)) => {
            log::debug!("not rancher: {host} does not resolve within {DETECT_RESOLVE:?}: {e:#}");
            None
        }
    }
}

/// How long detection waits for the metadata host name to resolve (docs/platforms.md, step 5).
pub const DETECT_RESOLVE: Duration = Duration::from_millis(250);

/// The host of an `http://host[:port]/path` URL (checked by the command line already).
fn metadata_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    if authority.starts_with('[') {
        return None; // an IPv6 literal: the URL was given, so detection never gets here
    }
    authority.split(':').next().filter(|h| !h.is_empty())
}

/// Asks `{base}/self/container` who this container is, until the deadline.
pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    let base_url = &ctx.config.metadata_url;
    let client = Client::new();
    let mut endpoint = Endpoint::new(base_url, "self/container");
    let identity = retry("metadata", ctx.started, ctx.deadline, |_| {
        parse_container(&endpoint.get_json(&client, ctx.deadline)?).map_err(AttemptError::Invalid)
    })?;
    log::debug!("metadata says: {identity:?}");
    Ok(Identity { evidence: format!("{} at {base_url}", identity.evidence), ..identity })
}

/// Validates a `self/container` answer (any API version: unknown fields are ignored).
pub fn parse_container(answer: &Value) -> anyhow::Result<Identity> {
    let text = |key: &str| -> anyhow::Result<Option<&str>> {
        match answer.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.strip_suffix('\n').unwrap_or(s))),
            Some(other) => Err(anyhow!("{key} is not a string: {}", escape_prefix(other.to_string().as_bytes()))),
        }
    };
    if !answer.is_object() && !answer.is_null() {
        anyhow::bail!("self/container is not an object: {}", escape_prefix(answer.to_string().as_bytes()));
    }
    let ip = text("primary_ip")?.ok_or_else(|| anyhow!("empty primary_ip"))?;
    let ip = check_ip(ip)?;
    let service =
        text("service_name")?.ok_or_else(|| anyhow!("empty service_name (is the container part of a service?)"))?;
    check_name(service).context("service_name")?;
    let stack = text("stack_name")?;
    if let Some(stack) = stack {
        check_name(stack).context("stack_name")?;
    }
    let container = text("name")?;
    if let Some(container) = container {
        check_name(container).context("name")?;
    }
    let mut extras = Vec::new();
    if let Some(stack) = stack {
        extras.push(("STACK_NAME", stack.to_string()));
    }
    if let Some(container) = container {
        extras.push(("CONTAINER_NAME", container.to_string()));
    }
    Ok(Identity {
        platform: Platform::Rancher,
        ip,
        service: service.to_string(),
        peer_query: Some(service.to_string()),
        host_name: None,
        extras,
        evidence: format!("self/container of {}", container.unwrap_or(service)),
    })
}

/// An address other nodes can reach: std's parser (no leading zeros, no short forms), and not
/// unspecified, loopback, link-local, multicast or broadcast. An IPv4-mapped IPv6 address
/// (`::ffff:10.0.0.1`) is judged, and returned, as the IPv4 address it maps: otherwise
/// `::ffff:127.0.0.1` would pass, and the node would needlessly speak IPv6 distribution.
pub fn check_ip(text: &str) -> anyhow::Result<IpAddr> {
    let ip: IpAddr =
        text.parse().map_err(|_| anyhow!("primary_ip {} is not an IP address", escape_prefix(text.as_bytes())))?;
    let ip = ip.to_canonical();
    if !super::local::reachable(ip) {
        anyhow::bail!(
            "primary_ip {ip} is not an address other nodes can reach (unspecified, loopback, link-local, multicast or broadcast)"
        );
    }
    Ok(ip)
}

// Rancher's `self/service`, for `--peers metadata`.
//
// A peer is a container whose `state` is `running` or `starting` and whose `health_state` is not
// `unhealthy` (a container without health check has none), with a valid `primary_ip` other than
// ours. Entries that are names instead of objects (the `2015-07-25` API lists names) or that hold
// no valid address are skipped with a debug line: one bad entry must not cost the others. The
// request goes through [`Client`] and [`Endpoint`], so it has the same bounds as the identity
// request, and with the default URL it alternates with the link-local address the same way.

/// One request: the peers `self/service` lists, this node excluded.
pub fn fetch_peers(
    client: &Client,
    endpoint: &mut Endpoint,
    self_ip: IpAddr,
    deadline: Instant,
) -> Result<Vec<IpAddr>, AttemptError> {
    let answer = endpoint.get_json(client, deadline);
    let found = peers(&answer?).map_err(AttemptError::Invalid)?;
    Ok(found.into_iter().filter(|ip| *ip != self_ip).collect())
}

/// The peer addresses of a `self/service` answer (any API version), sorted and unique.
pub fn peers(answer: &Value) -> anyhow::Result<BTreeSet<IpAddr>> {
    let Value::Object(service) = answer else {
        if answer.is_null() {
            anyhow::bail!("empty answer for self/service");
        }
        anyhow::bail!("self/service is not an object: {}", escape_prefix(answer.to_string().as_bytes()));
    };
    let containers = match service.get("containers") {
        None | Some(Value::Null) => return Ok(BTreeSet::new()),
        Some(Value::Array(containers)) => containers,
        Some(other) => {
            anyhow::bail!("self/service containers is not a list: {}", escape_prefix(other.to_string().as_bytes()))
        }
    };
    let mut found = BTreeSet::new();
    let mut names_only = 0;
    for entry in containers {
        match peer(entry) {
            Ok(ip) => {
                found.insert(ip);
            }
            Err(Skip::NameOnly) => names_only += 1,
            Err(Skip::Because(why)) => log::debug!("self/service: skipping {why}"),
        }
    }
    if names_only > 0 {
        log::debug!(
            "self/service lists {names_only} container{} by name only (API 2015-07-25); use a later API version \
             in --metadata-url to see their addresses",
            if names_only == 1 { "" } else { "s" }
        );
    }
    Ok(found)
}

enum Skip {
    NameOnly,
    Because(String),
}

/// The address of one `containers` entry, if it is a peer.
fn peer(entry: &Value) -> Result<IpAddr, Skip> {
    let Value::Object(container) = entry else {
        return Err(if entry.is_string() {
            Skip::NameOnly
        } else {
            Skip::Because(format!("an entry that is not a container: {}", escape_prefix(entry.to_string().as_bytes())))
        });
    };
    let field = |key: &str| container.get(key).and_then(Value::as_str).unwrap_or("");
    let name = escape_prefix(field("name").as_bytes());
    let state = field("state");
    if !matches!(state, "running" | "starting") {
        return Err(Skip::Because(format!("container {name}: state {}", escape_prefix(state.as_bytes()))));
    }
    if field("health_state") == "unhealthy" {
        return Err(Skip::Because(format!("container {name}: unhealthy")));
    }
    check_ip(field("primary_ip")).map_err(|e| Skip::Because(format!("container {name}: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_default_url_has_a_link_local_fallback() {
        let endpoint = Endpoint::new(DEFAULT_METADATA_URL, "self/service");
        assert_eq!(endpoint.fallback.as_deref(), Some("http://169.254.169.250/2016-07-29/self/service"));
        let endpoint = Endpoint::new("http://127.0.0.1:9/latest", "self/service");
        assert_eq!(endpoint.primary, "http://127.0.0.1:9/latest/self/service");
        assert!(endpoint.fallback.is_none());
    }

    #[test]
    fn a_full_answer() {
        let answer = json!({
            "primary_ip": "10.42.96.65", "service_name": "my-hello-service", "stack_name": "demo",
            "name": "demo-my-hello-service-1", "metadata_kind": "container", "ips": ["10.42.96.65"], "labels": {}
        });
        let id = parse_container(&answer).unwrap();
        assert_eq!(id.ip.to_string(), "10.42.96.65");
        assert_eq!(id.service, "my-hello-service");
        assert_eq!(
            id.extras,
            [("STACK_NAME", "demo".to_string()), ("CONTAINER_NAME", "demo-my-hello-service-1".to_string())]
        );
        assert_eq!(id.peer_query.as_deref(), Some("my-hello-service"));
    }

    #[test]
    fn empty_and_missing_answers() {
        for answer in [Value::Null, json!({}), json!({"primary_ip": ""}), json!({"primary_ip": null})] {
            assert_eq!(parse_container(&answer).unwrap_err().to_string(), "empty primary_ip");
        }
        let err = parse_container(&json!({"primary_ip": "10.0.0.1"})).unwrap_err();
        assert!(err.to_string().contains("service_name"), "{err}");
    }

    #[test]
    fn one_trailing_newline_is_trimmed_and_no_more() {
        let id = parse_container(&json!({"primary_ip": "10.0.0.1\n", "service_name": "web\n"})).unwrap();
        assert_eq!(id.service, "web");
        assert!(parse_container(&json!({"primary_ip": "10.0.0.1\n\n", "service_name": "web"})).is_err());
        assert!(parse_container(&json!({"primary_ip": " 10.0.0.1", "service_name": "web"})).is_err());
    }

    #[test]
    fn addresses_that_are_refused() {
        for bad in [
            "10.42.1",
            "999.1.1.1",
            "010.0.0.1",
            "0.0.0.0",
            "127.0.0.1",
            "169.254.1.1",
            "::",
            "::1",
            "fe80::1",
            "<html>",
            "10.0.0.1 x",
        ] {
            assert!(check_ip(bad).is_err(), "{bad}");
        }
        for good in ["10.42.96.65", "172.17.0.2", "fd00::5", "2001:db8::1"] {
            assert!(check_ip(good).is_ok(), "{good}");
        }
        assert_eq!(check_ip("::ffff:10.0.0.1").unwrap().to_string(), "10.0.0.1", "mapped addresses are unmapped");
    }

    #[test]
    fn bad_values_are_shown_escaped() {
        let err = check_ip("a\nb\u{1b}[31m").unwrap_err().to_string();
        assert!(err.contains(r"a\nb\u{1b}[31m"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn wrong_types_are_invalid_not_panics() {
        assert!(parse_container(&json!([1, 2])).is_err());
        assert!(parse_container(&json!({"primary_ip": 10, "service_name": "x"})).is_err());
        assert!(parse_container(&json!("10.0.0.1")).is_err());
    }

    fn shown(found: &BTreeSet<IpAddr>) -> String {
        found.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn running_and_starting_containers_that_are_not_unhealthy() {
        let answer = json!({
            "name": "web", "scale": 9, "metadata_kind": "service",
            "containers": [
                {"name": "c1", "primary_ip": "10.42.0.9", "state": "running", "health_state": "healthy"},
                {"name": "c2", "primary_ip": "10.42.0.2", "state": "starting", "health_state": "initializing"},
                {"name": "c3", "primary_ip": "10.42.0.3", "state": "running", "health_state": null},
                {"name": "c4", "primary_ip": "10.42.0.4", "state": "stopped", "health_state": "healthy"},
                {"name": "c5", "primary_ip": "10.42.0.5", "state": "running", "health_state": "unhealthy"},
                {"name": "c6", "primary_ip": "10.42.0.6", "state": "stopping"},
                {"name": "c7", "primary_ip": "10.42.1", "state": "running"},
                {"name": "c8", "primary_ip": "", "state": "running"},
                {"name": "c9", "state": "running"},
                {"name": "c10", "primary_ip": "10.42.0.10", "state": "running", "extra": {"x": 1}},
                {"name": "c11", "primary_ip": "10.42.0.9", "state": "running"},
                "demo-web-12",
                42,
                {"name": "c13", "primary_ip": "10.42.0.13"}
            ]
        });
        assert_eq!(shown(&peers(&answer).unwrap()), "10.42.0.2 10.42.0.3 10.42.0.9 10.42.0.10");
    }

    #[test]
    fn a_service_without_containers_has_no_peers() {
        assert!(peers(&json!({"name": "web"})).unwrap().is_empty());
        assert!(peers(&json!({"name": "web", "containers": null})).unwrap().is_empty());
        assert!(peers(&json!({"name": "web", "containers": []})).unwrap().is_empty());
        assert!(peers(&json!({"containers": ["web-1", "web-2"]})).unwrap().is_empty());
    }

    #[test]
    fn answers_that_are_not_a_service_are_invalid() {
        assert!(peers(&Value::Null).unwrap_err().to_string().contains("empty"));
        assert!(peers(&json!([1])).is_err());
        assert!(peers(&json!("web")).is_err());
        assert!(peers(&json!({"containers": {"a": 1}})).is_err());
    }
}
