//! Just enough of Erlang's external term format to call a function through `rex` and read the
//! answer: atoms, integers, floats, binaries, strings, lists, tuples, maps, pids, ports and
//! references, each version 131 with no atom cache and no compression.
//!
//! The decoder reads what a hostile peer may send: every length is checked against the bytes
//! that are there before anything is allocated, nesting is bounded ([`MAX_DEPTH`]), and a tag it
//! does not know is an error, never a guess. Funs, bit strings with a bit count, and the
//! compressed form are left out: no reply we ask for holds them, and an unknown term only fails
//! the one call that met it.

use std::fmt;

/// The version byte that starts every encoded term.
pub const VERSION: u8 = 131;
/// Deeper nesting than this is refused: no honest reply we ask for nests beyond a dozen.
pub const MAX_DEPTH: usize = 64;

const NEW_FLOAT: u8 = 70;
const BIT_BINARY: u8 = 77;
const NEW_PID: u8 = 88;
const NEW_PORT: u8 = 89;
const NEWER_REFERENCE: u8 = 90;
const SMALL_INTEGER: u8 = 97;
const INTEGER: u8 = 98;
const ATOM: u8 = 100;
const SMALL_TUPLE: u8 = 104;
const LARGE_TUPLE: u8 = 105;
const NIL: u8 = 106;
const STRING: u8 = 107;
const LIST: u8 = 108;
const BINARY: u8 = 109;
const SMALL_BIG: u8 = 110;
const LARGE_BIG: u8 = 111;
const SMALL_ATOM: u8 = 115;
const MAP: u8 = 116;
const ATOM_UTF8: u8 = 118;
const SMALL_ATOM_UTF8: u8 = 119;
const V4_PORT: u8 = 120;

/// A decoded term. Strings (`STRING_EXT`) stay a kind of their own; [`Term::text`] reads both
/// forms of a charlist.
#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    Atom(String),
    Int(i64),
    /// An integer that does not fit `i64`, as its sign and little-endian magnitude.
    BigInt {
        negative: bool,
        digits: Vec<u8>,
    },
    Float(f64),
    Binary(Vec<u8>),
    /// `STRING_EXT`: a list of small integers sent compactly.
    Str(Vec<u8>),
    /// A proper list is `List(items, Nil)`; `[]` is `List([], Nil)`.
    List(Vec<Term>, Box<Term>),
    Nil,
    Tuple(Vec<Term>),
    Map(Vec<(Term, Term)>),
    Pid(Pid),
    Port {
        node: String,
        id: u64,
        creation: u32,
    },
    Ref {
        node: String,
        creation: u32,
        ids: Vec<u32>,
    },
}

/// A process identifier: ours, in the calls we send, and the peer's in what it sends back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pid {
    pub node: String,
    pub id: u32,
    pub serial: u32,
    pub creation: u32,
}

impl Term {
    pub fn atom(name: &str) -> Term {
        Term::Atom(name.to_string())
    }

    pub fn list(items: Vec<Term>) -> Term {
        Term::List(items, Box::new(Term::Nil))
    }

    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Term::Atom(name) => Some(name),
            _ => None,
        }
    }

    /// The elements of a proper list (`[]` included).
    pub fn as_list(&self) -> Option<&[Term]> {
        match self {
            Term::Nil => Some(&[]),
            Term::List(items, tail) if **tail == Term::Nil => Some(items),
            _ => None,
        }
    }

    /// A charlist (`"text"` in Erlang) or a binary, as text.
    pub fn text(&self) -> Option<String> {
        match self {
            Term::Str(bytes) | Term::Binary(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            Term::Nil => Some(String::new()),
            Term::List(..) => {
                let chars: Option<String> = self
                    .as_list()?
                    .iter()
                    .map(|t| match t {
                        Term::Int(c) => u32::try_from(*c).ok().and_then(char::from_u32),
                        _ => None,
                    })
                    .collect();
                chars
            }
            _ => None,
        }
    }
}

