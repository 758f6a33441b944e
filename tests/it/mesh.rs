//! `--init --mesh` (issue 20) on a network of the test's own (tests/it/support/lan.rs): each host
//! is a network namespace with its own EPMD, where `rancher-boot --init --mesh` runs a real VM as
//! its child; the peers are found through a dnsmasq on the LAN. The VMs have no `sync_nodes_*`,
//! no poller, and `-kernel connect_all false` (no transitive connects from `global`): every
//! connection between them is one a keeper asked for.
//!
//! The test itself watches the VMs over the LAN with rancher-boot's own distribution client, as a
//! hidden node, which changes nobody's `erlang:nodes()`.
//!
//! Needs (Debian): erlang-nox, dnsmasq-base, iproute2, iptables; runs as root.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rancher_boot::dist::term::Term;
use rancher_boot::dist::{NodeName, epmd, handshake, rpc};

use crate::peers::Dnsmasq;
use crate::support::lan::Lan;
use crate::support::vm::{self, COOKIE};
use crate::support::{BIN, clean_env, tempdir, wait_for};

/// The keepers' interval in these tests.
const INTERVAL: Duration = Duration::from_secs(1);
/// Generous, for what has no bound of its own to prove (a VM's start, a mesh's first forming).
const SLOW: Duration = Duration::from_secs(30);

/// One host of the LAN: `rancher-boot --init --mesh -- erl ...` in its namespace, or (with no
/// keeper) `erl` alone.
struct Member {
    node: String,
    ip: IpAddr,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Member {
    fn start(lan: &Lan, i: usize, basename: &str, dns: &Dnsmasq, dir: &Path, keeper: bool) -> Member {
        let ip = lan.ip(i);
        let node = format!("{basename}@{ip}");
        let mut command = if keeper {
            // The figures of BENCHMARKS.md take the release binary and the default interval.
            let bin = std::env::var("RB_MESH_BIN").unwrap_or_else(|_| BIN.to_string());
            let interval = std::env::var("RB_MESH_INTERVAL").unwrap_or_else(|_| "1s".to_string());
            let mut command = lan.command(i, &bin);
            clean_env(&mut command);
            let cookie = vm::cookie_file(dir, COOKIE);
            command
                .args(["--source", "local", "--ip", &ip.to_string(), "--node-basename", basename])
                .args(["--peer-query", "peers.test", "--dns-server", &dns.server(), "--cookie-file"])
                .arg(cookie)
                .args(["--init", "--mesh", "--mesh-interval", &interval, "-v", "--", "erl"]);
            command
        } else {
            lan.command(i, "erl")
        };
        let (stdout, stderr) = (dir.join(format!("{i}.out")), dir.join(format!("{i}.err")));
        command
            .args(["-noshell", "-name", &node, "-setcookie", COOKIE, "-kernel", "connect_all", "false"])
            .args(["-eval", "io:format(\"vm-ready~n\"), receive after infinity -> ok end."])
            .env_remove("ERL_EPMD_PORT")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"));
        let child = command.spawn().expect("start the member");
        let member = Member { node, ip, child, stdout, stderr };
        wait_for(&format!("{} to start", member.node), SLOW, || {
            std::fs::read_to_string(&member.stdout).unwrap_or_default().contains("vm-ready")
        });
        member
    }

    /// rancher-boot's pid (`ip netns exec` execs it).
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `M:F(Args)` on this member's VM, or `None` when it cannot be reached.
    fn call(&self, module: &str, function: &str, args: Vec<Term>) -> Option<Term> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let target = NodeName::parse(&self.node).ok()?;
        let port = epmd::port_please(self.ip, epmd::DEFAULT_PORT, &target.alive, deadline).ok()??.port;
        let mut conn = handshake::connect(SocketAddr::new(self.ip, port), &target, COOKIE, deadline).ok()?;
        rpc::call(&mut conn, module, function, args, deadline).ok()
    }

