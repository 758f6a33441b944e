//! The Kubernetes source, given what a kubelet gives a pod: the variables, `/etc/hosts`,
//! `/etc/resolv.conf` with the namespace search list and `ndots:5`, and the service-account
//! `namespace` file, each bind-mounted in a private mount and UTS namespace (so the pod has its
//! own host name); a real dnsmasq on loopback answers the headless service's records (in the
//! cluster zone `k8s.test`, not cluster.local) and their PTRs. Runs as root (`unshare`).

use std::process::Command;

use serde_json::Value;

use crate::peers::Dnsmasq;
use crate::support::{BIN, assert_code, run, stderr, stdout, tempdir, write_file};

const SEARCH: &str = "search shop.svc.k8s.test svc.k8s.test k8s.test\nnameserver 10.96.0.10\noptions ndots:5\n";
/// The headless service `hello` in namespace `shop`: the per-pod names first, so that they are the PTRs.
const RECORDS: &str = "10.244.1.5 hello-0.hello.shop.svc.k8s.test\n10.244.1.6 hello-1.hello.shop.svc.k8s.test\n\
    10.244.1.7 hello-2.hello.shop.svc.k8s.test\n10.244.1.5 hello.shop.svc.k8s.test\n10.244.1.6 hello.shop.svc.k8s.test\n\
    10.244.1.7 hello.shop.svc.k8s.test\n";

/// A pod: its host name, /etc/hosts, resolv.conf, service-account namespace (if any), variables.
struct Pod<'a> {
    host: &'a str,
    hosts: String,
    resolv_conf: &'a str,
    namespace_file: Option<&'a str>,
    vars: Vec<(&'a str, &'a str)>,
}

impl<'a> Pod<'a> {
    /// A Deployment's pod: `/etc/hosts` maps its host name only.
    fn deployment(ip: &str) -> Pod<'a> {
        Pod {
            host: "hello-6d4cf56db6-x7k2p",
            hosts: format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n{ip}\thello-6d4cf56db6-x7k2p\n"),
            resolv_conf: SEARCH,
            namespace_file: Some("shop"),
            vars: vec![("KUBERNETES_SERVICE_HOST", "10.96.0.1"), ("KUBERNETES_SERVICE_PORT", "443")],
        }
    }

    /// StatefulSet pod `hello-N` of service `hello`: `/etc/hosts` has its FQDN.
    fn stateful(host: &'a str, ip: &str) -> Pod<'a> {
        Pod {
            host,
            hosts: format!("127.0.0.1\tlocalhost\n{ip}\t{host}.hello.shop.svc.k8s.test\t{host}\n"),
            ..Pod::deployment(ip)
        }
    }

    fn boot(&self, dns: &Dnsmasq, args: &[&str]) -> std::process::Output {
        let dir = tempdir();
        let hosts = write_file(&dir.path().join("hosts"), &self.hosts);
        let resolv = write_file(&dir.path().join("resolv.conf"), self.resolv_conf);
        let namespace = self.namespace_file.unwrap_or("");
        let mut command = Command::new("unshare");
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if ["RANCHER", "RELEASE_", "KUBERNETES_", "POD_", "ERL_"].iter().any(|p| name.starts_with(p))
                || name == "CLUSTER_DOMAIN"
                || name == "DNS_CLUSTER_QUERY"
            {
                command.env_remove(&*name);
            }
        }
        crate::support::clean_env(&mut command); // and a runtime dir of its own
        command.envs(self.vars.iter().copied());
        command.args(["--mount", "--uts", "--propagation", "private", "sh", "-c"]);
        // /run is a fresh tmpfs, so that the service-account file exists in this namespace only.
        command.arg(
            r#"hostname "$0" && mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf &&
            mount -t tmpfs tmpfs /run && if [ -n "$3" ]; then
              mkdir -p /run/secrets/kubernetes.io/serviceaccount &&
              printf %s "$3" > /run/secrets/kubernetes.io/serviceaccount/namespace; fi && shift 3 && exec "$@""#,
        );
        command.arg(self.host).arg(&hosts).arg(&resolv).arg(namespace).arg(BIN);
        command.args(["--node-basename", "hello", "--dns-server", &dns.server()]).args(args);
        command.args(["print-env", "--format", "json"]);
        run(&mut command)
    }
}

