//! The command line: clap's derive structs, and their conversion into a checked [`Config`].
//!
//! Raw flags are validated here once (durations, URLs, node basename, template specs), so the
//! rest of the program works with values that are known to be good. Every option has an
//! environment twin; clap gives the flag precedence over the variable. Usage errors leave as
//! exit 64 (clap's own default of 2 is not what `sysexits.h` users expect). The plain boot form,
//! which every container start runs, is parsed by `quick.rs` without building clap's command;
//! clap parses everything else and is the reference that parser is tested against. Both are made
//! from one table of the options, `options!` below.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::{Exit, Fail};
use crate::fail;

mod quick;
mod tools;
mod values;

pub use tools::{DoctorArgs, ProbeArgs, ProbeLevel, Tool, ToolOptions};
pub use values::{IpSpec, MAX_NODE_BASENAME, check_log_filter, check_name, check_node_basename, parse_duration};
use values::{
    LEVELS, address_in, basename_of, check_metadata_url, parse_boolish, parse_count, parse_dns_server, parse_port,
    parse_template_spec,
};

/// The metadata URL that Rancher 1.x containers reach through Rancher's DNS.
pub const DEFAULT_METADATA_URL: &str = "http://rancher-metadata.rancher.internal/2016-07-29";
const DEFAULT_TIMEOUT: &str = "60s";
const DEFAULT_RUNTIME_DIR: &str = "/tmp/rancher-boot";
const DEFAULT_LOG: &str = "info";
const DEFAULT_MESH_INTERVAL: &str = "5s";

const USAGE: &str = "rancher-boot [OPTIONS] -- PROGRAM [ARGS]...
       rancher-boot [OPTIONS] ARGS...          (passthrough: exec --app ARGS...)
       rancher-boot [OPTIONS] print-env [--format shell|dotenv|json] [--show-secrets]
       rancher-boot [OPTIONS] peers [--format plain|json]
       rancher-boot [OPTIONS] probe [--node NAME] [--level epmd|connect|rpc] [--app APP]... [--timeout DUR]
       rancher-boot [OPTIONS] doctor [--json] [--timeout DUR]";

/// Boot an Erlang/Elixir release with the identity its platform gives it.
///
/// rancher-boot finds the container's IP and service (Rancher metadata, Docker Swarm or Compose
/// DNS, Kubernetes, ECS, Nomad, Fly, or the local machine), exports
/// NODE_NAME=basename@ip (and the variables mix releases and relx read), renders vm.args
/// templates, looks up the service's peers in DNS, and execs PROGRAM in its place.
#[derive(Debug, Parser)]
#[command(
    name = "rancher-boot",
    version,
    override_usage = USAGE,
    allow_external_subcommands = true,
    after_help = "Two more commands speak to running nodes, with options of their own after the word: \
                  `probe` (is the node healthy? a health check in a millisecond: rancher-boot probe --help) \
                  and `doctor` (when nodes don't connect, which link is broken: rancher-boot doctor --help).\n\
                  Every option can also be set by the variable shown in [env: ...]; the flag wins. \
                  The variables of --init, --mesh, --dry-run and --cookie-home take 1/0, true/false, yes/no or on/off.\n\
                  Exit codes: 1 unhealthy (probe, doctor), 64 usage, 65 invalid metadata, 66 template missing, \
                  69 metadata or peers unavailable, 73 cannot write, 78 configuration, 126/127 cannot exec, \
                  128+N signal."
)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// The program to boot and its arguments: what follows the first `--` (see [`Cli::parse_args`]).
    #[arg(skip)]
    pub program: Option<Vec<OsString>>,

    /// `probe` or `doctor` and its own options: what follows the word (see [`Cli::parse_args`]).
    #[arg(skip)]
    pub tool: Option<Tool>,
}

