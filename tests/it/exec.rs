//! Exec, arguments, exit codes, signals and passthrough: docs/faults.md items 15-19, run as a user would.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A boot that needs no network: identity from the command line, no peer lookup.
fn local() -> Command {
    let mut command = rancher_boot();
    command.args(["--source", "local", "--ip", "10.42.96.65", "--service", "my-hello-service", "--peers", "none"]);
    command
}

#[test]
fn fault_15_it_execs_instead_of_spawning() {
    let child = local()
        .args(["--", "sh", "-c", "echo $$"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let output = child.wait_with_output().expect("wait");
    assert_code(&output, 0);
    assert_eq!(stdout(&output).trim(), pid.to_string(), "the program runs as rancher-boot's own process");
}

#[test]
fn arguments_pass_byte_for_byte() {
    let args: [&OsStr; 7] = [
        OsStr::new("two words"),
        OsStr::new(""),
        OsStr::new("--help"),
        OsStr::new("*"),
        OsStr::new("$HOME"),
        OsStr::new("'\"\\"),
        OsStr::from_bytes(b"\xff\xfenot-utf8"),
    ];
    let output = run(local().args(["--", "sh", "-c", r#"printf '%s\0' "$@""#, "sh"]).args(args));
    assert_code(&output, 0);
    let expected: Vec<u8> = args.iter().flat_map(|a| a.as_bytes().iter().copied().chain([0])).collect();
    assert_eq!(output.stdout, expected);
}

#[test]
fn the_program_gets_the_exports_and_the_inherited_environment() {
    let output = run(local().env("NODE_NAME", "stale@").env("KEEP_ME", "yes").args([
        "--",
        "sh",
        "-c",
        "echo $NODE_NAME $NODE_IP $SERVICE_NAME $RELEASE_NODE $RELEASE_DISTRIBUTION $RANCHER_IP $KEEP_ME",
    ]));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "sh@10.42.96.65 10.42.96.65 my-hello-service sh@10.42.96.65 name 10.42.96.65 yes\n");
}

#[test]
fn fault_16_exit_codes_come_back_unchanged() {
    // All 256 codes, in batches run side by side.
    let codes: Vec<u32> = (0..=255).collect();
    for batch in codes.chunks(32) {
        let children: Vec<_> = batch
            .iter()
            .map(|code| {
                let child = local()
                    .args(["-q", "--", "sh", "-c", &format!("exit {code}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn");
                (*code, child)
            })
            .collect();
        for (code, mut child) in children {
            let status = child.wait().expect("wait");
            assert_eq!(status.code(), Some(code as i32), "exit {code}");
        }
    }
}

#[test]
fn fault_16_a_missing_program_is_127() {
    for program in ["/nonexistent/hello", "no-such-program-anywhere"] {
        let output = run(local().args(["--node-basename", "hello", "--", program, "foreground"]));
        assert_code(&output, 127);
        assert_eq!(
            stderr(&output).lines().last().unwrap_or_default(),
            format!("rancher-boot: error: cannot exec {program}: No such file or directory")
        );
    }
}

#[test]
fn fault_16_a_program_that_cannot_be_executed_is_126() {
    let dir = tempdir();
    let script = dir.path().join("hello");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
    let output = run(local().arg("--").arg(&script));
    assert_code(&output, 126);
    let last = stderr(&output).lines().last().unwrap_or_default().to_string();
    assert_eq!(last, format!("rancher-boot: error: cannot exec {}: Permission denied", script.display()));
    // A directory is not executable either.
    let output = run(local().args(["--node-basename", "x", "--"]).arg(dir.path()));
    assert_code(&output, 126);
}

#[test]
fn fault_17_the_program_sees_no_ignored_and_no_blocked_signals() {
    // rancher-boot's own parent ignores SIGUSR1 and blocks SIGUSR2: none of that reaches the program,
    // and neither does the SIGPIPE that Rust's runtime ignores.
    let mut command = local();
    command.args(["--", "grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]);
    unsafe {
        command.pre_exec(|| {
            use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
            signal(Signal::SIGUSR1, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            signal(Signal::SIGINT, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            // A real-time signal too (SIGRTMIN+5), which a loop over the classic signals would miss.
            if nix::libc::signal(nix::libc::SIGRTMIN() + 5, nix::libc::SIG_IGN) == nix::libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            let mut set = SigSet::empty();
            set.add(Signal::SIGUSR2);
            sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let output = run(&mut command);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

#[test]
fn fault_18_a_signal_while_waiting_for_metadata_ends_the_boot() {
    for (signal, code) in [(libc_sig::TERM, 143), (libc_sig::INT, 130), (libc_sig::HUP, 129)] {
        let server = MetadataServer::start(|_, _| Reply::Hang);
        let dir = tempdir();
        let marker = dir.path().join("ran");
        let mut child = rancher_boot()
            .args(["--metadata-url", &server.url(), "--timeout", "60s", "--peers", "none", "--", "touch"])
            .arg(&marker)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        wait_for("the first metadata request", Duration::from_secs(10), || server.requests() >= 1);
        let sent = Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).expect("kill");
        let status = wait_with_deadline(&mut child, Duration::from_secs(5));
        assert_eq!(status.code(), Some(code), "{signal}");
        assert!(sent.elapsed() < Duration::from_secs(1), "promptly: {:?}", sent.elapsed());
        assert!(!marker.exists());
    }
}

mod libc_sig {
    use nix::sys::signal::Signal;
    pub const TERM: Signal = Signal::SIGTERM;
    pub const INT: Signal = Signal::SIGINT;
    pub const HUP: Signal = Signal::SIGHUP;
}

fn wait_with_deadline(child: &mut std::process::Child, deadline: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fault_19_passthrough_execs_the_app_with_the_same_identity() {
    let dir = tempdir();
    let app = dir.path().join("hello");
    std::fs::write(&app, "#!/bin/sh\necho \"$NODE_NAME|$SERVICE_NAME|$#|$*\"\n").expect("write");
    std::fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let server = MetadataServer::start(|_, _| Reply::ok(container_json("10.42.96.65", "my-hello-service")));

    let boot = run(rancher_boot()
        .args(["--metadata-url", &server.url(), "--peers", "none", "--"])
        .arg(&app)
        .arg("foreground"));
    assert_code(&boot, 0);
    let exec = run(rancher_boot()
        .env("RANCHER_METADATA_URL", server.url())
        .env("RANCHER_BOOT_PEERS", "none")
        .env("RANCHER_BOOT_APP", &app)
        .args(["remote_console", "--", "a b"]));
    assert_code(&exec, 0);
    assert_eq!(stdout(&boot), "hello@10.42.96.65|my-hello-service|1|foreground\n");
    assert_eq!(stdout(&exec), "hello@10.42.96.65|my-hello-service|3|remote_console -- a b\n");
}

#[test]
fn fault_19_passthrough_without_an_app_is_a_usage_error() {
    let output = run(local().arg("remote_console"));
    assert_code(&output, 64);
    assert!(stderr(&output).contains("no --app (RANCHER_BOOT_APP)"), "{}", stderr(&output));
}

#[test]
fn usage_errors_are_64_and_help_is_0() {
    assert_code(&run(rancher_boot().arg("--help")), 0);
    assert_code(&run(rancher_boot().arg("--version")), 0);
    assert_code(&run(&mut rancher_boot()), 64);
    assert_code(&run(rancher_boot().args(["--no-such-flag", "--", "true"])), 64);
    assert_code(&run(rancher_boot().args(["--timeout", "soon", "--", "true"])), 64);
    assert_code(&run(rancher_boot().args(["--source", "consul", "--", "true"])), 64);
    assert_code(&run(rancher_boot().args(["--"])), 64);
    assert_code(&run(rancher_boot().env("RANCHER_BOOT_TIMEOUT", "0s").args(["--", "true"])), 64);
}

#[test]
fn the_flag_wins_over_its_variable() {
    let output = run(local().env("RANCHER_BOOT_IP", "10.9.9.9").args([
        "--node-basename",
        "n",
        "print-env",
        "--format",
        "dotenv",
    ]));
    assert_code(&output, 0);
    assert!(stdout(&output).contains("NODE_IP=10.42.96.65\n"), "{}", stdout(&output));
    let output = run(rancher_boot()
        .env("RANCHER_BOOT_SOURCE", "local")
        .env("RANCHER_BOOT_IP", "10.9.9.9")
        .env("RANCHER_BOOT_SERVICE", "svc")
        .env("RANCHER_BOOT_PEERS", "none")
        .env("RANCHER_BOOT_NODE_BASENAME", "n")
        .args(["print-env", "--format", "dotenv"]));
    assert_code(&output, 0);
    assert!(stdout(&output).contains("NODE_NAME=n@10.9.9.9\n"), "{}", stdout(&output));
}

#[test]
fn dry_run_prints_the_command_and_execs_nothing() {
    let dir = tempdir();
    let marker = dir.path().join("ran");
    let output = run(local().args(["--dry-run", "--", "touch"]).arg(&marker));
    assert_code(&output, 0);
    assert!(!marker.exists());
    assert!(stdout(&output).ends_with(&format!("exec touch {}\n", marker.display())), "{}", stdout(&output));
}

#[test]
fn local_source_finds_an_address_without_being_told() {
    let output = run(rancher_boot().args([
        "--source",
        "local",
        "--peers",
        "none",
        "--node-basename",
        "n",
        "print-env",
        "--format",
        "json",
    ]));
    assert_code(&output, 0);
    let env: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let ip: std::net::IpAddr = env["NODE_IP"].as_str().expect("NODE_IP").parse().expect("an IP");
    assert!(!ip.is_loopback() && !ip.is_unspecified());
    let host = nix::unistd::gethostname().expect("hostname");
    assert_eq!(env["SERVICE_NAME"], host.to_string_lossy().as_ref());
}
