//! `--init`: rancher-boot stays PID 1, runs the program as its only child, forwards signals to it,
//! reaps every zombie, and ends with the program's status.
//!
//! What this module owns: rancher-boot's signal mask from the spawn on, the child's process group
//! and terminal, and the wait loop. It leaves the boot before the program starts to `boot.rs`, the
//! meaning of exit codes to `exit.rs`, and the naming of an exec failure and the child's clean
//! signal state to `exec.rs`, so that both modes say and do the same thing there.
//!
//! The shape is tini's. The signals we act on are blocked *before* the child exists and are then
//! taken synchronously with `sigtimedwait`, so one that arrives between spawn and wait stays
//! pending instead of being lost, and no handler ever runs. Blocking is also what makes them reach
//! a namespace's PID 1 at all: the kernel drops a signal with the default disposition sent to
//! that init only when the signal is not blocked.
//!
//! Only the child is signalled, never a process group: the Erlang VM's helpers (epmd, port
//! programs, `erl_child_setup`) share its group and must keep running while the VM shuts down in
//! order. The child does get a process group of its own, and the terminal when rancher-boot had
//! it, as under tini: a `^C` typed at `docker run -it` then reaches the program once, from the
//! terminal, rather than once from the terminal and again from us.
//!
//! With `--mesh`, the mesh keeper ([`crate::mesh`]) runs beside this loop on a thread of its own,
//! started right after the spawn: no fork ever happens while it runs, and it inherits the mask
//! in which every signal we wait for is blocked, so signals, reaping and the exit stay this
//! thread's alone and are never delayed by it.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::anyhow;
use nix::errno::Errno;
use nix::libc;
use nix::sys::prctl;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, kill, sigaction, sigprocmask};
use nix::unistd::Pid;

use crate::exec::{describe_io_error, end_boot_on_signals, exec_failure_exit, reset_signals};
use crate::exit::{Exit, Fail};

/// The signals passed on to the program: stop requests, reload, thread dumps, window size.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The program's pid, for the handler that runs when another thread takes a forwarded signal.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn pass_on_to_child(signal: libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(child, signal) };
    }
}

/// How long one wait for a signal lasts before a reaping pass nobody asked for. Correctness does
/// not depend on it (every exit raises SIGCHLD, which stays pending); like tini's one-second
/// timeout it is a cheap safety net.
const WAIT_SLICE: libc::timespec = libc::timespec { tv_sec: 1, tv_nsec: 0 };

/// Runs `program` as a supervised child and returns its exit code, or 128+N when signal N killed
/// it. Fails (126, 127) only when the program cannot be started.
pub fn run(
    program: &OsStr,
    args: &[OsString],
    env: &BTreeMap<OsString, OsString>,
    keeper: Option<crate::mesh::Keeper>,
) -> Result<Exit, Fail> {
    // 1. Block what we wait for before the child exists: from here on a forwarded signal or a
    //    child's exit stays pending until step 5 takes it, whenever it arrives. sigprocmask fails
    //    only for an invalid `how`.
    let waited = waited_signals();
    let mut previous = SigSet::empty();
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), Some(&mut previous));
    // An ignored SIGCHLD (a parent may leave it so) makes the kernel reap children on its own,
    // and the program's status would be lost with them.
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_DFL runs no code of ours.
    let _ = unsafe { sigaction(Signal::SIGCHLD, &default) };
    // The mask above is this thread's only. The boot leaves no thread behind today (DNS and the
    // metadata client's name look are our own blocking code; the debug line below counts them),
    // but a signal sent to the process goes to any thread that does not block it, and then the
    // boot's handler would end us with 128+N. So the handler is replaced by one that passes the
    // signal on to the program: a guard that costs nothing while this thread is alone, and keeps
    // --init correct if a library ever starts a thread. In this thread the handler never runs.
    let pass_on = SigAction::new(SigHandler::Handler(pass_on_to_child), SaFlags::SA_RESTART, SigSet::empty());
    for signal in FORWARDED {
        // SAFETY: the handler makes one async-signal-safe call (kill).
        let _ = unsafe { sigaction(signal, &pass_on) };
    }
    log::debug!("{} thread(s) running; signals are taken by this one", thread_count());

    // 2. Orphans are reparented to PID 1, which reaps them here. Anywhere else we ask the kernel
    //    to make us their reaper instead; without it only the program itself would be reaped.
    if std::process::id() != 1
        && let Err(e) = prctl::set_child_subreaper(true)
    {
        log::warn!("failed to register as child subreaper: {}; orphans will not be reaped", e.desc());
    }

    // 3. Spawn, in a process group of its own. std keeps our signal mask in the child and resets
    //    only SIGPIPE, so the child puts itself into exec.rs's clean state before the exec:
    //    every disposition the default, nothing blocked.
    let owns_terminal = owns_terminal();
    let _ = io::stdout().flush();
    let mut command = Command::new(program);
    command.args(args).env_clear().envs(env).process_group(0);
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
    // (sigprocmask, tcsetpgrp, rt_sigaction); it allocates nothing and takes no lock.
    unsafe { command.pre_exec(move || prepare_child(owns_terminal)) };
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            // Back to the boot's signal state: a TERM that came meanwhile ends us with 143.
            end_boot_on_signals();
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
            let message = anyhow!("cannot exec {}: {}", program.to_string_lossy(), describe_io_error(&error));
            return Err(Fail::new(exec_failure_exit(&error), message));
        }
    };
    let child = Pid::from_raw(i32::try_from(child.id()).expect("Linux pids fit in an i32"));
    CHILD.store(child.as_raw(), Ordering::SeqCst);
    log::debug!("program started as pid {child}");
    // The keeper's thread only now: the one fork of this process is behind us, so no child can
    // inherit a lock that thread holds. Created from this thread, it inherits the mask of step 1.
    if let Some(keeper) = keeper {
        keeper.start();
    }

    // 4. From here on the program runs and we no longer bail: every path ends with its status.
    // 5. Wait for a signal, pass it on, reap; until the program itself has been reaped.
    loop {
        match wait_signal(&waited) {
            None | Some(Signal::SIGCHLD) => {}
            Some(signal) => forward(child, signal),
        }
        if let Some(exit) = reap(child) {
            return Ok(exit);
        }
    }
}

