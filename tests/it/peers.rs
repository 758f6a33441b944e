//! Peers at boot (docs/spec.md section 5; docs/faults.md 11–14): DNS against a real dnsmasq on loopback, metadata
//! against the in-process server, and two real Erlang VMs that must be connected when the second
//! one's boot completes.
//!
//! Needs (Debian): dnsmasq-base, erlang-nox, util-linux (`unshare`, `mount`); runs as root, because
//! the resolv.conf tests bind-mount their own file over /etc/resolv.conf in a private mount
//! namespace.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    MetadataServer, Reply, assert_code, rancher_boot, run, run_within, stderr, stdout, tempdir, wait_for,
};

/// Generous: CI machines are slow and busy; every wait below polls and ends as soon as it can.
const READY: Duration = Duration::from_secs(20);

/// A dnsmasq answering only from a hosts file (NXDOMAIN for everything else), on loopback.
pub(crate) struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    hosts: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// On 127.0.0.1, a free port.
    pub(crate) fn start(hosts: &str) -> Dnsmasq {
        Dnsmasq::start_with(hosts, &[])
    }

    /// On 127.0.0.1, a free port, with more of dnsmasq's options (`--srv-host=...`).
    pub(crate) fn start_with(hosts: &str, options: &[&str]) -> Dnsmasq {
        Dnsmasq::start_at(Ipv4Addr::LOCALHOST.into(), hosts, options)
    }

    /// On `ip` (one of this namespace's: a `Lan`'s own address, for hosts in its namespaces), a
    /// free port.
    pub(crate) fn start_at(ip: IpAddr, hosts: &str, options: &[&str]) -> Dnsmasq {
        for _ in 0..5 {
            let addr = SocketAddr::new(ip, free_port());
            if let Some(server) = Dnsmasq::try_start(addr, hosts, options) {
                return server;
            }
        }
        panic!("dnsmasq did not start on any free port");
    }

    /// On `addr`, or `None` if that address cannot be had (taken between our probe and its bind).
    fn try_start(addr: SocketAddr, hosts: &str, options: &[&str]) -> Option<Dnsmasq> {
        let dir = tempdir();
        let hosts_path = dir.path().join("hosts");
        let log = dir.path().join("dnsmasq.log");
        fs::write(&hosts_path, hosts).expect("write hosts file");
        let child = Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--local=/#/",
                "--bind-interfaces",
                "--log-facility=-",
                "--log-queries",
                "--pid-file=",
            ])
            .arg(format!("--listen-address={}", addr.ip()))
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--addn-hosts={}", hosts_path.display()))
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("dnsmasq log file"))
            .spawn()
            .expect("start dnsmasq (Debian package dnsmasq-base)");
        let mut server = Dnsmasq { child, addr, hosts: hosts_path, log, _dir: dir };
        let end = Instant::now() + READY;
        loop {
            if udp_query(addr, "ready.check.").is_some() {
                return Some(server);
            }
            if server.child.try_wait().expect("dnsmasq status").is_some() {
                eprintln!("dnsmasq on {addr} exited:\n{}", server.log());
                return None;
            }
            assert!(Instant::now() < end, "dnsmasq on {addr} not answering after {READY:?}:\n{}", server.log());
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn server(&self) -> String {
        self.addr.to_string()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Replaces the hosts file and waits until `name` answers with `count` A records.
    pub(crate) fn set_hosts(&self, hosts: &str, name: &str, count: u16) {
        let next = self.hosts.with_extension("next");
        fs::write(&next, hosts).expect("write hosts file");
        fs::rename(&next, &self.hosts).expect("replace hosts file");
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP dnsmasq");
        wait_for("dnsmasq to reload its hosts", READY, || {
            udp_query(self.addr, name).is_some_and(|(_, answers)| answers == count)
        });
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for TCP and UDP on every address (bound, then released).
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("0.0.0.0:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// One A query over UDP without EDNS, as a plain stub resolver sends it: `(truncated, answers)`.
fn udp_query(server: SocketAddr, name: &str) -> Option<(bool, u16)> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    socket.send_to(&query, server).ok()?;
    let mut answer = [0u8; 4096];
    let (len, _) = socket.recv_from(&mut answer).ok()?;
    (len >= 12 && answer[..2] == [0x12, 0x34])
        .then(|| (answer[2] & 0x02 != 0, u16::from_be_bytes([answer[6], answer[7]])))
}

/// The hosts file lines giving `name` each of `ips`.
fn hosts(name: &str, ips: &[&str]) -> String {
    ips.iter().map(|ip| format!("{ip} {name}\n")).collect()
}

/// A boot that prints the three peer variables as `PEER_IPS|PEER_NODES|PEER_NODES_ERL`.
const SHOW_PEERS: [&str; 4] =
    ["--", "/bin/sh", "-c", r#"printf '%s|%s|%s' "$PEER_IPS" "$PEER_NODES" "$PEER_NODES_ERL""#];

/// rancher-boot with a local identity, asking `dns` for `name`.
fn boot(ip: &str, dns: &Dnsmasq, name: &str) -> Command {
    let mut command = rancher_boot();
    command.args(["--source", "local", "--ip", ip, "--service", "svc", "--node-basename", "hello"]);
    command.args(["--peers", "dns", "--dns-server", &dns.server(), "--peer-query", name]);
    command
}

/// rancher-boot in a private mount namespace whose /etc/resolv.conf is `resolv_conf`.
fn boot_with_resolv_conf(resolv_conf: &Path, args: &[&str]) -> Command {
    let mut command = crate::support::dns::with_resolv_conf(resolv_conf);
    command.args(args);
    command
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write test file");
    path
}

fn drain(mut stream: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        bytes
    })
}

// --- docs/faults.md 11: the first container of a service ---------------------------------------------

#[test]
fn a_name_that_does_not_resolve_is_no_peers_and_the_boot_goes_on() {
    let dns = Dnsmasq::start(&hosts("other.test", &["10.1.1.9"]));
    let output = run(boot("10.1.1.1", &dns, "svc.test").args(SHOW_PEERS));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "||[]");
    let err = stderr(&output);
    assert!(err.contains("rancher-boot: info: no peers yet: svc.test has no addresses (NXDOMAIN)"), "{err}");
    assert!(err.contains("0 peers; exec /bin/sh"), "{err}");
    assert!(!err.contains("warn"), "{err}");
}

#[test]
fn a_name_that_lists_only_this_node_is_no_peers() {
    let dns = Dnsmasq::start(&hosts("svc.test", &["10.1.1.1"]));
    let output = run(boot("10.1.1.1", &dns, "svc.test").args(SHOW_PEERS));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "||[]");
    assert!(stderr(&output).contains("info: no peers yet: svc.test lists no address but this node's"));
}

