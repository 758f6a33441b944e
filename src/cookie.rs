//! The Erlang cookie from a secret file (`--cookie-file`, e.g. a Docker secret in /run/secrets),
//! and, for the commands that speak to a node (`probe`, `doctor`), where else to find it.
//!
//! The cookie is a secret: no error message, log line or debug output ever holds it or any part
//! of it. One trailing newline is trimmed (editors and `echo` add one); anything else that is not
//! printable ASCII, or is a space or `#`, is refused, because the cookie also lands in vm.args
//! (`-setcookie ${RELEASE_COOKIE}`) where it would split an argument or start a comment.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::exit::{Exit, Fail};
use crate::fail;
use crate::state::{CookieSource, State};

/// Cookies that are published, and so protect nothing: the seed's vm.args, CouchDB's (CVE-2022-24706),
/// this project's old example, and the words tutorials use. Compared without case.
const PUBLISHED: [&str; 9] = [
    "something-secret-here-please-change-me",
    "monster",
    "change-me-with---cookie-file",
    "changeme",
    "change-me",
    "secret",
    "cookie",
    "secret_cookie",
    "my_secret_cookie",
];

/// Whether `cookie` is one of the published ones, without regard to case.
pub fn is_published(cookie: &str) -> bool {
    PUBLISHED.iter().any(|p| p.eq_ignore_ascii_case(cookie))
}

/// Shorter than this is a warning: a cookie is the only secret between the port and `os:cmd/1`.
pub const MIN_LEN: usize = 16;

/// The cookie lint of every boot: a published cookie is a 78 (the node would run code for
/// anyone who reaches its port); a short one, or a cookie file that group or others may read,
/// is a warning. `source` names where it came from; the cookie itself is never in a message.
pub fn lint(cookie: &str, source: &str, file: Option<&Path>) -> Result<Vec<String>, Fail> {
    if is_published(cookie) {
        return Err(fail!(
            Exit::Config,
            "cannot boot with the cookie from {source}: it is a published default, and anyone who reaches the \
             distribution port could run code on the node. Make a random one (openssl rand -hex 32 > cookie) and give it with \
             --cookie-file or RELEASE_COOKIE"
        ));
    }
    let mut warnings = Vec::new();
    if cookie.len() < MIN_LEN {
        warnings.push(format!(
            "the cookie from {source} is {} bytes long: use at least {MIN_LEN} random ones (openssl rand -hex 32)",
            cookie.len()
        ));
    }
    if let Some(path) = file {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                warnings.push(format!(
                    "cookie file {} is readable by group or others (mode {mode:04o}): chmod 0400 it",
                    path.display()
                ));
            }
        }
    }
    Ok(warnings)
}

/// Erlang itself accepts cookies up to 255 characters.
const MAX_LEN: usize = 255;

/// A mix release's start script (Elixir's `rel/templates/release.sh`) takes the cookie from
/// `RELEASE_COOKIE`, and when that is empty or unset reads `$RELEASE_ROOT/releases/COOKIE`;
/// images often delete that file so that no cookie is baked in. Then a boot with no cookie from
/// anywhere would exec a release that dies of `cat: .../releases/COOKIE: No such file or
/// directory`: said here instead, as a 78 naming what is missing. Checked only for a program
/// whose script reads `releases/COOKIE` (a mix release; relx's does not), and never when
/// `--cookie-file` gives the cookie.
pub fn check_mix_release_cookie(program: &Path, inherited: Option<&std::ffi::OsStr>) -> Result<(), Fail> {
    if inherited.is_some_and(|cookie| !cookie.is_empty()) {
        return Ok(());
    }
    let Some(root) = program.parent().and_then(Path::parent) else { return Ok(()) };
    // Every boot passes here, so the cheap question first: one stat when the file is there.
    let cookie_file = root.join("releases/COOKIE");
    if cookie_file.exists() {
        return Ok(());
    }
    // A start script is a few KB and starts with `#!`; a large program, or a binary, is no mix
    // release script and is not searched (scanning a 35 KB /bin/true was 0.9 M instructions, four
    // times the rest of a boot: BENCHMARKS.md).
    const READS: &[u8] = b"releases/COOKIE";
    let reads_cookie_file =
        start_script(program).is_some_and(|script| script.windows(READS.len()).any(|w| w[0] == READS[0] && w == READS));
    if !reads_cookie_file {
        return Ok(());
    }
    Err(Fail::new(
        Exit::Config,
        anyhow!(
            "cannot boot {} without a cookie: it is a mix release, which reads {} when RELEASE_COOKIE is {}, \
             and that file does not exist; set --cookie-file (RANCHER_BOOT_COOKIE_FILE) or RELEASE_COOKIE",
            program.display(),
            cookie_file.display(),
            if inherited.is_some() { "empty (it is)" } else { "unset (it is)" }
        ),
    ))
}