fn exports(output: &std::process::Output) -> Value {
    assert_code(output, 0);
    serde_json::from_str(&stdout(output)).unwrap_or_else(|e| panic!("print-env JSON: {e}\n{}", stderr(output)))
}

fn with_var<'a>(mut pod: Pod<'a>, name: &'a str, value: &'a str) -> Pod<'a> {
    pod.vars.push((name, value));
    pod
}

#[test]
fn a_deployment_pod_with_its_headless_service() {
    let dns = Dnsmasq::start(RECORDS);
    let pod = with_var(with_var(Pod::deployment("10.244.1.6"), "POD_IP", "10.244.1.6"), "POD_NAMESPACE", "shop");
    let output = pod.boot(&dns, &["--service", "hello"]);
    let e = exports(&output);
    assert_eq!(e["RANCHER_BOOT_PLATFORM"], "kubernetes");
    assert_eq!(e["NODE_NAME"], "hello@10.244.1.6");
    assert_eq!(e["SERVICE_NAME"], "hello");
    assert_eq!(e["DNS_CLUSTER_QUERY"], "hello.shop.svc.k8s.test.");
    assert_eq!(e["PEER_NODES"], "hello@10.244.1.5 hello@10.244.1.7", "{}", stderr(&output));
    assert!(stderr(&output).contains("(kubernetes: POD_IP, pod hello-6d4cf56db6-x7k2p in shop"), "{}", stderr(&output));
}