// --- what the program and `peers` get ---------------------------------------------------------

#[test]
fn peers_are_sorted_unique_and_without_this_node() {
    let mut zone = hosts("svc.test", &["10.1.1.30", "10.1.1.4", "10.1.1.1", "10.1.1.4", "fd00::7", "127.0.0.5"]);
    zone += &hosts("other.test", &["10.1.1.99"]);
    let dns = Dnsmasq::start(&zone);

    let output = run(boot("10.1.1.1", &dns, "svc.test").args(SHOW_PEERS));
    assert_code(&output, 0);
    assert_eq!(
        stdout(&output),
        "10.1.1.4 10.1.1.30 127.0.0.5 fd00::7|hello@10.1.1.4 hello@10.1.1.30 hello@127.0.0.5 hello@fd00::7\
         |['hello@10.1.1.4','hello@10.1.1.30','hello@127.0.0.5','hello@fd00::7']"
    );
    assert!(stderr(&output).contains("node hello@10.1.1.1 (local: --ip given), service svc, 4 peers; exec /bin/sh"));

    let output = run(boot("10.1.1.1", &dns, "svc.test").arg("peers"));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "hello@10.1.1.4\nhello@10.1.1.30\nhello@127.0.0.5\nhello@fd00::7\n");

    let output = run(boot("10.1.1.1", &dns, "svc.test").args(["peers", "--format", "json"]));
    assert_code(&output, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json[0], serde_json::json!({"ip": "10.1.1.4", "node": "hello@10.1.1.4"}));
    assert_eq!(json[3], serde_json::json!({"ip": "fd00::7", "node": "hello@fd00::7"}));
    assert_eq!(json.as_array().unwrap().len(), 4);

    let output = run(boot("10.1.1.1", &dns, "svc.test").args(["print-env", "--format", "json"]));
    assert_code(&output, 0);
    let env: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(env["PEER_IPS"], "10.1.1.4 10.1.1.30 127.0.0.5 fd00::7");
    assert_eq!(env["PEER_NODES"], "hello@10.1.1.4 hello@10.1.1.30 hello@127.0.0.5 hello@fd00::7");
    assert_eq!(env["PEER_NODES_ERL"], "['hello@10.1.1.4','hello@10.1.1.30','hello@127.0.0.5','hello@fd00::7']");
}

