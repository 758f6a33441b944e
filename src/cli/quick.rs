//! The boot form parsed without clap: the one command line every container start runs.
//!
//! `rancher-boot [OPTIONS] -- PROGRAM [ARGS]...` is parsed on each start, and clap builds its whole
//! command (two dozen options with their help, defaults and environment twins) before it reads one
//! word: that was 70 % of a boot's instructions and a quarter of a millisecond (BENCHMARKS.md).
//! This parser takes only the plain cases: known long options as `--name VALUE` or `--name=VALUE`,
//! the flags, `-v`/`-q` and their clusters, and the environment twins. Anything else returns
//! `None` and clap parses the command line instead: help, version, subcommands and passthrough,
//! an unknown or repeated option, an empty, non-UTF-8 or invalid value, a value that starts with
//! `-`. So every message, and every rejection, is still clap's.
//!
//! clap stays the definition. The tests hold this parser to it: [`SPECS`] must list exactly clap's
//! options with the same names, environment variables and kinds, and for random command lines
//! and environments, whenever this parser answers, clap answers the same.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::ValueEnum;

use super::{
    Cli, DEFAULT_LOG, DEFAULT_MESH_INTERVAL, DEFAULT_METADATA_URL, DEFAULT_RUNTIME_DIR, DEFAULT_TIMEOUT, Dist, NameBy,
    Options, PeerMode, Source, parse_dns_server, parse_duration,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Takes one value (`--name VALUE`, `--name=VALUE`).
    Value,
    /// `--name` alone; its environment twin holds a boolean word.
    Flag,
    /// Counted: `-v`, `-vv`, `--verbose`.
    Count,
}

#[derive(Debug)]
pub(super) struct Spec {
    pub long: &'static str,
    pub short: Option<char>,
    pub env: Option<&'static str>,
    pub kind: Kind,
}

const fn spec(long: &'static str, env: &'static str, kind: Kind) -> Spec {
    Spec { long, short: None, env: Some(env), kind }
}

/// clap's [`Options`], as far as parsing goes (checked against clap by the tests).
pub(super) const SPECS: [Spec; 28] = [
    spec("source", "RANCHER_BOOT_SOURCE", Kind::Value),
    spec("name-by", "RANCHER_BOOT_NAME_BY", Kind::Value),
    spec("metadata-url", "RANCHER_METADATA_URL", Kind::Value),
    spec("timeout", "RANCHER_BOOT_TIMEOUT", Kind::Value),
    spec("app", "RANCHER_BOOT_APP", Kind::Value),
    spec("node-basename", "RANCHER_BOOT_NODE_BASENAME", Kind::Value),
    spec("ip", "RANCHER_BOOT_IP", Kind::Value),
    spec("service", "RANCHER_BOOT_SERVICE", Kind::Value),
    spec("vm-args", "RANCHER_BOOT_VM_ARGS", Kind::Value),
    spec("template", "RANCHER_BOOT_TEMPLATES", Kind::Value),
    spec("runtime-dir", "RANCHER_BOOT_RUNTIME_DIR", Kind::Value),
    spec("peers", "RANCHER_BOOT_PEERS", Kind::Value),
    spec("peer-query", "RANCHER_BOOT_PEER_QUERY", Kind::Value),
    spec("dns-server", "RANCHER_BOOT_DNS_SERVER", Kind::Value),
    spec("wait-peers", "RANCHER_BOOT_WAIT_PEERS", Kind::Value),
    spec("cookie-file", "RANCHER_BOOT_COOKIE_FILE", Kind::Value),
    spec("cookie-home", "RANCHER_BOOT_COOKIE_HOME", Kind::Flag),
    spec("user", "RANCHER_BOOT_USER", Kind::Value),
    spec("dist", "RANCHER_BOOT_DIST", Kind::Value),
    spec("tls-dir", "RANCHER_BOOT_TLS_DIR", Kind::Value),
    spec("dist-port", "RANCHER_BOOT_DIST_PORT", Kind::Value),
    spec("init", "RANCHER_BOOT_INIT", Kind::Flag),
    spec("mesh", "RANCHER_BOOT_MESH", Kind::Flag),
    spec("mesh-interval", "RANCHER_BOOT_MESH_INTERVAL", Kind::Value),
    spec("dry-run", "RANCHER_BOOT_DRY_RUN", Kind::Flag),
    Spec { long: "verbose", short: Some('v'), env: None, kind: Kind::Count },
    Spec { long: "quiet", short: Some('q'), env: None, kind: Kind::Count },
    spec("log", "RANCHER_BOOT_LOG", Kind::Value),
];

