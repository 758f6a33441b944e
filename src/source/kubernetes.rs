//! The Kubernetes source: what a kubelet gives every pod, read without API rights.
//!
//! - IP: `POD_IP` (the downward API's `status.podIP`, by convention), else the kubelet-managed
//!   `/etc/hosts` line of the pod's host name.
//! - Namespace: `POD_NAMESPACE`, else the service-account `namespace` file, else the first
//!   resolv.conf search domain of the shape `<ns>.svc.<zone>`.
//! - Zone: `CLUSTER_DOMAIN`, else from the search list, else `cluster.local`.
//! - Service: `--service`, else the pod's subdomain (a StatefulSet pod's /etc/hosts FQDN is
//!   `<pod>.<svc>.<ns>.svc.<zone>`); with neither there are no peers, and `SERVICE_NAME` is the
//!   host name.
//! - Peer query: `<svc>.<ns>.svc.<zone>.`, absolute, so that `ndots:5` sends no searches first.

use std::net::IpAddr;

use anyhow::anyhow;

use super::{Context, Identity, Platform};
use crate::cli::check_name;
use crate::dns::resolv_conf;
use crate::exit::{Exit, Fail};

/// The file every pod with a service account has.
pub const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
pub const DEFAULT_ZONE: &str = "cluster.local";

/// Step 4 of `--source auto`: `KUBERNETES_SERVICE_HOST` (the kubelet always injects it), or the
/// service-account `namespace` file.
pub fn detect(ctx: &Context<'_>) -> Option<String> {
    if let Some(host) = ctx.var("KUBERNETES_SERVICE_HOST") {
        return Some(format!("KUBERNETES_SERVICE_HOST is {host}"));
    }
    ctx.read(SERVICE_ACCOUNT_NAMESPACE).map(|_| format!("{SERVICE_ACCOUNT_NAMESPACE} exists"))
}

/// The pod's identity from what the kubelet gives it (see the top of this file).
pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    let host = nix::unistd::gethostname()
        .map_err(|e| crate::fail!(Exit::Config, "cannot read the host name: {}", e.desc()))?
        .to_string_lossy()
        .into_owned();
    let hosts = ctx.read("/etc/hosts");
    let (ip, ip_from) = match ctx.config.ip {
        Some(ip) => (ip, "--ip given".to_string()),
        None => pod_ip(ctx.var("POD_IP").as_deref(), hosts.as_deref(), &host)?,
    };
    let search = ctx.read("/etc/resolv.conf").map(|text| resolv_conf::parse(&text).search).unwrap_or_default();
    let namespace =
        namespace(ctx.var("POD_NAMESPACE").as_deref(), ctx.read(SERVICE_ACCOUNT_NAMESPACE).as_deref(), &search);
    let (zone, zone_from) = zone(ctx.var("CLUSTER_DOMAIN").as_deref(), &search);
    let fqdn = hosts.as_deref().and_then(|hosts| fqdn(hosts, &host));
    log::debug!(
        "kubernetes: pod {host}, {ip} from {ip_from}, namespace {}, zone {zone} from {zone_from}, FQDN {}",
        namespace.as_ref().map_or("unknown".to_string(), |(ns, from)| format!("{ns} from {from}")),
        fqdn.as_deref().unwrap_or("none")
    );
    let service = match (&ctx.config.service, fqdn.as_deref().and_then(subdomain)) {
        (Some(service), _) => Some((service.clone(), "--service")),
        (None, Some(sub)) => Some((sub.to_string(), "the pod's subdomain")),
        (None, None) => None,
    };
    let (service, peer_query, service_from) = match service {
        Some((service, from)) => {
            check_name(&service).map_err(|e| {
                Fail::new(Exit::Config, e.context(format!("cannot use {from} as the service name (set --service)")))
            })?;
            if namespace.is_none() {
                log::debug!(
                    "kubernetes: no namespace (POD_NAMESPACE, {SERVICE_ACCOUNT_NAMESPACE}, search list): \
                     the query is the bare service name {service}"
                );
            }
            let query = peer_query(&service, namespace.as_ref().map(|(ns, _)| ns.as_str()), &zone);
            (service, Some(query), from)
        }
        None => {
            log::info!(
                "kubernetes: pod {host} has no subdomain, so its headless service is not known; set --service \
                 (RANCHER_BOOT_SERVICE) to find peers"
            );
            (host.clone(), None, "the host name")
        }
    };
    Ok(Identity {
        platform: Platform::Kubernetes,
        ip,
        service,
        peer_query,
        host_name: fqdn,
        extras: Vec::new(),
        evidence: format!(
            "{ip_from}, pod {host}{}, service from {service_from}",
            namespace.as_ref().map(|(ns, _)| format!(" in {ns}")).unwrap_or_default()
        ),
    })
}