#[test]
fn peers_none_asks_nobody() {
    // A server that never answers: a lookup would take seconds and warn.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let output = run(rancher_boot()
        .args(["--source", "local", "--ip", "10.1.1.1", "--service", "svc", "--peers", "none"])
        .args(["--dns-server", &silent.local_addr().unwrap().to_string()])
        .args(SHOW_PEERS));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "||[]");
    assert!(!stderr(&output).contains("peers yet"), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(2));
}

// --- docs/faults.md 12: --wait-peers ------------------------------------------------------------------

#[test]
fn wait_peers_waits_until_the_second_peer_appears() {
    let dns = Dnsmasq::start(&hosts("svc.test", &["10.1.1.1", "10.1.1.2"]));
    let started = Instant::now();
    let mut child = boot("10.1.1.1", &dns, "svc.test")
        .args(["--wait-peers", "2", "--timeout", "60s"])
        .args(SHOW_PEERS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = drain(child.stdout.take().unwrap());
    let err_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let err_reader = {
        let (lines, stream) = (err_lines.clone(), child.stderr.take().unwrap());
        thread::spawn(move || {
            BufReader::new(stream).lines().map_while(Result::ok).for_each(|line| lines.lock().unwrap().push(line))
        })
    };
    let waiting = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains("warn: peers attempt") && l.contains("found 1 of 2 peers for svc.test (10.1.1.2)"))
    };

    // One peer for about two seconds: it waits (and says why), it does not boot.
    wait_for("a failed peers attempt", READY, || waiting(&err_lines.lock().unwrap()));
    while started.elapsed() < Duration::from_secs(2) {
        assert!(child.try_wait().unwrap().is_none(), "booted with one peer: {:?}", err_lines.lock().unwrap());
        thread::sleep(Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none(), "booted with one peer: {:?}", err_lines.lock().unwrap());

    // Then two: it boots, soon.
    dns.set_hosts(&hosts("svc.test", &["10.1.1.1", "10.1.1.3", "10.1.1.2"]), "svc.test.", 3);
    let second = Instant::now();
    wait_for("the boot to complete", READY, || child.try_wait().unwrap().is_some());
    let status = child.wait().unwrap();
    err_reader.join().unwrap();
    let lines = err_lines.lock().unwrap().join("\n");
    assert!(status.success(), "{status:?}\n{lines}");
    assert_eq!(
        String::from_utf8(out.join().unwrap()).unwrap(),
        "10.1.1.2 10.1.1.3|hello@10.1.1.2 hello@10.1.1.3|['hello@10.1.1.2','hello@10.1.1.3']"
    );
    assert!(lines.contains("2 peers; exec /bin/sh"), "{lines}");
    // Retries are at most ~250 ms apart: the second peer is used within a second even on a slow machine.
    assert!(second.elapsed() < Duration::from_secs(3), "{:?}", second.elapsed());
}

