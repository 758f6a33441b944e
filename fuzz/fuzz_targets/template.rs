//! Fuzz target: `template::render` with an arbitrary template and arbitrary variable values, in
//! both kinds.
//!
//! Input layout: byte 0 picks the kind (bit 0: vm.args) and which of the four variables `A`, `B`,
//! `C_1`, `_` are set (bits 1..=4); then, for each set variable in that order, one length byte
//! (mod 32) and that many value bytes; the rest is the template.
//!
//! Invariants checked (docs/spec.md section 4):
//! 1. no panic;
//! 2. the result agrees with a small reference renderer written from the docs/spec.md text (same success,
//!    same bytes), which in particular means a substituted value is never re-scanned: a value that
//!    holds `${B}` or `$${` lands in the output verbatim;
//! 3. a successful render has as many lines as the template; in vm.args, no rendered line has more
//!    whitespace-separated tokens than the template line with each placeholder counted as one
//!    token, and no line gains a `#`;
//! 4. no error (Display or Debug) holds a variable's value, when the value is at least 4 bytes long
//!    and does not occur in the template itself.
#![no_main]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use libfuzzer_sys::fuzz_target;
use rancher_boot::template::{Kind, TemplateError, render};

const NAMES: [&str; 4] = ["A", "B", "C_1", "_"];

struct Input<'a> {
    kind: Kind,
    values: Vec<(&'static str, &'a [u8])>,
    template: &'a [u8],
}

fn decode(data: &[u8]) -> Option<Input<'_>> {
    let (&head, mut rest) = data.split_first()?;
    let kind = if head & 1 == 1 { Kind::VmArgs } else { Kind::Plain };
    let mut values = Vec::new();
    for (n, name) in NAMES.iter().enumerate() {
        if head & (2 << n) != 0 {
            let (&len, tail) = rest.split_first()?;
            let len = usize::from(len % 32).min(tail.len());
            values.push((*name, &tail[..len]));
            rest = &tail[len..];
        }
    }
    Some(Input { kind, values, template: rest })
}

fn to_vars(values: &[(&str, &[u8])]) -> BTreeMap<OsString, OsString> {
    values.iter().map(|(k, v)| (OsString::from(k), OsStr::from_bytes(v).to_os_string())).collect()
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// One scan of the template as docs/spec.md section 4 describes it. `on_placeholder` gets each terminated
/// placeholder's body and returns what to put in its place (None: an error). Unterminated
/// placeholders are errors and the scan resumes at the newline.
fn scan(text: &[u8], mut on_placeholder: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut ok = true;
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'$' {
            out.push(text[i]);
            i += 1;
            continue;
        }
        if text[i..].starts_with(b"$${") {
            out.extend_from_slice(b"${");
            i += 3;
            continue;
        }
        if !text[i..].starts_with(b"${") {
            out.push(b'$');
            i += 1;
            continue;
        }
        let start = i + 2;
        let mut j = start;
        while j < text.len() && text[j] != b'}' && text[j] != b'\n' {
            j += 1;
        }
        if j == text.len() || text[j] == b'\n' {
            ok = false;
            i = j;
            continue;
        }
        match on_placeholder(&text[start..j]) {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => ok = false,
        }
        i = j + 1;
    }
    (out, ok)
}

/// The reference renderer: Some(output) on success, None on any error.
fn reference(text: &[u8], kind: Kind, values: &[(&str, &[u8])]) -> Option<Vec<u8>> {
    let lookup = |name: &[u8]| values.iter().find(|(n, _)| n.as_bytes() == name).map(|(_, v)| *v);
    let (out, ok) = scan(text, |body| {
        if body.is_empty() || !is_name_start(body[0]) {
            return None;
        }
        let len = body.iter().position(|&b| !is_name_byte(b)).unwrap_or(body.len());
        let (name, op) = body.split_at(len);
        let value = lookup(name);
        let nonempty = value.filter(|v| !v.is_empty());
        let bytes: &[u8] = if op.is_empty() {
            value?
        } else if let Some(default) = op.strip_prefix(b":-") {
            nonempty.unwrap_or(default)
        } else if let Some(default) = op.strip_prefix(b"-") {
            value.unwrap_or(default)
        } else if op.starts_with(b":?") {
            nonempty?
        } else {
            return None;
        };
        if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return None;
        }
        if kind == Kind::VmArgs && bytes.iter().any(|&b| b == b' ' || b == b'#') {
            return None;
        }
        Some(bytes.to_vec())
    });
    ok.then_some(out)
}

