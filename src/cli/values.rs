//! The values of the options, parsed and checked once: durations, addresses and networks, names,
//! the metadata URL, template specs, log filters. Each says what is wrong in the option's terms.

use std::ffi::OsStr;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::TemplateSpec;
use crate::exit::{Exit, Fail};
use crate::fail;

/// clap's boolean words (`BoolishValueParser`'s), with an error that lists them.
pub(super) fn parse_boolish(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "y" | "yes" | "t" | "true" | "on" | "1" => Ok(true),
        "n" | "no" | "f" | "false" | "off" | "0" => Ok(false),
        _ => Err("not a boolean (use 1/0, true/false, yes/no or on/off)".to_string()),
    }
}

/// env_logger's levels, quietest first.
pub(super) const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A log filter in env_logger's syntax: comma-separated `level` or `module=level` directives
/// (an optional `/regex` after them). env_logger reads a bare word that is no level as a module
/// name, so `warning` would silently show nothing of ours: refused, naming the levels.
pub fn check_log_filter(filter: &str) -> anyhow::Result<()> {
    let directives = filter.split_once('/').map_or(filter, |(directives, _)| directives);
    let is_level = |word: &str| LEVELS.iter().any(|level| level.eq_ignore_ascii_case(word.trim()));
    for directive in directives.split(',').filter(|d| !d.trim().is_empty()) {
        let ok = match directive.split_once('=') {
            Some((module, level)) => !module.trim().is_empty() && is_level(level),
            None => is_level(directive),
        };
        if !ok {
            anyhow::bail!(
                "cannot use --log (RANCHER_BOOT_LOG) {filter:?}: {:?} is not a level (one of {}; or module=level)",
                directive.trim(),
                LEVELS.join(", ")
            );
        }
    }
    Ok(())
}

/// `--ip`: an address, or a network whose one local address is the node's (on Swarm, a task
/// with a health check is not in Docker's DNS before its first passing check, so its overlay
/// address cannot be found by name: the overlay's subnet finds it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpSpec {
    Address(IpAddr),
    Network(IpAddr, u8),
}

impl std::str::FromStr for IpSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<IpSpec, String> {
        let bad = || format!("{text:?} is not an IP address or a network (10.0.8.0/24)");
        match text.split_once('/') {
            None => text.parse().map(IpSpec::Address).map_err(|_| bad()),
            Some((ip, prefix)) => {
                let ip: IpAddr = ip.parse().map_err(|_| bad())?;
                let prefix: u8 = prefix.parse().map_err(|_| bad())?;
                let width = if ip.is_ipv4() { 32 } else { 128 };
                if prefix == 0 || prefix > width {
                    return Err(bad());
                }
                Ok(IpSpec::Network(ip, prefix))
            }
        }
    }
}

