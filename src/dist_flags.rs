//! The distribution flags the node gets beside its name, all through `ERL_AFLAGS`, which every
//! `erl` reads (a mix release, relx, and the second VM of a release's `remote` and `rpc`):
//! - `-proto_dist inet6_tcp` for an IPv6 node (Fly), unless a flag variable names one;
//! - `--dist tls`: `-proto_dist inet_tls` (`inet6_tls`) and `-ssl_dist_optfile`, an options
//!   file written into the runtime dir that verifies both ends against `ca.crt`;
//! - `--dist-port N`: `-start_epmd false -erl_epmd_port N`, no EPMD at all; a second VM beside
//!   the node (passthrough `remote`, `rpc`) also gets `-dist_listen false -hidden`, or it would
//!   fail to listen on N (`eaddrinuse`).
//!
//! Facts from OTP 25.2.3 (docs/dist.md): `ERL_AFLAGS` is split on whitespace and single quotes
//! are stripped, so no path with a space or a quote can travel in it (refused, 78); the options
//! file must be named by an absolute path; the client checks the server's certificate against
//! the node's host part as a DNS name, so an IP-named node's certificate (an IP SAN, what
//! cert-manager's `ipAddresses` gives) fails `hostname_check_failed` unless a `match_fun` accepts
//! an IP SAN equal to the host part; without `fail_if_no_peer_cert` a client with no
//! certificate gets in. Verification stays real: a node without a certificate from this CA
//! never connects, by IP or by host name.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::exit::{Exit, Fail};
use crate::fail;

/// The options file's name in the runtime dir.
pub const OPTFILE: &str = "ssl_dist.conf";

/// The three files of a TLS directory, as Kubernetes TLS secrets and cert-manager write them.
pub const TLS_FILES: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// What a node's `ERL_AFLAGS` must say about distribution.
#[derive(Debug, Default, Clone, Copy)]
pub struct DistFlags<'a> {
    /// `--dist tls`: the options file (absolute).
    pub tls_optfile: Option<&'a Path>,
    /// `--dist-port N`.
    pub port: Option<u16>,
    /// A second VM beside the running node (passthrough that is not the boot).
    pub beside: bool,
}

/// Whether any of the VM's flag variables (`ERL_AFLAGS`, `ERL_FLAGS`, `ERL_ZFLAGS`) already
/// chooses a distribution protocol.
pub fn proto_dist_given(flags: &[Option<&str>]) -> bool {
    flags.iter().flatten().any(|f| f.split_ascii_whitespace().any(|word| word == "-proto_dist"))
}

/// `ERL_AFLAGS` for a node at `ip`: the inherited value with our flags after it; `None` when it
/// stays as inherited. A `-proto_dist` in a flag variable is left alone for TCP; with TLS it
/// is a conflict the boot refuses before it gets here ([`check_inherited`]).
pub fn erl_aflags(
    ip: IpAddr,
    dist: &DistFlags<'_>,
    aflags: Option<&str>,
    flags: Option<&str>,
    zflags: Option<&str>,
) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    let six = if ip.is_ipv6() { "6" } else { "" };
    match dist.tls_optfile {
        Some(optfile) => {
            words.push(format!("-proto_dist inet{six}_tls"));
            words.push(format!("-ssl_dist_optfile {}", optfile.display()));
        }
        None if ip.is_ipv6() && !proto_dist_given(&[aflags, flags, zflags]) => {
            words.push("-proto_dist inet6_tcp".to_string());
        }
        None => {}
    }
    if let Some(port) = dist.port {
        words.push(format!("-start_epmd false -erl_epmd_port {port}"));
        if dist.beside {
            words.push("-dist_listen false -hidden".to_string());
        }
    }
    if words.is_empty() {
        return None;
    }
    let ours = words.join(" ");
    match aflags.map(str::trim) {
        None | Some("") => Some(ours),
        Some(_) => Some(format!("{} {ours}", aflags.unwrap_or_default())),
    }
}

/// `--dist tls` beside a `-proto_dist` the environment already gives: one of them would lose.
pub fn check_inherited(tls: bool, flags: &[Option<&str>]) -> Result<(), Fail> {
    if tls && proto_dist_given(flags) {
        return Err(fail!(
            Exit::Usage,
            "cannot use --dist tls: it sets -proto_dist, and ERL_AFLAGS, ERL_FLAGS or ERL_ZFLAGS already names one; \
             drop one of them"
        ));
    }
    Ok(())
}