    /// The VM's `erlang:nodes()`.
    fn nodes(&self) -> BTreeSet<String> {
        let reply = self.call("erlang", "nodes", vec![]);
        let list = reply.as_ref().and_then(Term::as_list).unwrap_or_default();
        list.iter().filter_map(Term::as_atom).map(str::to_string).collect()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether each member is connected to every other one.
fn full_mesh(members: &[&Member]) -> bool {
    members.iter().all(|m| {
        let nodes = m.nodes();
        members.iter().filter(|o| o.node != m.node).all(|o| nodes.contains(&o.node))
    })
}

fn hosts(lan: &Lan, hosts: &[usize]) -> String {
    hosts.iter().map(|i| format!("{} peers.test\n", lan.ip(*i))).collect()
}

fn basename() -> String {
    format!("mesh_{}", std::process::id())
}

/// Three keepers make a full mesh; a fourth VM (with no keeper of its own) added to DNS later is
/// connected by all three within the interval + 1 s; a partition (`erlang:disconnect_node/1`)
/// is healed within the interval + 1 s; an orphan is reaped while the keeper runs; SIGTERM ends
/// the VM and rancher-boot exits with its status, as does a VM that halts with a code.
#[test]
fn three_keepers_mesh_heal_and_take_in_a_newcomer_while_pid_1_does_its_duties() {
    let dir = tempdir();
    let lan = Lan::new(4);
    let name = basename();
    let dns = Dnsmasq::start_at(lan.own_ip(), &hosts(&lan, &[0, 1, 2]), &[]);
    let members: Vec<Member> = (0..3).map(|i| Member::start(&lan, i, &name, &dns, dir.path(), true)).collect();
    let all: Vec<&Member> = members.iter().collect();
    wait_for("the three to mesh", SLOW, || full_mesh(&all));
    for m in &members {
        assert!(m.log().contains("mesh keeper on (every 1s)"), "{}", m.log());
    }
    // With -v each connect asked for is logged (the last one up may find itself connected).
    let asked = members.iter().filter(|m| m.log().lines().any(|l| l.contains("mesh: asked ") && l.ends_with(": true")));
    assert!(asked.count() >= 2, "-v logs each connect");

    // A newcomer, which connects to nobody itself: each keeper must connect it.
    let newcomer = Member::start(&lan, 3, &name, &dns, dir.path(), false);
    assert!(newcomer.nodes().is_empty(), "{:?}", newcomer.nodes());
    dns.set_hosts(&hosts(&lan, &[0, 1, 2, 3]), "peers.test.", 4);
    let listed = Instant::now();
    let expected: BTreeSet<String> = members.iter().map(|m| m.node.clone()).collect();
    wait_for("the newcomer to be connected by every keeper", SLOW, || newcomer.nodes() == expected);
    let joined = listed.elapsed();
    assert!(joined <= INTERVAL + Duration::from_secs(1), "joined after {joined:?}");
    eprintln!("newcomer in DNS to full mesh: {joined:?}");

    // A partition between 0 and 1.
    let (a, b) = (&members[0], &members[1]);
    let answer = a.call("erlang", "disconnect_node", vec![Term::atom(&b.node)]);
    assert_eq!(answer, Some(Term::atom("true")));
    let cut = Instant::now();
    wait_for("the pair to be whole again", SLOW, || a.nodes().contains(&b.node) && b.nodes().contains(&a.node));
    let healed = cut.elapsed();
    assert!(healed <= INTERVAL + Duration::from_secs(1), "healed after {healed:?}");
    eprintln!("partition to whole pair: {healed:?}");

    // An orphan: `sh` starts `sleep` and exits, so the kernel hands `sleep` to rancher-boot (the
    // subreaper), which must reap it when it exits while the keeper keeps running.
    let pid_file = dir.path().join("orphan.pid");
    let script = format!("sleep 1 >/dev/null 2>&1 & echo $! > {}", pid_file.display());
    a.call("os", "cmd", vec![Term::list(script.bytes().map(|b| Term::Int(i64::from(b))).collect())]);
    let orphan: i32 = std::fs::read_to_string(&pid_file).expect("orphan pid").trim().parse().expect("a pid");
    let parent = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 4..].split(' ').next()?.parse::<i32>().ok()
    };
    wait_for("the orphan to be handed to rancher-boot", SLOW, || parent(orphan).is_none_or(|p| p == a.pid()));
    wait_for("the orphan to be reaped", SLOW, || !Path::new(&format!("/proc/{orphan}")).exists());