/// The forwarded signals and SIGCHLD.
fn waited_signals() -> SigSet {
    let mut set = SigSet::empty();
    FORWARDED.iter().chain(&[Signal::SIGCHLD]).for_each(|&signal| set.add(signal));
    set
}

/// Whether stdin is a terminal whose foreground process group is ours: only then does the child
/// take it over (taking it from a background job would steal it from the shell's foreground).
fn owns_terminal() -> bool {
    // SAFETY: plain queries on a file descriptor number; no memory is passed.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp() }
}

/// In the child, after std's `setpgid(0, 0)` and before exec.
fn prepare_child(owns_terminal: bool) -> io::Result<()> {
    if owns_terminal {
        // The new group is not yet in the foreground, and tcsetpgrp from a background group
        // raises SIGTTOU (which would stop us) unless it is blocked. A failure is not fatal:
        // the program then runs without the terminal's job control, as with no terminal.
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), None);
        // SAFETY: async-signal-safe; a failure is reported through the return value only.
        unsafe { libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp()) };
    }
    reset_signals();
    Ok(())
}

/// The next pending signal of `set`, or `None` after [`WAIT_SLICE`] (or an interruption).
fn wait_signal(set: &SigSet) -> Option<Signal> {
    // SAFETY: `set` and the timeout outlive the call; a null siginfo pointer is allowed.
    let number = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &WAIT_SLICE) };
    Signal::try_from(number).ok()
}

/// Sends `signal` to the child, and only to it.
fn forward(child: Pid, signal: Signal) {
    match kill(child, signal) {
        Ok(()) => log::debug!("forwarded {signal} to pid {child}"),
        // It has exited: the pending SIGCHLD ends the loop at this very pass.
        Err(Errno::ESRCH) => log::debug!("{signal} arrived after the program exited"),
        Err(e) => log::warn!("failed to forward {signal} to pid {child}: {}", e.desc()),
    }
}

/// Reaps every zombie that is ready. Returns the program's exit once it has been reaped.
///
/// Raw `waitpid`, not nix's: nix turns a status for a signal outside its enum (a real-time one)
/// into an error after the child is already reaped, and its status would be lost.
fn reap(child: Pid) -> Option<Exit> {
    let mut exit = None;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid == 0 {
            return exit; // children remain, none is a zombie
        }
        if pid < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::ECHILD => return exit, // no child at all
                e => {
                    log::warn!("failed to wait for children: {}", e.desc());
                    return exit;
                }
            }
        }
        let code = if libc::WIFEXITED(status) {
            Exit::Child(u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(u8::MAX))
        } else if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            continue; // stopped or continued: we did not ask for those
        };
        if pid == child.as_raw() {
            log::debug!("program exited: {} (code {})", describe(code), code.code());
            exit = Some(code);
        } else {
            log::debug!("reaped orphan pid {pid}: {}", describe(code));
        }
    }
}

fn describe(exit: Exit) -> String {
    match exit {
        Exit::Signal(n) => match Signal::try_from(n) {
            Ok(signal) => format!("killed by {signal}"),
            Err(_) => format!("killed by signal {n}"),
        },
        other => format!("exit {}", other.code()),
    }
}

/// The number of this process's threads (for the debug log: a signal sent to the process may be
/// taken by any thread that does not block it, so we expect to be alone here).
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(Iterator::count).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_exactly_the_forwarded_signals_and_sigchld() {
        let set = waited_signals();
        for signal in Signal::iterator() {
            let expected = FORWARDED.contains(&signal) || signal == Signal::SIGCHLD;
            assert_eq!(set.contains(signal), expected, "{signal}");
        }
    }

    #[test]
    fn describes_how_the_program_ended() {
        assert_eq!(describe(Exit::Child(3)), "exit 3");
        assert_eq!(describe(Exit::Signal(15)), "killed by SIGTERM");
        assert_eq!(describe(Exit::Signal(40)), "killed by signal 40");
    }
}
