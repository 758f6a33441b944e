//! `--init` (docs/faults.md item 20), modelled on tini's and dumb-init's suites: exit codes, forwarded
//! signals, 128+N, zombie reaping as PID 1 and as subreaper, the child's clean signal state, no
//! process-group signalling, and a real Erlang VM stopped by SIGTERM inside a PID namespace.
//!
//! Every shell script here loops only while its temp dir exists, so nothing outlives a failed
//! test for long; and every wait polls towards a generous deadline, none sleeps for correctness.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill, signal, sigprocmask};
use nix::unistd::Pid;

use crate::support::*;

/// For anything that should take milliseconds; generous for a loaded CI machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// The signals `--init` passes on, with the names a shell's `trap` knows them by.
const FORWARDED: [(Signal, &str); 7] = [
    (Signal::SIGTERM, "TERM"),
    (Signal::SIGINT, "INT"),
    (Signal::SIGHUP, "HUP"),
    (Signal::SIGQUIT, "QUIT"),
    (Signal::SIGUSR1, "USR1"),
    (Signal::SIGUSR2, "USR2"),
    (Signal::SIGWINCH, "WINCH"),
];

/// `rancher-boot --init -- PROGRAM ARGS` with a local identity and no peer lookup.
fn init(program: &[&str]) -> Command {
    let mut command = rancher_boot();
    command.args(["--source", "local", "--ip", "10.1.2.3", "--service", "t", "--peers", "none", "--init", "--"]);
    command.args(program);
    command
}

/// `--init -- sh -c SCRIPT sh DIR`: the script finds its directory in `$1`.
fn init_sh(script: &str, dir: &Path) -> Command {
    let mut command = init(&["sh", "-c", script, "sh"]);
    command.arg(dir);
    command
}

/// `command` as PID 1 of a new PID namespace (with its own /proc). `--kill-child` takes the
/// whole namespace down if the test kills `unshare`; `unshare` exits with rancher-boot's code.
fn in_pid_namespace(command: &Command) -> Command {
    let mut unshare = Command::new("unshare");
    unshare.args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
    unshare.arg(command.get_program()).args(command.get_args());
    with_env_of(unshare, command)
}

/// `command`'s environment changes, applied to `wrapper` (which runs `command` in some way).
fn with_env_of(mut wrapper: Command, command: &Command) -> Command {
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => wrapper.env(name, value),
            None => wrapper.env_remove(name),
        };
    }
    wrapper
}

/// A spawned process tree, SIGKILLed (descendants first) if a test ends without reaping it.
struct Running {
    child: Child,
    /// stdout and stderr, interleaved.
    output: PathBuf,
}

impl Running {
    /// Spawns with stdin closed and stdout and stderr in `dir/output`.
    fn spawn(command: &mut Command, dir: &Path) -> Running {
        let output = dir.join("output");
        let file = File::create(&output).expect("output file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("output file"))
            .stderr(file)
            .spawn()
            .expect("spawn");
        Running { child, output }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).expect("kill");
    }