/// C's isspace, which is how erlexec splits a vm.args file into arguments.
fn is_space(b: &u8) -> bool {
    matches!(*b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Per line: (number of tokens, number of `#`).
fn shape(text: &[u8]) -> Vec<(usize, usize)> {
    text.split(|&b| b == b'\n')
        .map(|line| {
            let tokens = line.split(is_space).filter(|t| !t.is_empty()).count();
            (tokens, line.iter().filter(|&&b| b == b'#').count())
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn error_text(errors: &[TemplateError]) -> Vec<u8> {
    errors.iter().map(|e| format!("{e}\n{e:?}\n")).collect::<String>().into_bytes()
}

/// Another value that the renderer must treat exactly alike (same emptiness, same control, space
/// and `#` content) but that shares no byte with the original at any position.
fn disguise(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .map(|&b| match b {
            0x00..=0x1f | 0x7f => {
                if b == 0x01 {
                    0x02
                } else {
                    0x01
                }
            }
            b' ' => b'#',
            b'#' => b' ',
            0x21..=0x7e => {
                let c = b + 1;
                let c = if c == b'#' { c + 1 } else { c };
                if c > 0x7e { 0x21 } else { c }
            }
            0x80..=0xff => b ^ 0x40 | 0x80,
        })
        .collect()
}

fn show_lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().flat_map(char::escape_default).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = decode(data) else { return };
    let vars = to_vars(&input.values);
    let result = render(input.template, input.kind, &vars);
    let expected = reference(input.template, input.kind, &input.values);

    match (&result, &expected) {
        (Ok(got), Some(want)) => assert_eq!(got, want, "render differs from the docs/spec.md's reference"),
        (Err(_), None) => {}
        (got, want) => panic!("render and the reference disagree on success: {got:?} vs {want:?}"),
    }

    if let Ok(out) = &result {
        // Each placeholder counted as one token `X`.
        let (template_shape, _) = scan(input.template, |_| Some(b"X".to_vec()));
        let (got, want) = (shape(out), shape(&template_shape));
        assert_eq!(got.len(), want.len(), "a line was injected or lost");
        if input.kind == Kind::VmArgs {
            for (n, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(g.0 <= w.0, "line {}: {} tokens, template has {}", n + 1, g.0, w.0);
                assert_eq!(g.1, w.1, "line {}: a `#` was injected", n + 1);
            }
        }
    }

    if let Err(errors) = &result {
        assert!(!errors.is_empty());
        let text = error_text(errors);
        let escaped_template = show_lossy(input.template).into_bytes();
        for (i, (name, value)) in input.values.iter().enumerate() {
            if value.len() < 4 || contains(input.template, value) || contains(&escaped_template, value) {
                continue;
            }
            let lossy = String::from_utf8_lossy(value).into_owned().into_bytes();
            if !contains(&text, value) && !contains(&text, &lossy) {
                continue;
            }
            // The bytes may come from the fixed text of a message ("variable", "column"): render
            // again with a look-alike value; if the bytes are still there, they are not the value.
            let disguised = disguise(value);
            let mut others = input.values.clone();
            others[i] = (name, &disguised);
            let again = render(input.template, input.kind, &to_vars(&others)).expect_err("still fails");
            let again = error_text(&again);
            assert!(
                contains(&again, value) || contains(&again, &lossy),
                "an error holds the value of {name}: {}",
                String::from_utf8_lossy(&text)
            );
        }
    }
});
