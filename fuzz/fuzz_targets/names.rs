//! Fuzz target: the validators of names and of the cookie on arbitrary input.
//!
//! Byte 0 picks the validator, the rest is the input:
//! - 0: `cli::check_node_basename` (the name part of a node name: `[0-9A-Za-z_-]+`, at most
//!   `MAX_NODE_BASENAME` bytes, so that `basename@ip` fits in an Erlang atom);
//! - 1: `cli::check_name` (a Rancher service, stack or container name:
//!   `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 63 bytes);
//! - 2 and anything else: `cookie::check_cookie` (a cookie file's content).
//!
//! Invariants: each checker accepts exactly its grammar (both directions); an accepted basename
//! makes a node name with exactly one `@` and no whitespace; an accepted cookie is the input less
//! one trailing newline, 1..=255 bytes of printable ASCII without space or `#`, not starting with
//! `-` or `+` (erl would read it as a flag); a refused cookie's
//! message holds neither the cookie nor any 6-byte piece of it (a piece that the message for a
//! look-alike cookie holds too is the message's fixed text, not an echo).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rancher_boot::cli::{MAX_NODE_BASENAME, check_name, check_node_basename};
use rancher_boot::cookie::check_cookie;

fn basename_grammar(s: &str) -> bool {
    (1..=MAX_NODE_BASENAME).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

fn name_grammar(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn cookie_grammar(b: &[u8]) -> bool {
    (1..=255).contains(&b.len()) && b.iter().all(|&c| c.is_ascii_graphic() && c != b'#') && !matches!(b[0], b'-' | b'+')
}

/// A look-alike cookie that `check_cookie` must judge the same way (same length, and at each
/// position the same kind of byte: space, `#`, newline, carriage return, other control, non-ASCII,
/// or other printable) while sharing no printable byte with the original. A piece of the input
/// that shows up in the message for both is fixed text of the message, not an echo.
fn disguise(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| match b {
            // Kept: each is a reason for refusal of its own (a leading `-` or `+` too).
            b' ' | b'#' | b'\n' | b'\r' | b'-' | b'+' => b,
            0x00..=0x1f | 0x7f => {
                if b == 0x01 {
                    0x02
                } else {
                    0x01
                }
            }
            0x80..=0xff => (b ^ 0x40) | 0x80,
            _ => {
                let c = if b == 0x7e { 0x21 } else { b + 1 };
                if c == b'#' { c + 1 } else { c }
            }
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else { return };
    match which {
        0 | 1 => {
            let Ok(text) = std::str::from_utf8(input) else { return };
            if which == 0 {
                let ok = check_node_basename(text).is_ok();
                assert_eq!(ok, basename_grammar(text), "check_node_basename({text:?})");
                if ok {
                    let node = format!("{text}@10.0.0.1");
                    assert_eq!(node.matches('@').count(), 1);
                    assert!(!node.chars().any(char::is_whitespace));
                }
            } else {
                assert_eq!(check_name(text).is_ok(), name_grammar(text), "check_name({text:?})");
            }
        }
        _ => match check_cookie(input) {
            Ok(cookie) => {
                let trimmed = input.strip_suffix(b"\n").unwrap_or(input);
                assert_eq!(cookie.as_bytes(), trimmed);
                assert!(cookie_grammar(trimmed), "accepted {trimmed:?}");
            }
            Err(why) => {
                let trimmed = input.strip_suffix(b"\n").unwrap_or(input);
                assert!(!cookie_grammar(trimmed), "refused a valid cookie: {why}");
                let again = check_cookie(&disguise(input)).expect_err("a look-alike is refused too");
                let (why, again) = (why.as_bytes(), again.as_bytes());
                let leaks = |piece: &[u8]| contains(why, piece) && !contains(again, piece);
                for piece in [input, trimmed] {
                    if piece.len() >= 4 {
                        assert!(!leaks(piece), "the error echoes the cookie: {}", String::from_utf8_lossy(why));
                    }
                }
                for piece in trimmed.windows(6) {
                    assert!(!leaks(piece), "the error echoes part of the cookie: {}", String::from_utf8_lossy(why));
                }
            }
        },
    }
});