/// The text of `program` if it is a script (`#!`) of less than 1 MiB; a binary is not read past
/// its first two bytes.
fn start_script(program: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut file = fs::File::open(program).ok()?;
    let meta = file.metadata().ok()?;
    let mut magic = [0; 2];
    if !meta.is_file() || meta.len() >= 1 << 20 || file.read_exact(&mut magic).is_err() || magic != *b"#!" {
        return None;
    }
    let mut script = Vec::new();
    file.read_to_end(&mut script).ok()?;
    Some(script)
}

pub fn read_cookie(path: &Path) -> Result<String, Fail> {
    let bytes = fs::read(path).map_err(|e| {
        Fail::new(
            Exit::Config,
            anyhow!("cannot read cookie file {}: {}", path.display(), crate::exec::describe_io_error(&e)),
        )
    })?;
    check_cookie(&bytes)
        .map_err(|why| Fail::new(Exit::Config, anyhow!("cannot use cookie file {}: {why}", path.display())))
}

/// Validates a cookie file's content; the error says what is wrong and where, never the content.
pub fn check_cookie(bytes: &[u8]) -> Result<String, String> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if bytes.is_empty() {
        return Err("the cookie is empty".into());
    }
    if bytes.len() > MAX_LEN {
        return Err(format!("the cookie is {} bytes long (at most {MAX_LEN})", bytes.len()));
    }
    if let Some(at) = bytes.iter().position(|b| !b.is_ascii_graphic() || *b == b'#') {
        let what = match bytes[at] {
            b' ' => "a space",
            b'#' => "a '#'",
            b'\n' | b'\r' => "a line break",
            b if b.is_ascii_control() => "a control character",
            _ => "a byte that is not ASCII",
        };
        return Err(format!(
            "the cookie holds {what} at byte {} (allowed: printable ASCII without space or '#')",
            at + 1
        ));
    }
    if matches!(bytes[0], b'-' | b'+') {
        // erl would read `-setcookie -x` or `+x` as a flag of its own, and the node would run
        // with another cookie without a word (distillery#117, elixir#13694).
        return Err("the cookie starts with '-' or '+', which erl would read as a flag".into());
    }
    // Only ASCII graphic bytes are left, so this is valid UTF-8.
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// The cookie and where it came from, in the order Erlang's own tools and a release would find
/// it: `own` (a `--cookie-file`), the boot's (`--cookie-file`/`RANCHER_BOOT_COOKIE_FILE`, or the one the state
/// records), `RELEASE_COOKIE`, a mix release's `releases/COOKIE`, then `$HOME/.erlang.cookie`.
pub fn find(own: Option<&Path>, state: Option<&State>) -> Result<(String, String), Fail> {
    if let Some(path) = own {
        return Ok((read_cookie(path)?, path.display().to_string()));
    }
    if let Some(CookieSource::File(path)) = state.map(|s| &s.cookie) {
        return Ok((read_cookie(path)?, format!("{} (the boot's)", path.display())));
    }
    let release = match state.map(|s| &s.cookie) {
        Some(CookieSource::Release(path)) => Some(path.as_path()),
        _ => None,
    };
    find_beyond_files(release)?.map_err(|home| {
        Fail::new(
            Exit::Config,
            anyhow!(
                "cannot find the cookie: give --cookie-file (RANCHER_BOOT_COOKIE_FILE), set RELEASE_COOKIE, or put \
                 it in {} (--level epmd needs none)",
                home.display()
            ),
        )
    })
}

