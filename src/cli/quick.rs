//! The boot form parsed without clap: the one command line every container start runs.
//!
//! `rancher-boot [OPTIONS] -- PROGRAM [ARGS]...` is parsed on each start, and clap builds its whole
//! command (the boot's options with their help, defaults and environment twins, and the
//! subcommands) before it reads one word: without this parser that is 0.75 M of a boot's 1.07 M
//! instructions, and a boot 0.15 ms slower, 1.65 × the C request floor instead of 1.48 ×
//! (BENCHMARKS.md). This parser takes only the plain cases: known long options as `--name VALUE`
//! or `--name=VALUE`, the flags, `-v`/`-q` and their clusters, and the environment twins. Anything
//! else returns `None` and clap parses the command line instead: help, version, subcommands and
//! passthrough, an unknown or repeated option, an empty, non-UTF-8 or invalid value, a value
//! that starts with `-`. So every message, and every rejection, is still clap's.
//!
//! Both parsers come from one table, `options!` in cli.rs: it makes clap's `Options`, [`SPECS`]
//! and the conversion of each option's words, chosen here by the field's type ([`Quick`]). The
//! tests hold this parser to clap: for random command lines and environments, whenever it
//! answers, clap answers the same.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use super::{
    Cli, Dist, IpSpec, NameBy, Options, PeerMode, SPECS, Source, parse_boolish, parse_count, parse_dns_server,
    parse_duration, parse_port,
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

/// One option, as far as parsing goes (made by `options!` in cli.rs).
#[derive(Debug)]
pub(super) struct Spec {
    pub long: &'static str,
    pub short: Option<char>,
    pub env: Option<&'static str>,
    pub kind: Kind,
}

/// The boot form of `argv`, or `None` when clap must decide. `env` reads a variable.
pub(super) fn parse_boot_form(argv: &[OsString], env: impl Fn(&str) -> Option<OsString>) -> Option<Cli> {
    let split = super::find_split(argv).ok()?;

    // The words each option was given, from the command line or else from its variable.
    let mut given: Vec<Vec<String>> = vec![Vec::new(); SPECS.len()];
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

    let options = Options::from_words(&given)?;
    if options.verbose > 0 && options.quiet > 0 {
        return None; // clap's conflict error
    }
    Some(Cli { options, command: None, program: Some(argv[split + 1..].to_vec()), tool: None })
}

/// A field's value from the words its option was given (`default`: clap's default value, when
/// none), converted as clap converts it; `None` leaves the command line to clap.
pub(super) trait Quick: Sized {
    fn quick(words: &[String], default: Option<&str>) -> Option<Self>;
}

/// A type that one word gives, as clap's value parser for it reads it.
trait Word: Sized {
    fn word(word: &str) -> Option<Self>;
}

/// A value with a default: the one word given (clap refuses a repeated option), else the default.
impl<T: Word> Quick for T {
    fn quick(words: &[String], default: Option<&str>) -> Option<T> {
        match words {
            [] => T::word(default?),
            [word] => T::word(word),
            _ => None,
        }
    }
}

/// An optional value: absent, or the one word given.
impl<T: Word> Quick for Option<T> {
    fn quick(words: &[String], _: Option<&str>) -> Option<Option<T>> {
        match words {
            [] => Some(None),
            [word] => Some(Some(T::word(word)?)),
            _ => None,
        }
    }
}

/// A flag: given (or its variable's boolean word), or not.
impl Quick for bool {
    fn quick(words: &[String], _: Option<&str>) -> Option<bool> {
        match words {
            [] => Some(false),
            [word] => parse_boolish(word).ok(),
            _ => None,
        }
    }
}

/// A count (`-vv`); clap's counter stops at 255, this parser long before.
impl Quick for u8 {
    fn quick(words: &[String], _: Option<&str>) -> Option<u8> {
        u8::try_from(words.len()).ok().filter(|n| *n <= 8)
    }
}