/// `--tls-dir` made absolute (the options file needs absolute paths), and fit to travel in
/// `ERL_AFLAGS` and in an Erlang string.
pub fn absolute_dir(dir: &Path) -> Result<PathBuf, Fail> {
    let absolute = std::fs::canonicalize(dir).map_err(|e| {
        fail!(Exit::Config, "cannot read --tls-dir {}: {}", dir.display(), crate::exec::describe_io_error(&e))
    })?;
    travels(&absolute, "--tls-dir")?;
    Ok(absolute)
}

/// A path that `ERL_AFLAGS` (split on whitespace, quotes stripped) and an Erlang string carry
/// unchanged.
pub fn travels(path: &Path, what: &str) -> Result<(), Fail> {
    match path.to_str() {
        Some(text) if !text.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\')) => {
            Ok(())
        }
        _ => Err(fail!(
            Exit::Config,
            "cannot use {what} {:?}: it holds a space, a quote or a backslash, which ERL_AFLAGS cannot carry; \
             use another path",
            path.display().to_string()
        )),
    }
}

/// Each of `tls.crt`, `tls.key`, `ca.crt` is there, readable and PEM: checked before any
/// waiting, so a missing secret is a 78 at once, not a node that fails to start.
pub fn check_tls_dir(dir: &Path) -> Result<(), Fail> {
    for name in TLS_FILES {
        let path = dir.join(name);
        let text = std::fs::read(&path).map_err(|e| {
            fail!(Exit::Config, "cannot read {} (--tls-dir): {}", path.display(), crate::exec::describe_io_error(&e))
        })?;
        let pem = String::from_utf8_lossy(&text);
        if !pem.trim_start().starts_with("-----BEGIN ") || !pem.contains("-----END ") {
            return Err(fail!(
                Exit::Config,
                "cannot use {} (--tls-dir): it is not PEM (no -----BEGIN ... -----END block)",
                path.display()
            ));
        }
    }
    Ok(())
}

/// A release (`ROOT/bin/NAME` beside `ROOT/lib` and `ROOT/releases`) that `--dist tls` would
/// boot without the `ssl` application in `ROOT/lib`: the VM would stop at once with "Protocol
/// 'inet_tls': not supported". A 78 that says how to add it, before anything runs.
pub fn check_release_has_ssl(program: &Path) -> Result<(), Fail> {
    let Some(root) = crate::erl::release_root(program) else { return Ok(()) };
    let Ok(entries) = std::fs::read_dir(root.join("lib")) else { return Ok(()) };
    if !root.join("releases").is_dir() {
        return Ok(());
    }
    let has_ssl = entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("ssl-"));
    if has_ssl {
        return Ok(());
    }
    Err(fail!(
        Exit::Config,
        "cannot use --dist tls: the release in {} has no ssl application (no lib/ssl-*), and TLS distribution \
         needs it at boot: add :ssl to extra_applications in mix.exs (relx: to the release's applications)",
        root.display()
    ))
}

