//! `rancher-boot probe` against real Erlang VMs (every level, long and short names, a wrong
//! cookie, a frozen VM, an application that is not running, the boot's state file) and against a
//! hostile EPMD and node (garbage, truncation, floods, stalls): an answer within the deadline,
//! one line that says why, never the cookie, and little memory.

use std::io::Write;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::fake_dist::{self, Fake};
use crate::support::test::Test;
use crate::support::vm::{self, COOKIE, Vm};
use crate::support::{assert_code, closed_port, rancher_boot, run, stderr, stdout, tempdir, wait_for};

fn probe(node: &str, cookie_file: &std::path::Path) -> Command {
    let mut command = rancher_boot();
    command.env_remove("ERL_EPMD_PORT").arg("probe").args(["--node", node]).arg("--cookie-file").arg(cookie_file);
    command
}

/// Exit 1, one line `rancher-boot: NODE: ...` holding every word of `words`, and no cookie.
#[track_caller]
fn unhealthy(output: &Output, node: &str, words: &[&str]) -> String {
    assert_code(output, 1);
    let err = stderr(output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("rancher-boot: {node}: ")), "{err}");
    for word in words {
        assert!(err.contains(word), "{word:?} not in {err}");
    }
    assert!(!err.contains(COOKIE) && !stdout(output).contains(COOKIE), "{err}");
    err
}

#[test]
fn every_level_passes_against_a_live_node_with_long_names() {
    let dir = tempdir();
    let node = Vm::long("probe_live", dir.path(), "ok");
    let cookie = vm::cookie_file(dir.path(), COOKIE);
    for level in [
        &["--level", "epmd"][..],
        &["--level", "connect"],
        &["--level", "rpc"],
        &["--app", "kernel", "--app", "stdlib"],
        &[],
    ] {
        let output = run(probe(&node.node, &cookie).args(level));
        assert_code(&output, 0);
        assert_eq!((stdout(&output).as_str(), stderr(&output).as_str()), ("", ""), "{level:?}");
    }
    let output = run(probe(&node.node, &cookie).args(["--level", "rpc", "-v"]));
    assert!(stderr(&output).contains(&format!("info: {} is healthy (rpc) in ", node.node)), "{}", stderr(&output));
}

#[test]
fn short_names_are_probed_in_their_own_form() {
    let dir = tempdir();
    let node = Vm::short("probe_short", dir.path());
    let output = run(probe(&node.node, &vm::cookie_file(dir.path(), COOKIE)).args(["--level", "rpc"]));
    assert_code(&output, 0);
}

#[test]
fn the_probe_is_a_hidden_node_and_registers_nothing() {
    let dir = tempdir();
    // The monitor belongs to the process that asks for it: a process of its own, kept alive.
    let eval = "Self = self(), \
                spawn(fun() -> net_kernel:monitor_nodes(true, [{node_type, all}]), Self ! ready, \
                      (fun L() -> receive {nodeup, N, Info} -> io:format(\"up ~s ~p~n\", [N, Info]), L() end end)() \
                      end), \
                receive ready -> ok end";
    let node = Vm::long("probe_hidden", dir.path(), eval);
    let output = run(probe(&node.node, &vm::cookie_file(dir.path(), COOKIE)).args(["--level", "rpc"]));
    assert_code(&output, 0);
    wait_for("the VM to see the probe", Duration::from_secs(10), || node.output().contains("up rancher-boot-"));
    let seen = node.output();
    assert!(seen.contains("{node_type,hidden}") && !seen.contains("visible"), "{seen}");
    let out = Command::new("epmd").arg("-names").output().expect("epmd -names");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("rancher-boot"), "the probe registered a name");
}