/// A list, each word split at commas (`value_delimiter = ','`); an empty piece is clap's to refuse.
impl Quick for Vec<String> {
    fn quick(words: &[String], _: Option<&str>) -> Option<Vec<String>> {
        let mut list = Vec::new();
        for piece in words.iter().flat_map(|word| word.split(',')) {
            if piece.is_empty() {
                return None;
            }
            list.push(piece.to_string());
        }
        Some(list)
    }
}

impl Word for String {
    fn word(word: &str) -> Option<String> {
        Some(word.to_string())
    }
}

impl Word for PathBuf {
    fn word(word: &str) -> Option<PathBuf> {
        Some(PathBuf::from(word))
    }
}

/// The types read by the value parser clap is given for them (`value_parser = ...` in `options!`),
/// or by `FromStr` where it is given none.
macro_rules! word_by {
    ($($ty:ty => $parse:expr),* $(,)?) => {$(
        impl Word for $ty {
            fn word(word: &str) -> Option<$ty> {
                $parse(word).ok()
            }
        }
    )*};
}
word_by!(
    Duration => parse_duration,
    SocketAddr => parse_dns_server,
    usize => parse_count,
    u16 => parse_port,
    IpSpec => str::parse::<IpSpec>,
);

/// The `value_enum` types, by their names as clap spells them (case matters).
macro_rules! word_from_value_enum {
    ($($ty:ty),*) => {$(
        impl Word for $ty {
            fn word(word: &str) -> Option<$ty> {
                <$ty>::value_variants().iter().find(|variant| is_named(*variant, word)).copied()
            }
        }
    )*};
}
word_from_value_enum!(Source, NameBy, PeerMode, Dist);

/// Whether `word` is clap's name of `variant`: its Rust name in kebab-case (`NameBy::Hostname` is
/// `hostname`), compared as `Debug` writes it, with no allocation. clap's own `from_str` builds
/// every variant's help text to compare names, and musl's allocator turned each of those short
/// lives into an mmap and a munmap: 8 pairs a boot (strace), part of 0.1 ms (BENCHMARKS.md).
fn is_named(variant: &impl std::fmt::Debug, word: &str) -> bool {
    struct Kebab<'a> {
        rest: &'a [u8],
        first: bool,
        same: bool,
    }
    impl std::fmt::Write for Kebab<'_> {
        fn write_str(&mut self, name: &str) -> std::fmt::Result {
            for c in name.bytes() {
                let mut expect = |b: u8| match self.rest.split_first() {
                    Some((&next, rest)) if next == b => self.rest = rest,
                    _ => self.same = false,
                };
                if c.is_ascii_uppercase() && !self.first {
                    expect(b'-');
                }
                expect(c.to_ascii_lowercase());
                self.first = false;
            }
            Ok(())
        }
    }
    let mut kebab = Kebab { rest: word.as_bytes(), first: true, same: true };
    std::fmt::write(&mut kebab, format_args!("{variant:?}")).is_ok() && kebab.same && kebab.rest.is_empty()
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

    /// The quick parser names each value as clap does (`is_named`), and no other.
    #[test]
    fn enum_values_are_named_as_clap_names_them() {
        fn check<T: ValueEnum + Word + PartialEq + std::fmt::Debug>() {
            for variant in T::value_variants() {
                let name = variant.to_possible_value().expect("a value").get_name().to_string();
                assert_eq!(T::word(&name).as_ref(), Some(variant), "{name}");
                assert_eq!(T::word(&name.to_uppercase()), None, "{name}: case matters, as for clap");
                assert_eq!(T::word(&format!("{name}x")), None, "{name}x");
                assert_eq!(T::word(&name[..name.len() - 1]), None, "{name}, shortened");
            }
        }
        check::<Source>();
        check::<NameBy>();
        check::<PeerMode>();
        check::<Dist>();
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
        for spec in SPECS {
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