#[test]
fn wait_peers_gives_up_with_69_at_the_deadline() {
    let dns = Dnsmasq::start(&hosts("svc.test", &["10.1.1.1", "10.1.1.2"]));
    let started = Instant::now();
    let output =
        run(boot("10.1.1.1", &dns, "svc.test").args(["--wait-peers", "2", "--timeout", "2s"]).args(SHOW_PEERS));
    let elapsed = started.elapsed();
    assert_code(&output, 69);
    assert_eq!(stdout(&output), "", "the program must not run");
    let err = stderr(&output);
    assert!(err.contains("rancher-boot: error: cannot get peers: gave up after"), "{err}");
    assert!(err.contains("last error: found 1 of 2 peers for svc.test (10.1.1.2)"), "{err}");
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn wait_peers_on_a_name_that_never_resolves_gives_up_too() {
    let dns = Dnsmasq::start(&hosts("other.test", &["10.1.1.9"]));
    let output =
        run(boot("10.1.1.1", &dns, "svc.test").args(["--wait-peers", "1", "--timeout", "1s"]).args(SHOW_PEERS));
    assert_code(&output, 69);
    assert!(stderr(&output).contains("last error: found 0 of 1 peers for svc.test (NXDOMAIN)"), "{}", stderr(&output));
}

// --- docs/faults.md 13: an answer larger than 512 bytes -----------------------------------------------

#[test]
fn sixty_addresses_are_all_found_over_tcp_sorted_and_unique() {
    // In a scrambled order, some twice.
    let mut order: Vec<u32> = (1..=60).map(|i| (i * 37) % 61).collect();
    order.extend([5, 17, 60]);
    let ips: Vec<String> = order.iter().map(|i| format!("10.2.0.{i}")).collect();
    let dns = Dnsmasq::start(&hosts("big.test", &ips.iter().map(String::as_str).collect::<Vec<_>>()));

    // The control: over UDP without EDNS the answer does not fit, and the server says so.
    let (truncated, in_udp) = udp_query(dns.addr, "big.test.").expect("an answer over UDP");
    assert!(truncated && in_udp < 60, "truncated={truncated}, {in_udp} answers over UDP");

    let output = run(boot("10.9.9.9", &dns, "big.test").arg("peers"));
    assert_code(&output, 0);
    let expected: String = (1..=60).map(|i| format!("hello@10.2.0.{i}\n")).collect();
    assert_eq!(stdout(&output), expected);
}

// --- docs/faults.md 14: resolv.conf's search list, ndots and nameservers ------------------------------

#[test]
fn a_short_name_is_found_through_the_search_list() {
    let dns = Dnsmasq::start(&hosts("svc.demo.test", &["10.3.0.2", "10.3.0.1"]));
    let dir = tempdir();
    let resolv = write_file(dir.path(), "resolv.conf", "nameserver 192.0.2.1\nsearch nothing.test demo.test\n");
    let args = ["--source", "local", "--ip", "10.3.0.9", "--service", "svc", "--node-basename", "hello"];
    let output = run(boot_with_resolv_conf(&resolv, &args).args(["--dns-server", &dns.server(), "-v"]).arg("peers"));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "hello@10.3.0.1\nhello@10.3.0.2\n");
    assert!(stderr(&output).contains("svc resolves (as svc.demo.test.)"), "{}", stderr(&output));
    // In the order of the search list, before the name as it is (ndots 1, no dot in `svc`).
    let log = dns.log();
    let asked: Vec<&str> = log.lines().filter(|l| l.contains("query[A] svc")).collect();
    assert!(asked[0].contains("query[A] svc.nothing.test "), "{log}");
    assert!(asked[1].contains("query[A] svc.demo.test "), "{log}");
}

