//! Exit codes and the one error type that carries them.
//!
//! Every failure before the exec is a [`Fail`]: an exit code from docs/spec.md section 9 plus an
//! `anyhow` chain that `main` prints once, as `rancher-boot: error: {err:#}`. Helpers deep in
//! the program never print or exit themselves; they return a `Fail` and let `main` decide.
//! The codes follow BSD `sysexits.h` for the boot's own failures and the shell's conventions
//! (126, 127, 128+N) for the program's.

use std::fmt;

/// How rancher-boot ends when it does not exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `print-env`, `peers`, `probe` or `--dry-run` succeeded.
    Ok,
    /// `probe`: the node is not healthy (the message says which step failed and why).
    Unhealthy,
    /// EX_USAGE: a bad flag, no program and no `--app`.
    Usage,
    /// EX_DATAERR: metadata answered, but with invalid data, until the deadline.
    DataErr,
    /// EX_NOINPUT: a template file is missing or unreadable.
    NoInput,
    /// EX_UNAVAILABLE: metadata (or the required peers) unavailable until the deadline.
    Unavailable,
    /// EX_CANTCREAT: a rendered file or the runtime directory cannot be written.
    CantCreate,
    /// EX_CONFIG: a template variable is unset, the cookie file is bad, ...
    Config,
    /// The program exists but cannot be executed.
    NotExecutable,
    /// The program does not exist.
    NotFound,
    /// Signal N arrived before the exec, or (with `--init`) killed the child.
    Signal(i32),
    /// The child's own exit status (`--init`).
    Child(u8),
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Unhealthy => 1,
            Exit::Usage => 64,
            Exit::DataErr => 65,
            Exit::NoInput => 66,
            Exit::Unavailable => 69,
            Exit::CantCreate => 73,
            Exit::Config => 78,
            Exit::NotExecutable => 126,
            Exit::NotFound => 127,
            // Signal numbers on Linux are 1..=64, so 128+N always fits; clamp anyway.
            Exit::Signal(n) => u8::try_from(128 + n.clamp(0, 127)).unwrap_or(255),
            Exit::Child(code) => code,
        }
    }
}

/// A failure that ends rancher-boot with `exit` after printing `error`.
pub struct Fail {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Fail {
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Fail { exit, error: error.into() }
    }
}

impl fmt::Debug for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({}): {:#}", self.exit, self.exit.code(), self.error)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// Shorthand for building a [`Fail`] from a message.
#[macro_export]
macro_rules! fail {
    ($exit:expr, $($arg:tt)*) => {
        $crate::exit::Fail::new($exit, anyhow::anyhow!($($arg)*))
    };
}

/// Attaches an exit code to any error, so that `?` can carry it up to `main`.
pub trait OrExit<T> {
    fn or_exit(self, exit: Exit) -> Result<T, Fail>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for Result<T, E> {
    fn or_exit(self, exit: Exit) -> Result<T, Fail> {
        self.map_err(|e| Fail::new(exit, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_sysexits_and_the_shell() {
        let table = [
            (Exit::Ok, 0),
            (Exit::Unhealthy, 1),
            (Exit::Usage, 64),
            (Exit::DataErr, 65),
            (Exit::NoInput, 66),
            (Exit::Unavailable, 69),
            (Exit::CantCreate, 73),
            (Exit::Config, 78),
            (Exit::NotExecutable, 126),
            (Exit::NotFound, 127),
            (Exit::Signal(15), 143),
            (Exit::Signal(2), 130),
            (Exit::Signal(1), 129),
            (Exit::Child(0), 0),
            (Exit::Child(255), 255),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn out_of_range_signals_do_not_wrap() {
        assert_eq!(Exit::Signal(200).code(), 255);
        assert_eq!(Exit::Signal(-3).code(), 128);
    }

    #[test]
    fn or_exit_keeps_the_message() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("disk on fire"));
        let fail = r.or_exit(Exit::CantCreate).unwrap_err();
        assert_eq!(fail.exit, Exit::CantCreate);
        assert_eq!(fail.to_string(), "disk on fire");
    }
}