/// A term the way Erlang prints it, shortened: for messages, never parsed back.
impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(f: &mut fmt::Formatter<'_>, items: &[Term]) -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                if i == 8 {
                    return f.write_str("...");
                }
                write!(f, "{item}")?;
            }
            Ok(())
        }
        match self {
            Term::Atom(name) => write!(f, "{name}"),
            Term::Int(n) => write!(f, "{n}"),
            Term::BigInt { negative, digits } => {
                write!(f, "{}<{}-byte integer>", if *negative { "-" } else { "" }, digits.len())
            }
            Term::Float(x) => write!(f, "{x}"),
            Term::Binary(bytes) => write!(f, "<<\"{}\">>", String::from_utf8_lossy(bytes).escape_debug()),
            Term::Str(bytes) => write!(f, "\"{}\"", String::from_utf8_lossy(bytes).escape_debug()),
            Term::Nil => f.write_str("[]"),
            Term::List(items, tail) => {
                f.write_str("[")?;
                seq(f, items)?;
                if **tail != Term::Nil {
                    write!(f, "|{tail}")?;
                }
                f.write_str("]")
            }
            Term::Tuple(items) => {
                f.write_str("{")?;
                seq(f, items)?;
                f.write_str("}")
            }
            Term::Map(pairs) => write!(f, "#{{<{} pairs>}}", pairs.len()),
            Term::Pid(pid) => write!(f, "<{}.{}.{}>", pid.node, pid.id, pid.serial),
            Term::Port { node, id, .. } => write!(f, "#Port<{node}.{id}>"),
            Term::Ref { node, .. } => write!(f, "#Ref<{node}>"),
        }
    }
}

/// Why bytes are not a term we read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside a term.
    Truncated,
    /// Not a version-131 term.
    BadVersion(u8),
    /// A tag this decoder does not read (or no tag Erlang has).
    UnknownTag(u8),
    /// Nesting beyond [`MAX_DEPTH`].
    TooDeep,
    /// An atom that is not UTF-8, or longer than Erlang allows.
    BadAtom,
    /// Bytes left over after the term.
    Trailing(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("a term ends early"),
            DecodeError::BadVersion(v) => write!(f, "a term starts with {v}, not 131"),
            DecodeError::UnknownTag(tag) => write!(f, "a term has tag {tag}, which is not read here"),
            DecodeError::TooDeep => write!(f, "a term nests deeper than {MAX_DEPTH}"),
            DecodeError::BadAtom => f.write_str("an atom is not valid UTF-8 of at most 255 characters"),
            DecodeError::Trailing(n) => write!(f, "{n} bytes follow a term"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A reader over bytes that holds its place: each term of a frame is read in turn.
#[derive(Debug)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Decoder { bytes, at: 0 }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
    }

    /// One term with its version byte.
    pub fn term(&mut self) -> Result<Term, DecodeError> {
        match self.u8()? {
            VERSION => self.value(0),
            other => Err(DecodeError::BadVersion(other)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len()).ok_or(DecodeError::Truncated)?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let hi = u64::from(self.u32()?);
        Ok(hi << 32 | u64::from(self.u32()?))
    }

    /// A count of elements that each take at least `min` bytes: refused before any allocation
    /// when the bytes left cannot hold them.
    fn count(&mut self, n: usize, min: usize) -> Result<usize, DecodeError> {
        if n.saturating_mul(min) > self.bytes.len() - self.at { Err(DecodeError::Truncated) } else { Ok(n) }
    }

    fn atom_text(&mut self, len: usize, latin1: bool) -> Result<String, DecodeError> {
        let bytes = self.take(len)?;
        let text = if latin1 {
            bytes.iter().map(|&b| char::from(b)).collect()
        } else {
            String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::BadAtom)?
        };
        if text.chars().count() > 255 {
            return Err(DecodeError::BadAtom);
        }
        Ok(text)
    }

    /// An atom where one must stand (a pid's node).
    fn atom(&mut self, depth: usize) -> Result<String, DecodeError> {
        match self.value(depth + 1)? {
            Term::Atom(name) => Ok(name),
            _ => Err(DecodeError::BadAtom),
        }
    }

    fn items(&mut self, n: usize, depth: usize) -> Result<Vec<Term>, DecodeError> {
        let n = self.count(n, 1)?;
        (0..n).map(|_| self.value(depth + 1)).collect()
    }

    fn value(&mut self, depth: usize) -> Result<Term, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let tag = self.u8()?;
        Ok(match tag {
            SMALL_INTEGER => Term::Int(i64::from(self.u8()?)),
            INTEGER => Term::Int(i64::from(self.u32()? as i32)),
            NEW_FLOAT => Term::Float(f64::from_bits(self.u64()?)),
            ATOM | ATOM_UTF8 => {
                let len = usize::from(self.u16()?);
                Term::Atom(self.atom_text(len, tag == ATOM)?)
            }
            SMALL_ATOM | SMALL_ATOM_UTF8 => {
                let len = usize::from(self.u8()?);
                Term::Atom(self.atom_text(len, tag == SMALL_ATOM)?)
            }
            SMALL_TUPLE => {
                let n = usize::from(self.u8()?);
                Term::Tuple(self.items(n, depth)?)
            }
            LARGE_TUPLE => {
                let n = self.u32()? as usize;
                Term::Tuple(self.items(n, depth)?)
            }
            NIL => Term::Nil,
            STRING => {
                let n = usize::from(self.u16()?);
                Term::Str(self.take(n)?.to_vec())
            }
            LIST => {
                let n = self.u32()? as usize;
                let items = self.items(n, depth)?;
                let tail = self.value(depth + 1)?;
                Term::List(items, Box::new(tail))
            }
            BINARY => {
                let n = self.u32()? as usize;
                Term::Binary(self.take(n)?.to_vec())
            }
            BIT_BINARY => {
                let n = self.u32()? as usize;
                let _bits = self.u8()?;
                Term::Binary(self.take(n)?.to_vec())
            }
            SMALL_BIG | LARGE_BIG => {
                let n = if tag == SMALL_BIG { usize::from(self.u8()?) } else { self.u32()? as usize };
                let negative = self.u8()? != 0;
                let digits = self.take(n)?.to_vec();
                big_to_int(negative, &digits).map_or(Term::BigInt { negative, digits }, Term::Int)
            }
            MAP => {
                let n = self.u32()? as usize;
                let n = self.count(n, 2)?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.value(depth + 1)?;
                    pairs.push((key, self.value(depth + 1)?));
                }
                Term::Map(pairs)
            }
            NEW_PID => {
                let node = self.atom(depth)?;
                Term::Pid(Pid { node, id: self.u32()?, serial: self.u32()?, creation: self.u32()? })
            }
            NEW_PORT => {
                let node = self.atom(depth)?;
                Term::Port { node, id: u64::from(self.u32()?), creation: self.u32()? }
            }
            V4_PORT => {
                let node = self.atom(depth)?;
                Term::Port { node, id: self.u64()?, creation: self.u32()? }
            }
            NEWER_REFERENCE => {
                let n = usize::from(self.u16()?);
                let node = self.atom(depth)?;
                let creation = self.u32()?;
                let n = self.count(n, 4)?;
                let ids = (0..n).map(|_| self.u32()).collect::<Result<_, _>>()?;
                Term::Ref { node, creation, ids }
            }
            other => return Err(DecodeError::UnknownTag(other)),
        })
    }
}