#[test]
fn a_resolv_conf_written_late_is_read_by_the_next_attempt() {
    // Container runtimes may write resolv.conf after the entrypoint starts (rancher/rancher#2020):
    // with --wait-peers, each attempt reads it afresh. The first attempts search a domain that has
    // nothing; once the file names the right one, the boot finds its peer and goes on.
    let dns = Dnsmasq::start(&hosts("svc.demo.test", &["10.3.0.2"]));
    let dir = tempdir();
    let resolv = write_file(dir.path(), "resolv.conf", "nameserver 192.0.2.1\nsearch nothing.test\n");
    let args = ["--source", "local", "--ip", "10.3.0.9", "--service", "svc", "--node-basename", "hello"];
    let mut child = boot_with_resolv_conf(&resolv, &args)
        .args(["--dns-server", &dns.server(), "--wait-peers", "1", "--timeout", "30s", "peers"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Polled by hand rather than with wait_for: if the boot ends, or never asks, say what it printed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dns.log().contains("query[A] svc.nothing.test ") {
        let ended = child.try_wait().expect("try_wait").is_some();
        if ended || Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("wait");
            panic!(
                "no query through the first search list ({}): {:?}\n--- stderr\n{}\n--- dnsmasq\n{}",
                if ended { "the boot ended" } else { "20 s" },
                output.status,
                String::from_utf8_lossy(&output.stderr),
                dns.log()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    // Written in place (not renamed), as the bind mount shows the file's inode.
    fs::write(&resolv, "nameserver 192.0.2.1\nsearch demo.test\n").expect("rewrite resolv.conf");
    let output = child.wait_with_output().expect("wait");
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "hello@10.3.0.2\n");
    assert!(stderr(&output).contains("warn: peers attempt 1 failed"), "{}", stderr(&output));
}

#[test]
fn a_name_with_a_trailing_dot_is_not_searched() {
    let dns = Dnsmasq::start(&hosts("svc.demo.test", &["10.3.0.2"]));
    let dir = tempdir();
    let resolv = write_file(dir.path(), "resolv.conf", "nameserver 192.0.2.1\nsearch demo.test\n");
    let args = ["--source", "local", "--ip", "10.3.0.9", "--service", "svc", "--node-basename", "hello"];
    let output = run(boot_with_resolv_conf(&resolv, &args)
        .args(["--dns-server", &dns.server(), "--peer-query", "svc."])
        .args(SHOW_PEERS));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "||[]");
    assert!(stderr(&output).contains("info: no peers yet: svc. has no addresses (NXDOMAIN)"), "{}", stderr(&output));
    let log = dns.log();
    assert!(log.contains("query[A] svc from"), "{log}");
    assert!(!log.contains("svc.demo.test from"), "searched although absolute:\n{log}");
}

#[test]
fn ndots_from_resolv_conf_decides_what_is_tried_first() {
    // `svc.demo` has one dot: with ndots:2 it goes through the search list first.
    let dns = Dnsmasq::start(&(hosts("svc.demo.test", &["10.3.0.2"]) + &hosts("svc.demo", &["10.3.0.66"])));
    let dir = tempdir();
    let resolv = write_file(dir.path(), "resolv.conf", "search test\noptions ndots:2\nnameserver 192.0.2.1\n");
    let args = ["--source", "local", "--ip", "10.3.0.9", "--service", "svc", "--node-basename", "hello"];
    let output = run(boot_with_resolv_conf(&resolv, &args)
        .args(["--dns-server", &dns.server(), "--peer-query", "svc.demo"])
        .arg("peers"));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "hello@10.3.0.2\n");
}

#[test]
fn resolv_conf_nameservers_are_used_without_dns_server() {
    // resolv.conf cannot name a port: this dnsmasq listens on port 53 of a spare loopback address.
    let dns = (2..40)
        .map(|n| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 53, 0, n)), 53))
        .filter(|addr| UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok())
        .find_map(|addr| Dnsmasq::try_start(addr, &hosts("svc.demo.test", &["10.3.0.2", "10.3.0.3"]), &[]))
        .expect("a loopback address with port 53 free");
    let dir = tempdir();
    let resolv = write_file(dir.path(), "resolv.conf", &format!("nameserver {}\nsearch demo.test\n", dns.addr.ip()));
    let args = ["--source", "local", "--ip", "10.3.0.3", "--service", "svc", "--node-basename", "hello"];
    let output = run(boot_with_resolv_conf(&resolv, &args).args(SHOW_PEERS));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "10.3.0.2|hello@10.3.0.2|['hello@10.3.0.2']");
}

