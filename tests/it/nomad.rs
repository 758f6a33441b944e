//! The Nomad source from an allocation's variables, with a real dnsmasq on loopback standing in
//! for Consul DNS (`<service>.service.consul`, named with `--peer-query`).

use serde_json::Value;

use crate::peers::Dnsmasq;
use crate::support::{assert_code, rancher_boot, run, stderr, stdout};

const ALLOC: [(&str, &str); 5] = [
    ("NOMAD_ALLOC_ID", "5b1e9b3c-5d3a-4a71-9d6b-1d2c3e4f5a6b"),
    ("NOMAD_JOB_NAME", "shop"),
    ("NOMAD_GROUP_NAME", "hello"),
    ("NOMAD_ALLOC_INDEX", "1"),
    ("NOMAD_IP_epmd", "192.0.2.20"),
];

fn boot(vars: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut command = rancher_boot();
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("NOMAD_") {
            command.env_remove(name);
        }
    }
    command.envs(vars.iter().copied());
    command.args(["--node-basename", "hello"]).args(args).args(["print-env", "--format", "json"]);
    run(&mut command)
}

fn exports(output: &std::process::Output) -> Value {
    assert_code(output, 0);
    serde_json::from_str(&stdout(output)).expect("print-env JSON")
}

#[test]
fn the_alloc_address_and_the_group_name_with_consul_dns_peers() {
    let dns = Dnsmasq::start("198.51.100.7 hello.service.consul\n198.51.100.8 hello.service.consul\n");
    let mut vars = ALLOC.to_vec();
    vars.push(("NOMAD_ALLOC_IP_epmd", "198.51.100.7"));
    vars.push(("NOMAD_ALLOC_IP_dist", "198.51.100.7"));
    let output = boot(&vars, &["--peer-query", "hello.service.consul", "--dns-server", &dns.server()]);
    let e = exports(&output);
    assert_eq!(e["RANCHER_BOOT_PLATFORM"], "nomad");
    assert_eq!(e["NODE_NAME"], "hello@198.51.100.7");
    assert_eq!(e["SERVICE_NAME"], "hello");
    assert_eq!(e["DNS_CLUSTER_QUERY"], "hello.service.consul");
    assert_eq!(e["PEER_NODES"], "hello@198.51.100.8", "{}", stderr(&output));
}

#[test]
fn without_a_peer_query_there_are_no_peers_and_one_info_line() {
    let output = boot(&ALLOC, &[]);
    let e = exports(&output);
    assert_eq!(e["NODE_NAME"], "hello@192.0.2.20");
    assert_eq!(e["PEER_NODES"], "");
    assert!(e.get("DNS_CLUSTER_QUERY").is_none());
    assert!(stderr(&output).contains("the nomad source names no peer query; set --peer-query"), "{}", stderr(&output));
}

#[test]
fn two_labels_of_different_addresses_are_a_78_listing_them_unless_ip_is_given() {
    let mut vars = ALLOC.to_vec();
    vars.push(("NOMAD_ALLOC_IP_dist", "198.51.100.7"));
    vars.push(("NOMAD_ALLOC_IP_admin", "203.0.113.9"));
    let output = boot(&vars, &[]);
    assert_code(&output, 78);
    let err = stderr(&output);
    assert!(
        err.contains("198.51.100.7 (NOMAD_ALLOC_IP_dist)") && err.contains("203.0.113.9 (NOMAD_ALLOC_IP_admin)"),
        "{err}"
    );
    assert!(err.contains("--ip"), "{err}");
    assert_eq!(exports(&boot(&vars, &["--ip", "203.0.113.9"]))["NODE_NAME"], "hello@203.0.113.9");
}