#[test]
fn a_wrong_cookie_is_named_and_never_shown() {
    let dir = tempdir();
    let node = Vm::long("probe_cookie", dir.path(), "ok");
    let wrong = vm::cookie_file(dir.path(), "not-the-cookie-at-all");
    unhealthy(&run(&mut probe(&node.node, &wrong)), &node.node, &["cookie", "handshake"]);
    // EPMD needs no cookie: the same probe at that level passes.
    assert_code(&run(probe(&node.node, &wrong).args(["--level", "epmd"])), 0);
}

#[test]
fn a_name_that_is_not_registered_lists_those_that_are() {
    let dir = tempdir();
    let node = Vm::long("probe_listed", dir.path(), "ok");
    let missing = format!("nobody_{}@127.0.0.1", std::process::id());
    let err = unhealthy(
        &run(&mut probe(&missing, &vm::cookie_file(dir.path(), COOKIE))),
        &missing,
        &["not registered", "epmd", ":4369"],
    );
    let alive = node.node.split('@').next().unwrap_or_default();
    assert!(err.contains(alive), "{err}");
}

#[test]
fn epmd_down_says_epmd_and_its_port() {
    let dir = tempdir();
    let port = closed_port().port();
    let output =
        run(probe("hello@127.0.0.1", &vm::cookie_file(dir.path(), COOKIE)).env("ERL_EPMD_PORT", port.to_string()));
    unhealthy(&output, "hello@127.0.0.1", &["epmd", &format!("127.0.0.1:{port}"), "refused"]);
}

#[test]
fn a_frozen_vm_fails_connect_at_the_deadline_while_epmd_still_passes() {
    let dir = tempdir();
    let node = Vm::long("probe_frozen", dir.path(), "ok");
    let cookie = vm::cookie_file(dir.path(), COOKIE);
    node.freeze(true);
    assert_code(&run(probe(&node.node, &cookie).args(["--level", "epmd"])), 0);
    // The boot's deadline (60 s) is not the probe's: --timeout after `probe` is.
    let started = Instant::now();
    let output = run(probe(&node.node, &cookie).env("RANCHER_BOOT_TIMEOUT", "60s").args(["--timeout", "700ms"]));
    let took = started.elapsed();
    unhealthy(&output, &node.node, &["timed out"]);
    assert!(took >= Duration::from_millis(650) && took < Duration::from_millis(1700), "{took:?}");
    // And without --timeout, the probe's own default of one second.
    let started = Instant::now();
    unhealthy(&run(&mut probe(&node.node, &cookie)), &node.node, &["timed out"]);
    assert!(started.elapsed() < Duration::from_millis(2000), "{:?}", started.elapsed());
    node.freeze(false);
    assert_code(&run(&mut probe(&node.node, &cookie)), 0);
}

#[test]
fn an_application_that_is_not_running_is_named() {
    let dir = tempdir();
    let node = Vm::long("probe_app", dir.path(), "ok");
    let output =
        run(probe(&node.node, &vm::cookie_file(dir.path(), COOKIE)).args(["--app", "kernel", "--app", "hello"]));
    unhealthy(&output, &node.node, &["application hello not running", "kernel"]);
    // RANCHER_BOOT_APP is the boot's program, not an application.
    let output =
        run(probe(&node.node, &vm::cookie_file(dir.path(), COOKIE)).env("RANCHER_BOOT_APP", "/opt/app/bin/hello"));
    assert_code(&output, 0);
}

#[test]
fn no_cookie_anywhere_is_a_configuration_error() {
    let dir = tempdir();
    let mut command = rancher_boot();
    command.env("HOME", dir.path()).env_remove("RELEASE_COOKIE").args(["probe", "--node", "hello@127.0.0.1"]);
    let output = run(&mut command);
    assert_code(&output, 78);
    assert!(
        stderr(&output).contains("cannot find the cookie") && stderr(&output).contains(".erlang.cookie"),
        "{}",
        stderr(&output)
    );
    // Erlang's own file is read when nothing else gives one.
    let node = Vm::long("probe_home", dir.path(), "ok");
    std::fs::write(dir.path().join(".erlang.cookie"), COOKIE).expect("cookie");
    let mut command = rancher_boot();
    command.env("HOME", dir.path()).env_remove("RELEASE_COOKIE").args(["probe", "--node", &node.node]);
    assert_code(&run(&mut command), 0);
    // RELEASE_COOKIE comes before it.
    command.env("RELEASE_COOKIE", "wrong-cookie");
    unhealthy(&run(&mut command), &node.node, &["cookie"]);
}

