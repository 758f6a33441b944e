//! Pure: from the container's identity, its peers and the cookie to the variables rancher-boot
//! exports, and from those plus the inherited environment to the child's environment.
//!
//! The child's environment is built as a map and handed to the exec; rancher-boot never mutates
//! its own environment (`set_var` is unsound in any process that has or may start a thread, and
//! the child's environment is plainer as one value handed to the exec). Printing the exports (`print-env`, `--dry-run`) also lives here, with the one
//! rule about secrets: a variable whose name says it is secret is shown as `<redacted>`.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::path::Path;

use crate::cli::EnvFormat;
use crate::dist_flags::{self, DistFlags};
use crate::erl;
use crate::source::Identity;

/// Everything that goes into the exports besides the identity.
#[derive(Debug, Default)]
pub struct Extras<'a> {
    /// Other peers' addresses: sorted, unique, self excluded.
    pub peers: &'a [IpAddr],
    /// Where the rendered vm.args goes, with `--vm-args`.
    pub vm_args: Option<&'a Path>,
    /// The cookie, with `--cookie-file`.
    pub cookie: Option<&'a str>,
    /// The inherited ERL_AFLAGS, to append `-proto_dist inet6_tcp` to for an IPv6 node.
    pub erl_aflags: Option<&'a OsStr>,
    /// The inherited ERL_FLAGS and ERL_ZFLAGS: a `-proto_dist` there is one given already.
    pub erl_flags: Option<&'a OsStr>,
    pub erl_zflags: Option<&'a OsStr>,
    /// With `--name-by hostname`: each peer's host name, in the order of `peers`.
    pub peer_hosts: Option<&'a [String]>,
    /// With `--name-by hostname`: the FQDN that replaces the IP in the node name.
    pub name_host: Option<&'a str>,
    /// The peer query to export as `DNS_CLUSTER_QUERY` (see `source::exported_query`).
    pub dns_cluster_query: Option<&'a str>,
    /// `--dist tls`, `--dist-port`: the distribution flags for `ERL_AFLAGS`.
    pub dist: DistFlags<'a>,
    /// `--mesh`: the keeper's interval, exported as `RANCHER_BOOT_MESH_KEEPER=on` (a name of its
    /// own: `RANCHER_BOOT_MESH` is the option's variable, which a release must not inherit as if
    /// it had been given one).
    pub mesh: Option<std::time::Duration>,
}

/// rancher-boot's exports, by name. Values are text: every input was validated before.
pub type Exports = BTreeMap<&'static str, String>;

/// `basename@ip`, the address written as Erlang's `inet:ntoa/1` writes it (`hello@fd00::1`), so
/// that the names peers build for it match letter for letter.
pub fn node_name(basename: &str, ip: IpAddr) -> String {
    format!("{basename}@{}", erl::ntoa(ip))
}

/// The variables of docs/spec.md section 3.
pub fn exports(identity: &Identity, basename: &str, extras: &Extras<'_>) -> Exports {
    let node = match extras.name_host {
        Some(host) => format!("{basename}@{host}"),
        None => node_name(basename, identity.ip),
    };
    let peer_nodes: Vec<String> = match extras.peer_hosts {
        Some(hosts) => hosts.iter().map(|host| format!("{basename}@{host}")).collect(),
        None => extras.peers.iter().map(|ip| node_name(basename, *ip)).collect(),
    };
    let peer_ips: Vec<String> = extras.peers.iter().map(|ip| erl::ntoa(*ip)).collect();

    let mut out = Exports::new();
    out.insert("NODE_IP", erl::ntoa(identity.ip));
    out.insert("NODE_NAME", node.clone());
    out.insert("SERVICE_NAME", identity.service.clone());
    out.insert("RANCHER_IP", erl::ntoa(identity.ip));
    out.insert("RANCHER_SERVICE_NAME", identity.service.clone());
    out.insert("RELEASE_DISTRIBUTION", "name".to_string());
    // The names other launchers read: RabbitMQ's (which also needs to be told a name is long:
    // without RABBITMQ_USE_LONGNAME a dotted name stops the node) and ejabberd's (ejabberdctl
    // picks -name or -sname itself, by the dot). Cheap and unambiguous: always exported.
    out.insert("RABBITMQ_NODENAME", node.clone());
    out.insert("RABBITMQ_USE_LONGNAME", is_long_name(&node).to_string());
    out.insert("ERLANG_NODE", node.clone());
    out.insert("RELEASE_NODE", node);
    out.insert("PEER_IPS", peer_ips.join(" "));
    out.insert(
        "PEER_NODES_ERL",
        format!("[{}]", peer_nodes.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(",")),
    );
    out.insert("PEER_NODES", peer_nodes.join(" "));
    out.insert("RANCHER_BOOT_PLATFORM", identity.platform.to_string());
    if let Some(query) = extras.dns_cluster_query {
        out.insert("DNS_CLUSTER_QUERY", query.to_string());
    }
    if extras.mesh.is_some() {
        out.insert("RANCHER_BOOT_MESH_KEEPER", "on".to_string());
    }
    for (name, value) in &identity.extras {
        out.insert(name, value.clone());
    }
    if let Some(path) = extras.vm_args {
        let path = path.to_string_lossy().into_owned();
        out.insert("RELEASE_VM_ARGS", path.clone());
        out.insert("VMARGS_PATH", path);
    }
    if let Some(cookie) = extras.cookie {
        out.insert("RELEASE_COOKIE", cookie.to_string());
    }
    let text = |flags: Option<&OsStr>| flags.map(|f| f.to_string_lossy().into_owned());
    let (aflags, flags, zflags) = (text(extras.erl_aflags), text(extras.erl_flags), text(extras.erl_zflags));
    if let Some(flags) =
        dist_flags::erl_aflags(identity.ip, &extras.dist, aflags.as_deref(), flags.as_deref(), zflags.as_deref())
    {
        out.insert("ERL_AFLAGS", flags);
    }
    out
}