/// Where the cookie is when no file was named: `RELEASE_COOKIE`, a mix release's
/// `releases/COOKIE` (`release`), then `$HOME/.erlang.cookie`. `Ok(Err(home))`: none of them,
/// and `home` is where Erlang would look. (The boot's `--mesh` asks this for its own VM.)
pub fn find_beyond_files(release: Option<&Path>) -> Result<Result<(String, String), PathBuf>, Fail> {
    if let Some(value) = std::env::var_os("RELEASE_COOKIE") {
        let cookie = check_cookie(value.as_encoded_bytes())
            .map_err(|why| fail!(Exit::Config, "cannot use RELEASE_COOKIE: {why}"))?;
        return Ok(Ok((cookie, "RELEASE_COOKIE".to_string())));
    }
    if let Some(path) = release {
        return Ok(Ok((read_cookie(path)?, path.display().to_string())));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    let path = home.join(".erlang.cookie");
    if path.exists() {
        return Ok(Ok((read_cookie(&path)?, path.display().to_string())));
    }
    Ok(Err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_trimmed() {
        assert_eq!(check_cookie(b"abc-DEF_123\n").unwrap(), "abc-DEF_123");
        assert_eq!(check_cookie(b"abc").unwrap(), "abc");
        assert!(check_cookie(b"abc\n\n").is_err());
        assert!(check_cookie(b"abc\r\n").is_err());
    }

    #[test]
    fn the_lint_refuses_published_cookies_and_warns_about_weak_ones() {
        for published in ["monster", "Something-Secret-Here-Please-Change-Me", "change-me-with---cookie-file"] {
            let fail = lint(published, "RELEASE_COOKIE", None).unwrap_err();
            assert_eq!(fail.exit, Exit::Config);
            assert!(!fail.to_string().to_lowercase().contains(&published.to_lowercase()), "{fail}");
        }
        assert_eq!(lint("abcdefghijklmnop", "x", None).unwrap(), Vec::<String>::new());
        let short = lint("abc123", "x", None).unwrap();
        assert!(short.len() == 1 && short[0].contains("6 bytes") && !short[0].contains("abc123"), "{short:?}");
    }

    /// Only a script (`#!`) that reads releases/COOKIE, with the file gone, is a mix release without
    /// a cookie; a binary that happens to hold those bytes is not one.
    #[test]
    fn a_mix_release_is_a_script_that_reads_releases_cookie() {
        let root = std::env::temp_dir().join(format!("rb-mix-{}", std::process::id()));
        fs::create_dir_all(root.join("bin")).unwrap();
        let program = root.join("bin/hello");
        let check = |text: &[u8]| {
            fs::write(&program, text).unwrap();
            check_mix_release_cookie(&program, None).map_err(|f| f.exit)
        };
        assert_eq!(check(b"#!/bin/sh\ncat \"$RELEASE_ROOT/releases/COOKIE\"\n"), Err(Exit::Config));
        assert_eq!(check(b"\x7fELF\x02\x01 releases/COOKIE \x00"), Ok(()), "a binary is no start script");
        assert_eq!(check(b"#!/bin/sh\nexec erl\n"), Ok(()), "relx's script reads no COOKIE file");
        fs::create_dir_all(root.join("releases")).unwrap();
        fs::write(root.join("releases/COOKIE"), "baked").unwrap();
        assert_eq!(check(b"#!/bin/sh\ncat \"$RELEASE_ROOT/releases/COOKIE\"\n"), Ok(()));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn refusals_never_echo_the_cookie() {
        for bad in [&b"top secret"[..], b"top#secret", b"top\x07secret", b"top\xc3\xa9secret", b"", b"\n"] {
            let why = check_cookie(bad).unwrap_err();
            assert!(!why.contains("top") && !why.contains("secret"), "{why}");
        }
        assert!(check_cookie(&[b'a'; 256]).is_err());
        assert!(check_cookie(b"-secret").is_err() && check_cookie(b"+secret").is_err());
        assert!(check_cookie(b"se-cr+et").is_ok());
    }
}