#[test]
fn usage_errors_are_64() {
    Test::new().args(["probe", "--node", "no-at-sign"]).run().code(64).stderr_has("no '@'");
    Test::new().args(["probe", "--level", "deep"]).run().code(64).stderr_has("epmd, connect, rpc");
    Test::new().args(["probe", "--timeout", "soon"]).run().code(64).stderr_has("soon");
    Test::new().args(["probe", "--app", "a b"]).run().code(64).stderr_has("not an application name");
    Test::new().args(["probe", "extra"]).run().code(64).stderr_has("rancher-boot probe");
    let help = Test::new().args(["probe", "--help"]).run().code(0).stdout_has("Usage: rancher-boot probe");
    for word in ["--level", "--app", "--timeout", "--node", "RANCHER_BOOT_PROBE_LEVEL", "ERL_EPMD_PORT"] {
        assert!(help.stdout().contains(word), "{word} not in probe --help");
    }
    Test::new().args(["doctor", "--help"]).run().code(0).stdout_has("Usage: rancher-boot doctor");
    Test::new().arg("--help").run().code(0).stdout_has("`probe`").stdout_has("`doctor`").stdout_has("1 unhealthy");
}

/// The boot remembers the node; a probe in the same container needs no option at all, and
/// print-env names the same node without being told the basename.
#[test]
fn the_boot_state_names_the_node_for_probe_and_print_env() {
    let dir = tempdir();
    let runtime = dir.path().join("rt");
    let cookie = vm::cookie_file(dir.path(), COOKIE);
    let name = format!("probe_state_{}", std::process::id());
    let mut boot = rancher_boot();
    boot.env("RANCHER_BOOT_RUNTIME_DIR", &runtime)
        .args([
            "--source",
            "local",
            "--ip",
            "127.0.0.1",
            "--service",
            "svc",
            "--peers",
            "none",
            "--node-basename",
            &name,
        ])
        .arg("--cookie-file")
        .arg(&cookie)
        .args(["--", "sh", "-c", "exec erl -noshell -name \"$NODE_NAME\" -setcookie \"$RELEASE_COOKIE\""])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = boot.spawn().expect("boot");
    let _reap = KillOnDrop(&mut child);
    wait_for("the VM", Duration::from_secs(30), || vm::registered(&name));

    let state = std::fs::read_to_string(runtime.join("state.json")).expect("state file");
    assert!(state.contains(&format!("\"node\": \"{name}@127.0.0.1\"")) && !state.contains(COOKIE), "{state}");
    let mut command = rancher_boot();
    command.env("RANCHER_BOOT_RUNTIME_DIR", &runtime).env("HOME", dir.path()).env_remove("RELEASE_COOKIE");
    assert_code(&run(command.args(["probe", "--level", "rpc"])), 0);

    let mut command = rancher_boot();
    let output = run(command.env("RANCHER_BOOT_RUNTIME_DIR", &runtime).args(["--peers", "none", "print-env"]));
    assert_code(&output, 0);
    assert!(stdout(&output).contains(&format!("export NODE_NAME='{name}@127.0.0.1'")), "{}", stdout(&output));
    assert!(stderr(&output).contains("as the boot chose it"), "{}", stderr(&output));
    // What this command line gives still wins over the state.
    let mut command = rancher_boot();
    let output =
        run(command.env("RANCHER_BOOT_RUNTIME_DIR", &runtime).args(["--peer-query", "other.test", "print-env"]));
    assert_code(&output, 0);
    assert!(stdout(&output).contains("export DNS_CLUSTER_QUERY='other.test'"), "{}", stdout(&output));
    assert!(stdout(&output).contains(&format!("export NODE_NAME='{name}@127.0.0.1'")), "{}", stdout(&output));
}

