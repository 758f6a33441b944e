//! `rancher-boot doctor` on a network of the test's own (tests/it/support/lan.rs): this node is a
//! real VM in the test's namespace; its peers are real VMs in namespaces of their own, found
//! through dnsmasq. A healthy cluster, then every classic break named by its verdict, in text
//! and in JSON: a peer with another cookie, a peer whose fixed distribution port a firewall
//! drops, an address with nothing behind it, a peer that we reach but that cannot reach us
//! back, and a DNS answer too large for UDP.
//!
//! Needs (Debian): erlang-nox, dnsmasq-base, iproute2, iptables; runs as root.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::peers::Dnsmasq;
use crate::support::lan::Lan;
use crate::support::vm::{self, COOKIE, Vm};
use crate::support::{assert_code, rancher_boot, run, stderr, stdout, tempdir};

/// The doctor as this node (`BASENAME@own ip`) runs it, asking `dns` for `peers.test`.
fn doctor(lan: &Lan, basename: &str, dns: &Dnsmasq, cookie: &std::path::Path, json: bool) -> Output {
    let mut command = rancher_boot();
    command
        .env_remove("ERL_EPMD_PORT")
        .args(["--source", "local", "--ip", &lan.own_ip().to_string(), "--node-basename", basename])
        .args(["--peer-query", "peers.test", "--dns-server", &dns.server()])
        .args(["doctor", "--timeout", "3s", "--cookie-file"])
        .arg(cookie);
    if json {
        command.arg("--json");
    }
    run(&mut command)
}

/// The line of the peer at `ip`.
#[track_caller]
fn line_of(output: &Output, ip: &str) -> String {
    let out = stdout(output);
    out.lines()
        .find(|l| l.starts_with(&format!("{ip} ")))
        .unwrap_or_else(|| panic!("no line for {ip}:\n{out}"))
        .to_string()
}