/// A big integer's little-endian magnitude as `i64`, when it fits.
fn big_to_int(negative: bool, digits: &[u8]) -> Option<i64> {
    let significant = digits.iter().rposition(|&d| d != 0).map_or(0, |i| i + 1);
    if significant > 8 {
        return None;
    }
    let magnitude = digits[..significant].iter().rev().fold(0u64, |acc, &d| acc << 8 | u64::from(d));
    if negative { 0i64.checked_sub_unsigned(magnitude) } else { i64::try_from(magnitude).ok() }
}

/// One whole term: version byte, the term, nothing after it.
pub fn decode(bytes: &[u8]) -> Result<Term, DecodeError> {
    let mut decoder = Decoder::new(bytes);
    let term = decoder.term()?;
    match decoder.rest().len() {
        0 => Ok(term),
        n => Err(DecodeError::Trailing(n)),
    }
}

/// Appends `term` with its version byte. Encodes what we send: atoms, integers, binaries, lists,
/// tuples and pids (anything else is a bug of ours, and panics in tests).
pub fn encode(term: &Term, out: &mut Vec<u8>) {
    out.push(VERSION);
    encode_value(term, out);
}

fn encode_value(term: &Term, out: &mut Vec<u8>) {
    match term {
        Term::Atom(name) => encode_atom(name, out),
        Term::Int(n) => match (u8::try_from(*n), i32::try_from(*n)) {
            (Ok(small), _) => out.extend([SMALL_INTEGER, small]),
            (_, Ok(int)) => {
                out.push(INTEGER);
                out.extend(int.to_be_bytes());
            }
            _ => {
                out.extend([SMALL_BIG, 8, u8::from(*n < 0)]);
                out.extend(n.unsigned_abs().to_le_bytes());
            }
        },
        Term::Binary(bytes) => {
            out.push(BINARY);
            out.extend(u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend(bytes);
        }
        Term::Nil => out.push(NIL),
        Term::List(items, tail) if items.is_empty() => encode_value(tail, out),
        Term::List(items, tail) => {
            out.push(LIST);
            out.extend(u32::try_from(items.len()).unwrap_or(u32::MAX).to_be_bytes());
            items.iter().for_each(|item| encode_value(item, out));
            encode_value(tail, out);
        }
        Term::Tuple(items) => {
            match u8::try_from(items.len()) {
                Ok(n) => out.extend([SMALL_TUPLE, n]),
                Err(_) => {
                    out.push(LARGE_TUPLE);
                    out.extend(u32::try_from(items.len()).unwrap_or(u32::MAX).to_be_bytes());
                }
            }
            items.iter().for_each(|item| encode_value(item, out));
        }
        Term::Pid(pid) => {
            out.push(NEW_PID);
            encode_atom(&pid.node, out);
            out.extend(pid.id.to_be_bytes());
            out.extend(pid.serial.to_be_bytes());
            out.extend(pid.creation.to_be_bytes());
        }
        Term::Str(bytes) => {
            let items = bytes.iter().map(|&b| Term::Int(i64::from(b))).collect();
            encode_value(&Term::list(items), out);
        }
        other => debug_assert!(false, "not encoded: {other:?}"),
    }
}

fn encode_atom(name: &str, out: &mut Vec<u8>) {
    match u8::try_from(name.len()) {
        Ok(len) => out.extend([SMALL_ATOM_UTF8, len]),
        Err(_) => {
            out.push(ATOM_UTF8);
            out.extend(u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    out.extend(name.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(term: &Term) -> Term {
        let mut out = Vec::new();
        encode(term, &mut out);
        decode(&out).expect("decodes")
    }

    #[test]
    fn what_we_send_reads_back() {
        let pid = Term::Pid(Pid { node: "probe@127.0.0.1".into(), id: 1, serial: 0, creation: 7 });
        for term in [
            Term::atom("rex"),
            Term::Int(0),
            Term::Int(255),
            Term::Int(-1),
            Term::Int(70_000),
            Term::Int(i64::MAX),
            Term::Int(i64::MIN + 1),
            Term::Binary(b"bin".to_vec()),
            Term::Nil,
            Term::list(vec![Term::atom("a"), Term::Int(1)]),
            Term::Tuple(vec![Term::Int(6), pid.clone(), Term::atom(""), Term::atom("rex")]),
            Term::Tuple(vec![Term::Nil; 300]),
        ] {
            assert_eq!(round_trip(&term), term);
        }
    }

    /// `term_to_binary({rex, [{kernel, "ERTS  CXC 138 10", "8.5.3"}]}, [{minor_version, 2}])` from a
    /// real OTP 25: atoms as UTF-8, as distribution sends them.
    #[test]
    fn a_which_applications_reply_from_otp() {
        let mut bytes = vec![131, 104, 2, 119, 3, b'r', b'e', b'x', 108, 0, 0, 0, 1, 104, 3, 119, 6];
        bytes.extend(b"kernel");
        bytes.extend([107, 0, 16]);
        bytes.extend(b"ERTS  CXC 138 10");
        bytes.extend([107, 0, 5]);
        bytes.extend(b"8.5.3");
        bytes.push(106);
        let term = decode(&bytes).unwrap();
        let Term::Tuple(items) = term else { panic!("{term:?}") };
        let apps = items[1].as_list().unwrap();
        let Term::Tuple(app) = &apps[0] else { panic!() };
        assert_eq!(app[0].as_atom(), Some("kernel"));
        assert_eq!(app[2].text().as_deref(), Some("8.5.3"));
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocation() {
        // A list of 4 billion elements in 10 bytes.
        assert_eq!(decode(&[131, 108, 0xff, 0xff, 0xff, 0xff, 106]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[131, 116, 0xff, 0xff, 0xff, 0xff]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[131, 109, 0xff, 0xff, 0xff, 0xff, 1]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[131, 90, 0xff, 0xff, 119, 1, b'a', 0, 0, 0, 1]), Err(DecodeError::Truncated));
        // [[[[...]]]] deeper than allowed.
        let mut deep = vec![131];
        for _ in 0..1000 {
            deep.extend([108, 0, 0, 0, 1]);
        }
        assert_eq!(decode(&deep), Err(DecodeError::TooDeep));
        assert_eq!(decode(&[131, 200]), Err(DecodeError::UnknownTag(200)));
        assert_eq!(decode(&[130, 106]), Err(DecodeError::BadVersion(130)));
        assert_eq!(decode(&[131, 106, 0]), Err(DecodeError::Trailing(1)));
        assert_eq!(decode(&[131, 119, 2, 0xff, 0xfe]), Err(DecodeError::BadAtom));
    }

    #[test]
    fn big_integers_that_fit_are_integers() {
        assert_eq!(decode(&[131, 110, 2, 1, 0x10, 0x27]), Ok(Term::Int(-10_000)));
        assert_eq!(
            decode(&[131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            Ok(Term::BigInt { negative: false, digits: vec![0, 0, 0, 0, 0, 0, 0, 0, 1] })
        );
    }

    #[test]
    fn charlists_read_as_text_in_both_forms() {
        assert_eq!(Term::Str(b"3.10".to_vec()).text().as_deref(), Some("3.10"));
        assert_eq!(Term::list(vec![Term::Int(0x263a)]).text().as_deref(), Some("\u{263a}"));
        assert_eq!(Term::atom("x").text(), None);
    }
}