/// Whether `name@host` needs `-name` (long names): the host has a dot, or is an IPv6 address.
pub fn is_long_name(node: &str) -> bool {
    node.split_once('@').is_some_and(|(_, host)| host.contains('.') || host.contains(':'))
}

/// The inherited environment with the exports laid over it (rancher-boot's values win).
pub fn child_env(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    exports: &Exports,
) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = inherited.into_iter().collect();
    for (name, value) in exports {
        env.insert(OsString::from(name), OsString::from(value));
    }
    env
}

/// A variable whose value is never printed without `--show-secrets`.
pub fn is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["COOKIE", "SECRET", "PASSWORD", "TOKEN"].iter().any(|word| upper.contains(word))
}

/// The exports as `print-env` prints them, sorted by name.
pub fn format_exports(exports: &Exports, format: EnvFormat, show_secrets: bool) -> String {
    let shown = |name: &str, value: &str| -> String {
        if !show_secrets && is_secret(name) { "<redacted>".to_string() } else { value.to_string() }
    };
    match format {
        EnvFormat::Shell => exports
            .iter()
            .map(|(name, value)| format!("export {name}='{}'\n", shown(name, value).replace('\'', r"'\''")))
            .collect(),
        EnvFormat::Dotenv => exports.iter().map(|(name, value)| format!("{name}={}\n", shown(name, value))).collect(),
        EnvFormat::Json => {
            let object: serde_json::Map<String, serde_json::Value> =
                exports.iter().map(|(name, value)| (name.to_string(), shown(name, value).into())).collect();
            format!("{}\n", serde_json::Value::Object(object))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(ip: &str) -> Identity {
        Identity {
            platform: crate::source::Platform::Rancher,
            ip: ip.parse().unwrap(),
            service: "my-hello-service".into(),
            peer_query: Some("my-hello-service".into()),
            host_name: None,
            extras: vec![("STACK_NAME", "demo".into()), ("CONTAINER_NAME", "demo-my-hello-service-1".into())],
            evidence: "self/container of demo-my-hello-service-1".into(),
        }
    }

    #[test]
    fn the_exports_of_spec_section_3() {
        let peers: Vec<IpAddr> = vec!["10.42.72.199".parse().unwrap(), "10.42.240.66".parse().unwrap()];
        let extras =
            Extras { peers: &peers, vm_args: Some(Path::new("/tmp/rancher-boot/vm.args")), ..Extras::default() };
        let e = exports(&identity("10.42.96.65"), "hello", &extras);
        assert_eq!(e["NODE_IP"], "10.42.96.65");
        assert_eq!(e["NODE_NAME"], "hello@10.42.96.65");
        assert_eq!(e["RELEASE_NODE"], "hello@10.42.96.65");
        assert_eq!(e["RELEASE_DISTRIBUTION"], "name");
        assert_eq!(e["SERVICE_NAME"], "my-hello-service");
        assert_eq!(e["RANCHER_SERVICE_NAME"], "my-hello-service");
        assert_eq!(e["RANCHER_IP"], "10.42.96.65");
        assert_eq!(e["STACK_NAME"], "demo");
        assert_eq!(e["CONTAINER_NAME"], "demo-my-hello-service-1");
        assert_eq!(e["PEER_IPS"], "10.42.72.199 10.42.240.66");
        assert_eq!(e["PEER_NODES"], "hello@10.42.72.199 hello@10.42.240.66");
        assert_eq!(e["PEER_NODES_ERL"], "['hello@10.42.72.199','hello@10.42.240.66']");
        assert_eq!(e["RELEASE_VM_ARGS"], "/tmp/rancher-boot/vm.args");
        assert_eq!(e["VMARGS_PATH"], "/tmp/rancher-boot/vm.args");
        assert_eq!(e["RANCHER_BOOT_PLATFORM"], "rancher");
        assert_eq!(e["RABBITMQ_NODENAME"], "hello@10.42.96.65");
        assert_eq!(e["RABBITMQ_USE_LONGNAME"], "true");
        assert_eq!(e["ERLANG_NODE"], "hello@10.42.96.65");
        assert!(!e.contains_key("RELEASE_COOKIE"));
        assert!(!e.contains_key("ERL_AFLAGS"));
        assert!(!e.contains_key("DNS_CLUSTER_QUERY"), "only when asked to");
    }

    #[test]
    fn the_peer_query_and_a_host_name_when_given() {
        let extras = Extras {
            dns_cluster_query: Some("tasks.hello"),
            name_host: Some("hello-0.h.ns.svc.k8s"),
            ..Extras::default()
        };
        let e = exports(&identity("10.0.0.1"), "hello", &extras);
        assert_eq!(e["DNS_CLUSTER_QUERY"], "tasks.hello");
        assert_eq!(e["NODE_NAME"], "hello@hello-0.h.ns.svc.k8s");
        assert_eq!(e["RELEASE_NODE"], "hello@hello-0.h.ns.svc.k8s");
        assert_eq!(e["NODE_IP"], "10.0.0.1");
    }

    #[test]
    fn rabbitmq_is_told_whether_the_name_is_long() {
        assert!(is_long_name("rabbit@10.0.0.1") && is_long_name("rabbit@fd00::5") && is_long_name("rabbit@a.b"));
        assert!(!is_long_name("rabbit@rmq-1") && !is_long_name("rabbit"));
        let extras = Extras { name_host: Some("rmq-1"), ..Extras::default() };
        let e = exports(&identity("10.0.0.1"), "rabbit", &extras);
        assert_eq!(e["RABBITMQ_NODENAME"], "rabbit@rmq-1");
        assert_eq!(e["RABBITMQ_USE_LONGNAME"], "false");
        let e = exports(&identity("fd00::5"), "rabbit", &Extras::default());
        assert_eq!(e["RABBITMQ_USE_LONGNAME"], "true");
    }

    #[test]
    fn no_peers_is_an_empty_list() {
        let e = exports(&identity("10.0.0.1"), "hello", &Extras::default());
        assert_eq!(e["PEER_IPS"], "");
        assert_eq!(e["PEER_NODES"], "");
        assert_eq!(e["PEER_NODES_ERL"], "[]");
    }

    #[test]
    fn ipv6_nodes_get_inet6_distribution() {
        let e = exports(&identity("fd00::5"), "hello", &Extras::default());
        assert_eq!(e["NODE_NAME"], "hello@fd00::5");
        assert_eq!(e["ERL_AFLAGS"], "-proto_dist inet6_tcp");
        let extras = Extras { erl_aflags: Some(OsStr::new("+S 2")), ..Extras::default() };
        assert_eq!(exports(&identity("fd00::5"), "hello", &extras)["ERL_AFLAGS"], "+S 2 -proto_dist inet6_tcp");
    }

    #[test]
    fn exports_win_over_the_inherited_environment() {
        let e = exports(&identity("10.0.0.1"), "hello", &Extras::default());
        let env = child_env([("NODE_NAME".into(), "stale@".into()), ("HOME".into(), "/root".into())], &e);
        assert_eq!(env[OsStr::new("NODE_NAME")], "hello@10.0.0.1");
        assert_eq!(env[OsStr::new("HOME")], "/root");
    }

    #[test]
    fn secrets_are_redacted_unless_asked() {
        let extras = Extras { cookie: Some("s3cr3t-c00kie"), ..Extras::default() };
        let e = exports(&identity("10.0.0.1"), "hello", &extras);
        for format in [EnvFormat::Shell, EnvFormat::Dotenv, EnvFormat::Json] {
            let text = format_exports(&e, format, false);
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
            assert!(format_exports(&e, format, true).contains("s3cr3t-c00kie"));
        }
        assert!(is_secret("MY_API_TOKEN") && is_secret("db_password") && !is_secret("NODE_NAME"));
    }

    #[test]
    fn formats() {
        let mut e = Exports::new();
        e.insert("B", "it's".into());
        e.insert("A", "x y".into());
        assert_eq!(format_exports(&e, EnvFormat::Shell, false), "export A='x y'\nexport B='it'\\''s'\n");
        assert_eq!(format_exports(&e, EnvFormat::Dotenv, false), "A=x y\nB=it's\n");
        assert_eq!(format_exports(&e, EnvFormat::Json, false), "{\"A\":\"x y\",\"B\":\"it's\"}\n");
    }
}
