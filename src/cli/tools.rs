//! The options of `probe` and `doctor`, the commands that speak to running nodes: their words
//! come after the command's, apart from the boot's (see `Cli::parse_args`), because two of
//! them share a name with the boot's (`--app`, `--timeout`) and mean something else.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

use super::parse_duration;

/// The commands that speak to running nodes, each with options of its own.
#[derive(Debug)]
pub enum Tool {
    Probe(ProbeArgs),
    Doctor(DoctorArgs),
}

impl Tool {
    /// `-v`/`-q` given after the word.
    pub(super) fn verbosity(&self) -> (u8, u8) {
        match self {
            Tool::Probe(ProbeArgs { common, .. }) | Tool::Doctor(DoctorArgs { common, .. }) => {
                (common.verbose, common.quiet)
            }
        }
    }
}

/// When nodes don't connect: which link is broken, from both sides.
///
/// Checks this node (identity and evidence, names, interfaces, distribution flags, the cookie's
/// source, its own VM at EPMD) and then every peer side by side: EPMD, the name registered, TCP
/// to its port, the handshake, and whether the peer reaches this node back. One line per peer
/// with a verdict and the fix. Exit 0 when all is well, 1 otherwise; 64 usage; 78 configuration.
/// The boot's options go before the word `doctor`; it changes nothing on any node.
#[derive(Debug, Parser)]
#[command(name = "rancher-boot doctor", version)]
pub struct DoctorArgs {
    /// The same facts as one JSON object, for scripts
    #[arg(long)]
    pub json: bool,

    /// Deadline for the whole run, however many peers
    #[arg(long, env = "RANCHER_BOOT_DOCTOR_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub common: ToolOptions,
}

/// What `probe` and `doctor` share after their word.
#[derive(Debug, Args)]
pub struct ToolOptions {
    /// Read the cookie from this file [default: --cookie-file before the word, the boot's, RELEASE_COOKIE, releases/COOKIE, ~/.erlang.cookie]
    #[arg(long, value_name = "PATH")]
    pub cookie_file: Option<PathBuf>,

    /// More log output (repeat for more)
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log output (repeat for less)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

/// Is the node healthy? Asks its EPMD, completes the handshake, calls it through `rex`.
///
/// With no --node, the node is this container's: the one the boot chose (its state file in the
/// runtime dir), else the one a boot would choose with the options given before `probe`. After
/// the word `probe`, --app names an OTP application and --timeout is the probe's own deadline
/// (neither is the boot's). Exit 0 healthy; 1 unhealthy, with one line on stderr naming the node,
/// the step and why; 64 usage; 78 configuration (no cookie, no node).
#[derive(Debug, Parser)]
#[command(
    name = "rancher-boot probe",
    version,
    after_help = "Levels: epmd (the name is registered at its host's EPMD; needs no cookie), connect \
                  (the handshake completes with the cookie), rpc (erlang:node() answers the name). \
                  The cookie: --cookie-file (RANCHER_BOOT_COOKIE_FILE), the boot's, RELEASE_COOKIE, \
                  a mix release's releases/COOKIE, $HOME/.erlang.cookie. ERL_EPMD_PORT is read as \
                  erl reads it."
)]
pub struct ProbeArgs {
    /// The node to probe (name@host) [default: this container's]
    #[arg(long, env = "RANCHER_BOOT_PROBE_NODE", value_name = "NAME")]
    pub node: Option<String>,

    /// How far the probe goes
    #[arg(long, env = "RANCHER_BOOT_PROBE_LEVEL", value_enum, default_value_t = ProbeLevel::Connect)]
    pub level: ProbeLevel,

    /// An OTP application that must be running, for a readiness probe (repeat; implies --level rpc)
    #[arg(long = "app", env = "RANCHER_BOOT_PROBE_APPS", value_name = "APP", value_delimiter = ',')]
    pub apps: Vec<String>,

    /// Deadline for the whole probe (Kubernetes' default timeoutSeconds is 1)
    #[arg(long, env = "RANCHER_BOOT_PROBE_TIMEOUT", value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub common: ToolOptions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum ProbeLevel {
    /// The name is registered at its host's EPMD
    Epmd,
    /// The distribution handshake completes with the cookie
    Connect,
    /// A call through rex answers
    Rpc,
}