/// No state file: the probe names the node as a boot with the same options would.
#[test]
fn without_a_state_the_node_is_derived_as_a_boot_would() {
    let dir = tempdir();
    let node = Vm::long("probe_derived", dir.path(), "ok");
    let basename = node.node.split('@').next().unwrap_or_default();
    let mut command = rancher_boot();
    command.args(["--source", "local", "--ip", "127.0.0.1", "--node-basename", basename, "probe", "--level", "rpc"]);
    command.env("RELEASE_COOKIE", COOKIE);
    assert_code(&run(&mut command), 0);
    // Neither a state nor a name: say what to give.
    let output = run(rancher_boot().args(["--source", "local", "--ip", "127.0.0.1", "probe"]));
    assert_code(&output, 78);
    assert!(stderr(&output).contains("--node"), "{}", stderr(&output));
}

struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        // The boot exec'd sh, which exec'd erl: the VM is this pid.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---- hostile peers ----

/// A probe of `fake@127.0.0.1` through `epmd` at level `level`: its output, how long it took, and
/// how much its resident set grew over a probe that fails at once.
fn against(epmd: &Fake, level: &str, timeout: &str) -> (Output, Duration, i64) {
    let dir = tempdir();
    let cookie = vm::cookie_file(dir.path(), COOKIE);
    let base = {
        let mut command = probe("fake@127.0.0.1", &cookie);
        let port = closed_port().port();
        run(command.env("ERL_EPMD_PORT", port.to_string()));
        max_rss_of_children()
    };
    let started = Instant::now();
    let mut command = probe("fake@127.0.0.1", &cookie);
    command.env("ERL_EPMD_PORT", epmd.port.to_string()).args(["--level", level, "--timeout", timeout]);
    let output = run(&mut command);
    (output, started.elapsed(), max_rss_of_children() - base)
}

fn max_rss_of_children() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).expect("getrusage").max_rss()
}

/// Exit 1 with `words`, within the deadline (plus a margin), without growing by more than 4 MiB.
#[track_caller]
fn survives(epmd: &Fake, level: &str, words: &[&str]) {
    let (output, took, grown) = against(epmd, level, "800ms");
    let err = unhealthy(&output, "fake@127.0.0.1", words);
    assert!(!err.contains("panicked"), "{err}");
    assert!(took < Duration::from_millis(1800), "{took:?}: {err}");
    assert!(grown < 4 * 1024, "the resident set grew by {grown} KiB: {err}");
}

/// An EPMD that reads the request, then runs `script` (a reply to an unread request would be
/// reset by the kernel before the probe reads it).
fn epmd(script: impl Fn(&mut std::net::TcpStream) + Send + Sync + 'static) -> Fake {
    Fake::start(move |s| {
        let _ = fake_dist::read_request(s);
        script(s);
    })
}

