//! `rancher-boot probe` against a real RabbitMQ (Debian's `rabbitmq-server`, 3.10 on bookworm):
//! started as root with `rabbitmq-server -detached` (the package's wrapper runs it as the
//! `rabbitmq` user, node `rabbit@<short host name>`, cookie in `/var/lib/rabbitmq/.erlang.cookie`),
//! stopped with `rabbitmqctl stop` whatever happens. Issue 17's proof: `--app rabbit` passes when
//! it is up, fails naming `rabbit` while the application is stopped (`rabbitmqctl stop_app`), and
//! passes again after `start_app`; every level passes against it.
//!
//! Only one RabbitMQ can run on a machine (one node name, one mnesia directory, port 5672), so
//! everything is in ONE test function: nextest runs tests in parallel processes, and no other
//! test starts a RabbitMQ. Missing `rabbitmq-server` fails the test (`.ci/run` installs it), as a
//! missing `erl` fails the Erlang tests. AMQP listens on loopback only; the probe reaches the node
//! through the host name, which resolves to loopback on a test machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::vm;
use crate::support::{assert_code, rancher_boot, run, stderr, stdout};

const COOKIE_FILE: &str = "/var/lib/rabbitmq/.erlang.cookie";
const SERVER: &str = "/usr/sbin/rabbitmq-server";
/// RabbitMQ takes several seconds to boot (12 s on an idle 2-core machine); far more when the
/// machine runs the whole suite.
const BOOT_DEADLINE: Duration = Duration::from_secs(120);

/// The running RabbitMQ this test started; stopped when dropped, panic or not.
struct Rabbit {
    node: String,
    alive: String,
    pid_file: PathBuf,
    stopped: bool,
}

impl Rabbit {
    fn start() -> Rabbit {
        assert!(
            Path::new(SERVER).exists(),
            "{SERVER} is missing: install Debian's rabbitmq-server (apt-get install rabbitmq-server; .ci/run does)"
        );
        assert!(nix::unistd::geteuid().is_root(), "rabbitmq-server -detached must be started as root");
        let host = nix::unistd::gethostname().expect("hostname").to_string_lossy().into_owned();
        let host = host.split('.').next().unwrap_or_default().to_string();
        let alive = "rabbit".to_string();
        let node = format!("{alive}@{host}");
        // Not ours to stop: a RabbitMQ left running (a service, or a run killed past its timeout).
        assert!(
            !vm::registered(&alive),
            "a node named {alive} already runs on this machine (epmd -names): stop it first (rabbitmqctl stop)"
        );
        let pid_file = PathBuf::from(format!("/var/lib/rabbitmq/mnesia/{node}.pid"));
        let _ = std::fs::remove_file(&pid_file);
        let output = rabbitmq("rabbitmq-server").arg("-detached").output().expect("run rabbitmq-server -detached");
        // From here on it may be running: the guard stops it whatever happens next.
        let rabbit = Rabbit { node, alive, pid_file, stopped: false };
        assert_code(&output, 0);
        rabbit
    }

    /// Where to look when it does not come up, for a failure's message.
    fn log_tail(&self) -> String {
        let log = format!("/var/log/rabbitmq/{}.log", self.node);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!("--- last lines of {log}\n{}", lines[lines.len().saturating_sub(20)..].join("\n"))
    }

    /// `rabbitmqctl stop PID_FILE`: returns once the VM has exited.
    fn stop(&mut self) -> Output {
        self.stopped = true;
        let mut command = rabbitmq("rabbitmqctl");
        command.arg("stop").arg(&self.pid_file);
        within(&mut command, Duration::from_secs(90))
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        if !self.stopped {
            let output = self.stop();
            if !output.status.success() {
                eprintln!("rabbitmqctl stop: {:?}\n{}{}", output.status, stdout(&output), stderr(&output));
            }
        }
    }
}

/// One of the package's commands, run as root (its wrapper switches to the `rabbitmq` user), with
/// AMQP on loopback only.
fn rabbitmq(program: &str) -> Command {
    let mut command = Command::new(format!("/usr/sbin/{program}"));
    command.env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1").env_remove("ERL_EPMD_PORT").stdin(Stdio::null());
    command
}