/// The boot form of `argv`, or `None` when clap must decide. `env` reads a variable.
pub(super) fn parse_boot_form(argv: &[OsString], env: impl Fn(&str) -> Option<OsString>) -> Option<Cli> {
    let split = 1 + argv.get(1..)?.iter().position(|word| word == "--")?;

    // The words each option was given, from the command line or else from its variable.
    let mut given: [Vec<String>; SPECS.len()] = Default::default();
    let mut words = argv[1..split].iter();
    while let Some(word) = words.next() {
        let word = word.to_str()?;
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            let i = SPECS.iter().position(|spec| spec.long == name)?;
            let value = match (SPECS[i].kind, inline) {
                (Kind::Value, Some(value)) => value,
                (Kind::Value, None) => words.next()?.to_str()?,
                (Kind::Flag, None) => "true",
                (Kind::Count, None) => "",
                (_, Some(_)) => return None,
            };
            if SPECS[i].kind == Kind::Value && (value.is_empty() || value.starts_with('-')) {
                return None;
            }
            given[i].push(value.to_string());
        } else {
            let shorts = word.strip_prefix('-').filter(|s| !s.is_empty())?;
            for c in shorts.chars() {
                let i = SPECS.iter().position(|spec| spec.short == Some(c))?;
                given[i].push(String::new());
            }
        }
    }
    for (spec, given) in SPECS.iter().zip(&mut given) {
        if let (Some(name), true) = (spec.env, given.is_empty())
            && let Some(value) = env(name)
        {
            given.push(value.into_string().ok().filter(|v| !v.is_empty())?);
        }
    }

    let at = |long: &str| SPECS.iter().position(|spec| spec.long == long).map(|i| &given[i]);
    // One value at most (clap refuses a repeated option); `Some(None)` when absent.
    let one = |long: &str| -> Option<Option<&str>> {
        match at(long)?.as_slice() {
            [] => Some(None),
            [value] => Some(Some(value.as_str())),
            _ => None,
        }
    };
    let text = |long: &str| one(long).map(|v| v.map(str::to_string));
    let path = |long: &str| one(long).map(|v| v.map(PathBuf::from));
    let flag = |long: &str| match one(long)? {
        None => Some(false),
        Some(word) => boolish(word),
    };
    let count = |long: &str| u8::try_from(at(long)?.len()).ok().filter(|n| *n <= 8);

    let mut templates = Vec::new();
    for value in at("template")? {
        for piece in value.split(',') {
            if piece.is_empty() {
                return None;
            }
            templates.push(piece.to_string());
        }
    }
    let options = Options {
        source: Source::from_str(one("source")?.unwrap_or("auto"), false).ok()?,
        name_by: NameBy::from_str(one("name-by")?.unwrap_or("ip"), false).ok()?,
        metadata_url: one("metadata-url")?.unwrap_or(DEFAULT_METADATA_URL).to_string(),
        timeout: parse_duration(one("timeout")?.unwrap_or(DEFAULT_TIMEOUT)).ok()?,
        app: path("app")?,
        node_basename: text("node-basename")?,
        ip: one("ip")?.map(str::parse).transpose().ok()?,
        service: text("service")?,
        vm_args: path("vm-args")?,
        templates,
        runtime_dir: PathBuf::from(one("runtime-dir")?.unwrap_or(DEFAULT_RUNTIME_DIR)),
        peers: PeerMode::from_str(one("peers")?.unwrap_or("dns"), false).ok()?,
        peer_query: text("peer-query")?,
        dns_server: one("dns-server")?.map(parse_dns_server).transpose().ok()?,
        wait_peers: one("wait-peers")?.map_or(Ok(0), str::parse).ok()?,
        cookie_file: path("cookie-file")?,
        cookie_home: flag("cookie-home")?,
        user: text("user")?,
        dist: Dist::from_str(one("dist")?.unwrap_or("tcp"), false).ok()?,
        tls_dir: path("tls-dir")?,
        dist_port: one("dist-port")?.map(str::parse).transpose().ok()?,
        init: flag("init")?,
        mesh: flag("mesh")?,
        mesh_interval: parse_duration(one("mesh-interval")?.unwrap_or(DEFAULT_MESH_INTERVAL)).ok()?,
        dry_run: flag("dry-run")?,
        verbose: count("verbose")?,
        quiet: count("quiet")?,
        log: one("log")?.unwrap_or(DEFAULT_LOG).to_string(),
    };
    if options.verbose > 0 && options.quiet > 0 {
        return None; // clap's conflict error
    }
    Some(Cli { options, command: None, program: Some(argv[split + 1..].to_vec()), tool: None })
}

