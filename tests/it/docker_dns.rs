//! The Swarm and Compose sources, and detection's step 6, in a stand-in for a container: a network
//! namespace with the interfaces a Swarm task has (ingress, overlay, docker_gwbridge with the
//! default route, as veth pairs), a private /etc/resolv.conf naming 127.0.0.11, and dnsmasq on
//! 127.0.0.11:53 answering the PTR and A records Docker's embedded DNS would. Nothing leaves the
//! namespace.
//!
//! Needs (Debian): dnsmasq-base, iproute2, util-linux (`unshare`, `mount`); runs as root.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{BIN, assert_code, clean_env, run, stderr, stdout};

const FAKE_BIN: &str = env!("CARGO_BIN_EXE_fake-rancher-metadata");
const TASK: &str = "5xwjda19plzm0iq9g63obujy0";

/// A container's network, as Docker would give it.
#[derive(Default)]
struct Net {
    /// `(interface, address/prefix)`, in order; the same interface may come again.
    addresses: Vec<(&'static str, &'static str)>,
    /// dnsmasq's records (see [`ptr`], [`a`]) and any other option.
    records: Vec<String>,
    /// Records dnsmasq serves only from this long after the start (it is restarted with them).
    late: Option<(Duration, Vec<String>)>,
    /// A shell command started in the background before rancher-boot (and ended after it).
    daemon: Option<String>,
    /// resolv.conf's search list, as Docker copies the host's into a container (ndots 1 then).
    search: Option<&'static str>,
    /// Forward what the stand-in does not know to an upstream on 127.0.0.12, as Docker's DNS
    /// forwards to the host's resolver; the upstream logs each query as `UPSTREAM query[...]`.
    upstream: bool,
}

/// A Swarm task: ingress on eth0, the service's overlay on eth1, docker_gwbridge on eth2 with the
/// default route.
fn task_net() -> Net {
    Net {
        addresses: vec![("eth0", "10.0.0.5/24"), ("eth1", "10.0.1.4/24"), ("eth2", "172.20.0.4/16")],
        ..Net::default()
    }
}

/// dnsmasq's PTR record of `ip`.
fn ptr(ip: &str, name: &str) -> String {
    let ip: Ipv4Addr = ip.parse().expect("IPv4");
    let [a, b, c, d] = ip.octets();
    format!("--ptr-record={d}.{c}.{b}.{a}.in-addr.arpa,{name}")
}

/// dnsmasq's A records of `name` (and only those: no PTR comes with them).
fn a(name: &str, ips: &[&str]) -> Vec<String> {
    ips.iter().map(|ip| format!("--address=/{name}/{ip}")).collect()
}

const DNSMASQ: &str = "dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --local=/#/ --bind-interfaces \
                       --listen-address=127.0.0.11 --port=53";

/// The script run in the namespace: `$0` is rancher-boot, `$@` its arguments.
fn script(net: &Net) -> String {
    let mut s = String::from("set -e\nip link set lo up\n");
    let mut made: Vec<&str> = Vec::new();
    for (interface, address) in &net.addresses {
        if !made.contains(interface) {
            s += &format!("ip link add rbp{n} type veth peer name {interface}\n", n = made.len());
            s += &format!("ip link set rbp{n} up\nip link set {interface} up\n", n = made.len());
            made.push(interface);
        }
        s += &format!("ip addr add {address} dev {interface}\n");
    }
    if made.contains(&"eth2") {
        s += "ip route add default via 172.20.0.1 dev eth2\n";
    }
    s += r#"d=$(mktemp -d)
printf 'nameserver 127.0.0.11\n%s\noptions ndots:%s timeout:1 attempts:1\n' "$RB_SEARCH" "$RB_NDOTS" > "$d/resolv.conf"
mount --bind "$d/resolv.conf" /etc/resolv.conf
trap 'kill $(cat "$d/pid-daemon" 2>/dev/null) 2>/dev/null; wait; for f in "$d"/pid*; do kill $(cat "$f") 2>/dev/null; done; rm -rf "$d"' EXIT
"#;
    let dnsmasq = if net.upstream {
        s += "dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --local=/#/ --bind-interfaces \
              --listen-address=127.0.0.12 --port=53 --pid-file=\"$d/pid0\" --log-queries --log-facility=\"$d/upstream\"\n";
        DNSMASQ.replace("--local=/#/", "--server=127.0.0.12")
    } else {
        DNSMASQ.to_string()
    };
    s += &format!("{dnsmasq} --pid-file=\"$d/pid1\" {}\n", net.records.join(" "));
    if let Some((after, records)) = &net.late {
        s += &format!(
            "( sleep {:.3}; p=$(cat \"$d/pid1\"); kill $p; while kill -0 $p 2>/dev/null; do sleep 0.01; done; {DNSMASQ} --pid-file=\"$d/pid2\" {} ) &\n",
            after.as_secs_f64(),
            records.join(" ")
        );
    }
    if let Some(daemon) = &net.daemon {
        s += &format!("{daemon} >/dev/null 2>&1 & echo $! > \"$d/pid-daemon\"\n");
    }
    // dnsmasq's query log, when a test asked for one (--log-queries), after rancher-boot's stderr.
    s += "set +e\n\"$0\" \"$@\"\nstatus=$?\n[ -f \"$d/queries\" ] && cat \"$d/queries\" >&2\n[ -f \"$d/upstream\" ] && sed 's/^/UPSTREAM /' \"$d/upstream\" >&2\nexit $status\n";
    s
}