#[test]
fn every_broken_link_is_named_with_its_fix() {
    let dir = tempdir();
    let lan = Lan::new(4);
    let basename = format!("doc_{}", std::process::id());
    let cookie = vm::cookie_file(dir.path(), COOKIE);
    let node = |ip: std::net::IpAddr| format!("{basename}@{ip}");

    // This node, and a good peer.
    let _this = Vm::in_command(Command::new("erl"), &node(lan.own_ip()), COOKIE, &[], dir.path());
    let _good = Vm::in_command(lan.command(0, "erl"), &node(lan.ip(0)), COOKIE, &[], dir.path());
    let dns = Dnsmasq::start(&format!("{} peers.test\n", lan.ip(0)));

    let started = Instant::now();
    let output = doctor(&lan, &basename, &dns, &cookie, false);
    assert_code(&output, 0);
    let out = stdout(&output);
    assert!(line_of(&output, &lan.ip(0).to_string()).contains(" ok: "), "{out}");
    assert!(line_of(&output, &lan.ip(0).to_string()).contains("reaches this node back"), "{out}");
    assert!(out.contains("this vm   ") && out.contains("accepts the cookie"), "{out}");
    assert!(out.contains("summary   1 of 1 peer ok\n"), "{out}");
    assert!(!out.contains(COOKIE) && !stderr(&output).contains(COOKIE));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // The breaks: another cookie; a fixed port that a firewall drops; a peer that cannot reach
    // this node (its packets to our EPMD are refused); an address with nobody behind it.
    let _other_cookie =
        Vm::in_command(lan.command(1, "erl"), &node(lan.ip(1)), "another-cookie-entirely", &[], dir.path());
    let fixed = ["-kernel", "inet_dist_listen_min", "9100", "-kernel", "inet_dist_listen_max", "9100"];
    let _firewalled = Vm::in_command(lan.command(2, "erl"), &node(lan.ip(2)), COOKIE, &fixed, dir.path());
    lan.iptables(2, "-A INPUT -p tcp --dport 9100 -j DROP");
    let _one_way = Vm::in_command(lan.command(3, "erl"), &node(lan.ip(3)), COOKIE, &[], dir.path());
    lan.iptables(3, &format!("-A OUTPUT -d {} -p tcp --dport 4369 -j REJECT --reject-with tcp-reset", lan.own_ip()));
    let hosts: String = [lan.ip(0), lan.ip(1), lan.ip(2), lan.ip(3), lan.nobody(0)]
        .iter()
        .map(|ip| format!("{ip} peers.test\n"))
        .collect();
    dns.set_hosts(&hosts, "peers.test.", 5);

    let started = Instant::now();
    let output = doctor(&lan, &basename, &dns, &cookie, false);
    let took = started.elapsed();
    assert_code(&output, 1);
    let out = stdout(&output);
    assert!(line_of(&output, &lan.ip(0).to_string()).contains(" ok: "), "{out}");
    let cookie_line = line_of(&output, &lan.ip(1).to_string());
    assert!(
        cookie_line.contains(" cookie: ") && cookie_line.contains("check RELEASE_COOKIE/--cookie-file on both"),
        "{out}"
    );
    let port_line = line_of(&output, &lan.ip(2).to_string());
    assert!(
        port_line.contains("port timed out") && port_line.contains(":9100") && port_line.contains("firewall"),
        "{out}"
    );
    let back_line = line_of(&output, &lan.ip(3).to_string());
    assert!(back_line.contains("no way back") && back_line.contains("one-way"), "{out}");
    // Nobody answers ARP for it: the connect times out, or fails at once once the kernel knows.
    let nobody_line = line_of(&output, &lan.nobody(0).to_string());
    let nobody = if nobody_line.contains(" epmd timed out: ") { "epmd timed out" } else { "unreachable" };
    assert!(nobody_line.contains(&format!(" {nobody}: ")) && nobody_line.contains(":4369"), "{out}");
    let summary = ["1 cookie", "1 no way back", "1 port timed out"]
        .iter()
        .chain(&[if nobody == "unreachable" { "1 unreachable" } else { "1 epmd timed out" }])
        .copied()
        .collect::<std::collections::BTreeSet<_>>();
    let expected = format!("summary   1 of 5 peers ok; {}\n", summary.into_iter().collect::<Vec<_>>().join("; "));
    assert!(out.contains(&expected), "{expected}\n{out}");
    // The whole run within its --timeout (3 s), however the peers fail, with a margin.
    assert!(took < Duration::from_millis(4000), "{took:?}");

    // The same facts for scripts.
    let output = doctor(&lan, &basename, &dns, &cookie, true);
    assert_code(&output, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(json["healthy"], false);
    let verdict = |ip: std::net::IpAddr| {
        json["peers"].as_array().expect("peers").iter().find(|p| p["ip"] == ip.to_string().as_str()).expect("peer")["verdict"]
            .as_str()
            .expect("verdict")
            .to_string()
    };
    assert_eq!(
        [verdict(lan.ip(0)), verdict(lan.ip(1)), verdict(lan.ip(2)), verdict(lan.ip(3))],
        ["ok", "cookie", "port timed out", "no way back"]
    );
    assert!(["epmd timed out", "unreachable"].contains(&verdict(lan.nobody(0)).as_str()));
    assert_eq!(json["this"]["this_vm"]["ok"], true);
}

/// 60 addresses for the peer query: more than a UDP answer holds, so the look goes on over TCP;
/// every one is checked, side by side, within the one deadline.
#[test]
fn a_large_truncated_answer_is_checked_whole_within_the_deadline() {
    let dir = tempdir();
    let lan = Lan::new(1);
    let basename = format!("doc_{}", std::process::id());
    let cookie = vm::cookie_file(dir.path(), COOKIE);
    let _this = Vm::in_command(Command::new("erl"), &format!("{basename}@{}", lan.own_ip()), COOKIE, &[], dir.path());
    let _good = Vm::in_command(lan.command(0, "erl"), &format!("{basename}@{}", lan.ip(0)), COOKIE, &[], dir.path());
    let mut hosts = format!("{} peers.test\n", lan.ip(0));
    for n in 0..59 {
        hosts += &format!("{} peers.test\n", lan.nobody(n));
    }
    let dns = Dnsmasq::start(&hosts);
    let started = Instant::now();
    let output = doctor(&lan, &basename, &dns, &cookie, false);
    let took = started.elapsed();
    assert_code(&output, 1);
    let out = stdout(&output);
    assert!(line_of(&output, &lan.ip(0).to_string()).contains(" ok: "), "{out}");
    let lost = out.lines().filter(|l| l.contains(" epmd timed out: ") || l.contains(" unreachable: ")).count();
    assert_eq!(lost, 59, "{out}");
    assert!(out.contains("summary   1 of 60 peers ok; "), "{out}");
    assert!(took < Duration::from_millis(4000), "{took:?}");
}