/// Declares the boot's options once. From each line it makes a field of clap's [`Options`] (the
/// reference parser, with its help, defaults and variable) and an entry of `quick::SPECS` with
/// the conversion of its words (`quick::Quick`, chosen by the field's type): the two parsers cannot
/// drift apart, and an option is added in one place. `Value` takes a value, `Flag` is a boolean
/// whose variable holds a boolean word, `Count` counts `-v`/`-vv`. Every option is global (it may
/// stand before or after a subcommand).
macro_rules! options {
    ($(
        $(#[doc = $doc:literal])*
        $kind:ident $field:ident: $ty:ty = $long:literal
            $(, short $short:literal)? $(, env $env:literal)? $(, default $default:expr)?
            $(, arg($($attr:tt)*))?;
    )*) => {
        #[derive(Debug, Clone, Args)]
        pub struct Options {
            $(
                $(#[doc = $doc])*
                #[arg(long = $long, $(short = $short,)? $(env = $env,)? $(default_value = $default,)? global = true
                      $(, $($attr)*)?)]
                pub $field: $ty,
            )*
        }

        /// The options in `Options`' order, as far as parsing goes.
        const SPECS: &[quick::Spec] = &[$(quick::Spec {
            long: $long,
            short: [$(Some($short),)? None][0],
            env: [$(Some($env),)? None][0],
            kind: quick::Kind::$kind,
        }),*];

        impl Options {
            /// The options from each one's words (in `SPECS`' order), converted as clap would;
            /// `None` when clap must decide (see quick.rs).
            fn from_words(given: &[Vec<String>]) -> Option<Options> {
                use quick::Quick;
                let mut given = given.iter();
                // A struct expression evaluates its fields in the order written: `SPECS`' order.
                Some(Options { $($field: Quick::quick(given.next()?, [$(Some($default),)? None][0])?,)* })
            }
        }
    };
}