/// rancher-boot run with `args` in the namespace of `net`, with `vars` set; and how long it took.
fn boot(net: &Net, args: &[&str], vars: &[(&str, &str)]) -> (Output, Duration) {
    let mut command = Command::new("unshare");
    clean_env(&mut command);
    command.env("RANCHER_BOOT_TIMEOUT", "10s").envs(vars.iter().copied());
    match net.search {
        Some(search) => command.env("RB_SEARCH", format!("search {search}")).env("RB_NDOTS", "1"),
        None => command.env("RB_SEARCH", "").env("RB_NDOTS", "0"),
    };
    // A PID namespace too, that ends with unshare (--kill-child): no dnsmasq outlives a test.
    command.args(["--net", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "sh", "-c"]);
    command.arg(script(net)).arg(BIN);
    command.args(["--node-basename", "hello"]).args(args);
    let started = Instant::now();
    let output = run(&mut command);
    (output, started.elapsed())
}

/// `print-env --format dotenv` as a map.
fn exports(output: &Output) -> BTreeMap<String, String> {
    stdout(output)
        .lines()
        .filter_map(|line| line.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

const PRINT_ENV: [&str; 3] = ["print-env", "--format", "dotenv"];

fn print_env(net: &Net, extra: &[&str], vars: &[(&str, &str)]) -> (Output, BTreeMap<String, String>, Duration) {
    let args: Vec<&str> = extra.iter().copied().chain(PRINT_ENV).collect();
    let (output, took) = boot(net, &args, vars);
    let found = exports(&output);
    (output, found, took)
}

fn swarm(service: &str, network: &str) -> Net {
    let mut net = task_net();
    net.records.push(ptr("10.0.1.4", &format!("{service}.2.{TASK}.{network}")));
    net.records.extend(a(&format!("tasks.{service}"), &["10.0.1.3", "10.0.1.4", "10.0.1.5"]));
    net
}

#[test]
fn a_swarm_task_is_named_by_its_overlay_address_not_the_default_route() {
    let (output, env, _) = print_env(&swarm("hello", "appnet"), &[], &[]);
    assert_code(&output, 0);
    assert_eq!(env["NODE_NAME"], "hello@10.0.1.4", "{}", stderr(&output));
    assert_eq!(env["RANCHER_BOOT_PLATFORM"], "swarm");
    assert_eq!(env["SERVICE_NAME"], "hello");
    assert_eq!(env["DNS_CLUSTER_QUERY"], "tasks.hello");
    assert_eq!(env["PEER_IPS"], "10.0.1.3 10.0.1.5");
    assert!(
        stderr(&output).contains(&format!(
            "info: node hello@10.0.1.4 (swarm: 10.0.1.4 on eth1 is hello.2.{TASK}.appnet), service hello, 2 peers"
        )),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_stack_deployed_service_keeps_its_stack_prefix() {
    let (output, env, _) = print_env(&swarm("demo_hello", "demo_appnet"), &[], &[]);
    assert_code(&output, 0);
    assert_eq!(env["NODE_NAME"], "hello@10.0.1.4", "{}", stderr(&output));
    assert_eq!(env["SERVICE_NAME"], "demo_hello");
    assert_eq!(env["DNS_CLUSTER_QUERY"], "tasks.demo_hello");
    assert_eq!(env["PEER_IPS"], "10.0.1.3 10.0.1.5");
}

fn compose(name: &str) -> Net {
    let mut net = Net { addresses: vec![("eth0", "172.23.0.3/16")], ..Net::default() };
    net.records.push(ptr("172.23.0.3", name));
    net.records.extend(a("web", &["172.23.0.2", "172.23.0.3"]));
    net
}

#[test]
fn compose_v1_and_v2_names_give_the_service() {
    for name in ["demo_web_2.demo_default", "demo-web-2.demo_default"] {
        let (output, env, _) = print_env(&compose(name), &[], &[]);
        assert_code(&output, 0);
        assert_eq!(env["NODE_NAME"], "hello@172.23.0.3", "{name}: {}", stderr(&output));
        assert_eq!(env["RANCHER_BOOT_PLATFORM"], "compose", "{name}");
        assert_eq!(env["SERVICE_NAME"], "web", "{name}");
        assert_eq!(env["DNS_CLUSTER_QUERY"], "web", "{name}");
        assert_eq!(env["PEER_IPS"], "172.23.0.2", "{name}");
        assert!(stderr(&output).contains(&format!("(compose: 172.23.0.3 on eth0 is {name})")), "{}", stderr(&output));
    }
}

#[test]
fn a_ptr_of_another_shape_is_not_docker_and_is_not_waited_for() {
    // `docker run --name web --network rbtest-net`: a PTR, but no task's or compose container's.
    let mut net = Net { addresses: vec![("eth0", "172.23.0.3/16")], ..Net::default() };
    net.records.push(ptr("172.23.0.3", "web.rbtest-net"));
    let (output, env, took) = print_env(&net, &["--service", "web"], &[]);
    assert_code(&output, 0);
    assert_eq!(env["RANCHER_BOOT_PLATFORM"], "local", "{}", stderr(&output));
    assert_eq!(env["NODE_NAME"], "hello@172.23.0.3");
    assert!(took < Duration::from_millis(1500), "a definite answer is not retried: {took:?}");

    let (output, _) = boot(&net, &["--source", "compose", "--timeout", "1s", "print-env"], &[]);
    assert_code(&output, 78);
    assert!(stderr(&output).contains("--ip"), "{}", stderr(&output));
}

#[test]
fn with_two_overlays_the_one_whose_tasks_hold_the_address() {
    let mut net = task_net();
    net.addresses.push(("eth3", "10.0.2.4/24"));
    net.records.push(ptr("10.0.1.4", &format!("hello.2.{TASK}.front")));
    net.records.push(ptr("10.0.2.4", &format!("hello.2.{TASK}.back")));
    net.records.extend(a("tasks.hello", &["10.0.2.3", "10.0.2.4"]));
    let (output, env, _) = print_env(&net, &[], &[]);
    assert_code(&output, 0);
    assert_eq!(env["NODE_NAME"], "hello@10.0.2.4", "{}", stderr(&output));
    assert_eq!(env["PEER_IPS"], "10.0.2.3");

    // Both held: no guess; a 78 listing them, naming --ip.
    let mut both = task_net();
    both.addresses.push(("eth3", "10.0.2.4/24"));
    both.records.push(ptr("10.0.1.4", &format!("hello.2.{TASK}.front")));
    both.records.push(ptr("10.0.2.4", &format!("hello.2.{TASK}.back")));
    both.records.extend(a("tasks.hello", &["10.0.1.4", "10.0.2.4"]));
    let (output, _, _) = print_env(&both, &[], &[]);
    assert_code(&output, 78);
    let err = stderr(&output);
    assert!(err.contains("10.0.1.4 on eth1") && err.contains("10.0.2.4 on eth3") && err.contains("--ip"), "{err}");
}

#[test]
fn a_virtual_ip_on_an_interface_is_not_the_node() {
    // A /32 (a service VIP, a keepalived address) that even has a task-shaped PTR.
    let mut net = swarm("hello", "appnet");
    net.addresses.insert(0, ("eth0", "10.0.1.2/32"));
    net.records.push(ptr("10.0.1.2", &format!("hello.9.{TASK}.appnet")));
    let (output, env, _) = print_env(&net, &[], &[]);
    assert_code(&output, 0);
    assert_eq!(env["NODE_NAME"], "hello@10.0.1.4", "{}", stderr(&output));
}

#[test]
fn a_ptr_that_comes_late_is_waited_for() {
    // Seen on a real swarm: a task's own PTR is missing in its first moment.
    let mut net = task_net();
    net.records.extend(a("tasks.hello", &["10.0.1.3", "10.0.1.4"]));
    let mut late = net.records.clone();
    late.push(ptr("10.0.1.4", &format!("hello.2.{TASK}.appnet")));
    net.late = Some((Duration::from_millis(400), late));
    let (output, env, _) = print_env(&net, &[], &[]);
    assert_code(&output, 0);
    assert_eq!(env["RANCHER_BOOT_PLATFORM"], "swarm", "{}", stderr(&output));
    assert_eq!(env["NODE_NAME"], "hello@10.0.1.4");
}

#[test]
fn no_answer_from_the_embedded_dns_is_bounded_then_local_with_a_warning() {
    // PTR questions go to an address that never answers (the namespace's void): each times out.
    let mut net = task_net();
    net.records.push("--server=/in-addr.arpa/192.0.2.1".to_string());
    net.records.extend(a("tasks.hello", &["10.0.1.3", "10.0.1.4"]));
    let (output, env, took) = print_env(&net, &["--service", "hello"], &[]);
    assert_code(&output, 0);
    assert_eq!(env["RANCHER_BOOT_PLATFORM"], "local", "{}", stderr(&output));
    assert_eq!(env["NODE_NAME"], "hello@172.20.0.4");
    assert!(took < Duration::from_secs(5), "bounded: {took:?}");
    let err = stderr(&output);
    assert!(
        err.contains("warn: 172.20.0.4 on eth2 (the local source's choice) is not on the network of tasks.hello"),
        "{err}"
    );
}

#[test]
fn swarm_named_and_nothing_found_is_78_naming_ip() {
    let net = task_net(); // no PTR record at all
    let (output, took) = boot(&net, &["--source", "swarm", "--timeout", "1s", "print-env"], &[]);
    assert_code(&output, 78);
    assert!(took >= Duration::from_secs(1), "retried to the deadline: {took:?}");
    let err = stderr(&output);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("rancher-boot: error: cannot tell the node's address (--source swarm)"), "{err}");
    assert!(last.contains("--ip"), "{err}");
    assert_eq!(err.matches("warn:").count(), 1, "one warning for the repeated miss: {err}");
}

#[test]
fn overrides_win_and_the_query_follows_the_service() {
    let mut net = swarm("hello", "appnet");
    net.records.extend(a("tasks.other", &["10.0.1.8"]));
    let (output, env, _) = print_env(&net, &["--service", "other"], &[]);
    assert_code(&output, 0);
    assert_eq!((env["SERVICE_NAME"].as_str(), env["DNS_CLUSTER_QUERY"].as_str()), ("other", "tasks.other"));
    assert_eq!(env["PEER_IPS"], "10.0.1.8");

    // An inherited DNS_CLUSTER_QUERY is the query, and is not exported again.
    let (output, env, _) = print_env(&net, &[], &[("DNS_CLUSTER_QUERY", "tasks.other")]);
    assert_code(&output, 0);
    assert_eq!(env["PEER_IPS"], "10.0.1.8", "{}", stderr(&output));
    assert!(!env.contains_key("DNS_CLUSTER_QUERY"));

    // --peer-query over both; --ip over the address; no DNS_CLUSTER_QUERY without --peers dns.
    let (output, env, _) =
        print_env(&net, &["--peer-query", "tasks.hello", "--ip", "10.0.1.3"], &[("DNS_CLUSTER_QUERY", "x")]);
    assert_code(&output, 0);
    assert_eq!(env["NODE_NAME"], "hello@10.0.1.3");
    assert_eq!(env["PEER_IPS"], "10.0.1.4 10.0.1.5");
    let (output, env, _) = print_env(&net, &["--peers", "none"], &[]);
    assert_code(&output, 0);
    assert!(!env.contains_key("DNS_CLUSTER_QUERY"), "{env:?}");
}

#[test]
fn the_compose_demo_with_fake_metadata_is_still_rancher() {
    // docker/compose.yml and docker/e2e.sh: fake-rancher-metadata answers as the metadata host
    // name on the containers' network, and the demo names its URL (RANCHER_METADATA_URL): on
    // Docker's DNS detection does not ask for the metadata host name, which Docker would forward
    // off the host. Step 5 finds the URL before step 6 would read the (compose-shaped) PTR.
    let mut net = compose("demo_hello_1.demo_default");
    net.records.extend(a("rancher-metadata.rancher.internal", &["172.23.0.3"]));
    net.daemon = Some(format!("{FAKE_BIN} --listen 172.23.0.3:80 --mirror --service hello --stack demo"));
    let (output, env, _) = print_env(&net, &["--peers", "none"], &[]);
    assert_code(&output, 0);
    assert_eq!(env["RANCHER_BOOT_PLATFORM"], "compose", "no URL: the name is not asked {}", stderr(&output));
    let url = [("RANCHER_METADATA_URL", "http://rancher-metadata.rancher.internal/2016-07-29")];
    let (output, env, _) = print_env(&net, &["--peers", "none"], &url);
    assert_code(&output, 0);
    assert_eq!(env["RANCHER_BOOT_PLATFORM"], "rancher", "{}", stderr(&output));
    assert_eq!(env["NODE_NAME"], "hello@172.23.0.3");
    assert_eq!((env["SERVICE_NAME"].as_str(), env["STACK_NAME"].as_str()), ("hello", "demo"));
    assert!(stderr(&output).contains("(rancher: self/container of "), "{}", stderr(&output));
}

#[test]
fn auto_costs_no_round_trip_more_than_the_named_source_even_with_a_search_list() {
    // docs/spec.md section 13: on Docker, --source auto asks at most one round trip more than
    // --source swarm. On Docker's DNS it asks none: the metadata host name is not asked there
    // (Docker would forward it upstream), and Docker copies the host's search list into
    // containers, which would have multiplied it.
    let mut net = swarm("hello", "appnet");
    net.search = Some("corp.rancher-boot.test lab.rancher-boot.test");
    net.records.extend(["--log-queries".to_string(), "--log-facility=$d/queries".to_string()]);
    let queries = |source: &str| -> Vec<String> {
        let (output, env, _) = print_env(&net, &["--source", source], &[]);
        assert_code(&output, 0);
        assert_eq!(env["NODE_NAME"], "hello@10.0.1.4", "{}", stderr(&output));
        let err = stderr(&output);
        err.lines().filter_map(|line| line.split_once("query[").map(|(_, q)| q.to_string())).collect()
    };
    let named = queries("swarm");
    let auto = queries("auto");
    let extra: Vec<&String> = auto.iter().filter(|q| !named.contains(q)).collect();
    assert_eq!(extra, Vec::<&String>::new(), "auto asked more than swarm ({named:?})");
}

#[test]
fn a_named_source_that_finds_nothing_says_what_it_found_where_and_what_to_try() {
    // Issue 22, item 7: before, "no local address has a PTR record of the shape", and no more.
    let mut net = Net { addresses: vec![("eth0", "172.23.0.3/16")], ..Net::default() };
    net.records.push(ptr("172.23.0.3", "web.rbtest-net"));
    let (output, _) = boot(&net, &["--source", "swarm", "--timeout", "1s", "print-env"], &[]);
    assert_code(&output, 78);
    let err = stderr(&output);
    assert!(err.contains("at 127.0.0.11"), "the nameserver: {err}");
    assert!(err.contains("172.23.0.3 on eth0 is web.rbtest-net"), "what it found: {err}");
    assert!(err.contains("--source auto"), "what to try: {err}");
}

/// Issue 22, item 2: the PTR Docker's DNS answers for a Compose container is
/// `<container name>.<network's real name>` (moby: `buildEndpointDNSNames` puts the container
/// name first, `Network.ResolveIP` appends the network name); the container name is
/// `<project>_<service>_<n>` (v1) or `<project>-<service>-<n>` (v2, `api.Separator`), and a network
/// Compose creates is really named `<project>_<network>` (compose-go's normalize), `default` too.
#[test]
fn every_compose_name_shape_gives_its_service() {
    for (name, service) in [
        ("demo_hello_2.demo_default", "hello"),               // v1, default network
        ("demo_hello_2.demo_cluster", "hello"),               // v1, a named network
        ("demo-hello-2.demo_default", "hello"),               // v2, default network
        ("demo-hello-2.demo_cluster", "hello"),               // v2, a named network (docs/compose.md's example)
        ("my-app-api-server-1.my-app_default", "api-server"), // v2, dashes in project and service
        ("my_app-web-1.my_app_backend", "web"),               // v2, underscores in the project
        ("my_app-my_web-3.my_app_default", "my_web"),
        ("myapp_my-web_10.myapp_backend", "my-web"), // v1, a dash in the service
    ] {
        let mut net = Net { addresses: vec![("eth0", "172.23.0.3/16")], ..Net::default() };
        net.records.push(ptr("172.23.0.3", name));
        net.records.extend(a(service, &["172.23.0.2", "172.23.0.3"]));
        let (output, env, _) = print_env(&net, &[], &[]);
        assert_code(&output, 0);
        assert_eq!(env["RANCHER_BOOT_PLATFORM"], "compose", "{name}: {}", stderr(&output));
        assert_eq!(env["SERVICE_NAME"], service, "{name}");
        assert_eq!(env["PEER_IPS"], "172.23.0.2", "{name}");
    }
}

/// The Compose page (docs/compose.md, once the README's Compose section) says what Docker's DNS
/// answers; each name it shows in backticks of the container-name shape must be one rancher-boot
/// recognises (before: `demo-hello-2.cluster`).
#[test]
fn the_readme_compose_examples_are_recognised() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/compose.md")).expect("docs/compose.md");
    let names: Vec<&str> = readme
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| (word.starts_with("demo_hello_") || word.starts_with("demo-hello-")) && word.contains('.'))
        .collect();
    assert!(names.len() >= 2, "{names:?}");
    for name in names {
        let mut net = Net { addresses: vec![("eth0", "172.23.0.3/16")], ..Net::default() };
        net.records.push(ptr("172.23.0.3", name));
        let (output, env, _) = print_env(&net, &["--peers", "none"], &[]);
        assert_code(&output, 0);
        assert_eq!(env["RANCHER_BOOT_PLATFORM"], "compose", "docs/compose.md's {name}: {}", stderr(&output));
        assert_eq!(env["SERVICE_NAME"], "hello", "{name}");
    }
}

/// Issue 22, item 6: what a Swarm task's `--source auto` boot makes Docker's DNS forward to the
/// host's upstream resolver. The stand-in forwards what it does not know, as Docker's does
/// (moby's resolver forwards every A/AAAA/PTR it has no record of), to a counting upstream.
/// Before: the metadata host name (A and AAAA) and the PTRs of the gwbridge and ingress
/// addresses, on every boot and every `docker exec ... rancher-boot`.
#[test]
fn a_swarm_task_asks_the_upstream_resolver_nothing_it_can_avoid() {
    let upstream = |net: &Net| -> Vec<String> {
        let (output, env, _) = print_env(net, &[], &[]);
        assert_code(&output, 0);
        assert_eq!(env["RANCHER_BOOT_PLATFORM"], "swarm", "{}", stderr(&output));
        assert_eq!(env["NODE_NAME"], "hello@10.0.1.4");
        assert_eq!(env["PEER_IPS"], "10.0.1.3 10.0.1.5");
        stderr(&output)
            .lines()
            .filter(|l| l.starts_with("UPSTREAM ") && l.contains("query["))
            .map(|l| l.split_once("query[").map_or("", |(_, q)| q).to_string())
            .collect()
    };
    // Docker answers a name it knows with no AAAA as NODATA itself (moby: ResolveName finds the
    // name, so nothing is forwarded); dnsmasq needs to be told that the name is local.
    let known = "--local=/tasks.hello/".to_string();
    // No published port: the overlay (eth1) and docker_gwbridge (eth2, the default route).
    let mut net = swarm("hello", "appnet");
    net.addresses.remove(0);
    net.records.push(known.clone());
    net.upstream = true;
    assert_eq!(upstream(&net), Vec::<String>::new(), "forwarded upstream");

    // A published port adds the ingress interface (eth0): its PTR is still asked, the one question
    // left (Docker names no ingress address and rancher-boot cannot tell ingress from an overlay
    // without asking); never the metadata host or the gwbridge address.
    let mut net = swarm("hello", "appnet");
    net.records.push(known);
    net.upstream = true;
    let asked = upstream(&net);
    assert!(asked.iter().all(|q| q.starts_with("PTR] 5.0.0.10.in-addr.arpa")), "forwarded upstream: {asked:?}");
}