/// The `ssl_dist_optfile` for the certificates in `dir` (absolute): the server asks for and
/// verifies the client's certificate and refuses a client without one; the client verifies the
/// server's, and accepts an IP SAN equal to the node's host part where the default check would
/// compare it as a DNS name.
pub fn optfile(dir: &Path) -> String {
    let file = |name: &str| dir.join(name).display().to_string();
    let (crt, key, ca) = (file("tls.crt"), file("tls.key"), file("ca.crt"));
    format!(
        "%% Written by rancher-boot for --dist tls: mutual verification against {ca}.\n\
         [{{server, [{{certfile, \"{crt}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca}\"}},\n\
         \x20          {{verify, verify_peer}}, {{fail_if_no_peer_cert, true}}]}},\n\
         \x20{{client, [{{certfile, \"{crt}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca}\"}},\n\
         \x20          {{verify, verify_peer}},\n\
         \x20          {{customize_hostname_check, [{{match_fun,\n\
         \x20              fun({{dns_id, Host}}, {{iPAddress, Ip}}) -> inet:parse_address(Host) =:= {{ok, list_to_tuple(Ip)}};\n\
         \x20                 (_, _) -> default\n\
         \x20              end}}]}}]}}].\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_dist_is_added_only_for_ipv6_and_only_once() {
        let none = DistFlags::default();
        let v6: IpAddr = "fdaa::2".parse().unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(erl_aflags(v4, &none, None, None, None), None);
        assert_eq!(erl_aflags(v6, &none, None, None, None).as_deref(), Some("-proto_dist inet6_tcp"));
        assert_eq!(erl_aflags(v6, &none, Some(" "), None, None).as_deref(), Some("-proto_dist inet6_tcp"));
        assert_eq!(erl_aflags(v6, &none, Some("+S 2"), None, None).as_deref(), Some("+S 2 -proto_dist inet6_tcp"));
        assert_eq!(erl_aflags(v6, &none, Some("-proto_dist inet6_tls"), None, None), None);
        assert_eq!(erl_aflags(v6, &none, None, Some("+S 1 -proto_dist inet_tcp"), None), None);
        assert_eq!(erl_aflags(v6, &none, Some("+S 1"), None, Some("-proto_dist inet6_tcp")), None);
        // A word that only contains the flag is not the flag.
        assert!(erl_aflags(v6, &none, Some("-proto_distx"), None, None).is_some());
    }

    #[test]
    fn tls_and_the_fixed_port_travel_in_erl_aflags() {
        let optfile = Path::new("/tmp/rb/ssl_dist.conf");
        let tls = DistFlags { tls_optfile: Some(optfile), ..DistFlags::default() };
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fdaa::2".parse().unwrap();
        assert_eq!(
            erl_aflags(v4, &tls, Some("+S 2"), None, None).as_deref(),
            Some("+S 2 -proto_dist inet_tls -ssl_dist_optfile /tmp/rb/ssl_dist.conf")
        );
        assert_eq!(
            erl_aflags(v6, &tls, None, None, None).as_deref(),
            Some("-proto_dist inet6_tls -ssl_dist_optfile /tmp/rb/ssl_dist.conf")
        );
        let port = DistFlags { port: Some(9100), ..DistFlags::default() };
        assert_eq!(erl_aflags(v4, &port, None, None, None).as_deref(), Some("-start_epmd false -erl_epmd_port 9100"));
        let beside = DistFlags { port: Some(9100), beside: true, ..DistFlags::default() };
        assert_eq!(
            erl_aflags(v4, &beside, None, None, None).as_deref(),
            Some("-start_epmd false -erl_epmd_port 9100 -dist_listen false -hidden")
        );
        assert!(check_inherited(true, &[Some("-proto_dist inet_tcp")]).is_err());
        assert!(check_inherited(false, &[Some("-proto_dist inet_tcp")]).is_ok());
    }

    #[test]
    fn paths_that_erl_aflags_cannot_carry_are_refused() {
        assert!(travels(Path::new("/run/secrets/tls"), "x").is_ok());
        for bad in ["/run/my secrets", "/run/it's", "/run/a\"b", "/run/a\\b"] {
            assert!(travels(Path::new(bad), "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_release_without_ssl_is_refused_under_tls() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        for sub in ["bin", "lib/kernel-8.5", "releases"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let program = root.join("bin/hello");
        assert!(check_release_has_ssl(&program).unwrap_err().to_string().contains("extra_applications"));
        std::fs::create_dir_all(root.join("lib/ssl-10.8")).unwrap();
        assert!(check_release_has_ssl(&program).is_ok());
        assert!(check_release_has_ssl(Path::new("/usr/bin/erl")).is_ok());
        assert!(check_release_has_ssl(Path::new("erl")).is_ok());
    }

    #[test]
    fn the_optfile_verifies_both_ends() {
        let text = optfile(Path::new("/run/tls"));
        for needle in [
            "{certfile, \"/run/tls/tls.crt\"}",
            "{keyfile, \"/run/tls/tls.key\"}",
            "{cacertfile, \"/run/tls/ca.crt\"}",
            "{fail_if_no_peer_cert, true}",
            "customize_hostname_check",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert_eq!(text.matches("{verify, verify_peer}").count(), 2, "{text}");
    }
}