/// clap's `BoolishValueParser` words, in the lower case that users write; clap takes the rest.
fn boolish(word: &str) -> Option<bool> {
    match word {
        "y" | "yes" | "t" | "true" | "on" | "1" => Some(true),
        "n" | "no" | "f" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::with_env;
    use clap::{ArgAction, Args, Command};
    use proptest::prelude::*;

    /// A command line and the variables set.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    /// Both parsers on the same command line and environment: the quick answer (if any) and clap's.
    fn both(words: &[&str], vars: &[(&str, &str)]) -> (Option<String>, Result<String, String>) {
        with_env(vars, || {
            let quick = parse_boot_form(&argv(words), |name| std::env::var_os(name)).map(|cli| format!("{cli:?}"));
            let clap = Cli::parse_args_with_clap(argv(words)).map(|cli| format!("{cli:?}")).map_err(|e| e.to_string());
            (quick, clap)
        })
    }

    #[test]
    fn specs_are_claps_options() {
        let command = Options::augment_args(Command::new("rancher-boot"));
        let from_clap: Vec<(String, Option<char>, Option<String>, Kind)> = command
            .get_arguments()
            .map(|arg| {
                let kind = match arg.get_action() {
                    ArgAction::Set | ArgAction::Append => Kind::Value,
                    ArgAction::SetTrue => Kind::Flag,
                    ArgAction::Count => Kind::Count,
                    other => panic!("{:?} has action {other:?}: teach the quick parser", arg.get_id()),
                };
                let env = arg.get_env().map(|name| name.to_string_lossy().into_owned());
                (arg.get_long().unwrap_or_default().to_string(), arg.get_short(), env, kind)
            })
            .collect();
        let ours: Vec<_> =
            SPECS.iter().map(|s| (s.long.to_string(), s.short, s.env.map(str::to_string), s.kind)).collect();
        assert_eq!(ours, from_clap, "SPECS must follow clap's Options, in order");
    }

    #[test]
    fn answers_the_boot_forms_a_container_uses_and_as_clap_does() {
        let cases: &[Case] = &[
            (&["rb", "--", "/opt/app/bin/hello", "foreground"], &[]),
            (&["rb", "-q", "--metadata-url", "http://127.0.0.1:9/latest", "--peers", "none", "--", "/bin/true"], &[]),
            (&["rb", "--source=local", "--ip=10.0.0.1", "--service", "web", "--", "x", "--", "-v"], &[]),
            (
                &["rb", "-vv", "--timeout", "1.5s", "--dns-server", "127.0.0.1:5353", "--wait-peers", "2", "--", "x"],
                &[],
            ),
            (&["rb", "--template", "a.src,b.tmpl:c", "--template=d", "--vm-args", "v.src", "--init", "--", "x"], &[]),
            (&["rb", "--", "x"], &[("RANCHER_BOOT_INIT", "1"), ("RANCHER_BOOT_PEERS", "metadata")]),
            (&["rb", "--peers", "dns", "--", "x"], &[("RANCHER_BOOT_PEERS", "none"), ("RANCHER_BOOT_DRY_RUN", "off")]),
            (&["rb", "--", "x"], &[("RANCHER_BOOT_TEMPLATES", "a,b:c"), ("RANCHER_METADATA_URL", "http://m/latest")]),
            (&["rb", "--cookie-file", "/run/secrets/c", "--log", "debug", "--", "x"], &[("RANCHER_BOOT_IP", "::1")]),
            (&["rb", "--source", "swarm", "--name-by", "hostname", "--", "x"], &[]),
            (&["rb", "--user", "rabbitmq", "--cookie-home", "--", "x"], &[]),
            (&["rb", "--", "x"], &[("RANCHER_BOOT_USER", "1000:1000"), ("RANCHER_BOOT_COOKIE_HOME", "yes")]),
            (&["rb", "--init", "--mesh", "--mesh-interval", "2s", "--", "x"], &[]),
            (&["rb", "--", "x"], &[("RANCHER_BOOT_MESH", "on"), ("RANCHER_BOOT_MESH_INTERVAL", "750ms")]),
            (&["rb", "--", "x"], &[("RANCHER_BOOT_SOURCE", "kubernetes"), ("RANCHER_BOOT_NAME_BY", "hostname")]),
        ];
        for (words, vars) in cases {
            let (quick, clap) = both(words, vars);
            assert!(quick.is_some(), "the quick parser should answer {words:?} {vars:?}");
            assert_eq!(Ok(quick.unwrap_or_default()), clap, "{words:?} {vars:?}");
        }
    }

    #[test]
    fn leaves_everything_else_to_clap() {
        let cases: &[Case] = &[
            (&["rb"], &[]),
            (&["rb", "--help", "--", "x"], &[]),
            (&["rb", "-h", "--", "x"], &[]),
            (&["rb", "-V", "--", "x"], &[]),
            (&["rb", "print-env", "--", "x"], &[]),
            (&["rb", "--app", "/a/hello", "rpc", "--", "x"], &[]),
            (&["rb", "--peers", "dns", "--peers", "none", "--", "x"], &[]),
            (&["rb", "--init", "--init", "--", "x"], &[]),
            (&["rb", "--service", "--", "x"], &[]),
            (&["rb", "--service", "-x", "--", "x"], &[]),
            (&["rb", "--service=", "--", "x"], &[]),
            (&["rb", "-vq", "--", "x"], &[]),
            (&["rb", "--init=true", "--", "x"], &[]),
            (&["rb", "--peers", "DNS", "--", "x"], &[]),
            (&["rb", "--source", "consul", "--", "x"], &[]),
            (&["rb", "--name-by", "fqdn", "--", "x"], &[]),
            (&["rb", "--timeout", "soon", "--", "x"], &[]),
            (&["rb", "--template", "a,,b", "--", "x"], &[]),
            (&["rb", "--nope", "--", "x"], &[]),
            (&["rb", "-x", "--", "x"], &[]),
            (&["rb", "--", "x"], &[("RANCHER_BOOT_INIT", "maybe")]),
            (&["rb", "--", "x"], &[("RANCHER_BOOT_SERVICE", "")]),
            (&["rb", "--", "x"], &[("RANCHER_BOOT_WAIT_PEERS", "many")]),
            (&["rb", "--mesh-interval", "often", "--", "x"], &[]),
        ];
        for (words, vars) in cases {
            let (quick, _) = both(words, vars);
            assert_eq!(quick, None, "{words:?} {vars:?} is clap's to decide");
        }
    }

    /// Words a command line is made of: every option in its spellings, good and bad values,
    /// words that are not options.
    fn word() -> impl Strategy<Value = String> {
        let mut words: Vec<String> = Vec::new();
        for spec in &SPECS {
            words.push(format!("--{}", spec.long));
            words.push(format!("--{}=", spec.long));
        }
        words.extend(VALUES.iter().flat_map(|v| [v.to_string(), format!("--peers={v}"), format!("--template={v}")]));
        words.extend(
            ["-v", "-q", "-vv", "-vq", "-h", "--help", "-V", "--", "--nope", "print-env", "peers", "-"]
                .map(String::from),
        );
        proptest::sample::select(words)
    }

    const VALUES: [&str; 30] = [
        "",
        "-x",
        "dns",
        "none",
        "metadata",
        "DNS",
        "local",
        "rancher",
        "auto",
        "swarm",
        "hostname",
        "ip",
        "true",
        "false",
        "1",
        "no",
        "maybe",
        "0",
        "+3",
        "-1",
        "1.5s",
        "250ms",
        "10.0.0.1",
        "::1",
        "127.0.0.1:5353",
        "[::1]:53",
        "a,b",
        "a,,b",
        "x.src:vm.args",
        "http://m/latest",
    ];

    fn var() -> impl Strategy<Value = (&'static str, &'static str)> {
        let names: Vec<&'static str> = SPECS.iter().filter_map(|s| s.env).collect();
        (proptest::sample::select(names), proptest::sample::select(VALUES.to_vec()))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// Whenever the quick parser answers, clap gives the very same `Cli`.
        #[test]
        fn whenever_it_answers_clap_agrees(
            words in proptest::collection::vec(word(), 0..6),
            program in proptest::collection::vec(word(), 0..3),
            vars in proptest::collection::vec(var(), 0..4),
        ) {
            let mut line = vec!["rancher-boot".to_string()];
            line.extend(words);
            line.push("--".to_string());
            line.push("prog".to_string());
            line.extend(program);
            let line: Vec<&str> = line.iter().map(String::as_str).collect();
            let (quick, clap) = both(&line, &vars);
            if let Some(quick) = quick {
                prop_assert_eq!(Ok(quick), clap, "{:?} {:?}", line, vars);
            }
        }
    }
}