options! {
    /// Where the identity comes from (auto: detect the platform)
    Value source: Source = "source", env "RANCHER_BOOT_SOURCE", default "auto", arg(value_enum);
    /// The host part of the node name: the IP, or the FQDN the platform gives (Kubernetes StatefulSets)
    Value name_by: NameBy = "name-by", env "RANCHER_BOOT_NAME_BY", default "ip", arg(value_enum);
    /// Metadata base URL, API version included (`.../latest` works too)
    Value metadata_url: String = "metadata-url", env "RANCHER_METADATA_URL", default DEFAULT_METADATA_URL,
        arg(value_name = "URL");
    /// Overall deadline for the platform's answer (metadata, a named Swarm or Compose source's DNS) and for --wait-peers (e.g. 500ms, 60s, 2m)
    Value timeout: Duration = "timeout", env "RANCHER_BOOT_TIMEOUT", default DEFAULT_TIMEOUT,
        arg(value_name = "DURATION", value_parser = parse_duration);
    /// Program for passthrough (`rancher-boot remote` for a mix release, `remote_console` for relx)
    Value app: Option<PathBuf> = "app", env "RANCHER_BOOT_APP", arg(value_name = "PATH");
    /// Left part of the node name [default: file name of PROGRAM or --app]
    Value node_basename: Option<String> = "node-basename", env "RANCHER_BOOT_NODE_BASENAME", arg(value_name = "NAME");
    /// Node IP, over what any source found; or a network (10.0.8.0/24): this machine's address in it [default: the source's]
    Value ip: Option<IpSpec> = "ip", env "RANCHER_BOOT_IP", arg(value_name = "IP|CIDR");
    /// Service name, over what any source found (the peer query follows it) [default: the source's]
    Value service: Option<String> = "service", env "RANCHER_BOOT_SERVICE", arg(value_name = "NAME");
    /// Render TEMPLATE to RUNTIME_DIR/vm.args and export RELEASE_VM_ARGS and VMARGS_PATH
    Value vm_args: Option<PathBuf> = "vm-args", env "RANCHER_BOOT_VM_ARGS", arg(value_name = "TEMPLATE");
    /// Render another file; DEST is relative to RUNTIME_DIR [default DEST: SRC's name without .src/.tmpl/.template]
    Value templates: Vec<String> = "template", env "RANCHER_BOOT_TEMPLATES",
        arg(value_name = "SRC[:DEST]", value_delimiter = ',');
    /// Where rendered files go (created 0700)
    Value runtime_dir: PathBuf = "runtime-dir", env "RANCHER_BOOT_RUNTIME_DIR", default DEFAULT_RUNTIME_DIR,
        arg(value_name = "DIR");
    /// How peers are found
    Value peers: PeerMode = "peers", env "RANCHER_BOOT_PEERS", default "dns", arg(value_enum);
    /// DNS name to resolve for peers [default: DNS_CLUSTER_QUERY, else the source's]
    Value peer_query: Option<String> = "peer-query", env "RANCHER_BOOT_PEER_QUERY", arg(value_name = "NAME");
    /// DNS server to ask instead of /etc/resolv.conf's (IP or IP:PORT)
    Value dns_server: Option<SocketAddr> = "dns-server", env "RANCHER_BOOT_DNS_SERVER",
        arg(value_name = "ADDR", value_parser = parse_dns_server);
    /// Wait until at least N other peers are known
    Value wait_peers: usize = "wait-peers", env "RANCHER_BOOT_WAIT_PEERS", default "0",
        arg(value_name = "N", value_parser = parse_count);
    /// Read the Erlang cookie from this file and export RELEASE_COOKIE
    Value cookie_file: Option<PathBuf> = "cookie-file", env "RANCHER_BOOT_COOKIE_FILE", arg(value_name = "PATH");
    /// Also write the cookie (--cookie-file, else RELEASE_COOKIE) to $HOME/.erlang.cookie of the --user (0400), where RabbitMQ, ejabberd and erl read it
    Flag cookie_home: bool = "cookie-home", env "RANCHER_BOOT_COOKIE_HOME", arg(value_parser = parse_boolish);
    /// Run PROGRAM as this user (and group), dropped to after the files are written; HOME from passwd
    Value user: Option<String> = "user", env "RANCHER_BOOT_USER", arg(value_name = "USER[:GROUP]");
    /// Erlang distribution: tcp, or tls (mutual TLS with the certificates of --tls-dir)
    Value dist: Dist = "dist", env "RANCHER_BOOT_DIST", default "tcp", arg(value_enum);
    /// tls.crt, tls.key and ca.crt for --dist tls (a Kubernetes TLS secret's layout)
    Value tls_dir: Option<PathBuf> = "tls-dir", env "RANCHER_BOOT_TLS_DIR", arg(value_name = "DIR");
    /// No EPMD: the node listens on port N and reaches its peers on N
    Value dist_port: Option<u16> = "dist-port", env "RANCHER_BOOT_DIST_PORT",
        arg(value_name = "N", value_parser = parse_port);
    /// Stay as PID 1: spawn PROGRAM, forward signals, reap zombies
    Flag init: bool = "init", env "RANCHER_BOOT_INIT", arg(value_parser = parse_boolish);
    /// With --init: keep the cluster meshed from outside the app (look the peers up every interval, have the VM connect the missing ones)
    Flag mesh: bool = "mesh", env "RANCHER_BOOT_MESH", arg(value_parser = parse_boolish);
    /// How often the mesh keeper looks the peers up
    Value mesh_interval: Duration = "mesh-interval", env "RANCHER_BOOT_MESH_INTERVAL", default DEFAULT_MESH_INTERVAL,
        arg(value_name = "DURATION", value_parser = parse_duration);
    /// Do everything but the exec: print rendered files and the command instead
    Flag dry_run: bool = "dry-run", env "RANCHER_BOOT_DRY_RUN", arg(value_parser = parse_boolish);
    /// More log output (repeat for more)
    Count verbose: u8 = "verbose", short 'v', arg(action = clap::ArgAction::Count, conflicts_with = "quiet");
    /// Less log output (repeat for less)
    Count quiet: u8 = "quiet", short 'q', arg(action = clap::ArgAction::Count);
    /// Log filter in env_logger syntax (error, warn, info, debug, trace)
    Value log: String = "log", env "RANCHER_BOOT_LOG", default DEFAULT_LOG, arg(value_name = "FILTER", hide = true);
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the variables that would be exported, sorted, and exec nothing
    PrintEnv {
        /// Output format
        #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
        format: EnvFormat,
        /// Show RELEASE_COOKIE and other secrets instead of <redacted>
        #[arg(long)]
        show_secrets: bool,
    },
    /// Print the peer nodes that discovery finds, one per line, and exec nothing
    Peers {
        /// Output format
        #[arg(long, value_enum, default_value_t = PeersFormat::Plain)]
        format: PeersFormat,
    },
    #[command(external_subcommand)]
    Passthrough(Vec<OsString>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// Detect the platform (fly, ecs, nomad, kubernetes, rancher, swarm/compose, else local)
    Auto,
    /// Rancher's metadata service
    Rancher,
    /// Kubernetes: the pod's IP, a headless service
    Kubernetes,
    /// AWS ECS: the task metadata endpoint
    Ecs,
    /// Nomad: the allocation's variables
    Nomad,
    /// Fly.io: FLY_PRIVATE_IP, <app>.internal
    Fly,
    /// Docker Swarm: the task's overlay address, tasks.<service>
    Swarm,
    /// Docker Compose: the container's network address, the service name
    Compose,
    /// This machine: --ip / default-route interface, --service / host name
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dist {
    /// Plain TCP (Erlang's default)
    Tcp,
    /// Mutual TLS: inet_tls (inet6_tls on IPv6) with an ssl_dist_optfile that verifies both ends
    Tls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NameBy {
    /// basename@IP
    Ip,
    /// basename@FQDN, where the source knows one
    Hostname,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PeerMode {
    /// Resolve the service name (A and AAAA)
    Dns,
    /// Ask metadata for the service's containers
    Metadata,
    /// No lookup; peer variables are empty
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EnvFormat {
    /// `export NAME='value'`, for eval
    Shell,
    /// `NAME=value`, for docker run --env-file
    Dotenv,
    /// One JSON object
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PeersFormat {
    /// One node per line
    Plain,
    /// An array of {ip, node}
    Json,
}

/// What this run does once the identity is known.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Exec (or, with --init, supervise) a program with its arguments.
    Run {
        program: OsString,
        args: Vec<OsString>,
        passthrough: bool,
    },
    PrintEnv {
        format: EnvFormat,
        show_secrets: bool,
    },
    Peers {
        format: PeersFormat,
    },
}

/// A template to render: where it is read from, where it goes, and whether it is a vm.args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSpec {
    pub src: PathBuf,
    pub dest: PathBuf,
    pub vm_args: bool,
}

/// The checked configuration: everything the boot needs, validated once.
#[derive(Debug)]
pub struct Config {
    pub action: Action,
    pub source: Source,
    pub name_by: NameBy,
    pub metadata_url: String,
    pub timeout: Duration,
    pub node_basename: String,
    pub ip: Option<IpAddr>,
    pub service: Option<String>,
    /// The vm.args template first (if any), then the others in command-line order.
    pub templates: Vec<TemplateSpec>,
    /// Set when --vm-args is given: RUNTIME_DIR/vm.args.
    pub vm_args_dest: Option<PathBuf>,
    pub runtime_dir: PathBuf,
    pub peers: PeerMode,
    pub peer_query: Option<String>,
    pub dns_server: Option<SocketAddr>,
    pub wait_peers: usize,
    pub cookie_file: Option<PathBuf>,
    /// `--cookie-home`: write the cookie to the (target) user's `$HOME/.erlang.cookie`.
    pub cookie_home: bool,
    /// `--user`, its shape checked (looked up by the boot).
    pub user: Option<String>,
    pub dist: Dist,
    /// With `--dist tls`: the directory, made absolute.
    pub tls_dir: Option<PathBuf>,
    pub dist_port: Option<u16>,
    pub init: bool,
    /// `--mesh`: the keeper's interval (only with `--init`).
    pub mesh: Option<Duration>,
    pub dry_run: bool,
}

/// clap's error as rancher-boot prints every error: `rancher-boot: error: ...`. A bad value that
/// came from an option's variable (the flag is not on the command line) is named by the
/// variable the user set, not by the flag they did not type.
pub fn describe_clap_error(error: &clap::Error, argv: &[OsString]) -> String {
    use clap::error::{ContextKind, ContextValue};
    let mut text = error.to_string();
    if let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg)
        && let Some(long) = arg.strip_prefix("--").map(|a| a.split([' ', '=']).next().unwrap_or(a))
    {
        let options = Options::augment_args(clap::Command::new("rancher-boot"));
        let flag = format!("--{long}");
        let on_command_line = argv
            .iter()
            .skip(1)
            .take_while(|word| *word != "--")
            .filter_map(|word| word.to_str())
            .any(|word| word == flag || word.starts_with(&format!("{flag}=")));
        let env = options.get_arguments().find(|a| a.get_long() == Some(long)).and_then(|a| a.get_env());
        if let (false, Some(env)) = (on_command_line, env) {
            text =
                text.replacen(&format!("'{arg}'"), &format!("{} (the variable of {flag})", env.to_string_lossy()), 1);
        }
    }
    // clap's own words, in the vocabulary of every other error: `cannot ...: why`.
    format!("rancher-boot: error: cannot parse the options: {}", text.strip_prefix("error: ").unwrap_or(&text))
}

/// The log filter: `-v`/`-q` (before or after `probe`/`doctor`) win over RANCHER_BOOT_LOG. Those
/// two log warnings and errors by default: their verdict is their own output, and a health
/// check's output is read by people only when it fails.
pub fn log_filter(options: &Options, tool: Option<&Tool>) -> String {
    let (tool_verbose, tool_quiet) = tool.map_or((0, 0), Tool::verbosity);
    let verbose = options.verbose + tool_verbose;
    let quiet = options.quiet + tool_quiet;
    if verbose == 0 && quiet == 0 && tool.is_none() {
        return options.log.clone();
    }
    let base = if tool.is_some() { 2 } else { 3 };
    let level = (base + i32::from(verbose) - i32::from(quiet)).clamp(0, 5);
    LEVELS[level as usize].to_string()
}

/// Where the boot form's `--` stands: the first `--` where an option could stand, not the value
/// of the option before it. `Err(i)` when the options end at `argv[i]` with no `--` (a subcommand,
/// passthrough, or nothing). Both parsers split here.
fn find_split(argv: &[OsString]) -> Result<usize, usize> {
    let takes_value = |name: &str| SPECS.iter().any(|spec| spec.long == name && spec.kind == quick::Kind::Value);
    let mut i = 1;
    while let Some(word) = argv.get(i).and_then(|w| w.to_str()) {
        match word {
            "--" => return Ok(i),
            long if long.starts_with("--") && !long.contains('=') && takes_value(&long[2..]) => i += 2,
            flag if flag.starts_with('-') && flag.len() > 1 => i += 1,
            _ => break,
        }
    }
    Err(i)
}

impl Cli {
    /// Parses the command line. The first `--` that stands where an option could stand starts the
    /// boot form; everything after it is PROGRAM and its arguments, untouched. Any other first word
    /// is a subcommand or, if it is none of ours, passthrough to `--app`. clap cannot express
    /// "a positional after `--`" next to external subcommands, so the split is made here, with
    /// clap's own list of which options take a value.
    pub fn parse_args(argv: Vec<OsString>) -> Result<Cli, clap::Error> {
        // Every container start: the plain boot form, without building clap's command.
        if let Some(cli) = quick::parse_boot_form(&argv, |name| std::env::var_os(name)) {
            return Ok(cli);
        }
        Self::parse_args_with_clap(argv)
    }

    /// [`Cli::parse_args`] by clap alone: everything but the plain boot form, and the reference
    /// that the quick parser is tested against.
    fn parse_args_with_clap(argv: Vec<OsString>) -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        // The options alone: enough to parse a boot form that the quick parser left to clap (help,
        // an error) and the words before `probe` or `doctor`. Building the full command copies
        // each global option into every subcommand; those forms have no subcommand.
        let options_only = Options::augment_args(
            clap::Command::new("rancher-boot").version(env!("CARGO_PKG_VERSION")).override_usage(USAGE),
        );
        let i = match find_split(&argv) {
            Ok(split) => {
                let mut argv = argv;
                let program = argv.split_off(split + 1);
                argv.truncate(split);
                let matches = options_only.try_get_matches_from(argv)?;
                return Ok(Cli {
                    options: Options::from_arg_matches(&matches)?,
                    command: None,
                    program: Some(program),
                    tool: None,
                });
            }
            Err(i) => i,
        };
        if argv.get(i).is_some_and(|word| word == "probe" || word == "doctor") {
            // `probe` and `doctor` have options of their own, some named like the boot's: the
            // words before the command are the boot's options (to derive the identity), those
            // after it its own.
            let mut argv = argv;
            let mut words = argv.split_off(i);
            let matches = options_only.try_get_matches_from(argv)?;
            // Usage lines and errors name the whole command: `rancher-boot probe`.
            let is_probe = words[0] == "probe";
            words[0] = OsString::from(if is_probe { "rancher-boot probe" } else { "rancher-boot doctor" });
            let tool = if is_probe {
                Tool::Probe(ProbeArgs::try_parse_from(words)?)
            } else {
                Tool::Doctor(DoctorArgs::try_parse_from(words)?)
            };
            return Ok(Cli {
                options: Options::from_arg_matches(&matches)?,
                command: None,
                program: None,
                tool: Some(tool),
            });
        }
        let matches = Cli::command().try_get_matches_from(argv)?;
        Cli::from_arg_matches(&matches)
    }

    /// Checks the raw flags and turns them into a [`Config`].
    pub fn into_config(self) -> Result<Config, Fail> {
        let o = self.options;
        let action = match (self.command, self.program) {
            (Some(Command::PrintEnv { format, show_secrets }), _) => Action::PrintEnv { format, show_secrets },
            (Some(Command::Peers { format }), _) => Action::Peers { format },
            (Some(Command::Passthrough(args)), _) => {
                let Some(app) = &o.app else {
                    return Err(fail!(
                        Exit::Usage,
                        "cannot run {:?}: it is not a subcommand, and no --app (RANCHER_BOOT_APP) is set to pass it \
                         to; to boot a program, put it after `--`",
                        args.first().map(|a| a.to_string_lossy()).unwrap_or_default()
                    ));
                };
                Action::Run { program: app.clone().into_os_string(), args, passthrough: true }
            }
            (None, Some(program)) if program.is_empty() => {
                return Err(fail!(
                    Exit::Usage,
                    "cannot boot: no program after `--`; use `rancher-boot [OPTIONS] -- PROGRAM [ARGS]...`"
                ));
            }
            (None, Some(mut program)) => {
                let args = program.split_off(1);
                let program = program.remove(0);
                Action::Run { program, args, passthrough: false }
            }
            (None, _) => match &o.app {
                // `rancher-boot` alone with an app configured: run the app without arguments.
                Some(app) => Action::Run { program: app.clone().into_os_string(), args: Vec::new(), passthrough: true },
                None => {
                    return Err(fail!(
                        Exit::Usage,
                        "cannot boot: no program to run; use `rancher-boot [OPTIONS] -- PROGRAM [ARGS]...` or set \
                         --app (see --help)"
                    ));
                }
            },
        };

        let node_basename = match (&o.node_basename, &action, &o.app) {
            (Some(name), _, _) => name.clone(),
            (None, Action::Run { program, .. }, _) => basename_of(program)?,
            (None, _, Some(app)) => basename_of(app.as_os_str())?,
            // print-env or peers beside a running boot: the name it chose.
            (None, _, None) => match crate::state::load_live(&o.runtime_dir).and_then(|s| s.basename()) {
                Some(name) => name,
                None => {
                    return Err(fail!(
                        Exit::Usage,
                        "cannot name the node: set --node-basename or --app (RANCHER_BOOT_NODE_BASENAME or \
                         RANCHER_BOOT_APP); no boot runs with its state in {}",
                        o.runtime_dir.display()
                    ));
                }
            },
        };
        check_node_basename(&node_basename).map_err(|e| Fail::new(Exit::Usage, e.context("cannot name the node")))?;

        if let Some(service) = &o.service {
            check_name(service)
                .map_err(|e| Fail::new(Exit::Usage, e.context("cannot use --service (RANCHER_BOOT_SERVICE)")))?;
        }
        if o.timeout.is_zero() {
            return Err(fail!(Exit::Usage, "cannot use --timeout 0s: it must be greater than zero"));
        }
        // Checked here, before any waiting: a typo must not cost a --timeout of metadata first.
        if let Some(query) = &o.peer_query {
            crate::dns::QueryName::parse(query)
                .map_err(|e| Fail::new(Exit::Usage, e.context("cannot use --peer-query (RANCHER_BOOT_PEER_QUERY)")))?;
        }
        if o.wait_peers > 0 && o.peers == PeerMode::None {
            return Err(fail!(
                Exit::Usage,
                "cannot use --wait-peers {} with --peers none, which never looks for peers; drop one of them \
                 (RANCHER_BOOT_WAIT_PEERS, RANCHER_BOOT_PEERS)",
                o.wait_peers
            ));
        }
        if o.mesh && !o.init {
            return Err(fail!(
                Exit::Usage,
                "cannot use --mesh (RANCHER_BOOT_MESH) without --init (RANCHER_BOOT_INIT): the mesh keeper \
                 runs in rancher-boot beside the program, which an exec would replace"
            ));
        }
        if o.mesh && o.peers == PeerMode::None {
            return Err(fail!(
                Exit::Usage,
                "cannot use --mesh with --peers none, which never looks for the peers it connects; drop one \
                 of them (RANCHER_BOOT_MESH, RANCHER_BOOT_PEERS)"
            ));
        }
        if o.mesh && o.mesh_interval < Duration::from_millis(100) {
            return Err(fail!(
                Exit::Usage,
                "cannot use --mesh-interval {:?}: it must be at least 100ms",
                o.mesh_interval
            ));
        }
        check_log_filter(&o.log).map_err(|e| Fail::new(Exit::Usage, e))?;
        if let Some(user) = &o.user {
            crate::user::check_spec(user).map_err(|e| Fail::new(Exit::Usage, e))?;
        }
        let tls_dir = match (o.dist, &o.tls_dir) {
            (Dist::Tls, None) => {
                return Err(fail!(
                    Exit::Usage,
                    "cannot use --dist tls without its certificates: give --tls-dir DIR (RANCHER_BOOT_TLS_DIR) holding \
                     tls.crt, tls.key and ca.crt"
                ));
            }
            (Dist::Tcp, Some(_)) => {
                return Err(fail!(
                    Exit::Usage,
                    "cannot use --tls-dir without --dist tls (RANCHER_BOOT_DIST=tls); add it"
                ));
            }
            (Dist::Tls, Some(dir)) => Some(crate::dist_flags::absolute_dir(dir)?),
            (Dist::Tcp, None) => None,
        };
        let ip = match o.ip {
            None => None,
            Some(IpSpec::Address(ip)) => Some(ip),
            Some(IpSpec::Network(net, prefix)) => Some(address_in(net, prefix)?),
        };
        if o.dist_port == Some(0) {
            return Err(fail!(Exit::Usage, "cannot use --dist-port 0: it must be a port from 1 to 65535"));
        }
        let metadata_url = check_metadata_url(&o.metadata_url)?;

        let mut templates = Vec::new();
        let vm_args_dest = o.vm_args.as_ref().map(|_| o.runtime_dir.join("vm.args"));
        if let (Some(src), Some(dest)) = (&o.vm_args, &vm_args_dest) {
            templates.push(TemplateSpec { src: src.clone(), dest: dest.clone(), vm_args: true });
        }
        for spec in &o.templates {
            templates.push(parse_template_spec(spec, &o.runtime_dir)?);
        }

        Ok(Config {
            action,
            source: o.source,
            name_by: o.name_by,
            metadata_url,
            timeout: o.timeout,
            node_basename,
            ip,
            service: o.service,
            templates,
            vm_args_dest,
            runtime_dir: o.runtime_dir,
            peers: o.peers,
            peer_query: o.peer_query,
            dns_server: o.dns_server,
            wait_peers: o.wait_peers,
            cookie_file: o.cookie_file,
            cookie_home: o.cookie_home,
            user: o.user,
            dist: o.dist,
            tls_dir,
            dist_port: o.dist_port,
            init: o.init,
            mesh: o.mesh.then_some(o.mesh_interval),
            dry_run: o.dry_run,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::{Mutex, PoisonError};

    static ENV_LOCK: Mutex<()> = Mutex::new(());

    /// Runs `f` with exactly `vars` among rancher-boot's variables (clap reads the process
    /// environment), one such test at a time.
    pub(crate) fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
        let _guard = ENV_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let ours = |name: &str| name.starts_with("RANCHER_BOOT_") || name == "RANCHER_METADATA_URL";
        // SAFETY: the tests that set or read these variables hold ENV_LOCK, and std serialises its
        // own environment calls; nextest runs each test in a process of its own besides.
        unsafe {
            for (name, _) in std::env::vars_os() {
                if name.to_str().is_some_and(ours) {
                    std::env::remove_var(name);
                }
            }
            vars.iter().for_each(|(name, value)| std::env::set_var(name, value));
        }
        let result = f();
        // SAFETY: as above.
        unsafe { vars.iter().for_each(|(name, _)| std::env::remove_var(name)) };
        result
    }

    fn cli(args: &[&str]) -> Cli {
        with_env(&[], || Cli::parse_args(args.iter().map(OsString::from).collect()).unwrap())
    }

    /// The checked configuration of `args`, with none of rancher-boot's variables set.
    pub(crate) fn config(args: &[&str]) -> Config {
        parse(args).expect("a valid command line")
    }

    fn parse(args: &[&str]) -> Result<Config, String> {
        let cli =
            with_env(&[], || Cli::parse_args(args.iter().map(OsString::from).collect())).map_err(|e| e.to_string())?;
        cli.into_config().map_err(|f| f.to_string())
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn boot_form_takes_everything_after_the_double_dash() {
        let c =
            parse(&["rancher-boot", "--source", "local", "--", "/opt/app/bin/hello", "foreground", "--x", ""]).unwrap();
        assert_eq!(
            c.action,
            Action::Run {
                program: "/opt/app/bin/hello".into(),
                args: vec!["foreground".into(), "--x".into(), "".into()],
                passthrough: false
            }
        );
        assert_eq!(c.node_basename, "hello");
        assert_eq!(c.source, Source::Local);
    }

    #[test]
    fn unknown_first_word_is_passthrough_to_app() {
        let c = parse(&["rancher-boot", "--app", "/opt/app/bin/hello", "remote_console", "--flag"]).unwrap();
        assert_eq!(
            c.action,
            Action::Run {
                program: "/opt/app/bin/hello".into(),
                args: vec!["remote_console".into(), "--flag".into()],
                passthrough: true
            }
        );
        assert_eq!(c.node_basename, "hello");
    }

    #[test]
    fn double_dash_forces_the_boot_form_even_for_subcommand_names() {
        let c =
            parse(&["rancher-boot", "--app", "/a/hello", "--timeout", "5s", "--", "print-env", "--", "-v"]).unwrap();
        assert_eq!(
            c.action,
            Action::Run { program: "print-env".into(), args: vec!["--".into(), "-v".into()], passthrough: false }
        );
        assert_eq!(c.timeout, Duration::from_secs(5));
        // An option's value is skipped over, not taken for the start of the program.
        let c = parse(&["rancher-boot", "--node-basename", "n", "--peer-query", "print-env", "--", "x"]).unwrap();
        assert_eq!(c.peer_query.as_deref(), Some("print-env"));
        // After a passthrough word, `--` is the app's.
        let c = parse(&["rancher-boot", "--app", "/a/hello", "rpc", "--", "x"]).unwrap();
        assert_eq!(
            c.action,
            Action::Run {
                program: "/a/hello".into(),
                args: vec!["rpc".into(), "--".into(), "x".into()],
                passthrough: true
            }
        );
        assert!(parse(&["rancher-boot", "--"]).unwrap_err().contains("no program"));
    }

    #[test]
    fn passthrough_without_app_is_a_usage_error() {
        let err = parse(&["rancher-boot", "remote_console"]).unwrap_err();
        assert!(err.contains("--app"), "{err}");
    }

    #[test]
    fn subcommands_take_global_options_after_them() {
        let c = parse(&["rancher-boot", "print-env", "--format", "json", "--source", "local", "--node-basename", "n"])
            .unwrap();
        assert_eq!(c.action, Action::PrintEnv { format: EnvFormat::Json, show_secrets: false });
        assert_eq!(c.source, Source::Local);
    }

    #[test]
    fn basename_must_be_a_valid_node_name() {
        assert!(parse(&["rancher-boot", "--", "/usr/bin/python3.11"]).unwrap_err().contains("--node-basename"));
        assert!(parse(&["rancher-boot", "--node-basename", "a b", "--", "x"]).is_err());
        assert!(parse(&["rancher-boot", "--node-basename", "ok_name-1", "--", "x.sh"]).is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn template_specs() {
        let rt = Path::new("/run/rb");
        let t = parse_template_spec("/rel/sys.config.src", rt).unwrap();
        assert_eq!(t.dest, Path::new("/run/rb/sys.config"));
        assert!(!t.vm_args);
        let t = parse_template_spec("/rel/a.tmpl:/etc/app/a.conf", rt).unwrap();
        assert_eq!(t.dest, Path::new("/etc/app/a.conf"));
        let t = parse_template_spec("/rel/x:vm.args", rt).unwrap();
        assert!(t.vm_args);
        assert!(parse_template_spec(":x", rt).is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("my-hello-service").is_ok());
        assert!(check_name("a.b_c-1").is_ok());
        for bad in ["", "-x", "a b", "a\nb", &"x".repeat(64), "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metadata_urls() {
        assert_eq!(check_metadata_url("http://m/latest/").unwrap(), "http://m/latest");
        assert!(check_metadata_url("https://m/latest").is_err());
        assert!(check_metadata_url("http:///x").is_err());
    }

    #[test]
    fn verbosity_flags_win_over_the_variable() {
        assert_eq!(log_filter(&cli(&["rancher-boot", "-vv", "--", "x"]).options, None), "trace");
        assert_eq!(log_filter(&cli(&["rancher-boot", "-q", "--", "x"]).options, None), "warn");
        assert_eq!(log_filter(&cli(&["rancher-boot", "--", "x"]).options, None), "info");
        let probe = cli(&["rancher-boot", "-v", "probe", "-v"]);
        assert_eq!(log_filter(&probe.options, probe.tool.as_ref()), "debug");
        let probe = cli(&["rancher-boot", "probe"]);
        assert_eq!(log_filter(&probe.options, probe.tool.as_ref()), "warn");
    }
}
