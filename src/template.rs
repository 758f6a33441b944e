//! Templates: the pure `${NAME}` renderer, the atomic write of its output, and the checks of a
//! rendered vm.args.
//!
//! Rendering is one pass over bytes (docs/spec.md section 4): a substituted value is never re-scanned, and
//! everything that is not a placeholder is copied byte for byte, so CRLF, a missing final newline
//! and non-UTF-8 text survive. Values are checked before they are inserted, because a newline in a
//! value could inject a new VM flag and, in vm.args, a space or `#` would split or end an argument.
//! Errors name the variable but never its value: the cookie is a variable too.
//!
//! This module does not read templates, choose destinations, log or map errors to exit codes; the
//! caller adds the file name to each error and decides what a failure means.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// What the rendered text is, which decides the checks on substituted values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Any text file: values may not hold control characters.
    Plain,
    /// An Erlang `vm.args`: values may not hold control characters, spaces or `#` either.
    VmArgs,
}

/// One error in a template. `line` and `column` are 1-based; the column counts bytes (templates
/// need not be UTF-8) and points at the `$` of the placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub variable: Option<String>,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for TemplateError {}

/// Renders `text` in one pass. Returns ALL errors of the text, not just the first.
pub fn render(text: &[u8], kind: Kind, vars: &BTreeMap<OsString, OsString>) -> Result<Vec<u8>, Vec<TemplateError>> {
    let mut out = Vec::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut i = 0;
    while let Some(off) = text[i..].iter().position(|&b| b == b'$') {
        let at = i + off;
        out.extend_from_slice(&text[i..at]);
        let rest = &text[at..];
        if rest.starts_with(b"$${") {
            out.extend_from_slice(b"${");
            i = at + 3;
            continue;
        }
        if !rest.starts_with(b"${") {
            out.push(b'$');
            i = at + 1;
            continue;
        }
        // The first `}` ends the placeholder; a newline before it means it was never closed.
        let body_start = at + 2;
        let end = text[body_start..].iter().position(|&b| b == b'}' || b == b'\n');
        let result = match end {
            Some(n) if text[body_start + n] == b'}' => {
                i = body_start + n + 1;
                expand(&text[body_start..i - 1], kind, vars, &mut out)
            }
            _ => {
                // Resume at the newline (copied as text) so the next line is still checked.
                i = end.map_or(text.len(), |n| body_start + n);
                let name = split_name(&text[body_start..i]).map(|(n, _)| String::from_utf8_lossy(n).into_owned());
                Err((name, "unterminated placeholder: `${` without `}` on the same line".to_string()))
            }
        };
        if let Err((variable, message)) = result {
            let (line, column) = locate(text, at);
            errors.push(TemplateError { line, column, variable, message });
        }
    }
    out.extend_from_slice(&text[i..]);
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// Expands one placeholder body (between `${` and `}`) into `out`.
fn expand(
    body: &[u8],
    kind: Kind,
    vars: &BTreeMap<OsString, OsString>,
    out: &mut Vec<u8>,
) -> Result<(), (Option<String>, String)> {
    let Some((name, op)) = split_name(body) else {
        let why = if body.is_empty() { "no variable name" } else { "a name is [A-Za-z_][A-Za-z0-9_]*" };
        return Err((None, format!("malformed placeholder `${{{}}}`: {why}", show(body))));
    };
    let name = String::from_utf8_lossy(name).into_owned();
    let err = |message: String| Err((Some(name.clone()), message));
    let value = vars.get(OsStr::new(&name)).map(|v| v.as_bytes());
    let set_nonempty = value.filter(|v| !v.is_empty());

    // (bytes to insert, whether they are the template's own default)
    let (bytes, is_default) = if op.is_empty() {
        match value {
            Some(v) => (v, false),
            None => return err(format!("variable {name} is not set")),
        }
    } else if let Some(default) = op.strip_prefix(b":-") {
        set_nonempty.map_or((default, true), |v| (v, false))
    } else if let Some(default) = op.strip_prefix(b"-") {
        value.map_or((default, true), |v| (v, false))
    } else if let Some(message) = op.strip_prefix(b":?") {
        match set_nonempty {
            Some(v) => (v, false),
            None if message.is_empty() => return err(format!("variable {name} is not set or empty")),
            None => return err(format!("variable {name} is not set or empty: {}", show(message))),
        }
    } else {
        let body = show(body);
        return err(format!("malformed placeholder `${{{body}}}`: expected `}}`, `:-`, `-` or `:?` after {name}"));
    };

    // Defaults are checked too: they land in the output exactly as a value would.
    let what = if is_default { "default" } else { "value" };
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return err(format!("{what} of {name} holds a control character"));
    }
    if kind == Kind::VmArgs && bytes.iter().any(|&b| b == b' ' || b == b'#') {
        return err(format!("{what} of {name} holds a space or `#`, which would split a vm.args argument"));
    }
    out.extend_from_slice(bytes);
    Ok(())
}