/// The one address of this machine in `net/prefix`: none or several is a 78 listing them.
pub(super) fn address_in(net: IpAddr, prefix: u8) -> Result<IpAddr, Fail> {
    let addresses = crate::source::local::addresses()?;
    let inside = |ip: IpAddr| match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            (a.to_bits() ^ n.to_bits()).checked_shr(32 - u32::from(prefix)).unwrap_or(0) == 0
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            (a.to_bits() ^ n.to_bits()).checked_shr(128 - u32::from(prefix)).unwrap_or(0) == 0
        }
        _ => false,
    };
    let found: Vec<&crate::source::local::Address> = addresses.iter().filter(|a| inside(a.ip)).collect();
    match found.as_slice() {
        [one] => {
            log::debug!("--ip {net}/{prefix}: {} on {}", one.ip, one.interface);
            Ok(one.ip)
        }
        _ => Err(fail!(
            Exit::Config,
            "cannot use --ip {net}/{prefix} (RANCHER_BOOT_IP): {} of this machine's addresses are in it ({}); \
             name the network of exactly one",
            if found.is_empty() { "none".to_string() } else { found.len().to_string() },
            addresses.iter().map(|a| format!("{} on {}", a.ip, a.interface)).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// `/opt/app/bin/hello` → `hello`.
pub(super) fn basename_of(program: &OsStr) -> Result<String, Fail> {
    let name = Path::new(program).file_name().unwrap_or(program);
    match name.to_str() {
        Some(name) if check_node_basename(name).is_ok() => Ok(name.to_string()),
        _ => Err(fail!(
            Exit::Usage,
            "cannot use the file name of {:?} as a node name (allowed: letters, digits, '_', '-'); \
             set --node-basename",
            program
        )),
    }
}

/// The longest basename that always makes a valid node name: Erlang atoms (and so node names)
/// hold at most 255 characters, and `@` plus the longest IPv6 address take 40 of them.
pub const MAX_NODE_BASENAME: usize = 255 - 1 - 39;

/// The name part of an Erlang node name: `[0-9A-Za-z_-]+`, at most [`MAX_NODE_BASENAME`] bytes.
pub fn check_node_basename(name: &str) -> anyhow::Result<()> {
    if name.is_empty() {
        anyhow::bail!("node basename is empty");
    }
    if name.len() > MAX_NODE_BASENAME {
        anyhow::bail!(
            "node basename is {} bytes long (at most {MAX_NODE_BASENAME}, so that basename@ip fits in an Erlang atom)",
            name.len()
        );
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        anyhow::bail!(
            "node basename {:?} holds {:?} (allowed: letters, digits, '_', '-')",
            name.escape_debug().to_string(),
            c
        );
    }
    Ok(())
}

/// A Rancher service, stack or container name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 63 bytes.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let shown = || name.escape_debug().to_string();
    if name.is_empty() {
        anyhow::bail!("name is empty");
    }
    if name.len() > 63 {
        anyhow::bail!("name \"{}\" is {} bytes long (at most 63)", shown(), name.len());
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        anyhow::bail!("name \"{}\" is not of the form [A-Za-z0-9][A-Za-z0-9_.-]*", shown());
    }
    Ok(())
}

/// Accepts `http://host[:port]/path`; TLS is not built in (metadata is plain HTTP).
pub(super) fn check_metadata_url(url: &str) -> Result<String, Fail> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(fail!(
            Exit::Usage,
            "cannot use --metadata-url {url:?}: it must start with http:// (metadata is plain HTTP)"
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(fail!(Exit::Usage, "cannot use --metadata-url {url:?}: it has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail!(Exit::Usage, "cannot use --metadata-url {:?}: it holds whitespace", url));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `SRC[:DEST]`; DEST is relative to the runtime directory unless absolute.
pub(super) fn parse_template_spec(spec: &str, runtime_dir: &Path) -> Result<TemplateSpec, Fail> {
    let (src, dest) = match spec.split_once(':') {
        Some((src, dest)) => (src, Some(dest)),
        None => (spec, None),
    };
    if src.is_empty() || dest == Some("") {
        return Err(fail!(Exit::Usage, "cannot use --template {spec:?}: expected SRC or SRC:DEST"));
    }
    let src = PathBuf::from(src);
    let dest = match dest {
        Some(dest) => runtime_dir.join(dest),
        None => {
            let name = src.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let name = [".src", ".tmpl", ".template"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|n| !n.is_empty()))
                .unwrap_or(name);
            runtime_dir.join(name)
        }
    };
    let vm_args = dest.file_name() == Some(OsStr::new("vm.args"));
    Ok(TemplateSpec { src, dest, vm_args })
}

/// `500ms`, `60s`, `2m`, `1h`, or a bare number of seconds; decimals allowed (`1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration (try 500ms, 60s or 2m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?} has an unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(number * scale).map_err(|e| format!("{text:?}: {e}"))
}

/// A number of peers, as `usize`'s `FromStr` reads it, with a message that says what is wanted
/// (the standard one says "invalid digit found in string").
pub(super) fn parse_count(text: &str) -> Result<usize, String> {
    text.parse().map_err(|_| format!("{text:?} is not a number (0, 1, 2, ...)"))
}

/// A port, as `u16`'s `FromStr` reads it (0 is refused later, with the option's meaning).
pub(super) fn parse_port(text: &str) -> Result<u16, String> {
    text.parse().map_err(|_| format!("{text:?} is not a port (1 to 65535)"))
}

/// `IP` (port 53) or `IP:PORT`; IPv6 as `[::1]:53` or bare `::1`.
pub(super) fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{text:?} is not an IP address or IP:PORT"))
}