#[test]
fn a_hostile_epmd_is_survived() {
    survives(&epmd(|s| drop(s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n"))), "epmd", &["epmd", "answer tag 72"]);
    survives(&epmd(|s| drop(s.write_all(&[119, 0, 1]))), "epmd", &["epmd", "ends early"]);
    survives(&epmd(|_| thread::sleep(Duration::from_secs(5))), "epmd", &["epmd", "timed out"]);
    // An answer without end: cut at its cap, never buffered whole.
    survives(
        &epmd(|s| {
            let chunk = [119u8; 65536];
            while s.write_all(&chunk).is_ok() {}
        }),
        "epmd",
        &["epmd", "longer than"],
    );
    // One byte at a time, slower than the deadline allows.
    survives(
        &epmd(|s| {
            for b in [119u8, 0, 0, 1, 77, 0, 0, 6] {
                thread::sleep(Duration::from_millis(300));
                if s.write_all(&[b]).is_err() {
                    return;
                }
            }
        }),
        "epmd",
        &["epmd", "timed out"],
    );
}

#[test]
fn a_hostile_node_is_survived() {
    fn node_then(script: impl Fn(&mut std::net::TcpStream) + Send + Sync + 'static) -> (Fake, Fake) {
        let node = Fake::start(script);
        let epmd = Fake::epmd_for(node.port);
        (epmd, node)
    }
    // Garbage where the status belongs.
    let (epmd, _node) = node_then(|s| {
        let _ = fake_dist::read_request(s);
        let _ = s.write_all(b"\x00\x05hello");
    });
    survives(&epmd, "connect", &["handshake", "where the status belongs"]);
    // A length of 65535, then nothing: a stall mid-handshake.
    let (epmd, _node) = node_then(|s| {
        let _ = fake_dist::read_request(s);
        let _ = s.write_all(b"\xff\xffsok");
        thread::sleep(Duration::from_secs(5));
    });
    survives(&epmd, "connect", &["handshake", "timed out"]);
    // The node refuses us.
    let (epmd, _node) = node_then(|s| {
        let _ = fake_dist::read_request(s);
        let _ = s.write_all(&fake_dist::message(b"snot_allowed"));
    });
    survives(&epmd, "connect", &["not_allowed"]);
    // A truncated challenge, then the close.
    let (epmd, _node) = node_then(|s| {
        let _ = fake_dist::read_request(s);
        let _ = s.write_all(&fake_dist::message(b"sok"));
        let _ = s.write_all(&fake_dist::message(b"N\0\0\0"));
    });
    survives(&epmd, "connect", &["challenge ends early"]);
    // Closes after our digest: what a node with another cookie does.
    let (epmd, _node) = node_then(|s| {
        let _ = fake_dist::read_request(s);
        let _ = s.write_all(&fake_dist::message(b"sok"));
        let _ = s.write_all(&fake_dist::challenge("fake@127.0.0.1", 1));
        let _ = fake_dist::read_request(s);
    });
    survives(&epmd, "connect", &["cookie"]);
    // A right handshake, then a frame of 4 GiB announced.
    let (epmd, _node) = node_then(|s| {
        if fake_dist::honest_handshake(s, "fake@127.0.0.1", COOKIE) {
            let _ = s.write_all(&[0xff; 4]);
            thread::sleep(Duration::from_secs(2));
        }
    });
    survives(&epmd, "rpc", &["call", "frame of 4294967295 bytes"]);
    // Ticks without end and never a reply: each is answered, the deadline still holds.
    let (epmd, _node) = node_then(|s| {
        if fake_dist::honest_handshake(s, "fake@127.0.0.1", COOKIE) {
            while s.write_all(&[0; 4]).is_ok() {
                thread::sleep(Duration::from_millis(1));
            }
        }
    });
    survives(&epmd, "rpc", &["call", "timed out"]);
    // A reply nested beyond reason.
    let (epmd, _node) = node_then(|s| {
        if fake_dist::honest_handshake(s, "fake@127.0.0.1", COOKIE) {
            let mut body = vec![112, 131, 104, 3, 97, 2, 106, 106, 131];
            for _ in 0..10_000 {
                body.extend([108, 0, 0, 0, 1]);
            }
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend(body);
            let _ = s.write_all(&frame);
            thread::sleep(Duration::from_secs(2));
        }
    });
    survives(&epmd, "rpc", &["call", "nests deeper"]);
    // Another node's name in its challenge.
    let (epmd, _node) = node_then(|s| {
        let _ = fake_dist::honest_handshake(s, "other@127.0.0.1", COOKIE);
    });
    survives(&epmd, "connect", &["is other@127.0.0.1, not fake@127.0.0.1"]);
}
