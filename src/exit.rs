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

    /// docs/reference.md, "Log lines": every error reads `cannot WHAT: WHY`. The tests check each
    /// error they provoke (tests/it/support/mod.rs); this checks every message written as a literal
    /// in a `fail!` or `Fail::new(.., anyhow!(..))`, provoked by a test or not. A probe's verdict
    /// (`Exit::Unhealthy`) names the node instead.
    #[test]
    fn every_literal_error_message_starts_with_cannot() {
        fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let code = text.split("\n#[cfg(test)]").next().unwrap_or_default().to_string();
                    out.push((path.display().to_string(), code));
                }
            }
        }
        let mut files = Vec::new();
        sources(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        let (mut checked, mut wrong) = (0, Vec::new());
        for (path, code) in files.iter().filter(|(path, _)| !path.contains("/src/bin/")) {
            for start in ["fail!(", "Fail::new("] {
                for (at, _) in code.match_indices(start) {
                    let rest = &code[at + start.len()..];
                    let Some(exit) = rest.trim_start().strip_prefix("Exit::") else { continue };
                    let (name, rest) = exit.split_at(exit.find(|c: char| !c.is_alphanumeric()).unwrap_or(0));
                    let rest = rest.trim_start().trim_start_matches(',').trim_start();
                    let rest = rest.strip_prefix("anyhow::anyhow!(").or(rest.strip_prefix("anyhow!(")).unwrap_or(rest);
                    let Some(literal) = rest.trim_start().strip_prefix('"') else { continue };
                    checked += 1;
                    if name != "Unhealthy" && !literal.starts_with("cannot ") {
                        wrong.push(format!("{path}: {}", &literal[..literal.find('"').unwrap_or(0)]));
                    }
                }
            }
        }
        assert!(checked > 50, "the scan found only {checked} messages: is it still reading src/?");
        assert!(wrong.is_empty(), "error messages that do not start with \"cannot \":\n{}", wrong.join("\n"));
    }

    #[test]
    fn or_exit_keeps_the_message() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("disk on fire"));
        let fail = r.or_exit(Exit::CantCreate).unwrap_err();
        assert_eq!(fail.exit, Exit::CantCreate);
        assert_eq!(fail.to_string(), "disk on fire");
    }
}