/// A search domain `<ns>.svc.<zone>` split into its namespace and zone.
fn namespace_search_domain(domain: &str) -> Option<(&str, &str)> {
    let domain = domain.trim_end_matches('.');
    let (ns, rest) = domain.split_once('.')?;
    let zone = rest.strip_prefix("svc.")?;
    (!ns.is_empty() && !zone.is_empty()).then_some((ns, zone))
}

/// The namespace and where it came from.
pub fn namespace(
    pod_namespace: Option<&str>,
    service_account: Option<&str>,
    search: &[String],
) -> Option<(String, &'static str)> {
    let given = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    given(pod_namespace)
        .map(|ns| (ns, "POD_NAMESPACE"))
        .or_else(|| given(service_account).map(|ns| (ns, "the service-account namespace file")))
        .or_else(|| {
            search
                .iter()
                .find_map(|d| namespace_search_domain(d))
                .map(|(ns, _)| (ns.to_string(), "the resolv.conf search list"))
        })
}

/// The cluster zone and where it came from.
pub fn zone(cluster_domain: Option<&str>, search: &[String]) -> (String, &'static str) {
    if let Some(zone) = cluster_domain.map(|z| z.trim().trim_end_matches('.')).filter(|z| !z.is_empty()) {
        return (zone.to_string(), "CLUSTER_DOMAIN");
    }
    let from_search = search.iter().find_map(|d| {
        let d = d.trim_end_matches('.');
        namespace_search_domain(d).map(|(_, zone)| zone).or_else(|| d.strip_prefix("svc."))
    });
    match from_search {
        Some(zone) => (zone.to_string(), "the resolv.conf search list"),
        None => (DEFAULT_ZONE.to_string(), "the default"),
    }
}

/// The kubelet's /etc/hosts line for `host_name`: its address and the names on it.
fn hosts_entry<'a>(hosts: &'a str, host_name: &str) -> Option<(IpAddr, Vec<&'a str>)> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_ascii_whitespace();
        let ip: IpAddr = words.next()?.parse().ok()?;
        let names: Vec<&str> = words.collect();
        let ours = names.iter().any(|n| n.eq_ignore_ascii_case(host_name) || n.split('.').next() == Some(host_name));
        (ours && !ip.is_loopback()).then_some((ip, names))
    })
}

/// The pod IP: `POD_IP`, else /etc/hosts; and the evidence.
pub fn pod_ip(pod_ip: Option<&str>, hosts: Option<&str>, host_name: &str) -> Result<(IpAddr, String), Fail> {
    if let Some(text) = pod_ip.map(str::trim).filter(|t| !t.is_empty()) {
        let ip = text.parse().map_err(|_| {
            Fail::new(
                Exit::Config,
                anyhow!("cannot use POD_IP {text:?}: it is not an IP address; wire it to status.podIP, or use --ip"),
            )
        })?;
        return Ok((ip, "POD_IP".to_string()));
    }
    match hosts.and_then(|hosts| hosts_entry(hosts, host_name)) {
        Some((ip, _)) => Ok((ip, format!("/etc/hosts line of {host_name} (POD_IP is not set)"))),
        None => Err(Fail::new(
            Exit::Config,
            anyhow!(
                "cannot find the node's address: POD_IP is not set and /etc/hosts has no line for {host_name:?}; set POD_IP from the downward API \
                 (fieldRef: status.podIP), or use --ip"
            ),
        )),
    }
}

/// The pod's FQDN from /etc/hosts (`<pod>.<svc>.<ns>.svc.<zone>` for a pod with a subdomain).
pub fn fqdn(hosts: &str, host_name: &str) -> Option<String> {
    let (_, names) = hosts_entry(hosts, host_name)?;
    names
        .iter()
        .find(|n| n.contains('.') && n.split('.').next() == Some(host_name))
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
}