/// Runs `command` to its end, killing it at `deadline` (a hung CLI must not hang the test).
fn within(command: &mut Command, deadline: Duration) -> Output {
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, waited) = std::sync::mpsc::channel();
    let waiter = thread::spawn(move || {
        let output = child.wait_with_output().expect("wait");
        let _ = done.send(());
        output
    });
    if waited.recv_timeout(deadline).is_err() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
    }
    waiter.join().expect("waiter")
}

/// `rabbitmqctl ARGS` succeeds.
#[track_caller]
fn rabbitmqctl(args: &[&str]) {
    let output = within(rabbitmq("rabbitmqctl").args(args), Duration::from_secs(90));
    assert_code(&output, 0);
}

fn probe(node: &str, args: &[&str]) -> Output {
    let mut command = rancher_boot();
    command.env_remove("ERL_EPMD_PORT").args(["probe", "--node", node, "--cookie-file", COOKIE_FILE]).args(args);
    run(&mut command)
}

/// Probes until it passes, or panics at `deadline` with the last answer; returns the time taken.
#[track_caller]
fn until_healthy(rabbit: &Rabbit, args: &[&str], deadline: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let output = probe(&rabbit.node, args);
        if output.status.success() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < deadline,
            "{} not healthy after {deadline:?} (probe {args:?}): exit {:?}: {}{}",
            rabbit.node,
            output.status.code(),
            stderr(&output),
            rabbit.log_tail()
        );
        thread::sleep(Duration::from_millis(250));
    }
}

/// Healthy: exit 0, and nothing printed.
#[track_caller]
fn healthy(output: &Output, what: &str) {
    assert_code(output, 0);
    assert_eq!((stdout(output).as_str(), stderr(output).as_str()), ("", ""), "{what}");
}

#[test]
fn rabbitmq_is_probed_at_every_level_and_by_its_app_through_stop_app_and_start_app() {
    let mut rabbit = Rabbit::start();
    let node = rabbit.node.clone();
    let cookie = std::fs::read_to_string(COOKIE_FILE).expect("read the cookie (as root)");
    let cookie = cookie.trim();

    // Up: the readiness probe of a RabbitMQ container.
    let took = until_healthy(&rabbit, &["--app", "rabbit"], BOOT_DEADLINE);
    eprintln!("{node}: probe --app rabbit passes {:.1} s after rabbitmq-server -detached", took.as_secs_f64());
    healthy(&probe(&node, &["--app", "rabbit"]), "--app rabbit");
    for level in ["epmd", "connect", "rpc"] {
        healthy(&probe(&node, &["--level", level]), level);
    }
    healthy(&probe(&node, &[]), "the default level");

    // The application stopped, the VM alive: liveness passes, readiness fails naming rabbit.
    rabbitmqctl(&["stop_app"]);
    let output = probe(&node, &["--app", "rabbit"]);
    assert_code(&output, 1);
    let err = stderr(&output);
    eprintln!("while stopped (rabbitmqctl stop_app): {}", err.trim_end());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("rancher-boot: {node}: application rabbit not running (running: ")), "{err}");
    assert!(err.contains("kernel") && !err.contains(cookie) && !stdout(&output).contains(cookie), "{err}");
    for level in ["epmd", "connect", "rpc"] {
        healthy(&probe(&node, &["--level", level]), level);
    }

    // Started again: the probe passes again.
    rabbitmqctl(&["start_app"]);
    let took = until_healthy(&rabbit, &["--app", "rabbit"], Duration::from_secs(60));
    eprintln!("{node}: probe --app rabbit passes again {:.1} s after rabbitmqctl start_app", took.as_secs_f64());

    // Stopped: the name is gone from EPMD, and the probe says so.
    let output = rabbit.stop();
    assert_code(&output, 0);
    assert!(!vm::registered(&rabbit.alive), "{node} still registered after rabbitmqctl stop");
    let output = probe(&node, &["--app", "rabbit"]);
    assert_code(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("not registered") && err.contains("epmd"), "{err}");
    eprintln!("after rabbitmqctl stop: {}", err.trim_end());
}