#[test]
fn no_pod_ip_falls_back_to_etc_hosts_and_no_service_account_to_the_search_list() {
    let dns = Dnsmasq::start(RECORDS);
    let mut pod = Pod::deployment("10.244.1.7");
    pod.namespace_file = None;
    let output = pod.boot(&dns, &["--service", "hello"]);
    let e = exports(&output);
    assert_eq!(e["NODE_NAME"], "hello@10.244.1.7");
    assert_eq!(e["DNS_CLUSTER_QUERY"], "hello.shop.svc.k8s.test.");
    assert!(
        stderr(&output).contains("/etc/hosts line of hello-6d4cf56db6-x7k2p (POD_IP is not set)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_service_account_file_names_the_namespace_and_cluster_domain_the_zone() {
    let dns = Dnsmasq::start("10.244.9.9 hello.billing.svc.corp.example\n");
    let mut pod = with_var(Pod::deployment("10.244.1.7"), "CLUSTER_DOMAIN", "corp.example");
    pod.namespace_file = Some("billing\n");
    let e = exports(&pod.boot(&dns, &["--service", "hello"]));
    assert_eq!(e["DNS_CLUSTER_QUERY"], "hello.billing.svc.corp.example.");
    assert_eq!(e["PEER_NODES"], "hello@10.244.9.9");
}

#[test]
fn with_no_namespace_anywhere_the_query_is_the_bare_service_name() {
    let dns = Dnsmasq::start(RECORDS);
    let mut pod = Pod::deployment("10.244.1.7");
    pod.namespace_file = None;
    pod.resolv_conf = "nameserver 10.96.0.10\n";
    let e = exports(&pod.boot(&dns, &["--service", "hello", "--peers", "none"]));
    assert_eq!(e["NODE_NAME"], "hello@10.244.1.7");
    let e = exports(&pod.boot(&dns, &["--service", "hello"]));
    assert_eq!(e["DNS_CLUSTER_QUERY"], "hello");
}

#[test]
fn without_service_or_subdomain_there_are_no_peers_and_an_info_line_naming_service() {
    let dns = Dnsmasq::start(RECORDS);
    let output = with_var(Pod::deployment("10.244.1.6"), "POD_IP", "10.244.1.6").boot(&dns, &[]);
    let e = exports(&output);
    assert_eq!(e["SERVICE_NAME"], "hello-6d4cf56db6-x7k2p");
    assert_eq!(e["PEER_NODES"], "");
    assert!(e.get("DNS_CLUSTER_QUERY").is_none());
    let err = stderr(&output);
    assert!(err.contains("headless service is not known; set --service"), "{err}");
}

#[test]
fn a_statefulset_pod_by_ip_finds_its_service_from_the_subdomain() {
    let dns = Dnsmasq::start(RECORDS);
    let e = exports(&with_var(Pod::stateful("hello-0", "10.244.1.5"), "POD_IP", "10.244.1.5").boot(&dns, &[]));
    assert_eq!(e["NODE_NAME"], "hello@10.244.1.5");
    assert_eq!(e["SERVICE_NAME"], "hello");
    assert_eq!(e["PEER_NODES"], "hello@10.244.1.6 hello@10.244.1.7");
}

#[test]
fn a_statefulset_pod_by_hostname_names_itself_and_its_peers_by_host_name() {
    let dns = Dnsmasq::start(RECORDS);
    let pod = Pod::stateful("hello-1", "10.244.1.6");
    let output = pod.boot(&dns, &["--name-by", "hostname"]);
    let e = exports(&output);
    assert_eq!(e["NODE_NAME"], "hello@hello-1.hello.shop.svc.k8s.test");
    assert_eq!(e["RELEASE_NODE"], "hello@hello-1.hello.shop.svc.k8s.test");
    assert_eq!(e["NODE_IP"], "10.244.1.6");
    assert_eq!(
        e["PEER_NODES"],
        "hello@hello-0.hello.shop.svc.k8s.test hello@hello-2.hello.shop.svc.k8s.test",
        "{}",
        stderr(&output)
    );
    assert_eq!(
        e["PEER_NODES_ERL"],
        "['hello@hello-0.hello.shop.svc.k8s.test','hello@hello-2.hello.shop.svc.k8s.test']"
    );
    assert_eq!(e["PEER_IPS"], "10.244.1.5 10.244.1.7");
}

#[test]
fn name_by_hostname_without_a_fqdn_is_a_78() {
    let dns = Dnsmasq::start(RECORDS);
    let output = Pod::deployment("10.244.1.6").boot(&dns, &["--service", "hello", "--name-by", "hostname"]);
    assert_code(&output, 78);
    assert!(stderr(&output).contains("--name-by hostname"), "{}", stderr(&output));
}

#[test]
fn a_pod_without_pod_ip_or_hosts_line_is_a_78_naming_pod_ip() {
    let dns = Dnsmasq::start(RECORDS);
    let mut pod = Pod::deployment("10.244.1.6");
    pod.hosts = "127.0.0.1\tlocalhost\n".into();
    let output = pod.boot(&dns, &["--service", "hello"]);
    assert_code(&output, 78);
    assert!(stderr(&output).contains("POD_IP is not set"), "{}", stderr(&output));
}

/// Issue 22, item 1: an SRV peer query by host name, with `--wait-peers`, is asked as SRV (it
/// waited out `--timeout` asking A/AAAA of the SRV name, then exited 69).
#[test]
fn an_srv_query_by_hostname_with_wait_peers_boots_at_once() {
    let srv: Vec<String> = (0..3)
        .map(|n| format!("--srv-host=_epmd._tcp.hello.shop.svc.k8s.test,hello-{n}.hello.shop.svc.k8s.test,4369"))
        .collect();
    let srv: Vec<&str> = srv.iter().map(String::as_str).collect();
    let dns = Dnsmasq::start_with(RECORDS, &srv);
    for wait in ["0", "2"] {
        let pod = Pod::stateful("hello-1", "10.244.1.6");
        let output = pod.boot(
            &dns,
            &[
                "--name-by",
                "hostname",
                "--peer-query",
                "_epmd._tcp.hello.shop.svc.k8s.test.",
                "--wait-peers",
                wait,
                "--timeout",
                "5s",
            ],
        );
        let e = exports(&output);
        assert_eq!(
            e["PEER_NODES"],
            "hello@hello-0.hello.shop.svc.k8s.test hello@hello-2.hello.shop.svc.k8s.test",
            "--wait-peers {wait}: {}",
            stderr(&output)
        );
        assert_eq!(e["PEER_IPS"], "10.244.1.5 10.244.1.7");
    }
}
