//! The last step of a boot: replace rancher-boot with the program, and the signal state around it.
//!
//! Until the exec, rancher-boot may be PID 1, and the kernel does not deliver a signal whose
//! disposition is the default to PID 1; so SIGTERM, SIGINT and SIGHUP get a handler that ends the
//! boot at once with 128+N (nothing has started that needs cleaning up). Just before the exec every
//! disposition goes back to the default and the signal mask is emptied: Rust's runtime ignores
//! SIGPIPE, and an ignored signal survives exec, so without this the Erlang VM would inherit it.
//! Supervising a child instead of exec'ing (`--init`) lives in `init.rs`.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use nix::libc;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask};

use crate::exit::{Exit, Fail};

/// The signals that end a boot that is still waiting (for metadata, peers, ...).
const BOOT_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

extern "C" fn end_boot(signal: libc::c_int) {
    // Only async-signal-safe calls here: _exit skips atexit handlers and buffered output,
    // which is what we want (nothing half-done to flush; rendered files are written atomically).
    unsafe { libc::_exit(128 + signal) }
}

/// Makes SIGTERM, SIGINT and SIGHUP end rancher-boot with 128+N while it boots, even as PID 1.
pub fn end_boot_on_signals() {
    let action = SigAction::new(SigHandler::Handler(end_boot), SaFlags::empty(), SigSet::empty());
    for signal in BOOT_SIGNALS {
        // SAFETY: the handler only calls _exit, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(signal, &action) } {
            log::debug!("cannot handle {signal}: {e}");
        }
    }
}

/// Puts every signal back to its default disposition and unblocks all of them, so that the
/// program starts as if from a fresh fork/exec of init: no ignored and no blocked signals.
///
/// This includes the real-time signals, and the ones the C library reserves for itself (32, 33):
/// its `sigaction` wrapper refuses those, but a parent may still have left them ignored, so the
/// system call is made directly. An all-zero kernel `sigaction` is SIG_DFL with no flags and an
/// empty mask on every Linux architecture.
pub fn reset_signals() {
    let default = [0u64; 4];
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installs SIG_DFL (runs no code of ours); the struct is larger than the kernel's,
        // which reads only its own size; 8 is the size of the kernel's signal set on Linux.
        unsafe {
            libc::syscall(libc::SYS_rt_sigaction, signal, default.as_ptr(), std::ptr::null_mut::<u64>(), 8usize);
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Replaces this process with `program`, found in PATH as a shell would. Returns only on failure:
/// 127 when the program does not exist, 126 when it exists but cannot be executed.
///
/// The C library's `execvpe` with the environment built here once: std's `Command` would copy
/// the environment twice more on the way (a fifth of a boot's instructions). PATH is searched in
/// our own environment, which is the program's: no export sets PATH.
pub fn exec(program: &OsStr, args: &[OsString], env: &BTreeMap<OsString, OsString>) -> Fail {
    let _ = io::stdout().flush();
    let error =
        match (c_strings(std::iter::once(program).chain(args.iter().map(OsString::as_os_str))), env_strings(env)) {
            (Ok(argv), Ok(envp)) => {
                reset_signals();
                let Err(errno) = nix::unistd::execvpe(&argv[0], &argv, &envp);
                io::Error::from(errno)
            }
            (Err(error), _) | (_, Err(error)) => error,
        };
    // Back in rancher-boot: the boot signals should end us again while we report.
    end_boot_on_signals();
    let exit = exec_failure_exit(&error);
    Fail::new(exit, anyhow::anyhow!("cannot exec {}: {}", program.to_string_lossy(), describe_io_error(&error)))
}

/// The words as C strings; a NUL byte (which neither argv nor the environment can hold) is an error.
fn c_strings<'a>(words: impl Iterator<Item = &'a OsStr>) -> io::Result<Vec<CString>> {
    words.map(|word| CString::new(word.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))).collect()
}

/// `NAME=value` for each variable.
fn env_strings(env: &BTreeMap<OsString, OsString>) -> io::Result<Vec<CString>> {
    env.iter()
        .map(|(name, value)| {
            let mut pair = Vec::with_capacity(name.len() + 1 + value.len());
            pair.extend_from_slice(name.as_bytes());
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            CString::new(pair).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
        })
        .collect()
}

/// 127 for "not found" (as a shell says `command not found`), 126 for every other reason.
pub fn exec_failure_exit(error: &io::Error) -> Exit {
    match error.kind() {
        io::ErrorKind::NotFound => Exit::NotFound,
        _ => Exit::NotExecutable,
    }
}

/// `No such file or directory`, without Rust's `(os error 2)` suffix.
pub fn describe_io_error(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(errno) => nix::errno::Errno::from_raw(errno).desc().to_string(),
        None => error.to_string(),
    }
}

/// The command as a shell would read it: every word single-quoted where needed.
pub fn shell_command(program: &OsStr, args: &[OsString]) -> String {
    std::iter::once(program).chain(args.iter().map(OsString::as_os_str)).map(shell_quote).collect::<Vec<_>>().join(" ")
}

/// Quotes one word for a POSIX shell; non-UTF-8 bytes are kept as they are.
pub fn shell_quote(word: &OsStr) -> String {
    let bytes = word.as_bytes();
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(b);
    if !bytes.is_empty() && bytes.iter().all(plain) {
        return word.to_string_lossy().into_owned();
    }
    format!("'{}'", word.to_string_lossy().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_of_exec_failures() {
        assert_eq!(exec_failure_exit(&io::Error::from_raw_os_error(libc::ENOENT)), Exit::NotFound);
        assert_eq!(exec_failure_exit(&io::Error::from_raw_os_error(libc::EACCES)), Exit::NotExecutable);
        assert_eq!(exec_failure_exit(&io::Error::from_raw_os_error(libc::ENOEXEC)), Exit::NotExecutable);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(OsStr::new("/opt/app/bin/hello")), "/opt/app/bin/hello");
        assert_eq!(shell_quote(OsStr::new("")), "''");
        assert_eq!(shell_quote(OsStr::new("a b")), "'a b'");
        assert_eq!(shell_quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(shell_command(OsStr::new("x"), &["foreground".into(), "$HOME".into()]), "x foreground '$HOME'");
    }

    #[test]
    fn errno_text_without_suffix() {
        assert_eq!(describe_io_error(&io::Error::from_raw_os_error(libc::ENOENT)), "No such file or directory");
    }
}