#[test]
fn a_resolver_timeout_is_a_warning_and_the_boot_goes_on() {
    // A server that never answers; resolv.conf's timeout and attempts bound the wait.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = tempdir();
    let resolv = write_file(dir.path(), "resolv.conf", "nameserver 192.0.2.1\noptions timeout:1 attempts:1\n");
    let args = ["--source", "local", "--ip", "10.3.0.9", "--service", "svc", "--node-basename", "hello"];
    let started = Instant::now();
    let output = run(boot_with_resolv_conf(&resolv, &args)
        .args(["--dns-server", &silent.local_addr().unwrap().to_string(), "--peer-query", "svc.test"])
        .args(SHOW_PEERS));
    let elapsed = started.elapsed();
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "||[]");
    let err = stderr(&output);
    assert!(
        err.contains("warn: cannot look up peers: looking up svc.test: request timed out; booting without peers"),
        "{err}"
    );
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(4), "{elapsed:?}");
}

// --- metadata mode ----------------------------------------------------------------------------

/// A `self/service` answer with a container in every state, and the odd entries a real one has.
const SERVICE: &str = r#"{"name":"svc","kind":"service","scale":9,"metadata_kind":"service","containers":[
 {"name":"demo-svc-1","primary_ip":"10.42.0.1","state":"running","health_state":"healthy"},
 {"name":"demo-svc-2","primary_ip":"10.42.0.9","state":"running","health_state":"healthy","labels":{}},
 {"name":"demo-svc-3","primary_ip":"10.42.0.3","state":"starting","health_state":"initializing"},
 {"name":"demo-svc-4","primary_ip":"10.42.0.4","state":"stopped","health_state":"healthy"},
 {"name":"demo-svc-5","primary_ip":"10.42.0.5","state":"running","health_state":"unhealthy"},
 {"name":"demo-svc-6","primary_ip":"10.42.0.6","state":"running","health_state":null},
 {"name":"demo-svc-7","primary_ip":"10.42.0.7","state":"running","health_state":"initializing"},
 {"name":"demo-svc-8","primary_ip":"10.42.1","state":"running","health_state":"healthy"},
 {"name":"demo-svc-9","primary_ip":"127.0.0.1","state":"running","health_state":"healthy"},
 {"name":"demo-svc-10","primary_ip":"10.42.0.10","state":"stopping","health_state":"healthy"},
 "demo-svc-11",
 {"name":"demo-svc-12","primary_ip":"10.42.0.12","state":"starting"},
 {"name":"demo-svc-2b","primary_ip":"10.42.0.9","state":"running","health_state":"healthy"}
]}"#;

fn boot_metadata(server: &MetadataServer) -> Command {
    let mut command = rancher_boot();
    command.args(["--source", "local", "--ip", "10.42.0.1", "--service", "svc", "--node-basename", "hello"]);
    command.args(["--peers", "metadata", "--metadata-url", &server.url()]);
    command
}