/// Splits a placeholder body into its variable name, if it starts with a valid one, and the rest.
fn split_name(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = body.iter().position(|&b| !(b.is_ascii_alphanumeric() || b == b'_')).unwrap_or(body.len());
    let (name, rest) = body.split_at(len);
    (!name.first().is_none_or(u8::is_ascii_digit)).then_some((name, rest))
}

/// 1-based line and byte column of `pos`. Only called for errors, so the rescan is cheap enough.
fn locate(text: &[u8], pos: usize) -> (usize, usize) {
    let before = &text[..pos];
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |n| n + 1);
    (before.iter().filter(|&&b| b == b'\n').count() + 1, pos - line_start + 1)
}

/// Template text (never a value) fit for a message: lossy UTF-8, control characters escaped.
fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    for c in String::from_utf8_lossy(bytes).chars() {
        if c.is_control() {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

/// Writes `contents` to `dest` atomically: temp file in dest's directory created with mode 0600
/// (`O_EXCL`, never following a symlink), write, fsync, rename over dest, fsync the directory. On
/// any error the temp file is removed and dest is untouched. The error message names the path.
///
/// The one exception: a failed fsync of the directory is reported after the rename, when dest
/// already holds the new contents. A filesystem that cannot sync directories at all (EINVAL,
/// ENOTSUP) is not an error.
pub fn write_atomic(dest: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_as(dest, contents, 0o600, None)
}

/// [`write_atomic`] with the file's `mode` and, with `--user`, its owner (uid, gid): both are set
/// on the temporary file, before the rename, so the file never shows under its name with another
/// owner or mode.
pub fn write_atomic_as(dest: &Path, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    let fail = |what: &str, e: io::Error| {
        let why = crate::exec::describe_io_error(&e);
        io::Error::new(e.kind(), format!("cannot write {}: {what}: {why}", dest.display()))
    };
    let name = dest
        .file_name()
        .ok_or_else(|| fail("bad path", io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Opened first, so a directory we could not sync fails before anything changes.
    let dir_handle = File::open(dir).map_err(|e| fail("cannot open its directory", e))?;
    let (tmp, mut file) = create_temp(dir, name, mode).map_err(|e| fail("cannot create a temporary file", e))?;
    let owned = match owner {
        Some((uid, gid)) => std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
            .map_err(|e| fail("cannot give the temporary file to its owner", e)),
        None => Ok(()),
    };
    let written = owned
        .and_then(|()| file.write_all(contents).map_err(|e| fail("cannot write the temporary file", e)))
        .and_then(|()| file.sync_all().map_err(|e| fail("cannot write the temporary file", e)))
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp, dest).map_err(|e| fail("cannot rename the temporary file over it", e))
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    match dir_handle.sync_all() {
        Err(e) if !matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported) => {
            Err(fail("cannot sync its directory", e))
        }
        _ => Ok(()),
    }
}

/// Overwrites `dest` in place, created with `mode` if it is missing and never through a symlink:
/// no temporary file, no rename, no fsync. For the state file only, which is trusted only while
/// the boot's process lives and means nothing after a reboot: the atomic write's two fsyncs, new
/// inode and rename were 0.3 to 0.7 ms of a 1.2 ms boot on ext4 (BENCHMARKS.md), this is 0.05.
/// A reader may find the file half-written for that instant, and must check what it reads
/// (state.rs parses the JSON whole and checks the pid and start time in it).
pub fn write_in_place(dest: &Path, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |e: io::Error| {
        let why = crate::exec::describe_io_error(&e);
        io::Error::new(e.kind(), format!("cannot write {}: {why}", dest.display()))
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dest)
        .map_err(fail)?;
    // A file left by another run may have another mode or owner: this run's, before the contents.
    file.set_permissions(fs::Permissions::from_mode(mode)).map_err(fail)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(fail)?;
    }
    file.write_all(contents).map_err(fail)?;
    file.set_len(contents.len() as u64).map_err(fail)
}

/// Creates `.NAME.PID.N.tmp` in `dir`. `create_new` is `O_CREAT | O_EXCL`, which never follows a
/// symlink, so a planted link cannot redirect the write.
fn create_temp(dir: &Path, name: &OsStr, mode: u32) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    for _ in 0..64 {
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        let tmp = dir.join(tmp_name);
        match OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary file name"))
}

/// A fixed text, so the cookie cannot leak into the log through it.
const PLACEHOLDER_WARNING: &str =
    "vm.args sets -setcookie to a well-known placeholder; use a private cookie (for example with --cookie-file)";

/// A rendered vm.args as erlexec reads it: one stream of whitespace-separated tokens (so a flag's
/// value may sit on the next line), comments (`#` to end of line) left out.
fn vm_args_tokens(rendered: &[u8]) -> Vec<&[u8]> {
    rendered
        .split(|&b| b == b'\n')
        .flat_map(|line| {
            let code = line.split(|&b| b == b'#').next().unwrap_or_default();
            code.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty())
        })
        .collect()
}

