//! A small builder in the spirit of casey/just's test helper, so that a test reads as the command
//! and what it must show:
//!
//! ```ignore
//! Test::new().args(["probe", "--level", "deep"]).run().code(64).stderr_has("--level");
//! ```
//!
//! `Test::new()` is `rancher_boot()` (a clean environment, a runtime dir of its own); each check
//! returns the outcome, so checks chain, and a failed one shows both streams.

use std::ffi::OsStr;
use std::process::{Command, Output};

use super::{rancher_boot, run, stderr, stdout};

/// The command being built.
#[derive(Debug)]
pub struct Test {
    command: Command,
}

impl Test {
    pub fn new() -> Test {
        Test { command: rancher_boot() }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Test {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Test {
        self.command.env(name, value);
        self
    }

    pub fn env_remove(mut self, name: &str) -> Test {
        self.command.env_remove(name);
        self
    }

    /// Runs it to the end, stdin closed.
    pub fn run(mut self) -> Outcome {
        Outcome { output: run(&mut self.command) }
    }
}

/// What a run showed.
#[derive(Debug)]
pub struct Outcome {
    pub output: Output,
}

impl Outcome {
    fn shown(&self) -> String {
        format!(
            "exit status {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.output.status,
            stdout(&self.output),
            stderr(&self.output)
        )
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Outcome {
        assert_eq!(self.output.status.code(), Some(code), "{}", self.shown());
        self
    }

    #[track_caller]
    pub fn stdout_has(self, text: &str) -> Outcome {
        assert!(stdout(&self.output).contains(text), "stdout lacks {text:?}\n{}", self.shown());
        self
    }

    #[track_caller]
    pub fn stderr_has(self, text: &str) -> Outcome {
        assert!(stderr(&self.output).contains(text), "stderr lacks {text:?}\n{}", self.shown());
        self
    }

    /// Neither stream holds `text` (a cookie, say).
    #[track_caller]
    pub fn never_shows(self, text: &str) -> Outcome {
        assert!(
            !stdout(&self.output).contains(text) && !stderr(&self.output).contains(text),
            "{text:?} was shown\n{}",
            self.shown()
        );
        self
    }

    pub fn stdout(&self) -> String {
        stdout(&self.output)
    }

    pub fn stderr(&self) -> String {
        stderr(&self.output)
    }
}