#[test]
fn metadata_peers_are_running_or_starting_and_not_unhealthy() {
    let server =
        MetadataServer::start(
            |_, path| {
                if path == "/2016-07-29/self/service" { Reply::ok(SERVICE) } else { Reply::not_found() }
            },
        );
    let output = run(boot_metadata(&server).args(["-v", "print-env", "--format", "json"]));
    assert_code(&output, 0);
    let env: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(env["PEER_IPS"], "10.42.0.3 10.42.0.6 10.42.0.7 10.42.0.9 10.42.0.12");
    assert_eq!(env["PEER_NODES"], "hello@10.42.0.3 hello@10.42.0.6 hello@10.42.0.7 hello@10.42.0.9 hello@10.42.0.12");
    assert_eq!(
        env["PEER_NODES_ERL"],
        "['hello@10.42.0.3','hello@10.42.0.6','hello@10.42.0.7','hello@10.42.0.9','hello@10.42.0.12']"
    );
    let err = stderr(&output);
    for skipped in [r#"demo-svc-4": state "stopped""#, r#"demo-svc-5": unhealthy"#, "demo-svc-8", "demo-svc-9"] {
        assert!(err.contains(skipped), "no debug line for {skipped}:\n{err}");
    }
    assert!(err.contains("by name only"), "{err}");
    assert!(server.accept_headers().iter().all(|accept| accept == "application/json"));

    let output = run(boot_metadata(&server).args(["peers", "--format", "json"]));
    assert_code(&output, 0);
    let peers: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(peers[0], serde_json::json!({"ip": "10.42.0.3", "node": "hello@10.42.0.3"}));
    assert_eq!(peers.as_array().unwrap().len(), 5);
}

#[test]
fn metadata_self_service_is_retried_until_it_answers() {
    let server = MetadataServer::start(|n, _| match n {
        1 => Reply::Status(503, "not ready".into()),
        2 => Reply::not_found(),
        3 => Reply::ok(""),
        _ => Reply::ok(SERVICE),
    });
    let output = run(boot_metadata(&server).args(SHOW_PEERS));
    assert_code(&output, 0);
    assert!(stdout(&output).starts_with("10.42.0.3 10.42.0.6 10.42.0.7 10.42.0.9 10.42.0.12|"));
    let err = stderr(&output);
    assert_eq!(err.matches("warn: peers attempt").count(), 3, "{err}");
    assert!(
        err.contains("HTTP 503") && err.contains("HTTP 404") && err.contains("empty answer for self/service"),
        "{err}"
    );
}

#[test]
fn metadata_with_no_other_container_is_no_peers() {
    let server = MetadataServer::start(|_, _| {
        Reply::ok(r#"{"name":"svc","containers":[{"primary_ip":"10.42.0.1","state":"running"}]}"#)
    });
    let output = run(boot_metadata(&server).args(SHOW_PEERS));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "||[]");
    assert!(stderr(&output).contains("info: no peers yet: self/service lists no running container but this one"));
}

#[test]
fn metadata_wait_peers_gives_up_with_69() {
    let server = MetadataServer::start(|_, _| {
        Reply::ok(
            r#"{"name":"svc","containers":[{"primary_ip":"10.42.0.1","state":"running"},{"primary_ip":"10.42.0.2","state":"running"}]}"#,
        )
    });
    let output = run(boot_metadata(&server).args(["--wait-peers", "2", "--timeout", "1s"]).args(SHOW_PEERS));
    assert_code(&output, 69);
    assert!(stderr(&output).contains("last error: found 1 of 2 peers for svc (10.42.0.2)"), "{}", stderr(&output));
}

// --- Erlang: the second node is connected to the first when its boot completes ----------------

/// An Erlang VM, killed on drop.
struct ErlangNode(Child);