    /// Waits for the exit, failing after `deadline`.
    fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let mut status = None;
        let child = &mut self.child;
        let output = &self.output;
        let end = Instant::now() + deadline;
        while status.is_none() {
            assert!(Instant::now() < end, "still running after {deadline:?}; output:\n{}", read(output));
            status = child.try_wait().expect("try_wait");
            thread::sleep(Duration::from_millis(10));
        }
        status.expect("exited")
    }

    #[track_caller]
    fn assert_exit(&mut self, code: i32, deadline: Duration) {
        let status = self.wait(deadline);
        assert_eq!(status.code(), Some(code), "{status:?}; output:\n{}", read(&self.output));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            for pid in descendants(self.pid()).into_iter().rev() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process as /proc/PID/stat tells it.
#[derive(Debug)]
struct Proc {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    state: char,
    cmdline: String,
}

fn process(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
    let mut fields = stat[stat.rfind(')')? + 2..].split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    Some(Proc { pid, ppid, pgrp, state, cmdline })
}

fn processes() -> Vec<Proc> {
    let entries = fs::read_dir("/proc").expect("/proc");
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter_map(process).collect()
}

fn children(ppid: i32) -> Vec<Proc> {
    processes().into_iter().filter(|p| p.ppid == ppid).collect()
}

/// All descendants of `pid`, parents before children.
fn descendants(pid: i32) -> Vec<i32> {
    let all = processes();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
        i += 1;
    }
    found.remove(0);
    found
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn wait_file(path: &Path) {
    wait_for(&format!("{}", path.display()), DEADLINE, || path.exists());
}

/// The one child of `parent` (e.g. rancher-boot under `unshare`).
fn only_child(parent: i32) -> i32 {
    let mut pid = None;
    wait_for("the child process", DEADLINE, || {
        pid = children(parent).first().map(|p| p.pid);
        pid.is_some()
    });
    pid.expect("found")
}

#[test]
fn fault_20_every_exit_code_comes_back() {
    // tini's test: `sh -c "exit N"` for every N; in 8 parallel batches to keep it quick.
    let started = Instant::now();
    thread::scope(|scope| {
        for batch in 0..8 {
            scope.spawn(move || {
                for code in (batch..256).step_by(8) {
                    let output = run(&mut init(&["sh", "-c", &format!("exit {code}")]));
                    assert_code(&output, code);
                }
            });
        }
    });
    eprintln!("256 runs in {:?}", started.elapsed());
}

#[test]
fn the_log_line_says_the_program_runs_as_pid_1s_child_not_exec() {
    let output = run(&mut init(&["sh", "-c", "exit 0"]));
    assert_code(&output, 0);
    let err = stderr(&output);
    assert!(err.contains("0 peers; run as PID 1's child sh -c 'exit 0'"), "{err}");
    assert!(!err.contains("; exec "), "{err}");
}

#[test]
fn fault_20_a_missing_program_is_127_and_a_non_executable_one_126() {
    let output = run(&mut init(&["/nonexistent/program"]));
    assert_code(&output, 127);
    assert!(
        stderr(&output).contains("rancher-boot: error: cannot exec /nonexistent/program: No such file or directory"),
        "{}",
        stderr(&output)
    );

    let dir = tempdir();
    let script = dir.path().join("script");
    fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write");
    let output = run(init(&[]).arg(&script));
    assert_code(&output, 126);
    let expected = format!("rancher-boot: error: cannot exec {}: Permission denied", script.display());
    assert!(stderr(&output).contains(&expected), "{}", stderr(&output));
}

#[test]
fn fault_20_each_forwarded_signal_reaches_the_program() {
    // The program traps the signal, notes it and exits 3: the signal arrived, and the program's
    // own exit code is what rancher-boot reports. rancher-boot's parent ignores every one of
    // them, as a shell does for a background job: blocked signals are queued all the same.
    thread::scope(|scope| {
        for (sig, name) in FORWARDED {
            scope.spawn(move || {
                let dir = tempdir();
                let script = format!(
                    r#"trap 'echo {name} > "$1/got"; exit 3' {name}
                    touch "$1/ready"
                    while [ -d "$1" ]; do sleep 0.05; done"#
                );
                let mut command = init_sh(&script, dir.path());
                ignore_forwarded_signals(&mut command);
                let mut running = Running::spawn(&mut command, dir.path());
                wait_file(&dir.path().join("ready"));
                running.signal(sig);
                running.assert_exit(3, DEADLINE);
                assert_eq!(read(&dir.path().join("got")), format!("{name}\n"));
            });
        }
    });
}

#[test]
fn fault_20_a_signal_the_program_does_not_handle_gives_128_plus_n() {
    // SIGWINCH's default action is to do nothing, so it cannot end a program this way.
    thread::scope(|scope| {
        for (sig, name) in FORWARDED.into_iter().filter(|(s, _)| *s != Signal::SIGWINCH) {
            scope.spawn(move || {
                let dir = tempdir();
                // No core file for SIGQUIT; `exec` so that sleep, with default dispositions, gets it.
                let script = r#"ulimit -c 0; touch "$1/ready"; exec sleep 100"#;
                let mut command = init_sh(script, dir.path());
                ignore_forwarded_signals(&mut command);
                let mut running = Running::spawn(&mut command, dir.path());
                wait_file(&dir.path().join("ready"));
                running.signal(sig);
                let status = running.wait(DEADLINE);
                assert_eq!(status.code(), Some(128 + sig as i32), "{name}: {status:?}");
            });
        }
    });
}

/// Makes rancher-boot start with all forwarded signals ignored.
fn ignore_forwarded_signals(command: &mut Command) {
    // SAFETY: only signal(2) between fork and exec.
    unsafe {
        command.pre_exec(|| {
            for (sig, _) in FORWARDED {
                signal(sig, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

#[test]
fn fault_20_the_program_sees_no_ignored_and_no_blocked_signals() {
    // tini's sigconf test: rancher-boot's parent ignores some signals and blocks others (and
    // rancher-boot itself blocks the forwarded ones and SIGCHLD); the program sees none of it.
    let mut command = init(&["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]);
    // SAFETY: only signal(2) and sigprocmask(2) between fork and exec.
    unsafe {
        command.pre_exec(|| {
            for sig in [Signal::SIGUSR1, Signal::SIGQUIT, Signal::SIGINT, Signal::SIGTTOU, Signal::SIGCHLD] {
                signal(sig, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            }
            if nix::libc::signal(nix::libc::SIGRTMIN() + 3, nix::libc::SIG_IGN) == nix::libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            let mut set = SigSet::empty();
            for sig in [Signal::SIGTERM, Signal::SIGUSR2, Signal::SIGTTIN, Signal::SIGALRM] {
                set.add(sig);
            }
            sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    // With a deadline: had rancher-boot kept the inherited SIG_IGN for SIGCHLD, the kernel would
    // reap the program itself, and rancher-boot would wait for its status for ever.
    let dir = tempdir();
    let mut running = Running::spawn(command.env("RANCHER_BOOT_LOG", "warn"), dir.path());
    running.assert_exit(0, DEADLINE);
    assert_eq!(read(&running.output), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

/// The program starts an orphan (a double fork: its parent exits at once, so the kernel hands
/// it to rancher-boot) that waits for `go`; the program itself waits for `stop`.
const ORPHANING: &str = r#"
    echo $PPID > "$1/ppid"
    printf '%s\n' 'touch "$1/orphan-ready"; while [ ! -e "$1/go" ] && [ -d "$1" ]; do sleep 0.05; done' > "$1/orphan.sh"
    (sh "$1/orphan.sh" "$1" >/dev/null 2>&1 &)
    while [ ! -e "$1/stop" ] && [ -d "$1" ]; do sleep 0.05; done
"#;

/// Finds the orphan among `init`'s children, lets it exit, and checks that `init` reaped it:
/// an unreaped one would stay in /proc as a `Z` child of `init`.
fn assert_orphan_reaped(init: i32, dir: &Path) {
    let command = format!("sh {}/orphan.sh ", dir.display());
    let mut orphan = None;
    wait_for("the orphan to be handed to rancher-boot", DEADLINE, || {
        orphan = children(init).into_iter().find(|p| p.cmdline.starts_with(&command) && p.state != 'Z');
        orphan.is_some()
    });
    let orphan = orphan.expect("found").pid;
    fs::write(dir.join("go"), "").expect("go");
    wait_for("the orphan to be reaped", DEADLINE, || process(orphan).is_none());
    let zombies: Vec<Proc> = children(init).into_iter().filter(|p| p.state == 'Z').collect();
    assert!(zombies.is_empty(), "zombies under rancher-boot: {zombies:?}");
}

#[test]
fn fault_20_an_orphan_is_reaped_by_a_subreaper() {
    let dir = tempdir();
    let mut running = Running::spawn(&mut init_sh(ORPHANING, dir.path()), dir.path());
    let rancher_boot = running.pid();
    wait_file(&dir.path().join("ppid"));
    assert_eq!(read(&dir.path().join("ppid")).trim(), rancher_boot.to_string(), "not PID 1 here");
    assert_orphan_reaped(rancher_boot, dir.path());
    fs::write(dir.path().join("stop"), "").expect("stop");
    running.assert_exit(0, DEADLINE);
}

#[test]
fn fault_20_an_orphan_is_reaped_by_pid_1() {
    let dir = tempdir();
    let mut running = Running::spawn(&mut in_pid_namespace(&init_sh(ORPHANING, dir.path())), dir.path());
    let rancher_boot = only_child(running.pid());
    wait_file(&dir.path().join("ppid"));
    assert_eq!(read(&dir.path().join("ppid")).trim(), "1", "rancher-boot is PID 1 in the namespace");
    assert_orphan_reaped(rancher_boot, dir.path());
    fs::write(dir.path().join("stop"), "").expect("stop");
    running.assert_exit(0, DEADLINE); // unshare passes on rancher-boot's code
}

#[test]
fn fault_20_the_program_exiting_ends_rancher_boot_even_with_orphans_left() {
    // As tini: the program's end is the end. As PID 1 that also ends every orphan.
    let dir = tempdir();
    let script = r#"(sleep 100 >/dev/null 2>&1 &); exit 5"#;
    let mut running = Running::spawn(&mut in_pid_namespace(&init_sh(script, dir.path())), dir.path());
    running.assert_exit(5, DEADLINE);
}

/// Traps USR1 (noted in `$1/$0.log`) and USR2 (noted, then exit); `$1/$0.ready` once armed.
const WATCHER: &str = r#"
    trap 'echo USR1 >> "$1/$0.log"' USR1
    trap 'echo USR2 >> "$1/$0.log"; exit 0' USR2
    echo $$ > "$1/$0.pid"
    touch "$1/$0.ready"
    while [ -d "$1" ]; do sleep 0.05; done
"#;

#[test]
fn fault_20_only_the_program_is_signalled_not_a_process_group() {
    // dumb-init's test without setsid, in both directions: a helper the program started in its
    // own process group (as the Erlang VM starts epmd and port programs), and a watcher in
    // rancher-boot's process group. SIGUSR1 to rancher-boot must reach the program only.
    let dir = tempdir();
    let d = dir.path();
    let program = format!(
        r#"sh -c '{WATCHER}' helper "$1" >/dev/null 2>&1 &
        trap 'echo USR1 > "$1/got"; exit 0' USR1
        echo $$ > "$1/program.pid"
        while [ -d "$1" ]; do sleep 0.05; done"#,
        WATCHER = WATCHER.replace('\'', r"'\''")
    );
    let mut running = Running::spawn(init_sh(&program, d).process_group(0), d);
    let rancher_boot = running.pid();
    let mut watcher = Command::new("sh")
        .args(["-c", WATCHER, "watcher"])
        .arg(d)
        .process_group(rancher_boot)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the watcher");
    for file in ["program.pid", "helper.ready", "watcher.ready"] {
        wait_file(&d.join(file));
    }
    let pid_in = |file: &str| read(&d.join(file)).trim().parse::<i32>().expect("pid");
    let (program, helper) = (pid_in("program.pid"), pid_in("helper.pid"));
    let pgrp = |pid| process(pid).expect("running").pgrp;
    assert_eq!(pgrp(helper), pgrp(program), "the helper shares the program's process group");
    assert_eq!(pgrp(program), program, "the program leads a process group of its own");
    assert_eq!(pgrp(rancher_boot), rancher_boot);
    assert_eq!(pgrp(i32::try_from(watcher.id()).expect("pid")), rancher_boot);

    running.signal(Signal::SIGUSR1);
    running.assert_exit(0, DEADLINE);
    assert_eq!(read(&d.join("got")), "USR1\n");

    // Had either got SIGUSR1, it would have noted it before this USR2 (signals are taken in
    // number order, and this one is sent after the program noted its own).
    kill(Pid::from_raw(helper), Signal::SIGUSR2).expect("signal the helper");
    kill(Pid::from_raw(i32::try_from(watcher.id()).expect("pid")), Signal::SIGUSR2).expect("signal the watcher");
    for name in ["helper", "watcher"] {
        let log = d.join(format!("{name}.log"));
        wait_for(&format!("{name} to note SIGUSR2"), DEADLINE, || read(&log).contains("USR2"));
        assert_eq!(read(&log), "USR2\n", "{name} got only the signal sent to it directly");
    }
    let status = watcher.wait().expect("watcher");
    assert!(status.success(), "{status:?}");
}

#[test]
fn fault_20_an_erlang_vm_as_pid_1_stops_on_sigterm_and_leaves_no_zombie() {
    // The VM leaves two orphans, as epmd and port programs do: one that exits (and must be
    // reaped) and one that lives until the namespace ends. SIGTERM to rancher-boot reaches the
    // VM, which (OTP >= 19) logs it and runs init:stop(); rancher-boot then exits 0.
    let dir = tempdir();
    let d = dir.path();
    fs::write(
        d.join("orphan.sh"),
        "touch \"$1/orphan-ready\"; while [ ! -e \"$1/go\" ] && [ -d \"$1\" ]; do sleep 0.05; done\n",
    )
    .expect("orphan.sh");
    let dir_text = d.to_str().expect("UTF-8 temp dir");
    let eval = format!(
        r#"os:cmd("sh {dir_text}/orphan.sh {dir_text} >/dev/null 2>&1 &"),
           os:cmd("sleep 1001 >/dev/null 2>&1 &"),
           ok = file:write_file("{dir_text}/vm-ready", <<>>),
           receive after infinity -> ok end"#
    );
    let vm = init(&["erl", "-noshell", "-kernel", "logger_level", "info", "-eval", &eval]);
    let mut running = Running::spawn(&mut in_pid_namespace(&vm), d);
    let rancher_boot = only_child(running.pid());
    wait_for("the Erlang VM to start", Duration::from_secs(60), || d.join("vm-ready").exists());

    assert_orphan_reaped(rancher_boot, d);
    let sleeper = children(rancher_boot).into_iter().find(|p| p.cmdline.starts_with("sleep 1001")).map(|p| p.pid);
    assert!(sleeper.is_some(), "the long-lived orphan is rancher-boot's: {:?}", children(rancher_boot));

    let sent = Instant::now();
    kill(Pid::from_raw(rancher_boot), Signal::SIGTERM).expect("SIGTERM");
    running.assert_exit(0, DEADLINE);
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    assert!(read(&running.output).contains("SIGTERM received - shutting down"), "{}", read(&running.output));
    // The namespace ended with its PID 1, and the kernel ended the long-lived orphan with it.
    wait_for("the namespace's last orphan to go", DEADLINE, || sleeper.and_then(process).is_none());
}

#[test]
fn fault_20_the_program_gets_the_terminal_that_rancher_boot_had() {
    // As under tini: the program leads its own process group and, when rancher-boot was in the
    // terminal's foreground, that group takes over the terminal, so that a ^C reaches the program
    // once (from the terminal) and not a second time through rancher-boot. `script` gives us a
    // terminal.
    let report =
        r#"read pid comm state ppid pgrp session tty tpgid rest < /proc/$$/stat; echo "pgrp=$pgrp tpgid=$tpgid""#;
    let inner = init(&["sh", "-c", report]);
    let args: Vec<OsString> = inner.get_args().map(OsString::from).collect();
    let line = rancher_boot::exec::shell_command(inner.get_program(), &args);
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]).env("SHELL", "/bin/sh");
    let output = run(&mut with_env_of(script, &inner));
    assert_code(&output, 0);
    let text = stdout(&output);
    let found = text.lines().find_map(|l| l.trim().strip_prefix("pgrp=")).expect("the program's report");
    let (pgrp, tpgid) = found.split_once(" tpgid=").expect("tpgid");
    assert_eq!(pgrp, tpgid, "the program's group is the terminal's foreground\n{text}");
}

/// `RANCHER_BOOT_INIT=1` (what the README and Dockerfiles say) supervises like `--init`: the
/// program is rancher-boot's child, not rancher-boot itself. `0` and `off` exec; a word that is
/// not a boolean is a usage error, not a silent "off".
#[test]
fn the_init_variable_takes_1_yes_on_and_refuses_other_words() {
    let mode = |value: &str| {
        let mut command = rancher_boot();
        command.args(["--source", "local", "--ip", "10.1.2.3", "--service", "t", "--peers", "none", "--"]);
        command.args(["sh", "-c", "echo $$ $PPID"]).env("RANCHER_BOOT_INIT", value);
        let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
        let child = child.expect("spawn rancher-boot");
        let pid = child.id();
        let output = child.wait_with_output().expect("wait for rancher-boot");
        let ids: Vec<u32> = stdout(&output).split_whitespace().filter_map(|w| w.parse().ok()).collect();
        match ids.as_slice() {
            [shell, parent] if *parent == pid => "init",
            [shell, _] if *shell == pid => "exec",
            _ => panic!("RANCHER_BOOT_INIT={value}: {:?} {}", output.status, stderr(&output)),
        }
    };
    for value in ["1", "true", "yes", "on", "TRUE"] {
        assert_eq!(mode(value), "init", "RANCHER_BOOT_INIT={value}");
    }
    for value in ["0", "false", "no", "off"] {
        assert_eq!(mode(value), "exec", "RANCHER_BOOT_INIT={value}");
    }
    let mut command = rancher_boot();
    command.args(["--source", "local", "--ip", "10.1.2.3", "--service", "t", "--peers", "none", "--", "true"]);
    let output = run(command.env("RANCHER_BOOT_INIT", "sure"));
    assert_code(&output, 64);
    // Named by the variable the user set, with the words it takes (issue 22, item 7).
    let err = stderr(&output);
    assert!(err.contains("invalid value 'sure' for RANCHER_BOOT_INIT (the variable of --init)"), "{err}");
    assert!(err.contains("1/0, true/false, yes/no or on/off"), "{err}");
}