/// The subdomain of a FQDN `<pod>.<svc>.<ns>.svc.<zone>`: `<svc>`.
pub fn subdomain(fqdn: &str) -> Option<&str> {
    let mut labels = fqdn.split('.');
    let (_pod, svc, _ns, svc_label) = (labels.next()?, labels.next()?, labels.next()?, labels.next()?);
    (svc_label == "svc" && !svc.is_empty()).then_some(svc)
}

/// The headless service's name: `<svc>.<ns>.svc.<zone>.`; the bare service name without a namespace.
pub fn peer_query(service: &str, namespace: Option<&str>, zone: &str) -> String {
    match namespace {
        Some(ns) => format!("{service}.{ns}.svc.{zone}."),
        None => service.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    const KUBELET_SEARCH: &[&str] = &["shop.svc.k8s.example", "svc.k8s.example", "k8s.example", "ec2.internal"];

    #[test]
    fn namespace_in_order_of_trust() {
        let list = search(KUBELET_SEARCH);
        assert_eq!(namespace(Some("prod"), Some("shop\n"), &list), Some(("prod".into(), "POD_NAMESPACE")));
        assert_eq!(namespace(None, Some("shop\n"), &list).map(|n| n.0), Some("shop".into()));
        assert_eq!(namespace(Some(""), None, &list), Some(("shop".into(), "the resolv.conf search list")));
        // No service-account files, no variable, no Kubernetes search list: none.
        assert_eq!(namespace(None, None, &search(&["example.com"])), None);
    }

    #[test]
    fn zone_from_the_variable_the_search_list_or_the_default() {
        let list = search(KUBELET_SEARCH);
        assert_eq!(zone(Some("corp.example."), &list), ("corp.example".into(), "CLUSTER_DOMAIN"));
        assert_eq!(zone(None, &list).0, "k8s.example");
        assert_eq!(zone(None, &search(&["svc.cluster.internal"])).0, "cluster.internal");
        assert_eq!(zone(None, &search(&["example.com"])), ("cluster.local".into(), "the default"));
    }

    const STATEFUL_HOSTS: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
        fe00::0\tip6-localnet\nfe00::1\tip6-allnodes\n10.244.1.7\thello-1.hello.shop.svc.k8s.example\thello-1\n";
    const DEPLOYMENT_HOSTS: &str =
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.244.2.9\thello-6d4cf56db6-x7k2p\n";

    #[test]
    fn pod_ip_from_the_variable_else_etc_hosts() {
        assert_eq!(pod_ip(Some("10.244.1.7"), None, "hello-1").unwrap().0.to_string(), "10.244.1.7");
        let (ip, why) = pod_ip(None, Some(STATEFUL_HOSTS), "hello-1").unwrap();
        assert_eq!((ip.to_string().as_str(), why.contains("/etc/hosts")), ("10.244.1.7", true));
        assert_eq!(
            pod_ip(Some(" "), Some(DEPLOYMENT_HOSTS), "hello-6d4cf56db6-x7k2p").unwrap().0.to_string(),
            "10.244.2.9"
        );
        let fail = pod_ip(None, Some("127.0.0.1 localhost hello-1\n"), "hello-1").unwrap_err();
        assert_eq!(fail.exit, Exit::Config);
        assert!(format!("{:#}", fail.error).contains("POD_IP"));
        let fail = pod_ip(Some("10.244.1.x"), None, "hello-1").unwrap_err();
        assert!(format!("{:#}", fail.error).contains("POD_IP"));
    }

    #[test]
    fn the_subdomain_comes_from_the_hosts_fqdn() {
        let fqdn = fqdn(STATEFUL_HOSTS, "hello-1").unwrap();
        assert_eq!(fqdn, "hello-1.hello.shop.svc.k8s.example");
        assert_eq!(subdomain(&fqdn), Some("hello"));
        assert_eq!(super::fqdn(DEPLOYMENT_HOSTS, "hello-6d4cf56db6-x7k2p"), None);
        assert_eq!(subdomain("hello-1.example.com"), None);
    }

    #[test]
    fn the_query_is_absolute_or_the_bare_service() {
        assert_eq!(peer_query("hello", Some("shop"), "k8s.example"), "hello.shop.svc.k8s.example.");
        assert_eq!(peer_query("hello", None, "cluster.local"), "hello");
    }
}