impl Drop for ErlangNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_erlang_node_is_connected_to_the_first_when_its_boot_completes() {
    // Both nodes are `hello@…` on one machine: one epmd could not hold the name twice, so there is
    // none; each VM listens on its own loopback address and the same fixed distribution port.
    let port = free_port().to_string();
    let dir = tempdir();
    let first_node = Command::new("erl")
        .args(["-name", "hello@127.0.0.2", "-setcookie", "c", "-noshell", "-noinput"])
        .args(["-start_epmd", "false", "-erl_epmd_port", &port, "-kernel", "inet_dist_use_interface", "{127,0,0,2}"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start erl (Debian package erlang-nox)");
    let _first = ErlangNode(first_node);
    let dist: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    wait_for("the first node's distribution port", Duration::from_secs(60), || {
        TcpStream::connect_timeout(&dist, Duration::from_millis(200)).is_ok()
    });

    let dns = Dnsmasq::start(&hosts("hello.test", &["127.0.0.2", "127.0.0.3"]));
    // In vm.args (an erl `-args_file`) quotes are quoting: the term goes in double quotes so that its
    // single quotes reach the VM.
    let template = write_file(
        dir.path(),
        "vm.args.src",
        &format!(
            "-name ${{NODE_NAME}}\n-setcookie c\n-start_epmd false\n-erl_epmd_port {port}\n\
             -kernel inet_dist_use_interface {{127,0,0,3}}\n\
             -kernel sync_nodes_optional \"${{PEER_NODES_ERL}}\"\n-kernel sync_nodes_timeout 10000\n"
        ),
    );
    let runtime = dir.path().join("run");
    let vm_args = runtime.join("vm.args");
    let output = run_within(
        boot("127.0.0.3", &dns, "hello.test")
            .current_dir(dir.path())
            .arg("--vm-args")
            .arg(&template)
            .arg("--runtime-dir")
            .arg(&runtime)
            .args(["--", "erl", "-noshell", "-args_file"])
            .arg(&vm_args)
            .args(["-eval", r#"io:format("nodes: ~p~n", [nodes()]), halt()."#]),
        dir.path(),
        Duration::from_secs(90),
    );
    assert_code(&output, 0);
    assert!(fs::read_to_string(&vm_args).unwrap().contains("sync_nodes_optional \"['hello@127.0.0.2']\""));
    assert_eq!(stdout(&output), "nodes: ['hello@127.0.0.2']\n", "{}", stderr(&output));
    assert!(
        stderr(&output).contains("node hello@127.0.0.3 (local: --ip given), service svc, 1 peer; exec erl"),
        "{}",
        stderr(&output)
    );
}

// --- An SRV peer query (issue 22, item 1) -----------------------------------------------------

/// `_epmd._tcp.hello.ns.svc.zone.` with three targets, each with its address in the hosts file.
const SRV_HOSTS: &str = "10.4.0.1 hello-0.hello.ns.svc.zone\n10.4.0.2 hello-1.hello.ns.svc.zone\n\
    10.4.0.3 hello-2.hello.ns.svc.zone\n";
const SRV_RECORDS: [&str; 3] = [
    "--srv-host=_epmd._tcp.hello.ns.svc.zone,hello-0.hello.ns.svc.zone,4369",
    "--srv-host=_epmd._tcp.hello.ns.svc.zone,hello-1.hello.ns.svc.zone,4369",
    "--srv-host=_epmd._tcp.hello.ns.svc.zone,hello-2.hello.ns.svc.zone,4369",
];

#[test]
fn an_srv_query_by_ip_finds_the_targets_addresses_with_and_without_wait_peers() {
    let dns = Dnsmasq::start_with(SRV_HOSTS, &SRV_RECORDS);
    for wait in ["0", "2"] {
        let started = Instant::now();
        let output = run(boot("10.4.0.2", &dns, "_epmd._tcp.hello.ns.svc.zone.")
            .args(["--wait-peers", wait, "--timeout", "10s"])
            .args(SHOW_PEERS));
        assert_code(&output, 0);
        assert_eq!(
            stdout(&output),
            "10.4.0.1 10.4.0.3|hello@10.4.0.1 hello@10.4.0.3|['hello@10.4.0.1','hello@10.4.0.3']",
            "--wait-peers {wait}: {}",
            stderr(&output)
        );
        assert!(started.elapsed() < Duration::from_secs(5), "--wait-peers {wait}: {:?}", started.elapsed());
    }
}