/// The cookie a rendered vm.args gives with `-setcookie` (the last of its arguments: the form
/// `-setcookie Node Cookie` names a node first), for the cookie lint.
pub fn vm_args_cookie(rendered: &[u8]) -> Option<String> {
    let tokens = vm_args_tokens(rendered);
    let at = tokens.iter().position(|t| *t == b"-setcookie")?;
    let args = tokens[at + 1..].iter().take_while(|t| !t.starts_with(b"-") && !t.starts_with(b"+"));
    args.last().map(|cookie| String::from_utf8_lossy(cookie).into_owned())
}

/// Warnings for a rendered vm.args: a `-name`/`-sname` whose value differs from `node_name` ("vm.args
/// sets -name X but NODE_NAME is Y"), and a `-setcookie` whose value is a published cookie
/// ([`crate::cookie::is_published`]) — that warning must not print the cookie itself. Comments
/// (`#` to end of line) are ignored.
pub fn vm_args_warnings(rendered: &[u8], node_name: &str) -> Vec<String> {
    let tokens = vm_args_tokens(rendered);
    let is_placeholder = |a: &&[u8]| std::str::from_utf8(a).is_ok_and(crate::cookie::is_published);
    let mut warnings = Vec::new();
    for (i, &token) in tokens.iter().enumerate() {
        // A flag's arguments are the tokens up to the next flag (`-setcookie Node Cookie` has two).
        let mut args = tokens[i + 1..].iter().take_while(|t| !t.starts_with(b"-") && !t.starts_with(b"+"));
        if token == b"-name" || token == b"-sname" {
            if let Some(value) = args.next().filter(|v| **v != node_name.as_bytes()) {
                let (flag, value) = (show(token), show(value));
                warnings.push(format!("vm.args sets {flag} {value} but NODE_NAME is {node_name}"));
            }
        } else if token == b"-setcookie" && args.any(is_placeholder) {
            warnings.push(PLACEHOLDER_WARNING.to_string());
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    fn vars(pairs: &[(&str, &[u8])]) -> BTreeMap<OsString, OsString> {
        pairs.iter().map(|(k, v)| (OsString::from(k), OsStr::from_bytes(v).to_os_string())).collect()
    }

    fn ok(text: &str, kind: Kind, pairs: &[(&str, &[u8])]) -> String {
        String::from_utf8(render(text.as_bytes(), kind, &vars(pairs)).expect("renders")).expect("utf-8")
    }

    fn errs(text: &[u8], kind: Kind, pairs: &[(&str, &[u8])]) -> Vec<TemplateError> {
        render(text, kind, &vars(pairs)).expect_err("fails")
    }

    fn one_err(text: &str, kind: Kind, pairs: &[(&str, &[u8])]) -> TemplateError {
        let mut e = errs(text.as_bytes(), kind, pairs);
        assert_eq!(e.len(), 1, "{e:?}");
        e.remove(0)
    }

    const PLAIN: Kind = Kind::Plain;
    const VM: Kind = Kind::VmArgs;

    #[test]
    fn substitutes_a_set_variable() {
        assert_eq!(ok("-name hello@${IP}\n", VM, &[("IP", b"10.0.0.1")]), "-name hello@10.0.0.1\n");
        assert_eq!(ok("${A}${B}", PLAIN, &[("A", b"x"), ("B", b"y")]), "xy");
        assert_eq!(ok("${_a1}", PLAIN, &[("_a1", b"v")]), "v");
    }

    #[test]
    fn unset_variable_is_an_error() {
        let e = one_err("x ${NOPE} y", PLAIN, &[]);
        assert_eq!((e.line, e.column, e.variable.as_deref()), (1, 3, Some("NOPE")));
        assert_eq!(e.to_string(), "line 1, column 3: variable NOPE is not set");
    }

    #[test]
    fn set_but_empty_plain_placeholder_is_empty() {
        assert_eq!(ok("[${E}]", PLAIN, &[("E", b"")]), "[]");
    }

    #[test]
    fn colon_dash_default() {
        assert_eq!(ok("${A:-def}", PLAIN, &[("A", b"v")]), "v");
        assert_eq!(ok("${A:-def}", PLAIN, &[("A", b"")]), "def");
        assert_eq!(ok("${A:-def}", PLAIN, &[]), "def");
        assert_eq!(ok("${A:-}", PLAIN, &[]), "");
    }

    #[test]
    fn dash_default() {
        assert_eq!(ok("${A-def}", PLAIN, &[("A", b"v")]), "v");
        assert_eq!(ok("[${A-def}]", PLAIN, &[("A", b"")]), "[]");
        assert_eq!(ok("${A-def}", PLAIN, &[]), "def");
    }

    #[test]
    fn defaults_are_literal_and_end_at_the_first_brace() {
        assert_eq!(ok("${A:-${B}}", PLAIN, &[("B", b"no")]), "${B}");
        assert_eq!(ok("${A:-$HOME:x-y}", PLAIN, &[]), "$HOME:x-y");
        assert_eq!(ok("${A:-a}b}", PLAIN, &[]), "ab}");
    }

    #[test]
    fn colon_question_mark() {
        assert_eq!(ok("${A:?need A}", PLAIN, &[("A", b"v")]), "v");
        for pairs in [&[][..], &[("A", &b""[..])][..]] {
            let e = one_err("${A:?set A to the node basename}", PLAIN, pairs);
            assert_eq!(e.variable.as_deref(), Some("A"));
            assert_eq!(e.message, "variable A is not set or empty: set A to the node basename");
        }
        assert_eq!(one_err("${A:?}", PLAIN, &[]).message, "variable A is not set or empty");
    }

    #[test]
    fn escaped_placeholder_is_literal() {
        assert_eq!(ok("$${A}", PLAIN, &[("A", b"v")]), "${A}");
        assert_eq!(ok("$${", PLAIN, &[]), "${");
        assert_eq!(ok("$${A} ${A}", PLAIN, &[("A", b"v")]), "${A} v");
    }

    #[test]
    fn dollar_without_brace_is_literal() {
        assert_eq!(ok("$VAR $$VAR $$ $ a$", PLAIN, &[("VAR", b"v")]), "$VAR $$VAR $$ $ a$");
        assert_eq!(ok("-eval 'io:format(\"$a~n\")'", VM, &[]), "-eval 'io:format(\"$a~n\")'");
        // `$` then `$${`: a literal `$`, then an escaped `${`.
        assert_eq!(ok("$$${A}", PLAIN, &[("A", b"v")]), "$${A}");
    }

    #[test]
    fn values_are_not_rescanned() {
        assert_eq!(ok("${A}", PLAIN, &[("A", b"${B}"), ("B", b"no")]), "${B}");
        assert_eq!(ok("${A}", PLAIN, &[("A", b"$${")]), "$${");
        assert_eq!(ok("${A:-x}", PLAIN, &[("A", b"${")]), "${");
    }

    #[test]
    fn malformed_placeholders() {
        let e = one_err("${}", PLAIN, &[]);
        assert_eq!((e.line, e.column, e.variable), (1, 1, None));
        assert_eq!(e.message, "malformed placeholder `${}`: no variable name");
        assert_eq!(one_err("${1x}", PLAIN, &[]).variable, None);
        let e = one_err("a ${A B}", PLAIN, &[("A", b"v")]);
        assert_eq!((e.column, e.variable.as_deref()), (3, Some("A")));
        assert!(e.message.starts_with("malformed placeholder `${A B}`"), "{}", e.message);
        for t in ["${A:x}", "${A:}", "${A?m}", "${A\tB}", "${-x}", "${é}"] {
            one_err(t, PLAIN, &[("A", b"v")]);
        }
        assert!(one_err("${A\tB}", PLAIN, &[]).message.contains("${A\\tB}"));
    }

    #[test]
    fn unterminated_placeholders() {
        let e = one_err("x ${NAME", PLAIN, &[]);
        assert_eq!((e.line, e.column, e.variable.as_deref()), (1, 3, Some("NAME")));
        assert!(e.message.starts_with("unterminated placeholder"));
        // A placeholder cannot span lines; the next line is still scanned.
        let e = errs(b"a ${A:-x\n${B}\n", PLAIN, &[]);
        assert_eq!(e.iter().map(|e| (e.line, e.column)).collect::<Vec<_>>(), [(1, 3), (2, 1)]);
        assert!(e[0].message.starts_with("unterminated"));
        assert_eq!(one_err("${", PLAIN, &[]).variable, None);
        assert_eq!(one_err("${A:-x\r\n", PLAIN, &[]).line, 1);
    }

    #[test]
    fn collects_all_errors_with_positions() {
        let text = "-name ${NAME}\n-setcookie ${COOKIE}\r\n  ${} ok ${OK} ${BAD:x}\n\n\t${UNSET:?why}";
        let e = errs(text.as_bytes(), VM, &[("OK", b"1"), ("COOKIE", b"a b")]);
        let got: Vec<_> = e.iter().map(|e| (e.line, e.column, e.variable.as_deref())).collect();
        assert_eq!(
            got,
            [(1, 7, Some("NAME")), (2, 12, Some("COOKIE")), (3, 3, None), (3, 16, Some("BAD")), (5, 2, Some("UNSET"))]
        );
    }

    #[test]
    fn column_counts_bytes() {
        assert_eq!(one_err("é ${X}", PLAIN, &[]).column, 4);
        assert_eq!(errs(b"\xff\xfe${X}", PLAIN, &[])[0].column, 3);
    }

    #[test]
    fn copies_everything_else_byte_for_byte() {
        assert_eq!(ok("", PLAIN, &[]), "");
        assert_eq!(ok("a\r\nb${A}\r\n", PLAIN, &[("A", b"v")]), "a\r\nbv\r\n");
        assert_eq!(ok("no final newline ${A}", PLAIN, &[("A", b"v")]), "no final newline v");
        assert_eq!(ok("héllo ${A} 世界\n", PLAIN, &[("A", "ü".as_bytes())]), "héllo ü 世界\n");
        let text = b"\xff\x00\x7f${A}\xc3";
        assert_eq!(render(text, PLAIN, &vars(&[("A", b"\xfe")])).expect("renders"), b"\xff\x00\x7f\xfe\xc3");
    }

    #[test]
    fn control_characters_in_values_are_rejected() {
        for v in [&b"a\nb"[..], b"a\rb", b"a\0b", b"a\tb", b"\x1b[0m", b"\x7f"] {
            for kind in [PLAIN, VM] {
                let e = one_err("x ${V} y", kind, &[("V", v)]);
                assert_eq!(e.message, "value of V holds a control character");
                assert_eq!(e.variable.as_deref(), Some("V"));
            }
        }
        assert_eq!(one_err("${V:-a\x01b}", PLAIN, &[]).message, "default of V holds a control character");
    }

    #[test]
    fn vm_args_rejects_space_and_hash_but_plain_allows_them() {
        for v in [&b"a b"[..], b"a#b", b"#", b" "] {
            let e = one_err("-setcookie ${C}", VM, &[("C", v)]);
            assert!(e.message.starts_with("value of C holds a space or `#`"), "{}", e.message);
            assert_eq!(render(b"${C}", PLAIN, &vars(&[("C", v)])).expect("renders"), v);
        }
        assert!(one_err("${C:-a b}", VM, &[]).message.starts_with("default of C holds a space"));
        assert!(one_err("${C-#}", VM, &[]).message.starts_with("default of C"));
        assert_eq!(ok("${C:-a b}", PLAIN, &[]), "a b");
    }

    #[test]
    fn error_text_never_holds_the_value() {
        let secret = b"s3cr3t value#\n";
        for kind in [PLAIN, VM] {
            for t in ["${C}", "${C:-x}", "${C-x}", "${C:?x}"] {
                for e in errs(t.as_bytes(), kind, &[("C", secret)]) {
                    let shown = format!("{e} {e:?}");
                    assert!(!shown.contains("s3cr3t"), "{shown}");
                }
            }
        }
    }

    fn dir_entries(dir: &Path) -> Vec<OsString> {
        let mut names: Vec<_> = fs::read_dir(dir).expect("read_dir").map(|e| e.expect("entry").file_name()).collect();
        names.sort();
        names
    }

    #[test]
    fn write_atomic_creates_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("vm.args");
        write_atomic(&dest, b"-name a@b\n").expect("writes");
        assert_eq!(fs::read(&dest).expect("read"), b"-name a@b\n");
        assert_eq!(fs::metadata(&dest).expect("stat").permissions().mode() & 0o7777, 0o600);
        assert_eq!(dir_entries(dir.path()), ["vm.args"]);
    }

    #[test]
    fn write_atomic_replaces_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("vm.args");
        fs::write(&dest, b"old contents that are longer").expect("write");
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomic(&dest, b"new").expect("writes");
        assert_eq!(fs::read(&dest).expect("read"), b"new");
        assert_eq!(fs::metadata(&dest).expect("stat").permissions().mode() & 0o777, 0o600);
        assert_eq!(dir_entries(dir.path()), ["vm.args"]);
    }

    /// The state file's write: a shorter text leaves no tail of the longer one, the mode is set
    /// again, and a planted symlink is refused, its target untouched.
    #[test]
    fn write_in_place_truncates_sets_the_mode_and_follows_no_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("state.json");
        write_in_place(&dest, b"a much longer first text", 0o600, None).unwrap();
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o644)).unwrap();
        write_in_place(&dest, b"short", 0o600, None).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"short");
        assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o600);
        let target = dir.path().join("target");
        fs::write(&target, "untouched").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = write_in_place(&link, b"evil", 0o600, None).unwrap_err();
        assert!(err.to_string().contains("link.json"), "{err}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "untouched");
    }

    #[test]
    fn write_atomic_replaces_a_symlink_instead_of_following_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        fs::write(&target, b"keep").expect("write");
        let dest = dir.path().join("vm.args");
        std::os::unix::fs::symlink(&target, &dest).expect("symlink");
        write_atomic(&dest, b"new").expect("writes");
        assert_eq!(fs::read(&target).expect("read"), b"keep");
        assert!(fs::symlink_metadata(&dest).expect("lstat").is_file());
    }

    #[test]
    fn write_atomic_in_unwritable_directory_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("ro");
        fs::create_dir(&sub).expect("mkdir");
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o500)).expect("chmod");
        // root ignores directory modes, so as root (where CI runs) this part cannot fail: the same
        // path is tested as nobody, through the binary, in tests/it/templates.rs
        // (a_destination_directory_the_user_may_not_write_is_73_naming_it).
        if File::create(sub.join("probe")).is_err() {
            let dest = sub.join("vm.args");
            let e = write_atomic(&dest, b"x").expect_err("fails");
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            assert!(e.to_string().contains(&*dest.to_string_lossy()), "{e}");
            assert!(dir_entries(&sub).is_empty());
        }
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).expect("chmod");

        let missing = dir.path().join("missing/vm.args");
        let e = write_atomic(&missing, b"x").expect_err("fails");
        assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");
        let file = dir.path().join("file");
        fs::write(&file, b"").expect("write");
        let under_file = file.join("vm.args");
        let e = write_atomic(&under_file, b"x").expect_err("fails");
        assert!(e.to_string().contains(&*under_file.to_string_lossy()), "{e}");
    }

    #[test]
    fn write_atomic_onto_a_directory_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("vm.args");
        fs::create_dir(&dest).expect("mkdir");
        fs::write(dest.join("inside"), b"keep").expect("write");
        let e = write_atomic(&dest, b"x").expect_err("fails");
        assert!(e.to_string().starts_with(&format!("cannot write {}: ", dest.display())), "{e}");
        assert_eq!(dir_entries(dir.path()), ["vm.args"]);
        assert_eq!(fs::read(dest.join("inside")).expect("read"), b"keep");
    }

    #[test]
    fn write_atomic_rejects_a_path_without_file_name() {
        assert!(write_atomic(Path::new(""), b"x").is_err());
        assert!(write_atomic(Path::new("/"), b"x").is_err());
    }

    #[test]
    fn warns_about_a_different_node_name() {
        let w = vm_args_warnings(b"-name hello@10.0.0.2\n-setcookie abc\n", "hello@10.0.0.1");
        assert_eq!(w, ["vm.args sets -name hello@10.0.0.2 but NODE_NAME is hello@10.0.0.1"]);
        let w = vm_args_warnings(b"-sname hello\r\n", "hello@10.0.0.1");
        assert_eq!(w, ["vm.args sets -sname hello but NODE_NAME is hello@10.0.0.1"]);
        // The value may be on the next line: erlexec reads one token stream.
        assert_eq!(vm_args_warnings(b"-name\n  other@h\n", "a@h").len(), 1);
    }

    #[test]
    fn no_warning_for_matching_name_or_comments() {
        assert!(vm_args_warnings(b"-name hello@10.0.0.1 # was -name x@y\n", "hello@10.0.0.1").is_empty());
        assert!(vm_args_warnings(b"# -name x@y\n#-setcookie secret\n", "a@b").is_empty());
        assert!(vm_args_warnings(b"-setcookie real-cookie-1\n-name a@b", "a@b").is_empty());
        assert!(vm_args_warnings(b"", "a@b").is_empty());
        assert!(vm_args_warnings(b"-name\n-setcookie x", "a@b").is_empty());
    }

    #[test]
    fn warns_about_placeholder_cookies_without_printing_them() {
        for cookie in ["something-secret-here-please-change-me", "secret", "cookie", "changeme", "CHANGEME"] {
            let text = format!("-name a@b\n-setcookie {cookie}\n");
            let w = vm_args_warnings(text.as_bytes(), "a@b");
            assert_eq!(w, [PLACEHOLDER_WARNING]);
        }
        assert!(!PLACEHOLDER_WARNING.contains("secret") && !PLACEHOLDER_WARNING.contains("changeme"));
        assert_eq!(vm_args_warnings(b"-setcookie other@host secret\n", "a@b").len(), 1);
    }

    /// Bytes a valid vm.args value may hold: no control character, space or `#`.
    fn vm_value() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>().prop_filter("valid", |&b| b > 0x20 && b != 0x7f && b != b'#'), 1..12)
    }

    #[derive(Debug, Clone)]
    enum Piece {
        Text(Vec<u8>),
        Var(usize),
        Default(Vec<u8>),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn render_never_panics(
            text in prop::collection::vec(prop_oneof![any::<u8>(), prop::sample::select(b"${}:-?_A\n ".to_vec())], 0..64),
            vm in any::<bool>(),
        ) {
            let kind = if vm { VM } else { PLAIN };
            let _ = render(&text, kind, &vars(&[("A", b"v"), ("_", b"a b")]));
        }

        #[test]
        fn text_without_dollar_renders_to_itself(text in prop::collection::vec(any::<u8>().prop_filter("no $", |&b| b != b'$'), 0..128)) {
            prop_assert_eq!(render(&text, PLAIN, &BTreeMap::new()), Ok(text.clone()));
            prop_assert_eq!(render(&text, VM, &BTreeMap::new()), Ok(text));
        }

        #[test]
        fn values_are_inserted_verbatim(
            before in "[ -~]*", inner in "[ -~&&[^}]]*", after in "[ -~é]*",
        ) {
            let value = format!("{before}${{{inner}}}{after}");
            let rendered = render(b"<${V}>", PLAIN, &vars(&[("V", value.as_bytes())]));
            prop_assert_eq!(rendered, Ok(format!("<{value}>").into_bytes()));
        }

        #[test]
        fn vm_args_keeps_lines_and_tokens(
            pieces in prop::collection::vec(prop_oneof![
                prop::collection::vec(any::<u8>().prop_filter("no $", |&b| b != b'$'), 1..8).prop_map(Piece::Text),
                prop::sample::select(b" \t\n\r#".to_vec()).prop_map(|b| Piece::Text(vec![b])),
                (0..3usize).prop_map(Piece::Var),
                vm_value().prop_map(Piece::Default),
            ], 0..24),
            values in prop::collection::vec(vm_value(), 3),
        ) {
            let mut template = Vec::new();
            let mut expected_shape = Vec::new();
            for piece in &pieces {
                match piece {
                    Piece::Text(t) => {
                        template.extend_from_slice(t);
                        expected_shape.extend_from_slice(t);
                    }
                    Piece::Var(n) => {
                        template.extend_from_slice(format!("${{V{n}}}").as_bytes());
                        expected_shape.push(b'X');
                    }
                    Piece::Default(d) if d.contains(&b'}') => {
                        template.extend_from_slice(b"${UNSET-x}");
                        expected_shape.push(b'X');
                    }
                    Piece::Default(d) => {
                        template.extend_from_slice(b"${UNSET:-");
                        template.extend_from_slice(d);
                        template.push(b'}');
                        expected_shape.push(b'X');
                    }
                }
            }
            let names = ["V0", "V1", "V2"];
            let pairs: Vec<(&str, &[u8])> = names.iter().zip(&values).map(|(n, v)| (*n, v.as_slice())).collect();
            let rendered = render(&template, VM, &vars(&pairs)).expect("valid values render");
            let shape = |text: &[u8]| -> Vec<usize> {
                text.split(|&b| b == b'\n').map(|l| l.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty()).count()).collect()
            };
            prop_assert_eq!(shape(&rendered), shape(&expected_shape));
        }
    }

    #[test]
    fn the_cookie_of_a_vm_args_is_read_as_erlexec_reads_it() {
        assert_eq!(vm_args_cookie(b"-name a@b\n-setcookie abc\n").as_deref(), Some("abc"));
        assert_eq!(vm_args_cookie(b"-setcookie\n  abc # a comment\n").as_deref(), Some("abc"));
        assert_eq!(vm_args_cookie(b"-setcookie other@host abc\n").as_deref(), Some("abc"));
        assert_eq!(vm_args_cookie(b"# -setcookie abc\n-name a@b\n"), None);
        assert_eq!(vm_args_cookie(b"-setcookie\n-name a@b\n"), None);
    }
}
