//! Real Erlang VMs (Debian's erlang-nox) for the tests that speak distribution: started with a
//! name and a cookie, waited for until EPMD knows them, killed when dropped.
//!
//! Every VM's name holds the test process's pid, so VMs of tests running at once never clash at
//! the machine's one EPMD. The first `erl` starts that EPMD, and no test may end it while others'
//! VMs use it: `.ci/run` ends it after each suite (`epmd -kill`, which refuses while any node is
//! registered). Each VM is ended by its PID when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_for;

pub const COOKIE: &str = "rbit-Erl4ngC00kie";

/// A running VM.
#[derive(Debug)]
pub struct Vm {
    pub node: String,
    child: Child,
    pub stdout: PathBuf,
}

impl Vm {
    /// `erl -name NAME@127.0.0.1` with [`COOKIE`], running `eval` (then waiting forever); returns once
    /// the VM has started.
    pub fn long(name: &str, dir: &Path, eval: &str) -> Vm {
        Vm::start(&format!("{name}_{}@127.0.0.1", std::process::id()), "-name", dir, eval)
    }

    /// `erl -sname NAME` (the host part is this machine's short host name).
    pub fn short(name: &str, dir: &Path) -> Vm {
        let host = nix::unistd::gethostname().expect("hostname").to_string_lossy().into_owned();
        let host = host.split('.').next().unwrap_or_default().to_string();
        Vm::start(&format!("{name}_{}@{host}", std::process::id()), "-sname", dir, "ok")
    }

    fn start(node: &str, flag: &str, dir: &Path, eval: &str) -> Vm {
        Vm::start_with(Command::new("erl"), node, flag, COOKIE, &[], dir, eval)
    }

    /// `erl` run by `command` (`ip netns exec NS erl`, say) as `-name node`, with `cookie` and
    /// `extra` arguments.
    pub fn in_command(command: Command, node: &str, cookie: &str, extra: &[&str], dir: &Path) -> Vm {
        Vm::start_with(command, node, "-name", cookie, extra, dir, "ok")
    }

    fn start_with(
        mut command: Command,
        node: &str,
        flag: &str,
        cookie: &str,
        extra: &[&str],
        dir: &Path,
        eval: &str,
    ) -> Vm {
        let stdout = dir.join(format!("{}.out", node.replace('@', "_")));
        command
            .args(["-noshell", flag, node, "-setcookie", cookie])
            .args(extra)
            .arg("-eval")
            .arg(format!("{eval}, io:format(\"vm-ready~n\"), receive after infinity -> ok end."))
            .env_remove("ERL_EPMD_PORT")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("vm stdout"))
            .stderr(Stdio::null());
        let child = command.spawn().expect("start erl (is erlang-nox installed?)");
        let vm = Vm { node: node.to_string(), child, stdout };
        // -eval runs once the VM has started (kernel and stdlib running), after it registered.
        wait_for(&format!("{node} to start"), Duration::from_secs(30), || vm.output().contains("vm-ready"));
        vm
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What the VM printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// SIGSTOP / SIGCONT: a VM that hangs but keeps its sockets open.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { nix::sys::signal::SIGSTOP } else { nix::sys::signal::SIGCONT };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("signal the vm");
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), nix::sys::signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Is `alive` registered at the local EPMD (`epmd -names`, which erlang-nox ships)?
pub fn registered(alive: &str) -> bool {
    Command::new("epmd").arg("-names").env_remove("ERL_EPMD_PORT").output().is_ok_and(|out| {
        String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with(&format!("name {alive} at port ")))
    })
}

/// A cookie file holding `cookie`, in `dir`.
pub fn cookie_file(dir: &Path, cookie: &str) -> PathBuf {
    let path = dir.join(format!("cookie-{}", cookie.len()));
    std::fs::write(&path, cookie).expect("write cookie");
    path
}