    // SIGTERM: the VM stops in order, rancher-boot exits with its status, at once.
    let mut members = members;
    let mut a = members.remove(0);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(a.pid()), nix::sys::signal::SIGTERM).expect("SIGTERM");
    let status = wait_exit(&mut a.child);
    assert_eq!(status.code(), Some(0), "{}", a.log());
    // A VM that halts with a code: rancher-boot ends with it.
    let mut b = members.remove(0);
    b.call("erlang", "halt", vec![Term::Int(3)]);
    let status = wait_exit(&mut b.child);
    assert_eq!(status.code(), Some(3), "{}", b.log());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let end = Instant::now() + SLOW;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < end, "rancher-boot still running after {SLOW:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// DNS unreachable from the keepers for several intervals: the VMs keep running and stay meshed,
/// each log holds at most the one line that says the failure started, and a peer added once DNS
/// is back is still picked up.
#[test]
fn dns_down_for_a_while_is_one_line_and_the_keeper_goes_on_after() {
    let dir = tempdir();
    let lan = Lan::new(3);
    let name = basename();
    let dns = Dnsmasq::start_at(lan.own_ip(), &hosts(&lan, &[0, 1]), &[]);
    let members: Vec<Member> = (0..2).map(|i| Member::start(&lan, i, &name, &dns, dir.path(), true)).collect();
    let all: Vec<&Member> = members.iter().collect();
    wait_for("the two to mesh", SLOW, || full_mesh(&all));

    // DNS down: every packet to dnsmasq's port dropped in the members' namespaces.
    let port = dns.server().rsplit(':').next().expect("port").to_string();
    let rules = [format!("OUTPUT -p udp --dport {port} -j DROP"), format!("OUTPUT -p tcp --dport {port} -j DROP")];
    let before: Vec<usize> = members.iter().map(|m| m.log().len()).collect();
    for i in 0..2 {
        rules.iter().for_each(|rule| lan.iptables(i, &format!("-A {rule}")));
    }
    let down = Instant::now();
    // Five intervals; the keepers must have said it within two, and no more than that.
    wait_for("the outage to be said", SLOW, || {
        members.iter().all(|m| m.log().contains("mesh: cannot look up peers.test"))
    });
    assert!(down.elapsed() <= 4 * INTERVAL + Duration::from_secs(2), "said after {:?}", down.elapsed());
    while down.elapsed() < 5 * INTERVAL {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (m, from) in members.iter().zip(&before) {
        let during = m.log()[*from..].to_string();
        let warnings = during.lines().filter(|l| l.starts_with("rancher-boot: warn")).count();
        assert_eq!(warnings, 1, "one line for the outage:\n{during}");
        assert!(m.nodes().contains(&all.iter().find(|o| o.node != m.node).expect("other").node), "still meshed");
    }
    for m in &members {
        assert!(Path::new(&format!("/proc/{}", m.pid())).exists(), "{} runs", m.node);
    }

    // DNS back, and a newcomer in it.
    for i in 0..2 {
        rules.iter().for_each(|rule| lan.iptables(i, &format!("-D {rule}")));
    }
    let newcomer = Member::start(&lan, 2, &name, &dns, dir.path(), false);
    dns.set_hosts(&hosts(&lan, &[0, 1, 2]), "peers.test.", 3);
    let expected: BTreeSet<String> = members.iter().map(|m| m.node.clone()).collect();
    wait_for("the newcomer to be connected after DNS returned", SLOW, || newcomer.nodes() == expected);
    for m in &members {
        assert!(m.log().contains("mesh: the peer look-up works again"), "{}", m.log());
    }
}

/// What the keeper cannot do is refused before the exec: no cookie is a 78; `--mesh` without
/// `--init` a 64 naming it.
#[test]
fn no_cookie_is_78_and_mesh_without_init_is_64() {
    let dir = tempdir();
    let boot = |extra: &[&str]| {
        let mut command = crate::support::rancher_boot();
        command
            .env("HOME", dir.path())
            .env_remove("RELEASE_COOKIE")
            .args(["--source", "local", "--ip", "127.0.0.1", "--peer-query", "peers.test", "--mesh"])
            .args(extra)
            .args(["--", "/bin/true"]);
        crate::support::run(&mut command)
    };
    let output = boot(&["--init"]);
    crate::support::assert_code(&output, 78);
    let err = crate::support::stderr(&output);
    assert!(err.contains("cannot keep the mesh without a cookie") && err.contains("--cookie-file"), "{err}");
    let output = boot(&[]);
    crate::support::assert_code(&output, 64);
    let err = crate::support::stderr(&output);
    assert!(err.contains("cannot use --mesh") && err.contains("without --init"), "{err}");

    // print-env says the keeper is on.
    let cookie = vm::cookie_file(dir.path(), COOKIE);
    let mut command = crate::support::rancher_boot();
    command
        .args(["--source", "local", "--ip", "127.0.0.1", "--node-basename", "hello", "--peers", "none"])
        .args(["--init", "--mesh", "--cookie-file"])
        .arg(&cookie)
        .arg("print-env");
    let output = crate::support::run(&mut command);
    crate::support::assert_code(&output, 64);
    let mut command = crate::support::rancher_boot();
    command
        .env("RANCHER_BOOT_MESH", "on")
        .args(["--source", "local", "--ip", "127.0.0.1", "--node-basename", "hello", "--peer-query", "x.test"])
        .args(["--dns-server", "127.0.0.1:1", "--init", "--cookie-file"])
        .arg(&cookie)
        .arg("print-env");
    let output = crate::support::run(&mut command);
    crate::support::assert_code(&output, 0);
    let out = crate::support::stdout(&output);
    assert!(out.contains("export RANCHER_BOOT_MESH_KEEPER='on'"), "{out}");
    assert!(crate::support::stderr(&output).contains("mesh keeper on (every 5s)"));
}

/// Five keepers for `RB_MESH_SECS` (5 in the suite; 120 for the figures of BENCHMARKS.md, see
/// there) once meshed, their CPU time and RSS read from /proc, bounded; then a newcomer with no
/// keeper, up and in DNS, connected by all five, `RB_MESH_JOINS` times (1 in the suite).
#[test]
fn bench_keeper_cost_and_join_time() {
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (secs, joins) = (env("RB_MESH_SECS", 5), env("RB_MESH_JOINS", 1));
    let dir = tempdir();
    let lan = Lan::new(6);
    let name = basename();
    let dns = Dnsmasq::start_at(lan.own_ip(), &hosts(&lan, &[0, 1, 2, 3, 4]), &[]);
    let members: Vec<Member> = (0..5).map(|i| Member::start(&lan, i, &name, &dns, dir.path(), true)).collect();
    let all: Vec<&Member> = members.iter().collect();
    wait_for("the five to mesh", SLOW, || full_mesh(&all));

    // CPU time in nanoseconds, every thread of the process (the keeper's and init's loop).
    let cpu = |pid: i32| -> f64 {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
        let ns: u64 = tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        ns as f64 / 1e9
    };
    let kib = |pid: i32, key: &str| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let line = status.lines().find(|l| l.starts_with(key)).expect("key");
        line.split_whitespace().nth(1).expect("value").parse().expect("KiB")
    };
    let before: Vec<f64> = members.iter().map(|m| cpu(m.pid())).collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let elapsed = started.elapsed().as_secs_f64();
    for (m, before) in members.iter().zip(&before) {
        let used = cpu(m.pid()) - before;
        eprintln!(
            "keeper {}: {used:.4} s CPU in {elapsed:.0} s = {:.4} % of a core; VmRSS {} KiB, VmHWM {} KiB",
            m.node,
            100.0 * used / elapsed,
            kib(m.pid(), "VmRSS:"),
            kib(m.pid(), "VmHWM:")
        );
        // Far above what is measured (0.01 % of a core; 1.4 MiB for the static build, a few MiB
        // for the debug build the suite runs): a keeper that spins or leaks fails here.
        assert!(100.0 * used / elapsed < 2.0, "keeper {} used {used:.3} s of CPU in {elapsed:.0} s", m.node);
        assert!(kib(m.pid(), "VmHWM:") < 32 * 1024, "keeper {}: VmHWM {} KiB", m.node, kib(m.pid(), "VmHWM:"));
    }
    assert!(full_mesh(&all), "still meshed");

    dns.set_hosts(&hosts(&lan, &[0, 1, 2, 3, 4, 5]), "peers.test.", 6);
    let expected: BTreeSet<String> = members.iter().map(|m| m.node.clone()).collect();
    for _ in 0..joins {
        let newcomer = Member::start(&lan, 5, &name, &dns, dir.path(), false);
        let up = Instant::now();
        wait_for("the newcomer to be meshed", SLOW, || newcomer.nodes() == expected);
        eprintln!("newcomer up and in DNS to full mesh: {:.2} s", up.elapsed().as_secs_f64());
        drop(newcomer);
        wait_for("the newcomer to be gone", SLOW, || {
            members.iter().all(|m| !m.nodes().contains(&format!("{name}@{}", lan.ip(5))))
        });
    }
}
